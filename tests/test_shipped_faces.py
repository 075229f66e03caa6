"""The faces model shipped in tedigan/weights/faces (its generator comes from the random-face package, so the
tests skip without it): it loads by name, edits a real photo from text through the API and the README's CLI
command, and calls a cartoon avatar out of its domain."""

from __future__ import annotations

import json
import warnings

import matplotlib.cbook
import pytest

from tedigan.commands import entry
from tedigan.pipeline import DEFAULT_MODEL_DIR, NAMED_MODELS, OutOfDomainWarning, TediGANPipeline

edit_cli = entry("edit")

FOLDER = NAMED_MODELS["faces"]
PHOTO = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
AVATAR = DEFAULT_MODEL_DIR.parents[2] / "examples" / "face.png"


pytestmark = pytest.mark.needs_faces


@pytest.fixture(scope="module")
def faces() -> TediGANPipeline:
    return TediGANPipeline.from_pretrained("faces")


def test_the_folder_is_small_and_names_its_generator(faces):
    size = sum(p.stat().st_size for p in FOLDER.rglob("*") if p.is_file())
    assert size < 40e6
    index = json.loads((FOLDER / "model_index.json").read_text())
    assert index["components"]["generator"] == {"package": "mobilestylegan", "resolution": 256}
    assert faces.domain == "faces" and faces.resolution == 256 and faces.layer_map is not None
    assert set(faces.components()) >= {"generator", "encoder", "text_encoder", "domain_classifier"}


@pytest.mark.slow
def test_a_real_photo_is_aligned_and_edited(faces, tmp_path):
    out = faces.edit(PHOTO, "make her smile", align=True)
    assert out.images[0].size == (256, 256) and out.layers
    argv = ["--model", "faces", "--image", PHOTO, "--align", "--text", "make her smile"]
    assert edit_cli([*argv, "--out", str(tmp_path / "smile.png")]) == 0
    assert (tmp_path / "smile.png").is_file()


def test_an_avatar_given_to_the_faces_model_is_out_of_domain(faces):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        faces.invert(AVATAR)
    (w,) = [w for w in caught if issubclass(w.category, OutOfDomainWarning)]
    assert "look like avatars, not faces" in str(w.message) and "--model avatars" in str(w.message)


@pytest.mark.slow
def test_text_to_image_and_unreadable_prompts(tmp_path, capsys):
    generate_cli = entry("generate")

    argv = ["--model", "faces", "--text", "an old man", "-n", "2", "--out", str(tmp_path / "t2i")]
    assert generate_cli(argv) == 0 and len(list((tmp_path / "t2i").glob("0*.png"))) == 2
    argv = ["--model", "faces", "--image", PHOTO, "--text", "pink hair", "--out", str(tmp_path / "x.png")]
    assert edit_cli(argv) == 2  # the face vocabulary has no pink hair: refused, not guessed
    assert "tedigan edit: error:" in capsys.readouterr().err and not (tmp_path / "x.png").exists()
