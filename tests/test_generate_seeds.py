"""``python -m tedigan.generate --seeds`` / ``--mix-seeds``: seeded samples and style-mixing grids, of a pipeline's
generator and of the photo-real ``mobilestylegan`` generator (MobileStyleGAN; skipped where random-face is absent)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from tedigan import assets
from tedigan.commands import entry
from tedigan.models.latents import seed_latents

generate_cli = entry("generate")


def test_seed_latents_follow_the_nvlabs_convention(tiny_generator):
    G = tiny_generator(16)
    w = seed_latents(G, [3, 5], truncation_psi=1.0)
    z = torch.from_numpy(np.random.RandomState(5).randn(1, G.z_dim).astype(np.float32))
    assert torch.allclose(w[1:], G.mapping(z), atol=1e-6) and w.shape == (2, G.num_ws, G.w_dim)
    torch.testing.assert_close(seed_latents(G, [5], 1.0), w[1:], rtol=0, atol=1e-6)  # per seed, not per batch


def test_seeds_and_mixing_grid_from_a_pipeline(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "s"
    argv = ["--model", str(tiny_model_dir), "--seeds", "2-4,9", "--scale", "1", "--out", str(out)]
    assert generate_cli(argv) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["grid.png", "seed0002.png", "seed0003.png", "seed0004.png", "seed0009.png"]
    assert Image.open(out / "seed0009.png").size == (16, 16)
    a = np.asarray(Image.open(out / "seed0003.png"))
    assert generate_cli([*argv[:-1], str(tmp_path / "again")]) == 0  # deterministic
    assert np.array_equal(a, np.asarray(Image.open(tmp_path / "again" / "seed0003.png")))
    # a second run into the same folder is refused: nothing is replaced without --overwrite
    assert generate_cli(argv) == 2 and "already exists" in capsys.readouterr().err
    mix = tmp_path / "m"
    argv = ["--model", str(tiny_model_dir), "--seeds", "0-1", "--mix-seeds", "5-7", "--mix-layers", "0-2"]
    assert generate_cli([*argv, "--scale", "1", "--out", str(mix)]) == 0
    grid = np.asarray(Image.open(mix / "mixing.png"))
    assert grid.shape == (3 * 16, 4 * 16, 3)
    # the row source sits in the first column; a cell differs from it (its layers 0-2 come from a column)
    single = tmp_path / "z"
    assert (
        generate_cli(["--model", str(tiny_model_dir), "--seeds", "0", "--scale", "1", "--out", str(single)])
        == 0
    )
    assert np.array_equal(grid[16:32, :16], np.asarray(Image.open(single / "seed0000.png")))
    assert not np.array_equal(grid[16:32, :16], grid[16:32, 16:32])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--seeds", "5-2"], "--seeds must look like"),
        (["--seeds", "x"], "--seeds must look like"),
        (["--seeds", ","], "names nothing"),
        (["--seeds", "0-1", "--text", "pink hair"], "without text"),
        (["--mix-seeds", "1-2"], "needs --seeds"),
        (["--seeds", "0", "--mix-layers", "0-3"], "needs --mix-seeds"),
        (["--seeds", "0", "--mix-seeds", "1", "--mix-layers", "0-99"], "--mix-layers must be in"),
        (["--seeds", "0", "--resolution", "300", "--model", "mobilestylegan"], "--resolution must be"),
        (["--seeds", "0", "--resolution", "256"], "--model mobilestylegan only"),
    ],
)
def test_seed_sampling_refuses_bad_arguments(argv, message, tiny_model_dir, tmp_path, capsys):
    args = ["--out", str(tmp_path / "o")]
    if "--model" not in argv:
        args += ["--model", str(tiny_model_dir)]
    assert generate_cli([*argv, *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
@pytest.mark.needs_faces
def test_faces_generator_samples_and_mixes(tmp_path):
    out = tmp_path / "f"
    argv = [
        "--model",
        "mobilestylegan",
        "--seeds",
        "0-1",
        "--resolution",
        "64",
        "--scale",
        "1",
        "--out",
        str(out),
    ]
    assert generate_cli(argv) == 0
    img = np.asarray(Image.open(out / "seed0001.png")).astype(float)
    assert img.shape == (64, 64, 3) and img.std() > 20  # a face, not a flat image
    mix = tmp_path / "mix"
    argv = [
        "--model",
        "mobilestylegan",
        "--seeds",
        "0",
        "--mix-seeds",
        "1",
        "--resolution",
        "64",
        "--scale",
        "1",
    ]
    assert generate_cli([*argv, "--out", str(mix)]) == 0
    assert Image.open(mix / "mixing.png").size == (128, 128)


@pytest.mark.needs_faces
def test_damaged_or_missing_face_generator_is_one_line(tmp_path, monkeypatch, capsys):
    src = assets.mobilestylegan_ir_dir()
    broken = tmp_path / "ir"
    shutil.copytree(src, broken)
    data = (broken / "SynthesisNetwork.bin").read_bytes()
    (broken / "SynthesisNetwork.bin").write_bytes(data[: len(data) // 3])
    cases = [(broken, "SynthesisNetwork.bin"), (tmp_path / "nowhere", "TEDIGAN_MOBILESTYLEGAN_DIR")]
    for folder, message in cases:
        monkeypatch.setenv("TEDIGAN_MOBILESTYLEGAN_DIR", str(folder))
        out = tmp_path / "o"
        assert generate_cli(["--model", "mobilestylegan", "--seeds", "0", "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err, err
        assert not out.exists()
