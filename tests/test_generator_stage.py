"""Generator stage: GAN losses and regularisers, DiffAugment, tiny training of every architecture, a learning
signal, bit-exact kill-and-resume on CPU, and the presets (dry-run, full-size shapes on the meta device)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from safetensors.torch import load_file

from tedigan.config import ConfigError, GeneratorStageConfig, load_config
from tedigan.data import make_dataset
from tedigan.losses.gan import (
    PathLengthRegularizer,
    d_logistic_loss,
    g_nonsaturating_loss,
    path_lengths,
    r1_loss,
    r1_penalty,
)
from tedigan.models.stylegan2 import Discriminator, Generator
from tedigan.training import generator as stage
from tedigan.training.augment import DiffAugment, cutout, translation

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
RES = 16


@pytest.fixture(scope="module")
def blobs(tmp_path_factory) -> Path:
    """48 images of a coloured disc on a coloured background: a user image folder, learnable in seconds."""
    root = tmp_path_factory.mktemp("blobs")
    rng = np.random.default_rng(0)
    for i in range(48):
        im = Image.new("RGB", (RES, RES), tuple(int(v) for v in rng.integers(0, 256, 3)))
        r, c = RES * rng.uniform(0.25, 0.4), RES / 2
        ImageDraw.Draw(im).ellipse(
            [c - r, c - r, c + r, c + r], fill=tuple(int(v) for v in rng.integers(0, 256, 3))
        )
        im.save(root / f"{i:03d}.png")
    return root


def _cfg(data_root: Path, out: Path, **over) -> GeneratorStageConfig:
    overrides = {
        "data.kind": "folder",
        "data.root": str(data_root),
        "data.resolution": RES,
        "generator.z_dim": 16,
        "generator.w_dim": 16,
        "generator.n_mlp": 2,
        "generator.channel_base": 8 * RES,  # 8 channels at every resolution
        "generator.channel_max": 8,
        "discriminator.channel_base": 8 * RES,
        "discriminator.channel_max": 8,
        "train.output_dir": str(out),
        "train.batch_size": 8,
        "train.max_steps": 4,
        "train.log_every": 2,
        "train.sample_every": 1000,
        "train.checkpoint_every": 1000,
        "loss.r1_interval": 2,
        "loss.pl_interval": 2,
        "ema_kimg": 0.1,
        **over,
    }
    return load_config(GeneratorStageConfig, None, overrides)


def train_stage_main(argv: list[str]) -> int:
    from tedigan.commands import main

    return main(["train", *argv])


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


# ------------------------------------------------------------------------------------------------ losses


def test_logistic_losses_and_r1():
    zero = torch.zeros(5, 1)
    assert d_logistic_loss(zero, zero).item() == pytest.approx(2 * math.log(2))
    assert g_nonsaturating_loss(zero).item() == pytest.approx(math.log(2))
    assert d_logistic_loss(torch.full((3, 1), 20.0), torch.full((3, 1), -20.0)).item() < 1e-8
    assert g_nonsaturating_loss(torch.full((3, 1), -20.0)).item() == pytest.approx(20.0, rel=1e-6)

    # D(x) = <w, x>: the gradient is w for every sample, so the penalty is ||w||^2
    w = torch.randn(3, 4, 4, requires_grad=True)  # stands in for D's parameters
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    logits = (x * w).flatten(1).sum(1, keepdim=True)
    penalty = r1_penalty(logits, x)
    assert penalty.shape == (2,)
    torch.testing.assert_close(penalty, w.square().sum().expand(2))
    assert r1_loss(penalty, gamma=10.0).item() == pytest.approx(5 * w.square().sum().item(), rel=1e-5)
    penalty.sum().backward()  # create_graph: the penalty is differentiable w.r.t. D's parameters
    torch.testing.assert_close(w.grad, 4 * w.detach())
    with pytest.raises(ValueError, match="requires_grad"):
        r1_penalty(logits.detach(), x.detach())


def test_path_length_of_a_linear_generator_and_running_mean():
    b, layers, dim = 3, 2, 5
    a = torch.randn(layers, dim, 3, 4, 4, requires_grad=True)  # stands in for G's parameters
    ws = torch.randn(b, layers, dim, requires_grad=True)
    images = torch.einsum("bld,ldchw->bchw", ws, a)
    lengths = path_lengths(images, ws, torch.Generator().manual_seed(7))
    y = torch.randn(images.shape, generator=torch.Generator().manual_seed(7)) / 4.0  # sqrt(H*W) = 4
    jty = torch.einsum("bchw,ldchw->bld", y, a.detach())  # J^T y for each layer
    torch.testing.assert_close(lengths.detach(), jty.square().sum(2).mean(1).sqrt())

    reg = PathLengthRegularizer(decay=0.01)
    assert reg.pl_mean.item() == 0 and "pl_mean" in reg.state_dict()
    penalty = reg(lengths)
    expected_mean = 0.01 * lengths.mean()
    assert reg.pl_mean.item() == pytest.approx(expected_mean.item(), rel=1e-6)
    assert penalty.item() == pytest.approx((lengths - expected_mean).square().mean().item(), rel=1e-6)
    penalty.backward()
    assert a.grad is not None and torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="decay"):
        PathLengthRegularizer(decay=0)


# ------------------------------------------------------------------------------------------------ augment


def test_diffaugment_is_seeded_differentiable_and_does_what_it_says():
    x = torch.rand(4, 3, RES, RES) * 2 - 1
    aug = DiffAugment()
    a = aug(x, torch.Generator().manual_seed(1))
    assert a.shape == x.shape
    assert torch.equal(a, aug(x, torch.Generator().manual_seed(1)))
    assert not torch.equal(a, aug(x, torch.Generator().manual_seed(2)))
    assert torch.equal(DiffAugment(p=0.0)(x, torch.Generator().manual_seed(1)), x)
    xg = x.clone().requires_grad_(True)
    aug(xg, torch.Generator().manual_seed(3)).square().sum().backward()
    assert xg.grad is not None and xg.grad.abs().sum() > 0

    # translation moves a single bright pixel by at most round(ratio * size) per axis and keeps it
    dot = torch.zeros(8, 1, RES, RES)
    dot[:, :, 8, 8] = 1.0
    moved = translation(dot, ratio=0.125, generator=torch.Generator().manual_seed(0))
    assert torch.equal(moved.sum(dim=[1, 2, 3]), torch.ones(8))
    pos = moved.flatten(1).argmax(1)
    assert ((pos // RES - 8).abs() <= 2).all() and ((pos % RES - 8).abs() <= 2).all()
    assert (pos != 8 * RES + 8).any()

    # cutout zeroes one (border-clipped) square of side ratio * size
    holes = cutout(torch.ones(8, 3, RES, RES), ratio=0.5, generator=torch.Generator().manual_seed(0))
    zeros = (holes[:, 0] == 0).flatten(1).sum(1)
    assert ((zeros >= 16) & (zeros <= 64)).all() and (zeros == 64).any()
    assert torch.equal(holes[:, 0], holes[:, 2])
    with pytest.raises(ValueError, match="unknown augmentation"):
        DiffAugment(["rotate"])


# ------------------------------------------------------------------------------------------------ training


@pytest.mark.parametrize("arch", ["stylegan2", "stylegan1", "swagan"])
def test_every_arch_trains_a_few_steps(blobs, tmp_path, arch):
    out = tmp_path / arch
    summary = stage.train(_cfg(blobs, out, arch=arch))
    assert summary["step"] == 4 and summary["augment"] is True  # 48 images: augmentation on automatically
    rows = _rows(out)
    keys = {"loss/D", "loss/G", "D/real", "D/fake", "loss/r1", "loss/pl", "pl_mean", "img_per_sec"}
    assert keys <= set().union(*rows)
    assert all(math.isfinite(v) for r in rows for k, v in r.items() if k in keys)
    G = Generator.from_pretrained(out / "generator")
    D = Discriminator.from_pretrained(out / "discriminator")
    assert G.config.arch == arch and D.config.arch == ("swagan" if arch == "swagan" else arch)
    with torch.no_grad():
        img = G(torch.randn(2, G.z_dim), truncation_psi=0.7)
        assert img.shape == (2, 3, RES, RES) and torch.isfinite(img).all()
        assert D(img).shape == (2, 1)
    assert G.mapping.w_avg.abs().sum() > 0  # tracked during training, copied into G_ema
    assert {p.name for p in (out / "samples").iterdir()} == {"reals.png", "step-0.png", "step-4.png"}
    assert (out / "config.yaml").is_file() and (out / "checkpoints" / "checkpoint-4" / "state.json").is_file()


def test_trains_against_the_projected_discriminator(blobs, tmp_path):
    from tedigan.models.projected import ProjectedDiscriminator, load_discriminator

    out = tmp_path / "projected"
    proj = {"projected.feature_resolution": 64, "projected.projection_channels": [8, 16, 32]}
    cfg = _cfg(blobs, out, **proj, **{"projected.head_max_channels": 16, "loss.r1_gamma": 0.0})
    assert cfg.projected.resolution == RES
    summary = stage.train(cfg)
    assert summary["step"] == 4
    rows = _rows(out)
    assert all(math.isfinite(r["loss/D"]) for r in rows if "loss/D" in r)
    D = load_discriminator(out / "discriminator")
    assert isinstance(D, ProjectedDiscriminator) and D.config.feature_resolution == 64
    resumed = _cfg(blobs, out, **proj, **{"projected.head_max_channels": 16, "loss.r1_gamma": 0.0})
    assert stage.build_networks(resumed)[1].config == D.config


def _tiles(path: Path, n: int) -> torch.Tensor:
    """Cut a ``save_image_grid`` PNG (padding 1) back into ``n`` images in [0, 1]."""
    grid = torch.from_numpy(np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255).permute(
        2, 0, 1
    )
    nrow = int(math.sqrt(n))
    step = RES + 1
    return torch.stack(
        [
            grid[:, 1 + (i // nrow) * step : 1 + (i // nrow) * step + RES, 1 + (i % nrow) * step :][
                :, :, :RES
            ]
            for i in range(n)
        ]
    )


def _moments(x: torch.Tensor) -> torch.Tensor:
    """Per-channel mean, spread across images, and spread within images."""
    return torch.cat([x.mean([0, 2, 3]), x.std([0, 2, 3]), x.std([2, 3]).mean(0)])


@pytest.mark.slow
def test_short_training_learns(blobs, tmp_path):
    steps = 150
    out = tmp_path / "learn"
    cfg = _cfg(blobs, out, **{"train.max_steps": steps, "train.log_every": 10, "num_samples": 64})
    stage.train(cfg)
    rows = _rows(out)
    tail = rows[len(rows) * 2 // 3 :]
    # D beats chance on the last third (2 ln 2 is a D that cannot tell reals from fakes) and rates reals higher
    assert np.mean([r["loss/D"] for r in tail]) < 2 * math.log(2) - 0.03
    assert np.mean([r["D/real"] - r["D/fake"] for r in tail]) > 0.05
    assert all(math.isfinite(r["loss/G"]) for r in rows)

    # the fixed-latent grid changed, and its colour statistics moved towards the data's
    first, last = (
        _tiles(out / "samples" / "step-0.png", 64),
        _tiles(out / "samples" / f"step-{steps}.png", 64),
    )
    assert (first - last).abs().mean() > 0.05
    data = make_dataset("folder", blobs, resolution=RES)
    reals = torch.stack([data[i]["image"] for i in range(len(data))]) * 0.5 + 0.5
    before = (_moments(first) - _moments(reals)).abs().mean()
    after = (_moments(last) - _moments(reals)).abs().mean()
    assert after < 0.6 * before, (before, after)


@pytest.mark.slow
def test_kill_and_resume_matches_an_uninterrupted_run_exactly(blobs, tmp_path, monkeypatch):
    over = {
        "train.max_steps": 6,
        "train.batch_size": 4,
        "train.grad_accum": 2,
        "train.checkpoint_every": 3,
        "loss.pl_interval": 3,
    }
    full, broken = tmp_path / "full", tmp_path / "broken"
    stage.train(_cfg(blobs, full, **over))

    # the second run dies inside step 5, after checkpoint-3 and with step 4 done and not checkpointed
    real_update, calls = stage.update_ema, {"n": 0}

    def dying_update(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt("killed")
        return real_update(*args, **kwargs)

    monkeypatch.setattr(stage, "update_ema", dying_update)
    with pytest.raises(KeyboardInterrupt):
        stage.train(_cfg(blobs, broken, **over))
    monkeypatch.setattr(stage, "update_ema", real_update)
    assert [p.name for p in (broken / "checkpoints").iterdir()] == ["checkpoint-3"]
    summary = stage.train(_cfg(blobs, broken, **over), resume="latest")
    assert summary["step"] == 6

    for name in ("generator", "discriminator"):  # G_ema and D as saved for users
        a, b = load_file(full / name / "model.safetensors"), load_file(broken / name / "model.safetensors")
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), f"{name}.{k} differs after resume"
    ca, cb = full / "checkpoints" / "checkpoint-6", broken / "checkpoints" / "checkpoint-6"
    # every checkpointed tensor: training G and D, Adam moments, G_ema, pl_mean, the training RNG and the
    # global RNGs (only training steps draw from them; data loaders start aside)
    a, b = load_file(ca / "state.safetensors"), load_file(cb / "state.safetensors")
    assert a.keys() == b.keys() and any(k.startswith("G_opt.") for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (ca / "objects.json").read_text() == (cb / "objects.json").read_text()
    assert not [f for f in cb.rglob("*") if f.suffix in (".pkl", ".bin", ".pt")]  # no pickles at all
    row_a, row_b = _rows(full)[-1], _rows(broken)[-1]
    assert row_a["step"] == row_b["step"] == 6
    assert all(row_a[k] == row_b[k] for k in ("loss/D", "loss/G", "D/real", "D/fake"))
    # the rows the killed run logged after checkpoint-3 are not repeated by the resumed run
    steps = [r["step"] for r in _rows(broken)]
    assert steps == [r["step"] for r in _rows(full)] and len(steps) == len(set(steps))


# ------------------------------------------------------------------------------------------------ presets


@pytest.mark.parametrize("name", ["tiny", "avatars64", "ffhq256", "ffhq1024"])
def test_presets_dry_run(name, capsys):
    path = CONFIGS / f"generator_{name}.yaml"
    assert train_stage_main(["--stage", "generator", "--config", str(path), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("stage: generator")
    cfg = load_config(GeneratorStageConfig, path)
    assert cfg.generator.resolution == cfg.discriminator.resolution == cfg.data.resolution


def test_full_size_presets_have_config_f_shapes():
    expected = {  # (num_ws, G params, D params); 30,370,060 is NVlabs' count for the config-F 1024 generator
        "ffhq256": (14, 30_034_338, 28_864_129),
        "ffhq1024": (18, 30_370_060, 29_012_513),
    }
    for name, (num_ws, g_params, d_params) in expected.items():
        cfg = load_config(GeneratorStageConfig, CONFIGS / f"generator_{name}.yaml")
        assert cfg.generator.w_dim == cfg.generator.z_dim == 512 and cfg.generator.n_mlp == 8
        with torch.device("meta"):  # shapes only: nothing is allocated
            G, D = stage.build_networks(cfg)
        assert G.num_ws == num_ws and cfg.generator.num_ws == num_ws
        assert sum(p.numel() for p in G.parameters()) == g_params
        assert sum(p.numel() for p in D.parameters()) == d_params
        assert cfg.generator.channels_per_resolution()[4] == 512
        ws = torch.empty(2, num_ws, 512, device="meta")
        assert G.synthesis(ws, noise_mode="const").shape == (2, 3, cfg.data.resolution, cfg.data.resolution)


def test_avatars64_preset_builds_and_runs_a_forward_pass():
    cfg = load_config(GeneratorStageConfig, CONFIGS / "generator_avatars64.yaml")
    assert cfg.data.kind == "avatars" and cfg.data.resolution == 64
    G, D = stage.build_networks(cfg)
    with torch.no_grad():
        img = G(torch.randn(2, G.z_dim))
        assert img.shape == (2, 3, 64, 64) and D(img).shape == (2, 1)


@pytest.mark.slow
def test_tiny_preset_trains_through_the_cli_on_rendered_avatars(tmp_path):
    out = tmp_path / "tiny"
    argv = [
        "--stage",
        "generator",
        "--config",
        str(CONFIGS / "generator_tiny.yaml"),
        f"--data.root={tmp_path / 'avatars'}",
        "--data.render_if_missing=12",
        f"--train.output_dir={out}",
        "--train.max_steps=2",
        "--train.checkpoint_every=1",
    ]
    assert train_stage_main(argv) == 0
    assert (tmp_path / "avatars" / "metadata.jsonl").is_file()  # rendered on demand
    assert Generator.from_pretrained(out / "generator").config.resolution == 16
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-1", "checkpoint-2"]
    # continuing from the newest checkpoint picks up the step count
    assert train_stage_main([*argv[:-2], "--train.max_steps=3", "--resume_from_checkpoint", "latest"]) == 0
    assert _rows(out)[-1]["step"] == 3


def test_config_errors_are_clear():
    with pytest.raises(ConfigError, match="swagan"):
        load_config(GeneratorStageConfig, None, {"generator.arch": "swagan"})
    with pytest.raises(ConfigError, match="r1_interval"):
        load_config(GeneratorStageConfig, None, {"loss.r1_interval": 0})
    cfg = load_config(GeneratorStageConfig, None, {"arch": "stylegan1", "data.resolution": 32})
    assert (cfg.generator.arch, cfg.discriminator.arch) == ("stylegan1", "stylegan1")
    assert cfg.generator.resolution == cfg.discriminator.resolution == 32


def test_init_from_a_finished_run_starts_from_its_weights(blobs, tmp_path):
    stage.train(_cfg(blobs, tmp_path / "first"))
    G, D = stage.build_networks(_cfg(blobs, tmp_path / "second", init_from=str(tmp_path / "first")))
    saved_G = Generator.from_pretrained(tmp_path / "first" / "generator")
    saved_D = Discriminator.from_pretrained(tmp_path / "first" / "discriminator")
    for net, saved in ((G, saved_G), (D, saved_D)):
        for (k, a), b in zip(net.state_dict().items(), saved.state_dict().values()):
            assert torch.equal(a, b), k
    summary = stage.train(_cfg(blobs, tmp_path / "second", init_from=str(tmp_path / "first")))
    extra = json.loads((tmp_path / "second" / "generator" / "config.json").read_text())["_extra"]
    assert extra["kimg_total"] == pytest.approx(2 * summary["kimg"])  # both runs: 4 steps of 8 images
    with pytest.raises(ConfigError, match="init_from"):
        stage.build_networks(
            _cfg(blobs, tmp_path / "third", init_from=str(tmp_path / "first"), **{"generator.w_dim": 8})
        )


@pytest.mark.slow
def test_device_script_trains_for_its_minutes_and_leaves_eight_files(tmp_path):
    import os
    import subprocess

    env = {**os.environ, "OUT": str(tmp_path / "out"), "WORK": str(tmp_path / "work"), "MINUTES": "0.01",
           "NUM": "24", "CONFIG": str(CONFIGS / "generator_tiny.yaml"), "PYTHON": "python", "OMP_NUM_THREADS": "1"}  # fmt: skip
    script = CONFIGS.parent / "scripts" / "device_generator.sh"
    done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    files = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert files == [
        "complete.json", "discriminator/config.json", "discriminator/model.safetensors", "generator/config.json",
        "generator/model.safetensors", "metrics.jsonl", "samples.png", "train.log",
    ]  # fmt: skip
    assert json.loads((tmp_path / "out" / "complete.json").read_text())["time_limited"] is True
    Generator.from_pretrained(tmp_path / "out" / "generator")


def test_export_writes_a_checkpoints_networks_as_component_folders(blobs, tmp_path, capsys):
    from tedigan.commands import entry

    export = entry("export")

    run = tmp_path / "run"
    stage.train(_cfg(blobs, run, **{"train.checkpoint_every": 2}))
    assert export([str(run), "--out", str(tmp_path / "latest")]) == 0
    for name in ("generator", "discriminator"):  # the last checkpoint's G_ema and D are the final ones
        a = load_file(str(tmp_path / "latest" / name / "model.safetensors"))
        b = load_file(str(run / name / "model.safetensors"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert export([str(run), "--checkpoint", "checkpoint-2", "--out", str(tmp_path / "early")]) == 0
    early = Generator.from_pretrained(tmp_path / "early" / "generator")
    meta = json.loads((tmp_path / "early" / "generator" / "config.json").read_text())["_extra"]
    assert meta["step"] == 2 and early.config == Generator.from_pretrained(run / "generator").config
    capsys.readouterr()
    assert export([str(run), "--out", str(tmp_path / "early")]) == 2  # never over existing folders
    assert export([str(run), "--checkpoint", "checkpoint-9", "--out", str(tmp_path / "x")]) == 2
    assert "checkpoint-2, checkpoint-4" in capsys.readouterr().err
