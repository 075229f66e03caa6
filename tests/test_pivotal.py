"""Pivotal tuning (Roich et al. 2022): a generator copy fitted to one image around its code, and its use by the
pipeline's invert / edit and the CLIs."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from tedigan.commands import entry
from tedigan.data.io import to_tensor
from tedigan.editing.pivotal import PivotalTuningConfig, pivotal_tuning
from tedigan.pipeline import PipelineError

edit_cli = entry("edit")


def _target(res: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    return torch.rand(1, 3, res, res, generator=g) * 2 - 1


@pytest.mark.slow
def test_tuning_fits_the_image_leaves_the_original_alone_and_is_seeded(tiny_generator):
    G = tiny_generator(16)
    before = {k: v.clone() for k, v in G.state_dict().items()}
    pivot = G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(0)))
    x = _target(16)
    cfg = PivotalTuningConfig(steps=30, lr=3e-3, lpips_weight=0.0, locality_weight=1.0, seed=5)
    tuned, losses = pivotal_tuning(G, pivot, x, None, cfg)
    assert losses[-1]["l2"] < 0.5 * losses[0]["l2"], (losses[0], losses[-1])
    assert all(torch.equal(before[k], v) for k, v in G.state_dict().items())  # only the copy trained
    assert not any(p.requires_grad for p in tuned.parameters()) and not tuned.training
    again, losses2 = pivotal_tuning(G, pivot, x, None, cfg)
    assert losses == losses2
    assert all(torch.equal(a, b) for a, b in zip(tuned.state_dict().values(), again.state_dict().values()))
    assert torch.equal(tuned.mapping.fc0.weight, G.mapping.fc0.weight)  # the mapping (code space) is kept


def test_bad_settings_are_refused(tiny_generator):
    G = tiny_generator(16)
    pivot, x = G.mapping(torch.randn(2, G.z_dim)), _target(16)
    with pytest.raises(ValueError, match="one image"):
        pivotal_tuning(G, pivot, x.expand(2, -1, -1, -1), None, PivotalTuningConfig(lpips_weight=0))
    with pytest.raises(ValueError, match="LPIPS"):
        pivotal_tuning(G, pivot[:1], x, None, PivotalTuningConfig(steps=1))
    for bad in ({"steps": -1}, {"lr": 0.0}, {"lpips_weight": float("nan")}, {"locality_samples": 0}):
        with pytest.raises(ValueError):
            PivotalTuningConfig(**bad)


@pytest.mark.slow
def test_pipeline_invert_and_edit_with_pivotal_tuning(tiny_pipe, tmp_path):
    face = tmp_path / "face.png"
    img = Image.new("RGB", (16, 16), (90, 160, 220))
    img.paste((230, 190, 150), (4, 3, 12, 13))
    img.save(face)
    enc = tiny_pipe.invert([face, face])
    pti = tiny_pipe.invert([face, face], pti_steps=6)
    assert torch.equal(pti.latents, enc.latents) and len(pti.tuned_generators) == 2
    x = to_tensor(enc.source_images[0], tiny_pipe.resolution)
    err = [(to_tensor(o.images[0], tiny_pipe.resolution) - x).abs().mean() for o in (enc, pti)]
    assert err[1] < err[0], err
    # the tuned copy renders the image's code as the output shows it
    again = tiny_pipe.decode(pti.latents[:1], generator=pti.tuned_generators[0])[0]
    assert again.tobytes() == pti.images[0].tobytes()
    out = tiny_pipe.edit(face, "blond hair", pti_steps=4)
    assert len(out.tuned_generators) == 1 and out.images[0].size == (16, 16)
    with pytest.raises(PipelineError, match="pti_steps needs the image"):
        tiny_pipe.edit(None, "blond hair", latents=enc.latents[:1], pti_steps=2)
    with pytest.raises(PipelineError, match="pti_steps"):
        tiny_pipe.invert(face, pti_steps=-1)


def test_edit_cli_pti_steps(tiny_model_dir, tmp_path, capsys):
    face = tmp_path / "face.png"
    Image.new("RGB", (16, 16), (200, 120, 90)).save(face)
    out = tmp_path / "edit.png"
    rc = edit_cli(
        ["--model", str(tiny_model_dir), "--image", str(face), "--text", "blond hair", "--pti-steps", "3",
         "--grid", "--out", str(out)]
    )  # fmt: skip
    assert rc == 0 and out.is_file() and (tmp_path / "edit_grid.png").is_file()
