"""The output guard (tedigan.pipeline.quality): degenerate images are refused in one line, real ones pass, and a
command whose tuning broke the generator exits with status 2 and writes nothing."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from tedigan.commands import main
from tedigan.pipeline import DEFAULT_MODEL_DIR, PipelineError
from tedigan.pipeline.quality import DegenerateOutputError, check_images, image_stats

EXAMPLE = DEFAULT_MODEL_DIR.parents[2] / "examples" / "face.png"


def _checker(size: int = 64, amplitude: float = 0.5) -> torch.Tensor:
    i = torch.arange(size)
    return (amplitude * (1 - 2 * ((i[:, None] + i[None, :]) % 2))).float().expand(1, 3, size, size).clone()


def _smooth(size: int = 64) -> torch.Tensor:
    """A smooth colour gradient with a little texture: what a natural image looks like to the guard."""
    y, x = torch.meshgrid(torch.linspace(-0.8, 0.8, size), torch.linspace(-0.6, 0.7, size), indexing="ij")
    g = torch.Generator().manual_seed(0)
    img = torch.stack([x, y, (x * y).sin()])[None] + 0.02 * torch.randn(1, 3, size, size, generator=g)
    return img.clamp(-1, 1)


def _photo(path, size: int = 256) -> torch.Tensor:
    a = np.asarray(Image.open(path).convert("RGB").resize((size, size)), dtype=np.float32)
    return torch.from_numpy(a).permute(2, 0, 1)[None] / 127.5 - 1


def _half(value: float) -> torch.Tensor:
    img = torch.full((1, 3, 64, 64), value)
    img[..., :, :32] = -value
    return img


DEGENERATE = {
    "white": (torch.ones(1, 3, 64, 64), "flat"),
    "black": (-torch.ones(1, 3, 64, 64), "flat"),
    "constant grey": (torch.zeros(1, 3, 64, 64), "flat"),
    "nearly constant": (0.3 + 0.005 * torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1)), "flat"),
    "white and black halves": (_half(1.0), "saturated"),
    "blown-out colours": ((torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(2)) * 50).clamp(-1, 1), "saturated"),
    "1-pixel checkerboard": (_checker(), "checkered"),
    "checkerboard over a face": (0.6 * _smooth() + _checker(amplitude=0.4), "checkered"),
    "NaN": (torch.full((1, 3, 64, 64), float("nan")), "not finite"),
    "one inf": (_smooth().index_put_((torch.tensor(0), torch.tensor(1), torch.tensor(5), torch.tensor(7)), torch.tensor(float("inf"))), "not finite"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(DEGENERATE))
def test_degenerate_images_are_refused_in_one_line(name):
    images, reason = DEGENERATE[name]
    with pytest.raises(DegenerateOutputError) as info:
        check_images(images, "the edited image")
    message = str(info.value)
    assert isinstance(info.value, PipelineError) and "\n" not in message
    assert message.startswith(f"the edited image is {reason}"), message
    assert "--fast" in message and "--pti-steps" in message


def test_real_images_pass_and_the_bad_one_of_a_batch_is_named():
    good = torch.cat([_smooth(), _photo(EXAMPLE, 64)])
    assert check_images(good) is good
    assert check_images(good.to(torch.bfloat16)) is not None  # half-precision outputs are measured as float
    stats = image_stats(_photo(EXAMPLE))[0]
    assert stats["std"] > 0.2 and stats["saturated"] < 0.3 and stats["checker"] < 0.03, stats
    with pytest.raises(DegenerateOutputError, match=r"the result \(image 2 of 3\) is checkered"):
        check_images(torch.cat([good[:1], _checker(), good[1:]]), "the result")


def test_aligned_real_photos_pass(fixtures_dir):
    root = fixtures_dir("real_photos", "pd_obama_portrait_man.jpg")
    for path in sorted(root.glob("*.jpg")):
        check_images(_photo(path), str(path.name))


# ------------------------------------------------------------------------------- end to end: nothing written


@pytest.fixture
def face(tmp_path):
    path = tmp_path / "face.png"
    img = Image.new("RGB", (16, 16), (90, 160, 220))
    img.paste((230, 190, 150), (4, 3, 12, 13))
    img.save(path)
    return path


def test_tuning_that_destroys_the_generator_exits_2_and_writes_nothing(
    tiny_model_dir, face, tmp_path, monkeypatch, capsys
):
    """Pivotal tuning at a huge learning rate (1.0, the model's own pti_lr) with its protection taken away (the
    best-step restore disabled): the tuned copy renders garbage, and the command refuses before writing."""
    from tedigan.editing import pivotal

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    index = json.loads((model / "model_index.json").read_text())
    index["defaults"]["pti_lr"] = 1.0
    (model / "model_index.json").write_text(json.dumps(index))
    monkeypatch.setattr(pivotal, "_load", lambda params, state: None)  # no revert, no best step
    out = tmp_path / "out" / "edited.png"
    argv = ["edit", "--model", str(model), "--image", str(face), "--text", "blond hair", "--pti-steps", "12"]
    rc = main([*argv, "--grid", "--out", str(out)])
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]  # progress bars aside
    assert rc == 2, err
    assert len(err) == 1 and err[0].startswith("tedigan edit: error: the edited image is "), err
    assert "fewer --pti-steps" in err[0]
    assert not out.exists() and not (out.parent / "edited_grid.png").exists()


def test_the_best_step_protects_a_huge_learning_rate(tiny_model_dir, face, tmp_path, capsys):
    """The same huge learning rate with the protection in place: the rises revert, the copy returned is the one
    of the lowest loss, and the edit is written."""
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    index = json.loads((model / "model_index.json").read_text())
    index["defaults"]["pti_lr"] = 1.0
    (model / "model_index.json").write_text(json.dumps(index))
    out = tmp_path / "edited.png"
    argv = ["edit", "--model", str(model), "--image", str(face), "--text", "blond hair", "--pti-steps", "12"]
    assert main([*argv, "--out", str(out)]) == 0, capsys.readouterr().err
    assert out.is_file()
