"""The battery of bad inputs: every case ends with exit status 2 and one line on stderr (no traceback),
writes nothing and changes no existing file; no code from a checkpoint folder or a pickle ever runs; a
diverged run saves nothing non-finite; a half-finished stage never looks finished; the API refuses
inputs it cannot honour with a message that says what was expected."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import re
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from tedigan.commands import entry
from tedigan.pipeline import PipelineError, TediGANPipeline
from tedigan.pipeline import pipeline as pipeline_mod
from tedigan.training import generator as gen_stage
from tedigan.training.checkpoint import CheckpointError, CheckpointManager, DivergenceError
from tedigan.training.loop import stage_complete

RES = 16
edit_cli, generate_cli = entry("edit"), entry("generate")
nvlabs, rosinality = entry("convert", "nvlabs"), entry("convert", "rosinality")
layer_analysis = entry("layer-analysis")


# ------------------------------------------------------------------------------------------- harness


def _snapshot(*roots: Path) -> dict[str, str]:
    """Every file under ``roots`` with the hash of its bytes (hidden temporaries included)."""
    out = {}
    for root in roots:
        for p in sorted(Path(root).rglob("*")):
            if p.is_file():
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _run(main, argv: list[str], capsys) -> tuple[int, str]:
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse-style exits
        rc = exc.code
    return rc, capsys.readouterr().err


_PROGRESS = re.compile(r"\d+%\|.*\|")  # tqdm bars (on stderr before a run stops) are not messages


def _assert_refused(rc: int, err: str, message: str) -> None:
    lines = [line for line in err.strip().splitlines() if line.strip() and not _PROGRESS.search(line)]
    assert rc == 2, (rc, err)
    assert len(lines) == 1, err
    assert "Traceback" not in err and message.lower() in lines[0].lower(), (message, err)


def train_stage_main(argv: list[str]) -> int:
    return entry("train")(argv)


@pytest.fixture()
def work(tmp_path, monkeypatch) -> Path:
    """The current folder of a CLI call, with a face, an unreadable image and a file a user cares about."""
    monkeypatch.chdir(tmp_path)
    img = Image.new("RGB", (40, 48), (90, 160, 220))
    img.paste((230, 190, 150), (10, 12, 30, 36))
    img.save(tmp_path / "face.png")
    img.save(tmp_path / "victim_grid.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG not really")
    Image.new("RGB", (8, 8), (1, 2, 3)).save(tmp_path / "keep.png")
    return tmp_path


def _damaged_model(tiny_model_dir: Path, dest: Path, damage: str) -> Path:
    model = dest / f"model_{damage}"
    shutil.copytree(tiny_model_dir, model)
    gen = model / "generator"
    if damage == "weights_garbage":
        (gen / "model.safetensors").write_bytes(random.Random(2).randbytes(4096))
    elif damage == "weights_truncated":
        data = (gen / "model.safetensors").read_bytes()
        (gen / "model.safetensors").write_bytes(data[: len(data) // 2])
    elif damage == "weights_nan":
        state = load_file(str(gen / "model.safetensors"))
        key = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)
        state[key] = torch.full_like(state[key], float("nan"))
        save_file(state, str(gen / "model.safetensors"))
    elif damage == "config_json":
        (gen / "config.json").write_text("{not json")
    elif damage == "config_wrong_type":
        cfg = json.loads((gen / "config.json").read_text())
        (gen / "config.json").write_text(json.dumps({**cfg, "resolution": "big"}))
    elif damage == "config_newer_format":
        cfg = json.loads((gen / "config.json").read_text())
        (gen / "config.json").write_text(json.dumps({**cfg, "_format_version": 99}))
    elif damage == "config_shape":
        cfg = json.loads((gen / "config.json").read_text())
        (gen / "config.json").write_text(json.dumps({**cfg, "channel_max": 4}))
    elif damage == "layer_map_json":
        (model / "layer_map.json").write_text('{"layers": ')
    elif damage == "layer_map_range":
        lm = json.loads((model / "layer_map.json").read_text())
        lm["layers"] = {"hair_color": [99]}
        (model / "layer_map.json").write_text(json.dumps(lm))
    elif damage == "index_json":
        (model / "model_index.json").write_text("[1, 2")
    elif damage == "missing_component":
        shutil.rmtree(model / "encoder")
    else:  # pragma: no cover
        raise ValueError(damage)
    return model


# ------------------------------------------------------------------------------------- the edit CLI

EDIT_CASES = {
    "empty text": (["--text", "   "], "empty text"),
    "invalid utf-8 text": (["--text", "blond \udcff hair"], "utf-8"),
    "unreadable image": (["--image", "bad.png"], "bad.png"),
    "missing image": (["--image", "nope.png"], "nope.png"),
    "out is the input": (["--out", "face.png"], "is the input image"),
    "grid would replace the input": (
        ["--image", "victim_grid.png", "--out", "victim.png", "--grid"],
        "is the input image",
    ),
    "out exists": (["--out", "keep.png"], "already exists"),
    "out is a folder": (["--out", "."], "is a folder"),
    "out has no image extension": (["--out", "result"], "image extension"),
    "layers empty": (["--layers", ","], "names no layer"),
    "layers not integers": (["--layers", "1,x"], "--layers"),
    "layers out of range": (["--layers", "99"], "layers must be in 0..5"),
    "strength huge": (["--strength", "1e6"], "--strength"),
    "strength negative": (["--strength", "-5"], "--strength"),
    "strength nan": (["--strength", "nan"], "--strength"),
    "seed too large": (["--seed", str(2**70)], "--seed"),
    "seed negative": (["--seed", "-1"], "--seed"),
    "device unknown": (["--device", "banana"], "--device"),
    "device cuda without a gpu": (["--device", "cuda"], "cuda"),
    "scale huge": (["--scale", "100000"], "--scale"),
    "scale zero": (["--scale", "0"], "--scale"),
    "steps negative": (["--steps", "-1"], "--steps"),
    "steps absurd": (["--steps", "1000000000"], "--steps"),
    "model folder missing": (["--model", "no_such_model"], "does not exist"),
}


@pytest.mark.parametrize("case", sorted(EDIT_CASES))
def test_edit_cli_refuses(case, work, tiny_model_dir, capsys):
    if case == "device cuda without a gpu" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    argv, message = EDIT_CASES[case]
    args = {"--image": "face.png", "--text": "blond hair", "--model": str(tiny_model_dir)}
    flags = [a for a in argv if a == "--grid"]
    rest = [a for a in argv if a != "--grid"]
    args.update(dict(zip(rest[::2], rest[1::2])))
    before = _snapshot(work, tiny_model_dir)
    rc, err = _run(edit_cli, [x for kv in args.items() for x in kv] + flags, capsys)
    _assert_refused(rc, err, message)
    assert _snapshot(work, tiny_model_dir) == before


DAMAGES = {
    "weights_garbage": "damaged or truncated",
    "weights_truncated": "damaged or truncated",
    "weights_nan": "nan/inf",
    "config_json": "not valid json",
    "config_wrong_type": "resolution",
    "config_newer_format": "upgrade tedigan",
    "config_shape": "do not fit",
    "layer_map_json": "not valid json",
    "layer_map_range": "outside 0..5",
    "index_json": "not valid json",
    "missing_component": "missing",
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_damaged_model_folders_are_refused_in_one_line(
    damage, work, tiny_model_dir, tmp_path_factory, capsys
):
    model = _damaged_model(tiny_model_dir, tmp_path_factory.mktemp("damaged"), damage)
    before = _snapshot(work, model)
    rc, err = _run(edit_cli, ["--image", "face.png", "--text", "blond hair", "--model", str(model)], capsys)
    _assert_refused(rc, err, DAMAGES[damage])
    assert _snapshot(work, model) == before


def test_versioned_folders_load_tolerantly(tiny_model_dir, tmp_path):
    from tedigan.models.base import FORMAT_VERSION
    from tedigan.pipeline import DEFAULT_MODEL_DIR, INDEX_FORMAT_VERSION

    # a folder saved before format versions existed (version 0) loads as it is
    old = tmp_path / "old"
    shutil.copytree(tiny_model_dir, old)
    index = json.loads((old / "model_index.json").read_text())
    del index["format_version"]
    (old / "model_index.json").write_text(json.dumps(index))
    for cfg_file in old.glob("*/config.json"):
        cfg = {
            k: v
            for k, v in json.loads(cfg_file.read_text()).items()
            if k not in ("_format_version", "_dtype")
        }
        cfg_file.write_text(json.dumps(cfg))
    assert TediGANPipeline.from_pretrained(old).num_ws == 6
    # format 1 kept the model's defaults among the provenance in "info"
    index.update(format_version=1, info={"trained_by": "me", "edit_mode": "delta", "edit_steps": 3})
    del index["defaults"]
    (old / "model_index.json").write_text(json.dumps(index))
    v1 = TediGANPipeline.from_pretrained(old)
    assert (v1.defaults.edit_mode, v1.defaults.edit_steps, v1.info) == ("delta", 3, {"trained_by": "me"})
    resaved = json.loads((v1.save_pretrained(tmp_path / "resaved") / "model_index.json").read_text())
    assert resaved["format_version"] == INDEX_FORMAT_VERSION
    assert resaved["defaults"] == {"edit_mode": "delta", "edit_steps": 3, "fidelity": "fast", "pti_lr": 3e-3}
    assert resaved["info"] == {"trained_by": "me"}
    assert (
        json.loads((DEFAULT_MODEL_DIR / "model_index.json").read_text())["format_version"]
        == INDEX_FORMAT_VERSION
    )
    shipped = TediGANPipeline.from_pretrained()
    assert shipped.dtype == torch.float32
    assert TediGANPipeline.from_pretrained(torch_dtype="auto").dtype == torch.float16  # as saved
    # what this version writes carries the version, and unknown keys / components only warn
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    cfg = json.loads((model / "generator" / "config.json").read_text())
    assert cfg["_format_version"] == FORMAT_VERSION and cfg["_dtype"] == "float32"
    (model / "generator" / "config.json").write_text(json.dumps({**cfg, "a_newer_field": 1}))
    index = json.loads((model / "model_index.json").read_text())
    assert index["format_version"] == INDEX_FORMAT_VERSION
    index["components"]["vocabulary"] = "vocabulary"
    index["defaults"]["a_newer_default"] = 1
    (model / "model_index.json").write_text(json.dumps(index))
    with pytest.warns(UserWarning) as caught:
        pipe = TediGANPipeline.from_pretrained(model)
    said = " ".join(str(w.message) for w in caught)
    assert "a_newer_field" in said and "vocabulary" in said and "a_newer_default" in said and pipe.num_ws == 6
    index.update(format_version=INDEX_FORMAT_VERSION + 1)
    (model / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(PipelineError, match="upgrade tedigan"):
        TediGANPipeline.from_pretrained(model)


def test_edit_overwrite_replaces_an_output_but_never_an_input(work, tiny_model_dir, capsys):
    keep = (work / "keep.png").read_bytes()
    args = ["--image", "face.png", "--text", "blond hair", "--model", str(tiny_model_dir), "--scale", "1"]
    assert edit_cli([*args, "--out", "keep.png", "--overwrite"]) == 0
    assert (work / "keep.png").read_bytes() != keep and Image.open(work / "keep.png").size == (RES, RES)
    rc, err = _run(edit_cli, [*args, "--out", "face.png", "--overwrite"], capsys)
    _assert_refused(rc, err, "is the input image")
    assert not [p for p in work.iterdir() if p.name.startswith(".")]  # no temporaries left behind


# --------------------------------------------------------------------------------- the generate CLI

GENERATE_CASES = {
    "n too large": (["-n", "100000"], "-n must be in"),
    "n zero": (["-n", "0"], "-n must be in"),
    "psi nan": (["--psi", "nan"], "--psi"),
    "psi huge": (["--psi", "1e9"], "--psi"),
    "out is a file": (["--out", "keep.png"], "is a file"),
    "existing image in out": (["--out", "gen"], "already exists"),
    "sketch inside out would be replaced": (
        ["--sketch", "gen/000.png", "--text", None, "--out", "gen"],
        "input",
    ),
    "sketch and label": (["--sketch", "face.png", "--label", "face.png"], "either"),
    "unreadable sketch": (["--sketch", "bad.png"], "bad.png"),
    "empty text": (["--text", " "], "empty text"),
    "layers empty": (["--layers", ","], "names no layer"),
}


@pytest.mark.parametrize("case", sorted(GENERATE_CASES))
def test_generate_cli_refuses(case, work, tiny_model_dir, capsys):
    (work / "gen").mkdir()
    Image.new("L", (RES, RES), 255).save(work / "gen" / "000.png")
    argv, message = GENERATE_CASES[case]
    args = {"--text": "pink hair", "--model": str(tiny_model_dir), "--out": "fresh"}
    args.update(dict(zip(argv[::2], argv[1::2])))
    args = {k: v for k, v in args.items() if v is not None}
    before = _snapshot(work, tiny_model_dir)
    rc, err = _run(generate_cli, [x for kv in args.items() for x in kv], capsys)
    _assert_refused(rc, err, message)
    assert _snapshot(work, tiny_model_dir) == before and not (work / "fresh").exists()


def test_generate_runs_any_n_in_chunks_with_the_same_faces(tiny_pipe, monkeypatch):
    whole = tiny_pipe.generate("pink hair", num_images=5, seed=3)
    monkeypatch.setattr(pipeline_mod, "GENERATE_CHUNK", 2)
    chunked = tiny_pipe.generate("pink hair", num_images=5, seed=3)
    # image i depends on (seed, i) only; batch sizes change float rounding, nothing more
    assert len(chunked.images) == 5 and chunked.latents.shape == whole.latents.shape
    torch.testing.assert_close(whole.latents, chunked.latents, rtol=0, atol=1e-5)


# --------------------------------------------------------------------------------------- the API


def test_api_validates_inputs(tiny_pipe, work):
    face = Image.open(work / "face.png")
    cases = [
        (lambda: tiny_pipe.edit(torch.full((3, RES, RES), float("nan")), "blond hair"), "nan"),
        (lambda: tiny_pipe.edit(torch.full((3, RES, RES), float("inf")), "blond hair"), "nan or inf"),
        (lambda: tiny_pipe.edit(torch.rand(3, RES, RES) * 255, "blond hair"), "0..255"),
        (lambda: tiny_pipe.edit(torch.zeros(4, RES, RES), "blond hair"), "[3, H, W]"),
        (lambda: tiny_pipe.edit(torch.zeros(3, RES, RES, dtype=torch.int32), "blond hair"), "uint8"),
        (lambda: tiny_pipe.edit(face, "blond hair", strength=1e30), "strength"),
        (lambda: tiny_pipe.edit(face, "blond hair", strength=float("nan")), "strength"),
        (lambda: tiny_pipe.edit(face, "blond hair", layers=[]), "layers is empty"),
        (lambda: tiny_pipe.edit(face, "blond hair", seed=2**70), "seed"),
        (lambda: tiny_pipe.edit(face, "blond hair", steps=10**9), "steps"),
        (lambda: tiny_pipe.edit(face, "\udcff"), "utf-8"),
        (lambda: tiny_pipe.generate("pink hair", truncation_psi=float("nan")), "truncation_psi"),
        (lambda: tiny_pipe.generate("pink hair", num_images=0), "num_images"),
        (lambda: tiny_pipe.generate("pink hair", num_images=10**6), "num_images"),
        (lambda: tiny_pipe.decode(torch.zeros(1, 3, 16)), "this generator takes [B, 6, 16]"),
    ]
    for call, message in cases:
        with pytest.raises(PipelineError) as info:
            call()
        assert message.lower() in str(info.value).lower(), (message, str(info.value))
    # a uint8 image tensor is read as 0..255, not taken as [-1, 1]
    small = face.convert("RGB").resize((RES, RES))
    u8 = torch.from_numpy(np.asarray(small).copy()).permute(2, 0, 1).contiguous()
    a, b = tiny_pipe.invert(u8), tiny_pipe.invert(small)
    torch.testing.assert_close(a.latents, b.latents, rtol=0, atol=1e-5)


def test_half_precision_pipeline_edits_encoder_only_and_refuses_optimisation(tiny_model_dir, work):
    pipe = TediGANPipeline.from_pretrained(tiny_model_dir).to(torch.bfloat16)
    assert pipe.dtype == torch.bfloat16
    out = pipe.edit(work / "face.png", "blond hair")
    assert torch.isfinite(out.latents.float()).all()
    with pytest.raises(PipelineError, match="float32"):
        pipe.edit(work / "face.png", "blond hair", steps=2)


def test_nan_weights_never_give_a_black_image(tiny_model_dir, work):
    pipe = TediGANPipeline.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        next(pipe.generator.synthesis.parameters()).fill_(float("nan"))
    with pytest.raises(PipelineError, match="not finite"):
        pipe.edit(work / "face.png", "blond hair")
    with pytest.raises(PipelineError, match="not finite"):
        pipe.generate("pink hair", num_images=2)


# ----------------------------------------------------------------------------------- training configs


@pytest.fixture(scope="module")
def blobs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("blobs")
    rng = np.random.default_rng(0)
    for i in range(24):
        Image.fromarray(rng.integers(0, 256, (RES, RES, 3), dtype=np.uint8)).save(root / f"{i:03d}.png")
    return root


def _gen_argv(blobs: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--stage",
        "generator",
        "--data.kind=folder",
        f"--data.root={blobs}",
        f"--data.resolution={RES}",
        "--generator.z_dim=16",
        "--generator.w_dim=16",
        "--generator.n_mlp=2",
        "--generator.channel_base=128",
        "--generator.channel_max=8",
        "--discriminator.channel_base=128",
        "--discriminator.channel_max=8",
        f"--train.output_dir={out}",
        "--train.batch_size=4",
        "--train.max_steps=4",
        "--train.log_every=2",
        "--train.sample_every=1000",
        "--train.checkpoint_every=2",
        "--loss.r1_interval=2",
        "--loss.pl_interval=2",
        "--ema_kimg=0.1",
        *extra,
    ]


CONFIG_CASES = {
    "lr inf": ("--train.lr=inf", "finite"),
    "lr nan": ("--train.lr=nan", "finite"),
    "lr absurd": ("--train.lr=1e8", "train.lr"),
    "ema nan": ("--ema_kimg=nan", "finite"),
    "r1 nan": ("--loss.r1_gamma=nan", "finite"),
    "d_lr negative": ("--d_lr=-1", "d_lr"),
    "resolution odd": ("--data.resolution=17", "power of two"),
    "unknown key": ("--train.lrr=0.1", "did you mean"),
    "mixing prob": ("--loss.style_mixing_prob=2", "style_mixing_prob"),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_bad_config_numbers_stop_before_any_work(case, blobs, tmp_path, capsys):
    override, message = CONFIG_CASES[case]
    out = tmp_path / "run"
    rc, err = _run(train_stage_main, _gen_argv(blobs, out, override), capsys)
    _assert_refused(rc, err, message)
    assert not out.exists()


def test_a_diverged_run_stops_at_once_and_saves_nothing(blobs, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    calls = {"n": 0}
    real = gen_stage.g_nonsaturating_loss

    def loss_that_blows_up(logits):
        calls["n"] += 1
        value = real(logits)
        return value * float("nan") if calls["n"] >= 3 else value

    monkeypatch.setattr(gen_stage, "g_nonsaturating_loss", loss_that_blows_up)
    rc, err = _run(train_stage_main, _gen_argv(blobs, out), capsys)
    _assert_refused(rc, err, "loss/G became nan at step 3")
    assert not (out / "generator").exists() and not stage_complete(out)
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["checkpoint-2"]  # before the NaN
    state = load_file(str(out / "checkpoints" / "checkpoint-2" / "state.safetensors"))
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


# ------------------------------------------------------------------------------------- checkpoints


class _Payload:
    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def test_a_pickle_in_a_checkpoint_folder_never_runs(blobs, tmp_path, capsys):
    out = tmp_path / "run"
    assert train_stage_main(_gen_argv(blobs, out, "--train.max_steps=2")) == 0
    marker = tmp_path / "pwned"
    evil = out / "checkpoints" / "checkpoint-2" / "custom_checkpoint_0.pkl"
    evil.write_bytes(pickle.dumps(_Payload(os.system, (f"touch {marker}",))))
    before = _snapshot(out)
    capsys.readouterr()
    for resume in ("latest", str(evil.parent)):
        rc, err = _run(
            train_stage_main,
            [*_gen_argv(blobs, out, "--train.max_steps=4"), "--resume_from_checkpoint", resume],
            capsys,
        )
        _assert_refused(rc, err, "may hold a pickle")
        assert not marker.exists()
    assert _snapshot(out) == before
    assert [p.name for p in out.rglob("*.pkl")] == ["custom_checkpoint_0.pkl"]  # tedigan wrote none


@pytest.mark.slow
def test_resume_passes_over_incomplete_checkpoints_and_says_so(blobs, tmp_path, capsys):
    out = tmp_path / "run"
    assert train_stage_main(_gen_argv(blobs, out)) == 0
    (out / "checkpoints" / "checkpoint-4" / "state.json").write_bytes(b"")  # a kill mid-write
    capsys.readouterr()
    argv = [*_gen_argv(blobs, out, "--train.max_steps=6"), "--resume_from_checkpoint", "latest"]
    assert train_stage_main(argv) == 0
    said = capsys.readouterr().out
    assert "passed over incomplete checkpoint-4" in said and "resumed from" in said and "checkpoint-2" in said
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows]
    assert steps == sorted(set(steps)) and steps[-1] == 6  # no duplicate rows after the resume
    # an explicit incomplete checkpoint is refused in one line
    (out / "checkpoints" / "checkpoint-6" / "state.safetensors").write_bytes(b"short")
    rc, err = _run(
        train_stage_main,
        [
            *_gen_argv(blobs, out, "--train.max_steps=8"),
            "--resume_from_checkpoint",
            str(out / "checkpoints" / "checkpoint-6"),
        ],
        capsys,
    )
    _assert_refused(rc, err, "missing or truncated")


def test_checkpoint_state_round_trips_every_kind_of_value(tmp_path):
    from accelerate import Accelerator

    class Holder:
        def __init__(self, state):
            self.state = state

        def state_dict(self):
            return self.state

        def load_state_dict(self, state):
            self.state = state

    value = {
        1: {"step": torch.tensor(3.0), "exp_avg": torch.randn(2, 2)},
        "groups": [{"lr": 0.1, "betas": (0.0, 0.99), "params": [0, 1], "nan": float("nan")}],
        "np": np.arange(4, dtype=np.uint32),
        "none": None,
    }
    ckpt = CheckpointManager(tmp_path, total_limit=1)
    acc = Accelerator(cpu=True)
    ckpt.save(acc, 7, {"h": Holder(value)})
    ckpt.save(acc, 8, {"h": Holder(value)})
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["checkpoint-8"]  # limit kept
    back = Holder(None)
    assert ckpt.restore(acc, "latest", {"h": back}) == 8
    got = back.state
    assert torch.equal(got[1]["exp_avg"], value[1]["exp_avg"]) and got["groups"][0]["betas"] == (0.0, 0.99)
    assert np.array_equal(got["np"], value["np"]) and got["np"].dtype == np.uint32 and got["none"] is None
    assert np.isnan(got["groups"][0]["nan"])
    with pytest.raises(CheckpointError, match="lacks"):
        ckpt.restore(acc, "latest", {"other": Holder(None)})
    with pytest.raises(TypeError, match="cannot checkpoint"):
        ckpt.save(acc, 9, {"h": Holder({"f": print})})


def test_non_finite_weights_are_never_checkpointed(tmp_path):
    from accelerate import Accelerator

    net = torch.nn.Linear(2, 2)
    with torch.no_grad():
        net.weight[0, 0] = float("inf")
    with pytest.raises(DivergenceError, match="non-finite"):
        CheckpointManager(tmp_path).save(Accelerator(cpu=True), 1, {"net": net})
    assert not (tmp_path / "checkpoints" / "checkpoint-1").exists()


# ------------------------------------------------------------------------------ half-finished stages


def test_a_kill_during_the_final_save_leaves_the_stage_unfinished(blobs, tmp_path, monkeypatch):
    from tedigan.models.stylegan2 import Discriminator

    out = tmp_path / "run"
    real_save = Discriminator.save_pretrained

    def killed(self, *args, **kwargs):
        raise KeyboardInterrupt("killed while saving D")

    monkeypatch.setattr(Discriminator, "save_pretrained", killed)
    assert train_stage_main(_gen_argv(blobs, out)) == 130  # Ctrl-C: "tedigan train: interrupted"
    assert (out / "generator" / "model.safetensors").is_file() and not stage_complete(out)
    assert not (out / "discriminator").exists()
    # the inversion stage refuses to pair this generator with a fresh, untrained discriminator
    from tedigan.config import InversionStageConfig, load_config
    from tedigan.training.inversion import _discriminator

    cfg = load_config(InversionStageConfig, None, {"generator_path": str(out / "generator")})
    from tedigan.models.stylegan2 import Generator

    with pytest.raises(ValueError, match="no trained discriminator"):
        _discriminator(cfg, Generator.from_pretrained(out / "generator"))
    # a rerun resumes from the last checkpoint and finishes the stage
    monkeypatch.setattr(Discriminator, "save_pretrained", real_save)
    assert train_stage_main([*_gen_argv(blobs, out), "--resume_from_checkpoint", "latest"]) == 0
    assert stage_complete(out) and (out / "discriminator" / "model.safetensors").is_file()


def test_save_pretrained_is_atomic(tmp_path, tiny_generator, monkeypatch):
    import tedigan.models.base as base

    G = tiny_generator(RES)
    G.save_pretrained(tmp_path / "g")
    before = _snapshot(tmp_path / "g")

    def dies(*args, **kwargs):
        raise KeyboardInterrupt("killed mid-save")

    monkeypatch.setattr(base, "save_file", dies)
    with pytest.raises(KeyboardInterrupt):
        G.save_pretrained(tmp_path / "g")
    assert _snapshot(tmp_path / "g") == before  # the old folder is untouched


# ---------------------------------------------------------------------------------------- converters


def _bytearray_bomb() -> bytes:
    # builtins.bytearray(10**12): a few bytes of pickle asking for a terabyte
    return b"\x80\x02c__builtin__\nbytearray\nq\x00\x8a\x06\x00\x10\xa5\xd4\xe8\x00\x85q\x01Rq\x02."


CONVERTER_CASES = {
    "nvlabs os.system": (nvlabs, "evil.pkl", "UnsafePickleError"),
    "nvlabs bytearray bomb": (nvlabs, "bomb.pkl", "bytearray"),
    "nvlabs not a pickle": (nvlabs, "noise.pkl", "error"),
    "nvlabs length past the end": (nvlabs, "huge.pkl", "claims"),
    "nvlabs missing file": (nvlabs, "nope.pkl", "no such file"),
    "rosinality not a checkpoint": (rosinality, "noise.pkl", "error"),
    "rosinality pickle with code": (rosinality, "evil.pkl", "error"),
    "rosinality missing file": (rosinality, "nope.pt", "no such file"),
}


@pytest.mark.parametrize("case", sorted(CONVERTER_CASES))
def test_converters_refuse_files_in_one_line(case, work, capsys):
    main, name, message = CONVERTER_CASES[case]
    marker = work / "pwned"
    (work / "evil.pkl").write_bytes(pickle.dumps(_Payload(os.system, (f"touch {marker}",)), protocol=2))
    (work / "bomb.pkl").write_bytes(_bytearray_bomb())
    (work / "noise.pkl").write_bytes(random.Random(0).randbytes(917))
    # BYTEARRAY8 claiming 4e18 bytes: CPython's unpickler prints a SystemError line of its own for this one
    (work / "huge.pkl").write_bytes(b"\x80\x05\x96" + struct.pack("<Q", 4077558400325360240) + b"x" * 100)
    before = _snapshot(work)
    rc, err = _run(main, [name, "--out", "converted"], capsys)
    _assert_refused(rc, err, message)
    assert not marker.exists() and _snapshot(work) == before


def test_converters_keep_existing_output_folders(work, capsys):
    (work / "converted" / "generator").mkdir(parents=True)
    (work / "converted" / "generator" / "model.safetensors").write_bytes(b"mine")
    (work / "noise.pkl").write_bytes(random.Random(1).randbytes(64))
    before = _snapshot(work)
    for main in (nvlabs, rosinality):
        rc, err = _run(main, ["noise.pkl", "--out", "converted"], capsys)
        _assert_refused(rc, err, "already exists")
    assert _snapshot(work) == before


def test_other_clis_never_replace_finished_outputs(work, tiny_model_dir, capsys):
    (work / "pipe").mkdir()
    (work / "pipe" / "mine.txt").write_text("keep")
    (work / "lm").mkdir()
    (work / "lm" / "layer_map.json").write_text("{}")
    before = _snapshot(work)
    cases = [
        (entry("assemble"), ["--stages", str(work), "--out", "pipe"], "exists"),
        (
            layer_analysis,
            ["--generator", "g", "--classifier", "c", "--out", "lm"],
            "exists",
        ),
        (layer_analysis, ["--generator", "missing_g", "--classifier", "c", "--out", "lm2"], "missing_g"),
    ]
    for main, argv, message in cases:
        rc, err = _run(main, argv, capsys)
        _assert_refused(rc, err, message)
    assert _snapshot(work) == before
