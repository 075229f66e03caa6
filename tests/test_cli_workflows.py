"""The ``tedigan`` command and the invert → edit --latent workflow."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from tedigan.__main__ import COMMANDS
from tedigan.__main__ import main as tedigan_main
from tedigan.commands import entry
from tedigan.pipeline import PipelineError

edit_cli, invert_cli = entry("edit"), entry("invert")


@pytest.fixture()
def faces(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for i, colour in enumerate([(200, 150, 120), (90, 60, 40)]):
        img = Image.new("RGB", (24, 20), (120, 170, 220))
        img.paste(colour, (6, 4, 18, 18))
        img.save(tmp_path / f"f{i}.png")
    return tmp_path


def test_invert_saves_codes_that_edit_takes(tiny_model_dir, tiny_pipe, faces, capsys):
    model = ["--model", str(tiny_model_dir)]
    argv = ["--image", "f0.png", "--image", "f1.png", "--out", "codes.safetensors", "--recon", "recon.png"]
    assert invert_cli([*argv, *model, "--scale", "1"]) == 0
    codes = load_file("codes.safetensors")["latents"]
    assert codes.shape == (2, tiny_pipe.num_ws, 16)
    torch.testing.assert_close(codes[1:], tiny_pipe.invert(Image.open("f1.png")).latents, rtol=0, atol=1e-5)
    assert Image.open("recon.png").size == (4 * 16 + 3 * 2, 16)
    # editing the saved code equals editing the image (the code is the image's inversion)
    assert edit_cli(["--latent", "codes.safetensors", "--index", "1", "--text", "blond hair", *model]) == 0
    from_codes = tiny_pipe.edit(None, "blond hair", latents=codes[1:])
    from_image = tiny_pipe.edit(Image.open("f1.png"), "blond hair")
    torch.testing.assert_close(from_codes.latents, from_image.latents, rtol=0, atol=1e-5)
    assert (faces / "codes_edited.png").is_file()
    # refusals: one line, nothing written
    capsys.readouterr()
    cases = [
        (invert_cli, [*argv, *model], "already exists"),
        (invert_cli, ["--image", "f0.png", "--out", "codes.pt", *model], ".safetensors"),
        (
            edit_cli,
            ["--latent", "codes.safetensors", "--index", "5", "--text", "hat", "--out", "x.png", *model],
            "--index",
        ),
        (
            edit_cli,
            ["--latent", "f0.png", "--text", "blond hair", "--out", "x.png", *model],
            "not a codes file",
        ),
        (
            edit_cli,
            ["--latent", "codes.safetensors", "--image", "f0.png", "--text", "hat", *model],
            "one of",
        ),
        (edit_cli, ["--text", "blond hair", *model], "one of them"),
    ]
    for main, args, message in cases:
        before = sorted(p.name for p in faces.iterdir())
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
        assert sorted(p.name for p in faces.iterdir()) == before


def test_the_tedigan_command(tiny_model_dir, faces, capsys):
    assert tedigan_main([]) == 0 and "commands:" in capsys.readouterr().out
    assert set(COMMANDS) >= {"edit", "generate", "invert", "mix", "train", "benchmark", "assets"}
    assert tedigan_main(["frobnicate"]) == 2 and "unknown command" in capsys.readouterr().err
    assert tedigan_main(["mix", "--seeds", "0"]) == 2 and "--mix-seeds" in capsys.readouterr().err
    model = ["--model", str(tiny_model_dir)]
    assert tedigan_main(["edit", "--image", "f0.png", "--text", "red hair", *model]) == 0
    assert (faces / "f0_edited.png").is_file()
    assert tedigan_main(["mix", "--seeds", "0-1", "--mix-seeds", "2", "--out", "m", *model]) == 0
    assert (faces / "m" / "mixing.png").is_file()
    assert tedigan_main(["train", "--stage", "generator", "--dry-run"]) == 0
    assert "stage: generator" in capsys.readouterr().out
    # installed as a console script by pyproject.toml; the module form works as well
    done = subprocess.run([sys.executable, "-m", "tedigan", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "invert" in done.stdout


def test_diffusers_style_call(tiny_pipe, faces):
    face = Image.open("f0.png")
    a = tiny_pipe("blond hair", image=face)
    assert torch.equal(a.latents, tiny_pipe.edit(face, "blond hair").latents)
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    x, y = (
        tiny_pipe("pink hair", num_images=2, generator=g1),
        tiny_pipe("pink hair", num_images=2, generator=g2),
    )
    assert torch.equal(x.latents, y.latents)  # the same generator state, the same faces
    z = tiny_pipe("pink hair", num_images=2, generator=g1)  # the stream goes on: other faces
    assert not torch.equal(x.latents, z.latents)
    pt = tiny_pipe("pink hair", num_images=3, output_type="pt", seed=1).images
    assert pt.shape == (3, 3, 16, 16) and float(pt.min()) >= 0 and float(pt.max()) <= 1
    with pytest.raises(PipelineError, match="output_type"):
        tiny_pipe("pink hair", output_type="np")


def test_batch_edit_of_a_folder_and_several_prompts(tiny_model_dir, faces, capsys):
    (faces / "photos").mkdir()
    for name in ("f0.png", "f1.png"):
        (faces / "photos" / name).write_bytes((faces / name).read_bytes())
    (faces / "prompts.txt").write_text("blond hair\n# a comment\nremove the glasses\n")
    model = ["--model", str(tiny_model_dir)]
    argv = ["--image", "photos", "--prompts", "prompts.txt", "--text", "a beanie", "--out", "out", *model]
    assert edit_cli(argv) == 0
    names = sorted(p.name for p in (faces / "out").iterdir())
    assert names == sorted(
        f"{s}__{p}.png" for s in ("f0", "f1") for p in ("blond_hair", "remove_the_glasses", "a_beanie")
    )
    capsys.readouterr()
    # a prompt the model cannot read is refused before the first edit: nothing is written
    assert (
        edit_cli(["--image", "photos", "--text", "blond hair", "--text", "qwerty", "--out", "o2", *model])
        == 2
    )
    assert "does not understand" in capsys.readouterr().err and not (faces / "o2").exists()


def test_videos_of_an_optimised_edit_and_of_a_seed_walk(tiny_model_dir, faces, capsys):
    model = ["--model", str(tiny_model_dir)]
    argv = ["--image", "f0.png", "--text", "blond hair", "--steps", "3", "--video", "opt.gif", *model]
    assert edit_cli(argv) == 0
    gif = Image.open("opt.gif")
    assert gif.n_frames == 4  # every step (3 steps: every one kept) and the result
    assert edit_cli(["--image", "f0.png", "--text", "hat", "--video", "x.gif", "--out", "y.png", *model]) == 2
    assert "--steps" in capsys.readouterr().err and not (faces / "x.gif").exists()
    generate_cli = entry("generate")

    assert (
        generate_cli(["--seeds", "0-2", "--interpolate", "4", "--out", "walk", "--scale", "1", *model]) == 0
    )
    walk = Image.open(faces / "walk" / "interpolation.gif")
    assert walk.n_frames == 12 and walk.size == (16, 16)


def test_save_pretrained_keeps_the_model_card_and_normal_permissions(tmp_path):
    import stat

    from tedigan.pipeline import TediGANPipeline

    pipe = TediGANPipeline.from_pretrained(torch_dtype="auto")  # the shipped model, fp16 as saved
    assert pipe.model_card and "avatars64" in pipe.model_card
    out = pipe.save_pretrained(tmp_path / "copy")
    assert (out / "README.md").read_text() == pipe.model_card
    again = TediGANPipeline.from_pretrained(out, torch_dtype="auto")
    assert again.dtype == torch.float16  # the dtype is kept through save and load
    mode = stat.S_IMODE(out.stat().st_mode)
    assert mode & stat.S_IRGRP and mode & stat.S_IROTH  # a normal folder, not a private temporary one
