"""The model shipped in tedigan/weights/avatars64: it loads without arguments, edits the shipped example face
from text through the Python API and the CLI, and its edit is judged by its own attribute classifier."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from tedigan.commands import entry
from tedigan.pipeline import DEFAULT_MODEL_DIR, TediGANPipeline

edit_cli = entry("edit")

EXAMPLE = DEFAULT_MODEL_DIR.parents[2] / "examples" / "face.png"


@pytest.fixture(scope="module")
def shipped() -> TediGANPipeline:
    return TediGANPipeline.from_pretrained()


def test_shipped_folder_is_small_and_complete(shipped):
    size = sum(p.stat().st_size for p in DEFAULT_MODEL_DIR.rglob("*") if p.is_file())
    assert size < 100e6
    assert set(shipped.components()) >= {"generator", "encoder", "text_encoder", "classifier"}
    assert shipped.layer_map is not None and shipped.resolution == 64
    index = json.loads((DEFAULT_MODEL_DIR / "model_index.json").read_text())
    assert index["dtype"] == "float16"
    assert shipped.defaults.edit_mode == "prototype" and shipped.prototypes.num_ws == shipped.num_ws


def test_shipped_default_edit_hits_its_target_on_held_out_avatars(shipped):
    from tedigan.data import avatars
    from tedigan.data.io import to_tensor

    records = [avatars.record_for(7, i) for i in range(8)]
    records = [r for r in records if r["eyewear"] != "sunglasses"][:6]
    x = torch.stack([to_tensor(avatars.render(r, 64).image.convert("RGB")) for r in records])
    out = shipped.edit(x, "put sunglasses on them")
    with torch.no_grad():
        judged = shipped.classifier.decode(
            shipped.classifier.predict(torch.stack([to_tensor(im) for im in out.images]))
        )
    assert sum(j["eyewear"] == "sunglasses" for j in judged) >= len(records) - 1, judged


def test_shipped_model_edits_the_example(shipped, tmp_path):
    out = shipped.edit(EXAMPLE, "blond hair")
    assert out.images[0].size == (64, 64) and out.layers
    assert not torch.equal(out.latents, out.source_latents)
    rc = edit_cli(["--image", str(EXAMPLE), "--text", "blond hair", "--out", str(tmp_path / "e.png")])
    assert rc == 0 and Image.open(tmp_path / "e.png").size == (256, 256)  # --scale 4 by default


def test_shipped_models_load_by_name(shipped, tmp_path, monkeypatch):
    from tedigan.pipeline import NAMED_MODELS, model_folder

    assert model_folder(None) == model_folder("avatars") == NAMED_MODELS["avatars"] == DEFAULT_MODEL_DIR
    assert TediGANPipeline.from_pretrained("avatars").resolution == shipped.resolution
    monkeypatch.chdir(tmp_path)
    (tmp_path / "avatars").mkdir()  # a folder of that name here wins over the shipped model
    assert model_folder("avatars") == tmp_path.joinpath("avatars").relative_to(tmp_path)


def test_a_photo_given_to_the_avatar_model_is_called_out_of_domain(shipped, capsys, tmp_path):
    import warnings

    import matplotlib.cbook

    from tedigan.pipeline import OutOfDomainWarning

    photo = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shipped.edit(EXAMPLE, "add a beanie")
        assert not [w for w in caught if issubclass(w.category, OutOfDomainWarning)]
        shipped.invert(photo)
    (w,) = [w for w in caught if issubclass(w.category, OutOfDomainWarning)]
    assert "look like faces, not avatars" in str(w.message) and "--model faces" in str(w.message)
    argv = ["--model", "avatars", "--image", str(photo), "--text", "add a beanie"]  # a photo goes to faces
    rc = edit_cli([*argv, "--out", str(tmp_path / "p.png")])  # unless the avatar model is asked for
    err = capsys.readouterr().err
    assert rc == 0 and err.count("\n") == 1 and err.startswith("tedigan edit: warning: 1 of 1 input image(s)")
