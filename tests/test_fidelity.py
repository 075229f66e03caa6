"""The pipeline's fidelity: ``fast`` (the encoder) and ``faithful`` (codes and a tuned generator copy fitted to the
image) in edit / invert / the commands, the reconstructions every call returns, and the proxy head component."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from tedigan.commands import main
from tedigan.editing.faithful import FaithfulConfig
from tedigan.pipeline import PipelineDefaults, PipelineError, TediGANPipeline

#: a few steps of each stage: enough to see the losses fall on the tiny generator
QUICK = FaithfulConfig(w_steps=5, wplus_steps=5, pti_steps=5, patience=5, w_lr=0.05, identity_weight=0.0)


@pytest.fixture
def face(tmp_path):
    path = tmp_path / "face.png"
    img = Image.new("RGB", (16, 16), (90, 160, 220))
    img.paste((230, 190, 150), (4, 3, 12, 13))
    img.paste((60, 40, 30), (4, 1, 12, 4))
    img.save(path)
    return path


def _state(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def _error(images, source) -> float:
    """Mean absolute pixel difference (0..255) of ``images`` to ``source``."""
    b = np.asarray(source, dtype=np.float32)
    return float(np.mean([np.abs(np.asarray(im, dtype=np.float32) - b).mean() for im in images]))


def test_faithful_edit_fits_tunes_a_copy_and_leaves_the_pipeline_alone(tiny_pipe, face, capsys):
    before = _state(tiny_pipe.generator)
    out = tiny_pipe.edit(face, "blond hair", fidelity="faithful", faithful=QUICK, progress=True)
    # every stage ran and its loss fell (each keeps its best step)
    stages = [r["stage"] for r in out.losses]
    assert {"w", "wplus", "pti"} <= set(stages), stages
    for stage in ("w", "wplus", "pti"):
        totals = [r["total"] for r in out.losses if r["stage"] == stage]
        assert min(totals) <= totals[0], (stage, totals)
    assert min(r["total"] for r in out.losses) < out.losses[0]["total"]
    assert "faithful W+" in capsys.readouterr().err  # one progress bar per stage
    # the edit is rendered by the tuned copy, which differs from the pipeline's untouched generator
    (g,) = out.tuned_generators
    assert any(
        not torch.equal(a, b)
        for a, b in zip(g.synthesis.parameters(), tiny_pipe.generator.synthesis.parameters())
    )
    assert all(torch.equal(v, before[k]) for k, v in tiny_pipe.generator.state_dict().items())
    assert torch.isfinite(out.latents).all() and out.images[0].size == (16, 16)
    assert len(out.reconstructions) == 1
    again = tiny_pipe.decode(out.source_latents, generator=g)[0]
    assert again.tobytes() == out.reconstructions[0].tobytes()
    assert tiny_pipe.decode(out.latents, generator=g)[0].tobytes() == out.images[0].tobytes()
    # the faithful reconstruction is closer to the source than the encoder's
    fast = tiny_pipe.edit(face, "blond hair", fidelity="fast")
    src = out.source_images[0]
    assert _error(out.reconstructions, src) < _error(fast.reconstructions, src)


def test_fast_mode_returns_its_reconstructions_too(tiny_pipe, face):
    out = tiny_pipe.edit(face, "blond hair")  # the tiny pipeline's default: fast
    assert out.tuned_generators is None and len(out.reconstructions) == 1
    assert tiny_pipe.decode(out.source_latents)[0].tobytes() == out.reconstructions[0].tobytes()
    pti = tiny_pipe.edit(face, "blond hair", pti_steps=3, progress=False)
    rec = tiny_pipe.decode(pti.source_latents, generator=pti.tuned_generators[0])[0]
    assert rec.tobytes() == pti.reconstructions[0].tobytes()
    inv = tiny_pipe.invert([face, face])
    assert [im.tobytes() for im in inv.reconstructions] == [im.tobytes() for im in inv.images]


def test_faithful_invert_and_the_models_default(tiny_pipe, face, monkeypatch):
    monkeypatch.setattr(tiny_pipe, "defaults", PipelineDefaults(edit_mode="mix", fidelity="faithful"))
    out = tiny_pipe.invert([face, face], steps=0)  # None: the model's default, faithful here
    assert len(out.tuned_generators) == 2 and not torch.equal(out.latents, out.source_latents)
    assert [im.tobytes() for im in out.images] == [im.tobytes() for im in out.reconstructions]
    # with the codes instead of an image the default falls back to fast; asking for faithful is refused
    edit = tiny_pipe.edit(None, "blond hair", latents=out.latents[:1])
    assert edit.tuned_generators is None
    with pytest.raises(PipelineError, match="fidelity='faithful' needs the image"):
        tiny_pipe.edit(None, "blond hair", latents=out.latents[:1], fidelity="faithful")
    with pytest.raises(PipelineError, match="fidelity must be one of"):
        tiny_pipe.edit(face, "blond hair", fidelity="exact")
    with pytest.raises(PipelineError, match="fidelity must be one of"):
        PipelineDefaults(fidelity="slow")
    with pytest.raises(PipelineError, match="pti_lr"):
        PipelineDefaults(pti_lr=0.0)


def test_faithful_with_optimisation_steps_runs_on_the_tuned_copy(tiny_pipe, face):
    out = tiny_pipe.edit(face, "blond hair", fidelity="faithful", faithful=QUICK, steps=2, progress=False)
    assert len(out.losses) > 2 and all("stage" not in r for r in out.losses[-2:])  # the optimisation's steps
    (g,) = out.tuned_generators
    assert tiny_pipe.decode(out.latents, generator=g)[0].tobytes() == out.images[0].tobytes()


def test_half_precision_refuses_faithful(tiny_model_dir, face):
    pipe = TediGANPipeline.from_pretrained(tiny_model_dir).to(torch.bfloat16)
    with pytest.raises(PipelineError, match="float32"):
        pipe.edit(face, "blond hair", fidelity="faithful")


@pytest.mark.slow
def test_commands_follow_the_models_fidelity(tiny_model_dir, face, tmp_path, capsys):
    """A model whose default is faithful: edit and invert run it (and --grid shows the tuned reconstruction);
    invert --fast takes the encoder alone."""
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    index = json.loads((model / "model_index.json").read_text())
    index["defaults"]["fidelity"] = "faithful"
    (model / "model_index.json").write_text(json.dumps(index))
    out = tmp_path / "edited.png"
    argv = ["edit", "--model", str(model), "--image", str(face), "--text", "blond hair", "--grid"]
    assert main([*argv, "--out", str(out)]) == 0, capsys.readouterr().err
    assert out.is_file() and (tmp_path / "edited_grid.png").is_file()
    codes = tmp_path / "codes.safetensors"
    argv = ["invert", "--model", str(model), "--image", str(face), "--recon", str(tmp_path / "rec.png")]
    assert main([*argv, "--out", str(codes)]) == 0 and codes.is_file()
    assert main([*argv[:-2], "--fast", "--out", str(tmp_path / "fast.safetensors")]) == 0


# ------------------------------------------------------------------------------------- the proxy head part


def test_a_proxy_head_needs_a_mobilestylegan_generator(tiny_pipe):
    from tedigan.models.proxy_head import ProxyHead, ProxyHeadConfig

    with pytest.raises(PipelineError, match="proxy_head is a fast route through MobileStyleGAN"):
        TediGANPipeline(
            tiny_pipe.generator, tiny_pipe.encoder, proxy_head=ProxyHead(ProxyHeadConfig(block=0, hidden=4))
        )


def test_proxy_head_round_trips_in_half_precision(tmp_path):
    from tedigan.models.proxy_head import ProxyHead, ProxyHeadConfig

    torch.manual_seed(0)
    head = ProxyHead(ProxyHeadConfig(block=0, hidden=4))
    with torch.no_grad():
        for p in head.parameters():
            p.add_(0.1 * torch.randn_like(p))
    head.save_pretrained(tmp_path / "h", {"psnr": 30.0}, dtype=torch.float16)
    again = ProxyHead.from_pretrained(tmp_path / "h")
    assert again.metrics == {"psnr": 30.0} and next(again.parameters()).dtype == torch.float32
    for a, b in zip(head.parameters(), again.parameters()):
        torch.testing.assert_close(a.half().float(), b)
    assert (
        next(ProxyHead.from_pretrained(tmp_path / "h", torch_dtype="auto").parameters()).dtype
        == torch.float16
    )
    again.save_pretrained(tmp_path / "h2")  # its metrics travel on
    assert json.loads((tmp_path / "h2" / "config.json").read_text())["metrics"] == {"psnr": 30.0}
    (tmp_path / "h2" / "model.safetensors").write_bytes(b"damaged")
    with pytest.raises(ValueError, match="damaged"):
        ProxyHead.from_pretrained(tmp_path / "h2")


# ------------------------------------------------------------------------------------- the shipped faces model


@pytest.mark.needs_faces
@pytest.mark.slow
def test_faces_model_ships_its_proxy_head_and_faithful_default(tmp_path):
    pipe = TediGANPipeline.from_pretrained("faces")
    assert pipe.defaults.fidelity == "faithful" and pipe.defaults.pti_lr == pytest.approx(1e-4)
    assert pipe.proxy_head is not None and pipe.proxy_head.config.block == 3
    assert TediGANPipeline.from_pretrained("avatars").defaults.fidelity == "fast"
    folder = pipe.save_pretrained(tmp_path / "faces", dtype=torch.float16)
    index = json.loads((folder / "model_index.json").read_text())
    assert index["components"]["proxy_head"] == "proxy_head"
    assert (folder / "proxy_head" / "model.safetensors").stat().st_size < 2_000_000
    again = TediGANPipeline.from_pretrained(folder)
    for a, b in zip(pipe.proxy_head.parameters(), again.proxy_head.parameters()):
        torch.testing.assert_close(a, b)


@pytest.mark.needs_faces
@pytest.mark.slow
def test_faces_faithful_edit_of_a_photo_runs_on_the_route(fixtures_dir):
    """A short faithful recipe on the proxy head's route, on a real photo: every stage runs, the result passes
    the guard and the reconstruction is closer to the photo than the encoder's (about 30 s on one core)."""
    photo = fixtures_dir("real_photos", "pd_obama_portrait_man.jpg") / "pd_obama_portrait_man.jpg"
    pipe = TediGANPipeline.from_pretrained("faces")
    short = FaithfulConfig(use_head=True, w_steps=4, wplus_steps=4, pti_steps=4, polish_steps=2)
    out = pipe.edit(photo, "make him look older", align=True, faithful=short, progress=False)
    assert {r["stage"] for r in out.losses} == {"w", "wplus", "pti", "polish"}
    assert out.losses[-1]["total"] < 1.0
    fast = pipe.edit(photo, "make him look older", align=True, fidelity="fast")
    src = out.source_images[0]
    assert _error(out.reconstructions, src) < _error(fast.reconstructions, src)
