"""``bash train_all.sh tiny`` killed (SIGKILL, the whole process group) at random points, then run again:
it must end with every stage finished and a correct pipeline, and nothing half-written may pass for done."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from tedigan.pipeline import TediGANPipeline

REPO = Path(__file__).resolve().parent.parent
STAGES = ["classifier", "generator", "inversion", "inversion_sketch", "inversion_label", "text"]
SKIP = {"generator", "pipeline", "benchmark", "train_all.log.jsonl"}  # what a GENERATOR=DIR run redoes


def _start(env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        ["bash", str(REPO / "train_all.sh"), "tiny"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the kill reaches bash and the stage it runs
    )


@pytest.mark.slow
def test_tiny_train_all_survives_kills_at_random_points(tmp_path):
    out, data = tmp_path / "out", tmp_path / "data"
    env = {**os.environ, "OUT": str(out), "DATA": str(data), "OMP_NUM_THREADS": "1"}
    seed = int(os.environ.get("TEDIGAN_KILL_SEED", "20261201"))
    rng = random.Random(seed)
    kills = []
    for _ in range(4):
        proc = _start(env)
        delay = rng.uniform(2.0, 30.0)
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            kills.append(round(delay, 1))
    print(f"kill seed {seed}: killed after {kills} s")
    start = time.monotonic()
    final = subprocess.run(
        ["bash", str(REPO / "train_all.sh"), "tiny"], env=env, capture_output=True, text=True, timeout=900
    )
    assert final.returncode == 0, final.stderr[-3000:]
    print(f"final run {time.monotonic() - start:.0f} s")

    # every stage finished, with everything it writes
    for stage in STAGES:
        assert json.loads((out / stage / "complete.json").read_text())["step"] >= 1, stage
    assert (out / "generator" / "discriminator" / "model.safetensors").is_file()
    assert json.loads((data / "info.json").read_text())["num"] >= 1
    assert "hair_color" in json.loads((out / "layer_analysis" / "layer_map.json").read_text())["layers"]
    assert json.loads((out / "benchmark" / "benchmark.json").read_text())["num_sources"] == 3
    for line in (out / "train_all.log.jsonl").read_text().splitlines():
        json.loads(line)
    # nothing tedigan wrote is a pickle, and no resumed run logged a step twice
    assert not [p for p in out.rglob("*") if p.suffix in (".pkl", ".bin", ".pt", ".pth")]
    for stage in STAGES:
        steps = [
            r["step"]
            for r in map(json.loads, (out / stage / "metrics.jsonl").read_text().splitlines())
            if "loss/total" in r or "loss/D" in r or "loss" in r
        ]
        assert len(steps) == len(set(steps)), (stage, steps)

    # the pipeline is the stages' components (fp16 copies) and it edits
    pipe = TediGANPipeline.from_pretrained(out / "pipeline")
    for name, rel in (("generator", "generator/generator"), ("encoder", "inversion/encoder")):
        shipped = load_file(str(out / "pipeline" / name / "model.safetensors"))
        trained = load_file(str(out / rel / "model.safetensors"))
        assert shipped.keys() == trained.keys()
        for k, v in trained.items():
            expect = v.to(torch.float16) if v.is_floating_point() else v
            assert torch.equal(shipped[k], expect), (name, k)
    face = Image.open(next((data / "images").iterdir()))
    edited = pipe.edit(face, "blond hair")
    assert torch.isfinite(edited.latents).all() and edited.images[0].size == (16, 16)

    # GENERATOR=DIR: a generator trained elsewhere takes the generator stage's place (copied, marked done)
    out2 = tmp_path / "out2"
    shutil.copytree(out, out2, ignore=lambda d, names: [n for n in names if Path(d) == out and n in SKIP])
    env2 = {**env, "OUT": str(out2), "GENERATOR": str(out / "generator")}
    again = subprocess.run(
        ["bash", str(REPO / "train_all.sh"), "tiny"], env=env2, capture_output=True, text=True
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((out2 / "generator" / "complete.json").read_text())["copied_from"] == str(
        out / "generator"
    )
    for part in ("generator", "discriminator"):
        rel = Path("generator") / part / "model.safetensors"
        assert (out2 / rel).read_bytes() == (out / rel).read_bytes()
    assert (out2 / "pipeline" / "model_index.json").is_file() and (
        out2 / "benchmark" / "benchmark.json"
    ).is_file()


def test_train_all_refuses_a_generator_folder_without_a_generator(tmp_path):
    env = {
        **os.environ,
        "OUT": str(tmp_path / "out"),
        "DATA": str(tmp_path / "data"),
        "GENERATOR": str(tmp_path),
    }
    run = subprocess.run(
        ["bash", str(REPO / "train_all.sh"), "tiny"], env=env, capture_output=True, text=True
    )
    assert run.returncode == 2 and "holds no generator/config.json" in run.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "data").exists()
