"""Text stage: the text → W+ encoder on the real offline MiniLM (shapes, bad text, truncation, frozen
backbone, exact save/load), the losses (L2 head training falls on cached embeddings, contrastive prefers
matched pairs), and the stage end to end at tiny scale (outputs, metrics, grid, cache reuse, resume)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tedigan.config import ConfigError, TextStageConfig, load_config
from tedigan.losses import text as text_losses
from tedigan.models.text_encoder import BACKBONE_DIR, TextEncoder, TextEncoderConfig, TextHead
from tedigan.training import text as stage
from tedigan.training import text_cache

RES = 16
NUM_WS, W_DIM = 4, 8
SMALL = {"num_ws": NUM_WS, "w_dim": W_DIM, "hidden_dim": 32, "depth": 1}


@pytest.fixture(scope="module")
def T() -> TextEncoder:
    torch.manual_seed(0)
    return TextEncoder(TextEncoderConfig(max_length=16, **SMALL))  # the real offline MiniLM-L6


def _shared(T: TextEncoder, **cfg) -> TextEncoder:
    """Another encoder on the already loaded backbone (loading MiniLM again costs seconds)."""
    return TextEncoder(TextEncoderConfig(**{"max_length": 16, **SMALL, **cfg}), T.backbone, T.tokenizer)


def _tiny_bert(T: TextEncoder):
    """A tiny random BERT on MiniLM's tokenizer (keeps saved folders and fine-tuning small)."""
    from transformers import AutoModel, BertConfig

    cfg = BertConfig(
        vocab_size=T.tokenizer.vocab_size,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    return AutoModel.from_config(cfg)


# ------------------------------------------------------------------------------------------------ model


def test_minilm_shapes_and_embeddings(T):
    assert T.config.embed_dim == 384
    ws = T(["a smiling man with glasses", "a woman with long blond hair", "bald"])
    assert ws.shape == (3, NUM_WS, W_DIM)
    emb = T.sentence_embedding(["red hair", "red hair", "a fedora"])
    assert emb.shape == (3, 384)
    assert torch.allclose(emb.norm(dim=1), torch.ones(3), atol=1e-5)  # normalised, as all-MiniLM-L6-v2
    assert torch.allclose(emb[0], emb[1]) and not torch.allclose(emb[0], emb[2])
    # the head starts at w_avg (offsets are small) and encode_text is forward without gradients, batched
    w = torch.randn(W_DIM)
    T.set_w_avg(w)
    single = T.encode_text("a smiling man with glasses")
    batched = T.encode_text(["a smiling man with glasses", "bald", "x"], batch_size=2)
    assert not single.requires_grad and torch.allclose(single[0], batched[0], atol=1e-5)
    assert (single - w).abs().mean() < w.abs().mean()
    T.set_w_avg(torch.zeros(W_DIM))
    # padding does not change a sentence's embedding (mean over real tokens only)
    alone = T.sentence_embedding(["hat"])
    padded = T.sentence_embedding(["hat", "a much longer caption with many more tokens in it"])
    assert torch.allclose(alone[0], padded[0], atol=1e-5)


def test_empty_text_and_bad_inputs(T):
    for bad in ["", "   \n\t", [], ["fine", " "]]:
        with pytest.raises(ValueError, match="empty text"):
            T(bad)
    with pytest.raises(TypeError, match="not a str"):
        T(["ok", 3])
    with pytest.raises(ValueError, match=r"embeddings \[B, 384\]"):
        T.head(torch.zeros(2, 10))
    with pytest.raises(ValueError, match="embed_dim"):
        _shared(T, embed_dim=100)


def test_long_text_warns_and_truncates(T):
    long = "a smiling person with glasses and " * 20
    with pytest.warns(UserWarning, match="max_length=16"):
        tokens = T.tokenize([long, "short"])
    assert tokens["input_ids"].shape == (2, 16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = T.sentence_embedding([long])
        b = T.sentence_embedding([long + " but also a red beanie and a beard"])
    assert torch.allclose(a, b)  # everything after the limit is ignored
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # short text: no warning
        T.tokenize(["short text"])


def test_frozen_backbone_has_no_grads_head_does(T):
    T.zero_grad(set_to_none=True)
    T.train()
    assert not T.backbone.training  # a frozen backbone stays in eval mode (no dropout)
    T(["a bearded man", "a girl with pink hair"]).square().sum().backward()
    assert all(p.grad is None and not p.requires_grad for p in T.backbone.parameters())
    head = list(T.head.parameters())
    assert head and all(p.grad is not None and p.grad.abs().sum() > 0 for p in head)
    assert {id(p) for p in T.trainable_parameters()} == {id(p) for p in head}
    T.zero_grad(set_to_none=True)
    T.eval()


def test_save_load_round_trip_frozen(T, tmp_path):
    T.set_w_avg(torch.linspace(-1, 1, W_DIM))
    texts = ["a smiling man with glasses", "long blond hair"]
    before = T.encode_text(texts)
    T.save_pretrained(tmp_path / "te", extra={"note": "x"})
    state = load_file(str(tmp_path / "te" / "model.safetensors"))
    assert not any(k.startswith("backbone.") for k in state)  # referenced, not copied
    assert (tmp_path / "te" / "model.safetensors").stat().st_size < 1_000_000
    assert not (tmp_path / "te" / BACKBONE_DIR).exists()
    meta = json.loads((tmp_path / "te" / "config.json").read_text())
    assert meta["backbone"] is None and meta["embed_dim"] == 384 and meta["_extra"]["note"] == "x"
    again = TextEncoder.from_pretrained(tmp_path / "te")
    assert torch.equal(again.encode_text(texts), before)
    assert torch.equal(again.w_avg, T.w_avg)
    assert not any(p.requires_grad for p in again.backbone.parameters())
    T.set_w_avg(torch.zeros(W_DIM))


def test_fine_tuned_backbone_trains_and_is_saved(T, tmp_path):
    torch.manual_seed(0)  # a tiny random BERT on MiniLM's tokenizer keeps the saved folder small
    tiny = _tiny_bert(T)
    F = TextEncoder(TextEncoderConfig(freeze_backbone=False, max_length=16, **SMALL), tiny, T.tokenizer)
    F.train()
    F(["a bearded man"]).square().sum().backward()
    assert F.backbone.training
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in F.backbone.parameters())
    F.save_pretrained(tmp_path / "ft")
    assert (tmp_path / "ft" / BACKBONE_DIR / "config.json").is_file()
    assert any(k.startswith("backbone.") for k in load_file(str(tmp_path / "ft" / "model.safetensors")))
    texts = ["a bearded man", "pink hair and sunglasses"]
    again = TextEncoder.from_pretrained(tmp_path / "ft")
    assert torch.equal(again.encode_text(texts), F.encode_text(texts))


# ----------------------------------------------------------------------------------------------- losses


def _toy_captions() -> tuple[list[str], list[tuple[int, int]]]:
    colours = ["black", "blond", "red", "pink", "gray", "brown"]
    extras = ["wearing glasses", "with a beard", "smiling", "wearing a hat"]
    texts, attrs = [], []
    for i, c in enumerate(colours):
        for j, e in enumerate(extras):
            texts.append(f"a person with {c} hair {e}")
            attrs.append((i, j))
    return texts, attrs


def test_head_trained_on_cached_embeddings_lowers_l2(T):
    texts, attrs = _toy_captions()
    emb = T.embed_texts(texts)  # computed once, as the stage caches them
    g = torch.Generator().manual_seed(0)
    colour_code, extra_code = (
        torch.randn(6, NUM_WS, W_DIM, generator=g),
        torch.randn(4, NUM_WS, W_DIM, generator=g),
    )
    target = torch.stack(
        [colour_code[i] + extra_code[j] for i, j in attrs]
    )  # a code per attribute combination
    torch.manual_seed(0)
    head = TextHead(TextEncoderConfig(embed_dim=384, **{**SMALL, "hidden_dim": 128}))
    opt = torch.optim.Adam(head.parameters(), lr=3e-3)
    weights = text_losses.layer_weights(None, NUM_WS)
    losses = []
    for _ in range(200):
        loss = text_losses.text_code_loss(head(emb), target, weights)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0], (losses[0], losses[-1])
    # per-layer weights: only layer 0 counts
    w0 = text_losses.layer_weights([1, 0, 0, 0], NUM_WS)
    fake = target.clone()
    fake[:, 1:] += 5
    assert text_losses.text_code_loss(fake, target, w0).item() == 0
    with pytest.raises(ConfigError, match="4 W\\+ layers"):
        text_losses.layer_weights([1.0, 1.0], NUM_WS)


def test_contrastive_lower_for_matched_than_shuffled():
    g = torch.Generator().manual_seed(0)
    center = torch.randn(W_DIM, generator=g)
    images = center + torch.randn(16, NUM_WS, W_DIM, generator=g)
    text = images + 0.3 * torch.randn(16, NUM_WS, W_DIM, generator=g)
    shuffled = text[torch.roll(torch.arange(16), 5)]
    matched_loss = text_losses.contrastive_loss(text, images, 0.1, center)
    shuffled_loss = text_losses.contrastive_loss(shuffled, images, 0.1, center)
    assert matched_loss < 0.5 * shuffled_loss
    # two captions of the same image are both positives: duplicated pairs cost no more than distinct ones
    ids = torch.tensor([0, 0] + list(range(1, 15)))
    dup_images = images.clone()
    dup_images[1] = dup_images[0]
    dup_text = text.clone()
    dup_text[1] = dup_images[0] + 0.3 * torch.randn(NUM_WS, W_DIM, generator=g)
    multi = text_losses.contrastive_loss(dup_text, dup_images, 0.1, center, ids)
    naive = text_losses.contrastive_loss(dup_text, dup_images, 0.1, center)
    assert multi < naive


# ------------------------------------------------------------------------------------------------ stage


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> dict[str, Path]:
    from tedigan.data.avatars import ATTRIBUTES, build_dataset
    from tedigan.models.classifier import AttributeClassifier, ClassifierConfig
    from tedigan.models.encoder import Encoder
    from tedigan.models.stylegan2 import Generator, GeneratorConfig

    root = tmp_path_factory.mktemp("text_stage")
    torch.manual_seed(0)
    G = Generator(
        GeneratorConfig(resolution=RES, z_dim=16, w_dim=16, n_mlp=2, channel_base=8 * RES, channel_max=8)
    )
    with torch.no_grad():
        G.mapping.w_avg.copy_(G.mean_latent(256, generator=torch.Generator().manual_seed(1)))
    g_dir = G.save_pretrained(root / "generator")
    E = Encoder.from_generator(G, channel_base=8 * RES, channel_max=16, fpn_channels=16, head_dim=32)
    e_dir = E.save_pretrained(root / "encoder", extra={"stage": "inversion", "generator": str(g_dir)})
    heads = {k: list(v) for k, v in ATTRIBUTES.items()}
    clf = AttributeClassifier(ClassifierConfig(resolution=RES, widths=[4, 8], heads=heads))
    c_dir = clf.save_pretrained(root / "classifier")
    data = build_dataset(
        root / "avatars", 12, resolution=RES, workers=1, hf=False, progress=False, splits=(0.5, 0.5, 0)
    )
    return {"root": root, "data": data, "encoder": e_dir, "generator": g_dir, "classifier": c_dir}


def _stage_cfg(run: dict[str, Path], **over) -> TextStageConfig:
    overrides = {
        "data.root": str(run["data"]),
        "data.resolution": RES,
        "encoder_path": str(run["encoder"]),
        "classifier_path": str(run["classifier"]),
        "text_encoder.hidden_dim": 32,
        "text_encoder.depth": 1,
        "loss.contrastive": 0.1,
        "train.output_dir": str(run["root"] / "out"),
        "train.max_steps": 6,
        "train.batch_size": 8,
        "train.log_every": 2,
        "train.eval_every": 3,
        "train.sample_every": 3,
        "train.checkpoint_every": 3,
        "lr_warmup_steps": 1,
        "num_grid": 4,
        "eval_captions_per_image": 2,
        **over,
    }
    return load_config(TextStageConfig, None, overrides)


@pytest.mark.slow
def test_stage_end_to_end_and_resume(tiny_run):
    out = tiny_run["root"] / "out"
    summary = stage.train(_stage_cfg(tiny_run))
    assert summary["step"] == 6
    meta = json.loads((out / "text_encoder" / "config.json").read_text())
    assert meta["num_ws"] == 6 and meta["w_dim"] == 16 and meta["_extra"]["stage"] == "text"
    assert (out / "text_encoder" / "model.safetensors").stat().st_size < 1_000_000
    report = json.loads((out / "eval.json").read_text())
    m = report["metrics"]
    assert report["num_images"] == 6 and report["num_captions"] == 60
    assert 0 <= m["text_retrieval"]["top1"] <= m["text_retrieval"]["top5"] <= 1
    assert m["text_retrieval"]["num_images"] == 6 and m["text_retrieval"]["chance_top1"] == pytest.approx(
        1 / 6
    )
    assert m["text_l2"]["value"] > 0 and len(m["text_l2"]["per_layer"]) == 6
    acc = m["text_attribute_accuracy"]
    assert acc["num_captions"] <= 12 and 0 <= acc["value"] <= 1 and "inverted_ceiling" in acc
    assert (out / "text_grid.png").is_file() and len((out / "text_grid.txt").read_text().splitlines()) == 4
    assert (out / "samples" / "step-6.png").is_file()
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("loss/l2" in r and "loss/contrastive" in r for r in rows) and rows[-1]["stage"] == "text"
    assert summary["cache_built"] == {
        "train": {"codes": True, "text": True},
        "val": {"codes": True, "text": True},
    }
    assert (out / "cache" / "train.codes.safetensors").is_file() and (
        out / "cache" / "val.text.safetensors"
    ).is_file()
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-3", "checkpoint-6"]

    # the trained encoder loads and reproduces the evaluated codes
    T = TextEncoder.from_pretrained(out / "text_encoder")
    val = text_cache.PairCache.load(out / "cache", "val")
    codes = T.encode_text(val.pair_texts()[:3])
    assert codes.shape == (3, 6, 16)
    assert torch.allclose(codes, T.head(val.embeddings[val.pair_caption[:3]]), atol=1e-5)

    # the value prototypes: the mean trained text code of the training captions naming each value
    from tedigan.data import vocabulary_for
    from tedigan.models.prototypes import Prototypes

    protos = Prototypes.load(out / "prototypes.safetensors")
    assert summary["prototypes"] == str(out / "prototypes.safetensors") and protos.gain == 2.0
    train = text_cache.PairCache.load(out / "cache", "train")
    vocab = vocabulary_for("avatars", tiny_run["data"])
    a, v = next((a, v) for a, vals in protos.codes.items() for v in vals)
    named = [i for i, c in enumerate(train.captions) if vocab.read(c).values.get(a) == v]
    assert protos.counts[a][v] == len(named) > 0
    assert torch.allclose(protos.codes[a][v], T.head(train.embeddings[named]).mean(0), atol=1e-5)

    # resume from the latest checkpoint with the caches reused
    again = stage.train(_stage_cfg(tiny_run, **{"train.max_steps": 8}), resume="latest")
    assert again["step"] == 8
    assert not any(any(b.values()) for b in again["cache_built"].values())

    # another image encoder: E(x) is recomputed, the sentence embeddings are reused
    from tedigan.models.encoder import Encoder

    E = Encoder.from_pretrained(tiny_run["encoder"])
    with torch.no_grad():
        for p in E.parameters():
            p.add_(0.01)
    e2 = E.save_pretrained(tiny_run["root"] / "encoder2", extra={"generator": str(tiny_run["generator"])})
    over = {
        "encoder_path": str(e2),
        "cache_dir": str(out / "cache"),
        "train.output_dir": str(tiny_run["root"] / "out2"),
        "train.max_steps": 2,
        "loss.contrastive": 0.0,
    }
    third = stage.train(_stage_cfg(tiny_run, **over))
    assert third["cache_built"]["train"] == {"codes": True, "text": False}


def test_stage_fine_tunes_a_backbone(tiny_run, T):
    bert = tiny_run["root"] / "tiny_bert"  # a tiny random BERT with MiniLM's tokenizer, as a local model
    torch.manual_seed(0)
    _tiny_bert(T).save_pretrained(str(bert))
    T.tokenizer.save_pretrained(str(bert))
    out = tiny_run["root"] / "out_ft"
    over = {
        "text_encoder.backbone": str(bert),
        "text_encoder.freeze_backbone": False,
        "train.output_dir": str(out),
        "train.max_steps": 3,
        "classifier_path": None,
    }
    summary = stage.train(_stage_cfg(tiny_run, **over))
    assert summary["cache_built"]["train"] == {
        "codes": True,
        "text": False,
    }  # no embeddings: the backbone trains
    assert (out / "text_encoder" / "backbone" / "config.json").is_file()
    ft = TextEncoder.from_pretrained(out / "text_encoder")
    initial = TextEncoder(ft.config)  # the untrained backbone from its folder
    assert not torch.equal(
        ft.backbone.embeddings.word_embeddings.weight, initial.backbone.embeddings.word_embeddings.weight
    )
    assert "text_attribute_accuracy" not in json.loads((out / "eval.json").read_text())["metrics"]


def test_stage_config_errors(tiny_run, tmp_path):
    with pytest.raises(ConfigError, match="temperature"):
        _stage_cfg(tiny_run, **{"loss.temperature": 0})
    with pytest.raises(ConfigError, match="nothing to train"):
        _stage_cfg(tiny_run, **{"loss.l2": 0, "loss.contrastive": 0})
    with pytest.raises(FileNotFoundError, match="no trained image encoder"):
        stage.load_frozen_encoder(tmp_path / "missing")


def test_light_bert_equals_transformers():
    """The frozen default backbone runs without importing transformers, with transformers' numbers."""
    from tedigan.models.ports.bert import BertEncoder, FastTokenizer
    from tedigan.models.text_encoder import load_text_model

    tl, ml = load_text_model(frozen=True)
    th, mh = load_text_model(frozen=False)
    assert isinstance(ml, BertEncoder) and isinstance(tl, FastTokenizer)
    assert not isinstance(mh, BertEncoder)
    texts = ["a smiling man with long blond hair and sunglasses", "remove the glasses", "x"]
    a = tl(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
    b = th(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
    assert all(torch.equal(a[k], b[k]) for k in b)
    assert tl(texts, truncation=False)["input_ids"] == th(texts, truncation=False, verbose=False)["input_ids"]
    with torch.no_grad():
        ha, hb = ml(**a).last_hidden_state, mh(**a).last_hidden_state
    valid = a["attention_mask"].bool()
    assert (ha - hb)[valid].abs().max() < 2e-5


@pytest.mark.slow
def test_stage_resumes_bit_exactly(tiny_run, monkeypatch):
    from resume_check import assert_resumes_exactly

    cfg = _stage_cfg(tiny_run, **{"train.output_dir": str(tiny_run["root"] / "exact"), "train.grad_accum": 2})
    assert_resumes_exactly(stage.train, cfg, stage.TextStage, 4, ["text_encoder"], monkeypatch)
