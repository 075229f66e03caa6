"""Attribute classifier: shapes, save/load, the tiny training stage (loss falls, checkpoints resume)."""

import json

import pytest
import torch

from tedigan.config import ClassifierStageConfig, load_config
from tedigan.data.avatars import ATTRIBUTES
from tedigan.models.classifier import AttributeClassifier, ClassifierConfig

HEADS = {"hair": ["black", "blond"], "glasses": ["none", "glasses", "sunglasses"]}


def test_forward_shapes_predict_decode_and_resize():
    torch.manual_seed(0)
    model = AttributeClassifier(ClassifierConfig(resolution=16, widths=[4, 8], heads=HEADS)).eval()
    logits = model(torch.randn(3, 3, 16, 16))
    assert logits["hair"].shape == (3, 2) and logits["glasses"].shape == (3, 3)
    pred = model.predict(torch.randn(2, 3, 32, 32))  # other resolutions are resized to the trained one
    assert pred.shape == (2, 2) and pred.dtype == torch.long
    decoded = model.decode(torch.tensor([[1, 2]]))
    assert decoded == [{"hair": "blond", "glasses": "sunglasses"}]
    with pytest.raises(ValueError, match="expected images"):
        model(torch.randn(2, 1, 16, 16))
    with pytest.raises(ValueError, match="heads is empty"):
        AttributeClassifier(ClassifierConfig())


def test_save_load_round_trip(tmp_path):
    model = AttributeClassifier(ClassifierConfig(resolution=16, widths=[4, 8], heads=HEADS)).eval()
    x = torch.randn(2, 3, 16, 16)
    model.save_pretrained(tmp_path / "clf")
    again = AttributeClassifier.from_pretrained(tmp_path / "clf").eval()
    assert again.config.heads == HEADS
    for k, v in model(x).items():
        assert torch.equal(v, again(x)[k])
    with pytest.raises(FileNotFoundError, match="no config.json"):
        AttributeClassifier.from_pretrained(tmp_path / "nothing")


def _tiny_cfg(tmp_path, **over):
    overrides = {
        "data.root": str(tmp_path / "avatars"),
        "data.resolution": 32,
        "data.render_if_missing": 40,
        "model.widths": [8, 16],
        "train.output_dir": str(tmp_path / "clf"),
        "train.max_steps": 24,
        "train.batch_size": 8,
        "train.lr": 0.003,
        "train.log_every": 4,
        "train.eval_every": 1000,
        "train.checkpoint_every": 12,
        **over,
    }
    return load_config(ClassifierStageConfig, None, overrides)


@pytest.mark.slow
def test_tiny_training_stage_learns_saves_and_resumes(tmp_path):
    from tedigan.training.classifier import train

    cfg = _tiny_cfg(tmp_path)
    report = train(cfg)
    out = tmp_path / "clf"
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert losses[-1] < losses[0], losses  # it learns something even at this size
    assert (out / "config.yaml").is_file() and (out / "eval.json").is_file()
    model = AttributeClassifier.from_pretrained(out / "model")
    assert set(report["accuracy"]) == set(model.config.heads) == set(ATTRIBUTES)
    assert list(model.config.heads) == list(report["accuracy"])
    ckpts = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert ckpts == ["checkpoint-12", "checkpoint-24"]

    # resuming from the latest checkpoint continues the step count instead of restarting
    cfg2 = _tiny_cfg(tmp_path, **{"train.max_steps": 28})
    report2 = train(cfg2, resume="latest")
    assert report2["step"] == 28
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-24", "checkpoint-28"]


@pytest.mark.slow
def test_stage_resumes_bit_exactly(tmp_path, monkeypatch):
    from resume_check import assert_resumes_exactly

    from tedigan.training.classifier import ClassifierStage, train

    cfg = _tiny_cfg(tmp_path, **{"train.max_steps": 6, "train.checkpoint_every": 3, "train.grad_accum": 2})
    assert_resumes_exactly(train, cfg, ClassifierStage, 4, ["model"], monkeypatch)


@pytest.mark.slow
def test_domain_stage_tells_two_data_sets_apart_and_resumes_exactly(tmp_path, monkeypatch):
    from resume_check import assert_resumes_exactly

    from tedigan.config import DomainStageConfig
    from tedigan.data.avatars import build_dataset
    from tedigan.training.domain import DomainStage, train

    avatars = build_dataset(tmp_path / "av", 16, resolution=32, workers=1, hf=False, progress=False)
    photos = tmp_path / "photos"
    photos.mkdir()
    gen = torch.Generator().manual_seed(0)
    for i in range(16):  # noisy "photos": the texture the judge must tell from flat cartoon colours
        arr = (torch.rand(32, 32, 3, generator=gen) * 255).byte().numpy()
        __import__("PIL.Image").Image.fromarray(arr).save(photos / f"{i}.png")
    over = {
        "domains": {"avatars": str(avatars), "folder": str(photos)},
        "resolution": 16,
        "model.widths": [4, 8],
        "train.output_dir": str(tmp_path / "domain"),
        "train.max_steps": 6,
        "train.batch_size": 8,
        "train.lr": 0.01,
        "train.log_every": 2,
        "train.eval_every": 6,
        "train.checkpoint_every": 3,
    }
    cfg = load_config(DomainStageConfig, None, over)
    assert_resumes_exactly(train, cfg, DomainStage, 4, ["model"], monkeypatch)
    report = json.loads((tmp_path / "domain" / "full" / "eval.json").read_text())
    assert set(report["accuracy"]) == {
        f"val_acc/{m}/{d}" for m in ("clean", "degraded") for d in ("avatars", "folder")
    }
    model = AttributeClassifier.from_pretrained(tmp_path / "domain" / "full" / "model")
    assert model.config.heads == {"domain": ["avatars", "folder"]}


@pytest.mark.slow
def test_time_limit_stops_on_a_log_step_saves_and_resumes(tmp_path):
    from tedigan.training.classifier import train

    cfg = _tiny_cfg(tmp_path, **{"train.max_minutes": 1e-6, "train.log_every": 2})
    report = train(cfg)
    out = tmp_path / "clf"
    done = json.loads((out / "complete.json").read_text())
    assert report["step"] == done["step"] == 2 and done["time_limited"] is True
    assert (out / "model" / "model.safetensors").is_file() and (out / "checkpoints" / "checkpoint-2").is_dir()
    again = train(_tiny_cfg(tmp_path, **{"train.max_steps": 4}), resume="latest")
    assert again["step"] == 4
    assert json.loads((out / "complete.json").read_text())["time_limited"] is False
