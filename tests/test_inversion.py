"""Inversion stage: the W+ encoder (every modality, bad inputs, exact save/load), the latent loss, a tiny
overfit, and the stage end to end (real LPIPS, outputs, evaluation, resume) for image, sketch and label."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from tedigan import assets
from tedigan.config import ConfigError, InversionLossConfig, InversionStageConfig, load_config
from tedigan.models.classifier import AttributeClassifier, ClassifierConfig
from tedigan.models.encoder import Encoder, EncoderConfig, label_to_onehot
from tedigan.models.stylegan2 import Generator
from tedigan.training import inversion as stage

RES = 16
TINY_ENC = {"channel_base": 8 * RES, "channel_max": 16, "fpn_channels": 16, "head_dim": 32}


@pytest.fixture(scope="module")
def G(tiny_generator) -> Generator:
    return tiny_generator(RES)


@pytest.fixture(scope="module")
def g_dir(G, tmp_path_factory) -> Path:
    return G.save_pretrained(tmp_path_factory.mktemp("gen") / "generator")


@pytest.fixture(scope="module")
def blobs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("blobs")
    rng = np.random.default_rng(0)
    for i in range(12):
        im = Image.new("RGB", (RES, RES), tuple(int(v) for v in rng.integers(0, 256, 3)))
        r = RES * rng.uniform(0.25, 0.4)
        ImageDraw.Draw(im).ellipse(
            [8 - r, 8 - r, 8 + r, 8 + r], fill=tuple(int(v) for v in rng.integers(0, 256, 3))
        )
        im.save(root / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def avatars(tmp_path_factory) -> Path:
    from tedigan.data.avatars import build_dataset

    root = tmp_path_factory.mktemp("avatars") / "av"
    return build_dataset(root, 8, resolution=RES, workers=1, hf=False, progress=False, splits=(0.5, 0.5, 0))


def _enc(G: Generator, modality: str = "image", **kw) -> Encoder:
    if modality == "label":
        kw.setdefault("in_channels", 11)
    return Encoder.from_generator(G, modality, **TINY_ENC, **kw)


# ------------------------------------------------------------------------------------------------ model


def test_encoder_shapes_for_every_modality(G):
    torch.manual_seed(0)
    for modality, x in [
        ("image", torch.rand(3, 3, RES, RES) * 2 - 1),
        ("sketch", torch.rand(3, 1, RES, RES) * 2 - 1),
        ("label", torch.randint(0, 11, (3, RES, RES))),
    ]:
        E = _enc(G, modality)
        ws = E(x)
        assert ws.shape == (3, G.num_ws, G.w_dim), modality
        # offsets start small: the encoder begins near the generator's average face
        assert (ws - G.mapping.w_avg).norm() < 0.5 * G.mapping.w_avg.norm() * ws.shape[0] * G.num_ws
        assert torch.equal(E.w_avg, G.mapping.w_avg)
    E = _enc(G, "label")
    lab = torch.randint(0, 11, (2, RES, RES))
    assert torch.allclose(E(lab), E(label_to_onehot(lab, 11)))  # integer and one-hot maps agree
    # pyramid groups follow the W+ split (coarse 0-2, middle 3-5; 16 px has no fine layers)
    assert E.config.groups == [(0, 3), (3, 6), (6, 6)] and set(E.heads) == {"coarse", "middle"}
    full = EncoderConfig(resolution=256, num_ws=14, w_dim=512)
    assert full.pyramid_resolutions == [16, 32, 64] and full.groups == [(0, 3), (3, 7), (7, 14)]


def test_encoder_rejects_bad_inputs(G):
    E = _enc(G)
    with pytest.raises(ValueError, match="3 input channel"):
        E(torch.zeros(2, 1, RES, RES))
    with pytest.raises(ValueError, match=f"{RES}x{RES} inputs"):
        E(torch.zeros(2, 3, 32, 24))  # not square
    assert torch.allclose(E(torch.zeros(2, 3, 32, 32)), E(torch.zeros(2, 3, RES, RES)))  # resized inside
    with pytest.raises(ValueError, match="empty batch"):
        E(torch.zeros(0, 3, RES, RES))
    with pytest.raises(ValueError, match="shape"):
        E(torch.zeros(3, RES, RES))
    with pytest.raises(ValueError, match="float"):
        E(torch.zeros(2, 3, RES, RES, dtype=torch.long))
    L = _enc(G, "label")
    with pytest.raises(ValueError, match=r"\[0, 10\]"):
        L(torch.full((2, RES, RES), 11))
    with pytest.raises(ValueError, match="11 input channel"):
        L(torch.zeros(2, 3, RES, RES))
    with pytest.raises(ValueError, match=f"{RES}x{RES} inputs"):
        L(torch.zeros(2, 11, 2 * RES, 2 * RES))  # label maps are never resampled
    with pytest.raises(ValueError, match="modality"):
        EncoderConfig(modality="audio")
    with pytest.raises(ValueError, match="in_channels"):
        Encoder.from_generator(G, "label")


def test_save_load_round_trip_is_exact(G, tmp_path):
    torch.manual_seed(1)
    E = _enc(G, "sketch")
    with torch.no_grad():  # non-trivial weights everywhere
        for p in E.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    x = torch.rand(2, 1, RES, RES) * 2 - 1
    E.eval()
    E.save_pretrained(tmp_path / "enc")
    assert {p.name for p in (tmp_path / "enc").iterdir()} == {"model.safetensors", "config.json"}
    E2 = Encoder.from_pretrained(tmp_path / "enc").eval()
    assert E2.config == E.config and torch.equal(E2.w_avg, E.w_avg)
    assert torch.equal(E2(x), E(x))


# ------------------------------------------------------------------------------------------------ losses


def _weights(**kw) -> InversionLossConfig:
    base = {"pixel": 0.0, "lpips": 0.0, "latent": 0.0, "adversarial": 0.0}
    return InversionLossConfig(**{**base, **kw})


@pytest.mark.slow
def test_latent_loss_alone_pulls_codes_to_w(G):
    torch.manual_seed(0)
    E = _enc(G)
    loss_fn = stage.InversionLoss(G, None, _weights(latent=1.0))
    opt = torch.optim.Adam(E.parameters(), lr=3e-3)
    held_w = stage.sample_codes(G, 16, torch.Generator().manual_seed(123), mixing_prob=0.5)
    held_x = G.synthesis(held_w, noise_mode="const")

    def distance() -> float:
        with torch.no_grad():
            return (E(held_x) - held_w).square().mean().item()

    before = distance()
    rng = torch.Generator().manual_seed(0)
    for _ in range(100):
        w = stage.sample_codes(G, 16, rng, mixing_prob=0.5)
        x = G.synthesis(w, noise_mode="const")
        total, parts, _ = loss_fn(E, x, x, w_true=w)
        assert set(parts) == {"latent"}
        opt.zero_grad()
        total.backward()
        opt.step()
    after = distance()
    assert after < 0.75 * before, (before, after)  # 0.89 -> ~0.6 in 100 steps


def test_tiny_overfit_reconstruction_loss_falls(G, blobs):
    torch.manual_seed(0)
    from tedigan.data import make_dataset

    ds = make_dataset("folder", blobs, resolution=RES)
    x = torch.stack([ds[i]["image"] for i in range(4)])
    E = _enc(G)
    loss_fn = stage.InversionLoss(G, None, _weights(pixel=1.0))
    opt = torch.optim.Adam(E.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        total, _, rec = loss_fn(E, x, x)
        opt.zero_grad()
        total.backward()
        opt.step()
        losses.append(total.item())
    assert rec.shape == x.shape
    assert np.mean(losses[-5:]) < 0.7 * losses[0], (losses[0], losses[-5:])


# ------------------------------------------------------------------------------------------------ stage


def _cfg(data_root: Path, kind: str, g_dir: Path, out: Path, **over) -> InversionStageConfig:
    overrides = {
        "data.kind": kind,
        "data.root": str(data_root),
        "data.resolution": RES,
        "generator_path": str(g_dir),
        "discriminator_path": "",  # the tiny test generator has no trained D: train against a fresh one
        **{f"encoder.{k}": v for k, v in TINY_ENC.items()},
        "train.output_dir": str(out),
        "train.batch_size": 4,
        "train.max_steps": 2,
        "train.log_every": 1,
        "train.eval_every": 2,
        "train.sample_every": 2,
        "train.checkpoint_every": 2,
        "loss.r1_interval": 2,
        "lr_warmup_steps": 0,
        "num_grid": 2,
        "eval_num": 4,
        **over,
    }
    return load_config(InversionStageConfig, None, overrides)


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_stage_trains_evaluates_and_resumes(G, g_dir, blobs, tmp_path, monkeypatch):
    used = []
    init = stage.InversionLoss.__init__

    def spy(self, G_, lpips, *args, **kw):
        used.append(lpips)
        init(self, G_, lpips, *args, **kw)

    monkeypatch.setattr(stage.InversionLoss, "__init__", spy)
    monkeypatch.delenv("TEDIGAN_FACENET_PATH", raising=False)
    out = tmp_path / "run"
    summary = stage.train(_cfg(blobs, "folder", g_dir, out))
    assert summary["step"] == 2
    # the LPIPS the stage trains with carries the real VGG16 trunk, not a random one
    (lp,) = used
    trunk = dict(lp.model.net.named_parameters())
    ref = assets.lpips_backbone_state_dict("vgg")
    assert torch.equal(trunk["slice1.0.weight"], ref["0.weight"])
    assert torch.equal(trunk["slice5.28.weight"], ref["28.weight"])
    assert any("identity loss off" in n for n in summary["notes"])

    assert (out / "encoder" / "model.safetensors").is_file()
    assert (out / "samples" / "step-0.png").is_file() and (out / "samples" / "step-2.png").is_file()
    report = json.loads((out / "eval.json").read_text())
    m = report["metrics"]
    assert m["recon_mse"]["value"] > 0 and 0 < m["recon_lpips"]["value"] < 2
    assert m["recon_identity"]["available"] is False and m["recon_identity"]["value"] is None
    rows = _rows(out)
    assert [r["step"] for r in rows if "loss/total" in r] == [1, 2]
    assert {"loss/pixel", "loss/lpips", "loss/latent", "loss/adversarial", "loss/D", "loss/r1"} <= set(
        rows[0]
    )
    assert rows[-1]["stage"] == "inversion" and "recon_lpips" in rows[-1]["metrics"]
    E = Encoder.from_pretrained(out / "encoder")
    assert E.config.resolution == RES and E.config.num_ws == G.num_ws

    # resume: continues at step 2 and stops at the new max_steps
    summary = stage.train(_cfg(blobs, "folder", g_dir, out, **{"train.max_steps": 4}), resume="latest")
    assert summary["step"] == 4
    steps = [r["step"] for r in _rows(out) if "loss/total" in r]
    assert steps == [1, 2, 3, 4]
    assert (out / "checkpoints" / "checkpoint-4" / "state.json").is_file()
    row = json.loads((out / "eval.json").read_text())  # the final evaluation, also the last metrics row
    assert row["step"] == 4 and row["stage"] == "inversion" and "recon_lpips" in row["metrics"]
    assert _rows(out)[-1]["metrics"] == row["metrics"]


def test_init_encoder_fine_tunes_a_trained_encoder(G, g_dir, blobs, tmp_path):
    torch.manual_seed(3)
    trained = _enc(G)
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(0.05 * torch.randn_like(p))  # weights no fresh encoder has
    src = trained.save_pretrained(tmp_path / "trained" / "encoder")
    cfg = _cfg(blobs, "folder", g_dir, tmp_path / "ft", **{"init_encoder": str(src), "train.lr": 1e-12})
    summary = stage.train(cfg)
    assert any("initialised from" in n for n in summary["notes"])
    tuned = Encoder.from_pretrained(tmp_path / "ft" / "encoder")
    x = torch.rand(2, 3, RES, RES) * 2 - 1
    with torch.no_grad():  # a vanishing learning rate: the run's encoder is still the one it started from
        assert torch.allclose(tuned(x), trained(x), atol=1e-4)
    # an encoder of other widths does not fit: one clear error naming the field
    other = Encoder.from_generator(G, "image", **{**TINY_ENC, "head_dim": 16})
    bad = other.save_pretrained(tmp_path / "other" / "encoder")
    with pytest.raises(ConfigError, match="head_dim"):
        stage.train(_cfg(blobs, "folder", g_dir, tmp_path / "ft2", init_encoder=str(bad)))
    with pytest.raises(ConfigError, match="no config.json"):
        stage.train(_cfg(blobs, "folder", g_dir, tmp_path / "ft3", init_encoder=str(tmp_path)))


@pytest.mark.slow
@pytest.mark.parametrize("modality", ["sketch", "label"])
def test_stage_sketch_and_label_encoders(G, g_dir, avatars, tmp_path, modality):
    from tedigan.data.avatars import ATTRIBUTES

    clf = AttributeClassifier(
        ClassifierConfig(resolution=RES, widths=[4, 8], heads={k: list(v) for k, v in ATTRIBUTES.items()})
    )
    clf.save_pretrained(tmp_path / "clf")
    out = tmp_path / modality
    cfg = _cfg(
        avatars,
        "avatars",
        g_dir,
        out,
        modality=modality,
        classifier_path=str(tmp_path / "clf"),
        **{"train.max_steps": 1, "train.checkpoint_every": 1},
    )
    summary = stage.train(cfg)
    assert any("latent loss and generated images off" in n for n in summary["notes"])
    folder = out / stage.ENCODER_DIRS[modality]
    E = Encoder.from_pretrained(folder)
    assert E.config.modality == modality and E.config.in_channels == (1 if modality == "sketch" else 11)
    m = json.loads((out / "eval.json").read_text())["metrics"]
    attrs = m["recon_attributes"]
    assert set(attrs["agreement"]) == set(ATTRIBUTES) and 0 <= attrs["value"] <= 1
    assert attrs["headline"] == "agreement_mean" and m["recon_lpips"]["modality"] == modality
    rows = _rows(out)
    assert "loss/latent" not in rows[0] and rows[0]["loss/pixel"] > 0
    other = "label" if modality == "sketch" else "sketch"
    with pytest.raises(ConfigError, match=f"not {other}"):  # one output folder per modality
        stage.train(replace(cfg, modality=other), resume="latest")


def test_modality_shorthand_and_config_checks():
    cfg = load_config(InversionStageConfig, None, ["--modality", "sketch"])
    assert cfg.modality == "sketch" and cfg.encoder.modality == "sketch" and cfg.encoder.in_channels == 1
    cfg = load_config(InversionStageConfig, None, ["--modality=label", "--label_classes=19"])
    assert cfg.encoder.in_channels == 19
    with pytest.raises(ValueError):
        load_config(InversionStageConfig, None, ["--generated_ratio=1.5"])
    with pytest.raises(ValueError):
        load_config(InversionStageConfig, None, ["--loss.lpips=-1"])


@pytest.mark.slow
def test_identity_network_loss_and_metric(G, blobs, tmp_path):
    pytest.importorskip("facenet_pytorch")
    from facenet_pytorch.models.inception_resnet_v1 import InceptionResnetV1

    from tedigan import metrics
    from tedigan.data import make_dataset
    from tedigan.losses.identity import FaceIdentity

    torch.manual_seed(0)
    state = InceptionResnetV1(pretrained=None, classify=False).state_dict()
    state.update({"logits.weight": torch.zeros(4, 512), "logits.bias": torch.zeros(4)})  # as in the release
    torch.save(state, tmp_path / "facenet.pt")
    ident = FaceIdentity(tmp_path / "facenet.pt", kind="facenet")
    x = torch.rand(2, 3, RES, RES) * 2 - 1
    assert torch.allclose(ident.similarity(x, x), torch.ones(2), atol=1e-5)

    E = _enc(G)
    loss_fn = stage.InversionLoss(G, None, _weights(pixel=1.0, identity=1.0), identity=ident)
    total, parts, _ = loss_fn(E, x, x)
    total.backward()
    assert set(parts) == {"pixel", "identity"} and E.stem.weight.grad.abs().sum() > 0

    ds = make_dataset("folder", blobs, resolution=RES)
    res = metrics.compute(
        "recon_mse,recon_identity",
        generator=G,
        dataset=ds,
        num=3,
        encoder=E,
        identity=ident,
    )
    assert res["recon_identity"]["available"] is True and -1 <= res["recon_identity"]["value"] <= 1
    assert res["recon_mse"]["num"] == 3
    with pytest.raises(ValueError, match="need an encoder"):
        metrics.compute("recon_mse", generator=G, dataset=ds, num=3)


def test_dlib_identity_is_the_offline_default(tmp_path):
    from tedigan import assets
    from tedigan.losses.identity import FaceIdentity, IdentityLoss

    try:
        ident = FaceIdentity()
    except assets.MissingWeightsError as err:
        pytest.skip(f"face-api weights not fetched: {err}")
    assert ident.kind == "dlib" and ident.same_person_threshold == 0.6
    torch.manual_seed(0)
    a = (torch.rand(2, 3, 128, 128) * 2 - 1).requires_grad_(True)
    b = torch.rand(2, 3, 128, 128) * 2 - 1
    assert torch.allclose(ident.distance(a, a), torch.zeros(2), atol=1e-5)
    loss = IdentityLoss()(a, b)
    assert loss.shape == (2,) and (loss > 0).all()
    loss.sum().backward()
    assert torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0


@pytest.mark.slow
def test_stage_resumes_bit_exactly(g_dir, blobs, tmp_path, monkeypatch):
    from resume_check import assert_resumes_exactly

    over = {"train.max_steps": 4, "train.checkpoint_every": 2, "train.grad_accum": 2, "loss.r1_interval": 2}
    cfg = _cfg(blobs, "folder", g_dir, tmp_path / "exact", **over)
    assert_resumes_exactly(stage.train, cfg, stage.InversionStage, 3, ["encoder"], monkeypatch)


@pytest.fixture(scope="module")
def coded_faces(G, tmp_path_factory) -> Path:
    """A data set in the faces layout (images + their true W+ codes), made with the tiny generator."""
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("faces")
    (root / "images").mkdir()
    with torch.no_grad():
        ws = G.mapping(torch.randn(10, G.z_dim, generator=torch.Generator().manual_seed(0)))
        images = G.synthesis(ws, noise_mode="const").clamp(-1, 1)
    rows = []
    for i, img in enumerate(images):
        Image.fromarray(((img.permute(1, 2, 0) + 1) * 127.5).round().byte().numpy()).save(
            root / f"images/{i:06d}.png"
        )
        split = "train" if i < 8 else "val"
        labels = {"expression": "happy", "gender": "female", "age_group": "young"}
        rows.append({"id": f"{i:06d}", "file_name": f"images/{i:06d}.png", "split": split, "attributes": labels,
                     "captions": ["a smiling young woman"]})  # fmt: skip
    save_file({"ws": ws.to(torch.float16).contiguous()}, str(root / "codes.safetensors"))
    (root / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "info.json").write_text("{}")
    return root


def test_latent_only_training_on_stored_codes_never_runs_the_generator(
    G, g_dir, coded_faces, tmp_path, monkeypatch
):
    from tedigan.data import make_dataset

    ds = make_dataset("faces", coded_faces, split="val", resolution=RES)
    assert len(ds) == 2 and ds[0]["w"].shape == (G.num_ws, G.w_dim) and ds[0]["labels"]["gender"] == "female"
    over = {"loss.pixel": 0, "loss.lpips": 0, "loss.adversarial": 0, "loss.latent": 1, "generated_ratio": 0,
            "train.max_steps": 12, "train.log_every": 4, "train.eval_every": 12, "train.lr": 0.003,
            "input_resolution": RES // 2}  # fmt: skip
    cfg = _cfg(coded_faces, "faces", g_dir, tmp_path / "run", **over)
    calls = {"train": 0}
    real = stage.InversionStage.train_step

    def counting(self, t, step):
        hook = self.G.synthesis.register_forward_pre_hook(
            lambda *a: calls.__setitem__("train", calls["train"] + 1)
        )
        try:
            return real(self, t, step)
        finally:
            hook.remove()

    monkeypatch.setattr(stage.InversionStage, "train_step", counting)
    summary = stage.train(cfg)
    assert calls["train"] == 0  # the encoder trained on the stored pairs alone
    assert any("codes the data set stores" in n for n in summary["notes"])
    latent = [r["loss/latent"] for r in _rows(tmp_path / "run") if "loss/latent" in r]
    assert len(latent) == 3 and latent[-1] < latent[0], latent
    state = json.loads((tmp_path / "run" / "checkpoints" / "checkpoint-12" / "objects.json").read_text())
    assert "D" not in json.dumps(state).replace('"D_', "")  # no discriminator when no adversarial loss
    assert json.loads((tmp_path / "run" / "eval.json").read_text())["metrics"]["recon_lpips"]["value"] > 0
    # the encoder reads at half the generator's size and takes full-size images too (resized inside)
    E = Encoder.from_pretrained(tmp_path / "run" / "encoder")
    assert E.config.resolution == RES // 2 and E(torch.zeros(1, 3, RES, RES)).shape == (1, G.num_ws, G.w_dim)
