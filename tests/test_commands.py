"""The command layer's contract (``tedigan.commands``): every command reachable as ``tedigan <name>``, one
error wrapper, one exit convention. A bad input ends with exit status 2, exactly one line on stderr and
no file written or changed; outputs are checked before any work; batch edits name every bad input and go
on after an interruption; two runs writing one file never silently replace each other's output; the
one-line error survives ``tedigan launch``; ``metrics`` exits non-zero when a number came out NaN."""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tedigan.commands import COMMANDS, main

REPO = Path(__file__).resolve().parents[1]
_PROGRESS = re.compile(r"\d+%\|.*\|")  # tqdm bars are not messages


def _snapshot(*roots: Path) -> dict[str, str]:
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for root in roots
        for p in sorted(Path(root).rglob("*"))
        if p.is_file()
    }


def _lines(err: str) -> list[str]:
    return [line for line in err.strip().splitlines() if line.strip() and not _PROGRESS.search(line)]


def _refused(argv: list[str], message: str, capsys) -> str:
    """Run ``tedigan ARGV``: status 2, one line on stderr naming ``message``, no traceback; the line."""
    rc = main(argv)
    err = capsys.readouterr().err
    lines = _lines(err)
    assert rc == 2, (rc, err)
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"tedigan {argv[0]}: error: ") or argv[0] not in COMMANDS, lines[0]
    assert message.lower() in lines[0].lower(), (message, lines[0])
    return lines[0]


@pytest.fixture()
def work(tmp_path, monkeypatch) -> Path:
    """The current folder: a face, a folder of two faces and two unreadable images, configs a user got
    wrong, a file a user cares about."""
    monkeypatch.chdir(tmp_path)
    face = Image.new("RGB", (24, 20), (120, 170, 220))
    face.paste((200, 150, 120), (6, 4, 18, 18))
    face.save(tmp_path / "face.png")
    (tmp_path / "photos").mkdir()
    face.save(tmp_path / "photos" / "f0.png")
    face.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(tmp_path / "photos" / "f1.png")
    (tmp_path / "photos" / "broken.png").write_bytes(b"\x89PNG not really")
    (tmp_path / "photos" / "empty.jpg").write_bytes(b"")
    Image.new("RGB", (8, 8), (1, 2, 3)).save(tmp_path / "keep.png")
    (tmp_path / "dup.yaml").write_text(
        "train:\n  lr: 0.001\ndata:\n  resolution: 16\ntrain:\n  max_steps: 3\n"
    )
    (tmp_path / "noise.yaml").write_bytes(random.Random(0).randbytes(300))
    (tmp_path / "arch.yaml").write_text("arch: stylegan3\n")
    (tmp_path / "noise.pkl").write_bytes(random.Random(1).randbytes(64))
    return tmp_path


PROMPT = "zq" * 5000  # 10,000 characters the vocabulary cannot read

# name -> (argv, what the one error line says); {model} is a tiny pipeline folder
BATTERY = {
    "edit: --out in a folder nobody can write": (
        ["edit", "--image", "face.png", "--text", "blond hair", "--out", "/proc/tedigan/e.png"],
        "cannot write in /proc",
    ),
    "edit: --out below a file": (
        ["edit", "--image", "face.png", "--text", "blond hair", "--out", "keep.png/e.png"],
        "keep.png is a file, not a folder",
    ),
    "edit: a 10,000-character prompt is cut in the message": (
        ["edit", "--image", "face.png", "--text", PROMPT],
        "does not understand 'zqzq",
    ),
    "edit: a batch with unreadable images names them all": (
        ["edit", "--image", "photos", "--text", "blond hair", "--out", "edited"],
        "2 of 4 image(s) cannot be read: photos/broken.png",
    ),
    "edit: --skip-bad outside a batch": (
        ["edit", "--image", "face.png", "--text", "blond hair", "--skip-bad"],
        "--skip-bad is for a batch",
    ),
    "edit: an option value that is no number": (
        ["edit", "--image", "face.png", "--text", "blond hair", "--strength", "abc"],
        "invalid float value",
    ),
    "edit: an unknown option": (["edit", "--image", "face.png", "--frobnicate"], "unrecognized arguments"),
    "edit: a 10,000-character option value is cut in the message": (
        ["edit", "--image", "face.png", "--text", "blond hair", "--mode", PROMPT],
        "invalid choice: 'zqzq",
    ),
    "generate: --out in a folder nobody can write": (
        ["generate", "--text", "pink hair", "--out", "/proc/tedigan_gen"],
        "cannot write in /proc",
    ),
    "invert: --out in a folder nobody can write": (
        ["invert", "--image", "face.png", "--out", "/proc/codes.safetensors"],
        "cannot write in /proc",
    ),
    "invert: --recon in a folder nobody can write": (
        ["invert", "--image", "face.png", "--out", "codes.safetensors", "--recon", "/proc/r.png"],
        "cannot write in /proc",
    ),
    "mix: no columns": (["mix", "--seeds", "0-3"], "--mix-seeds"),
    "train: a config with a section twice": (
        ["train", "--stage", "generator", "--config", "dup.yaml", "--dry-run"],
        "line 5: 'train' is given twice (first on line 1)",
    ),
    "train: a config of random bytes": (
        ["train", "--stage", "generator", "--config", "noise.yaml", "--dry-run"],
        "is not a text file",
    ),
    "train: an architecture that is not a choice": (
        ["train", "--stage", "generator", "--config", "arch.yaml", "--dry-run"],
        "'stylegan3' is not one of ['stylegan2', 'stylegan1', 'swagan']",
    ),
    "train: an unknown stage": (["train", "--stage", "painting"], "invalid choice"),
    "train: an output folder nobody can write": (
        ["train", "--stage", "classifier", "--train.output_dir=/proc/tedigan_run"],
        "--train.output_dir: cannot write in /proc",
    ),
    "metrics: --num 0": (["metrics", "--num", "0"], "--num must be >= 1"),
    "metrics: an unknown metric": (["metrics", "--metrics", "bogus"], "unknown metric"),
    "metrics: --out in a folder nobody can write": (
        ["metrics", "--metrics", "ppl_w", "--out", "/proc/m.jsonl"],
        "cannot write in /proc",
    ),
    "convert: --out in a folder nobody can write": (
        ["convert", "nvlabs", "noise.pkl", "--out", "/proc/converted"],
        "cannot write in /proc",
    ),
    "convert: no format": (["convert", "noise.pkl"], "invalid choice"),
    "avatars: nothing to do": (["avatars", "--num", "0"], "nothing to do"),
    "avatars: a preview over an existing file": (
        ["avatars", "--num", "0", "--preview", "keep.png"],
        "already exists",
    ),
    "face-data: --psi nan": (["face-data", "--num", "4", "--out", "fd", "--psi", "nan"], "--psi"),
    "layer-analysis: an unknown rule": (
        ["layer-analysis", "--generator", "g", "--classifier", "c", "--out", "lm", "--rule", "sum"],
        "--rule must be one of relative, cumulative",
    ),
    "export: --out in a folder nobody can write": (["export", "run", "--out", "/proc/x"], "cannot write"),
    "benchmark: no sources": (["benchmark", "--num-sources", "0", "--out", "b"], "--num-sources"),
    "face-benchmark: an unknown mode": (["face-benchmark", "--out", "fb", "--modes", "blend"], "--modes"),
    "judges: --num 0": (["judges", "--num", "0", "--out", "j"], "--num must be in 1..10000"),
    "an unknown command": (["frobnicate"], "unknown command 'frobnicate'"),
}
_TAKES_MODEL = ("edit", "generate", "invert", "mix", "metrics")


@pytest.mark.parametrize("case", sorted(BATTERY))
def test_bad_inputs_end_in_one_line_and_status_2(case, work, tiny_model_dir, capsys):
    argv, message = BATTERY[case]
    if argv[0] in _TAKES_MODEL:
        argv = [*argv, "--model", str(tiny_model_dir)]
    before = _snapshot(work, tiny_model_dir)
    line = _refused(argv, message, capsys)
    assert _snapshot(work, tiny_model_dir) == before  # nothing written, nothing changed
    assert not [p for p in work.iterdir() if p.name.startswith(".")]  # no probe or temporary left
    if "10,000" in case:
        assert len(line) < 400 and "…" in line
    if "names them all" in case:
        assert "photos/empty.jpg" in line


def test_a_batch_skips_bad_images_on_request_and_goes_on_after_an_interruption(work, tiny_model_dir, capsys):
    argv = ["edit", "--image", "photos", "--text", "blond hair", "--text", "black hair", "--out", "edited"]
    argv += ["--model", str(tiny_model_dir), "--scale", "1"]
    # --skip-bad: the readable images are edited, the others named in one line, status 2
    line = _refused([*argv, "--skip-bad"], "2 of 4 image(s) cannot be read", capsys)
    assert "photos/broken.png" in line and "photos/empty.jpg" in line and "skipped" in line
    names = sorted(p.name for p in (work / "edited").iterdir())
    assert names == [f"{s}__{p}.png" for s in ("f0", "f1") for p in ("black_hair", "blond_hair")]
    # an interrupted batch (one output missing) goes on: the finished edits are kept, not redone
    (work / "edited" / "f1__blond_hair.png").unlink()
    kept = _snapshot(work / "edited")
    for bad in ("broken.png", "empty.jpg"):
        (work / "photos" / bad).unlink()
    assert main([*argv, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["out"] == [str(Path("edited") / "f1__blond_hair.png")]
    assert len(summary["skipped_existing"]) == 3
    assert {k: v for k, v in _snapshot(work / "edited").items() if k in kept} == kept
    assert main(argv) == 0
    assert "4 edit(s) already written, skipped" in capsys.readouterr().out
    # --overwrite edits them all again
    assert main([*argv, "--overwrite", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["out"]) == 4


def test_a_file_another_run_writes_meanwhile_is_kept(work, tiny_model_dir, capsys, monkeypatch):
    from tedigan.pipeline import TediGANPipeline

    edit = TediGANPipeline.edit

    def racing_edit(self, *args, **kwargs):  # the other run finishes first
        Image.new("RGB", (4, 4), (9, 9, 9)).save(work / "out.png")
        return edit(self, *args, **kwargs)

    monkeypatch.setattr(TediGANPipeline, "edit", racing_edit)
    argv = ["edit", "--image", "face.png", "--text", "blond hair", "--out", "out.png"]
    argv += ["--model", str(tiny_model_dir), "--scale", "1"]
    _refused(argv, "out.png was written by another run while this one worked", capsys)
    assert Image.open(work / "out.png").size == (4, 4)  # the other run's file, untouched
    assert not [p for p in work.iterdir() if p.name.startswith(".")]
    # with --overwrite the last run wins, as asked
    assert main([*argv, "--overwrite"]) == 0
    assert Image.open(work / "out.png").size == (16, 16)


def test_metrics_exits_non_zero_when_a_number_is_not_finite(work, tiny_model_dir, capsys, monkeypatch):
    from tedigan import metrics

    monkeypatch.setitem(metrics.METRICS, "ppl_w", lambda ctx: {"value": float("nan"), "num": 0})
    out = work / "m.jsonl"
    argv = ["metrics", "--model", str(tiny_model_dir), "--metrics", "ppl_w", "--out", str(out)]
    rc = main(argv)
    captured = capsys.readouterr()
    lines = [line for line in _lines(captured.err) if "error" in line]
    assert rc == 2 and len(lines) == 1 and "ppl_w came out NaN or infinite" in lines[0], captured.err
    assert json.loads(out.read_text())["metrics"]["ppl_w"]["value"] is None  # on record


def test_launch_keeps_the_one_line_error_and_its_status(work):
    """accelerate launch turns a child's status 2 into its own traceback and status 1; tedigan launch
    returns the child's status, and its one line is all that is said."""
    quiet = [
        "--num_processes",
        "1",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
    ]
    script = [
        "--cpu",
        "--num_cpu_threads_per_process",
        "1",
        str(REPO / "pipelines" / "train_stage.py"),
        "--stage",
        "generator",
        "--config",
        "dup.yaml",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "tedigan", "launch", *quiet, *script],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    lines = _lines(done.stderr)
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("tedigan train: error:") and "'train' is given twice" in lines[0]


def test_every_command_answers_help_and_the_parser_needs_no_torch(capsys):
    for name in COMMANDS:
        assert main([name, "--help"]) == 0, name
        assert capsys.readouterr().out.strip(), name
    probe = (
        "import sys; from tedigan.commands import main; main(['--help']); main(['generate', '--help']); "
        "main(['train', '--help']); import tedigan.data.vocabulary; print('torch' in sys.modules, file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0 and done.stderr.strip() == "False", done.stderr


@pytest.mark.filterwarnings(
    "ignore:'tedigan.*found in sys.modules:RuntimeWarning"
)  # runpy of an imported module
def test_the_python_module_paths_are_shims_of_the_commands(capsys, monkeypatch):
    shims = {
        "tedigan.edit": "edit",
        "tedigan.generate": "generate",
        "tedigan.invert": "invert",
    }
    for module, command in shims.items():
        monkeypatch.setattr(sys, "argv", [module, "--help"])
        with pytest.raises(SystemExit) as done:
            runpy.run_module(module, run_name="__main__", alter_sys=False)
        assert done.value.code == 0, module
        assert capsys.readouterr().out.startswith(f"usage: tedigan {command} "), module
    monkeypatch.setattr(sys, "argv", ["train_stage.py", "--stage", "generator", "--dry-run"])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(REPO / "pipelines" / "train_stage.py"), run_name="__main__")
    assert done.value.code == 0 and "stage: generator" in capsys.readouterr().out


def test_the_light_copies_of_library_names_agree():
    """Names the parsers need without importing torch are copies; they must not drift."""
    from tedigan import cli
    from tedigan.commands.train import STAGES
    from tedigan.config import STAGE_CONFIGS
    from tedigan.editing.layer_analysis import RULES
    from tedigan.pipeline import EDIT_MODES

    assert cli.EDIT_MODES == EDIT_MODES
    assert sorted(STAGES) == sorted(STAGE_CONFIGS)
    assert RULES == ("relative", "cumulative")
