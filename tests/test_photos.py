"""Photos in, photos out (tedigan.pipeline.photos and ``tedigan edit`` on photos): every face of a photo
edited as one batch item, the edits pasted back into the photo at its size and mode, ``--aligned`` /
``--grid`` / ``--face``, a photo without a face refused in one line, and the model chosen by the input.

The fast tests run the tiny pipeline on a synthetic two-face photo whose landmarks are given (the detector
is replaced); the real faces model and MTCNN run in the tests marked ``needs_faces`` and ``slow``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_align import landmarks, smooth_photo

from tedigan.commands import main
from tedigan.data import align
from tedigan.data.align import Face
from tedigan.pipeline import PipelineError
from tedigan.pipeline.photos import (
    FaceRenders,
    align_photos,
    choose_model,
    group_by_photo,
    paste_edits,
    render_faces,
)

REPO = Path(__file__).resolve().parents[1]
OBAMA = REPO / "examples" / "pd_obama_portrait_man.jpg"
AVATAR = REPO / "examples" / "face.png"
SIZE = (480, 300)
CENTRES = [(130, 150), (360, 160)]  # the first face is the larger


def two_faces(photo_size=SIZE) -> list[Face]:
    return [
        Face.from_landmarks(landmarks(CENTRES[0], degrees=10, scale=0.9), photo_size, prob=0.99),
        Face.from_landmarks(landmarks(CENTRES[1], degrees=-5, scale=0.7), photo_size, prob=0.98),
    ]


@pytest.fixture()
def photo_file(tmp_path, monkeypatch) -> Path:
    """A synthetic 480x300 photo with two faces, the current folder, and a detector that finds them."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "two.png"
    smooth_photo(*SIZE).save(path)
    monkeypatch.setattr(align, "detect_faces", lambda img, min_prob=0.9: two_faces(img.size))
    return path


def no_faces(img, min_prob=0.9):
    raise align.NoFaceFound("found no face in the image")


def changed(a: Image.Image, b: Image.Image) -> np.ndarray:
    return np.abs(np.asarray(a.convert("RGB")).astype(int) - np.asarray(b.convert("RGB")).astype(int)).max(-1)


# ------------------------------------------------------------------------------------------------ the API


def test_every_face_of_a_photo_is_one_batch_item(tiny_pipe, photo_file):
    out = tiny_pipe.edit(str(photo_file), "black hair", align=True, face="all", progress=False)
    assert len(out.images) == len(out.alignments) == len(out.photos) == 2
    assert out.photos[0] is out.photos[1] and out.photos[0].size == SIZE
    assert group_by_photo(out.photos) == [[0, 1]]
    expected = [f.alignment.quad for f in two_faces()]
    assert all(np.allclose(a.quad, q) for a, q in zip(out.alignments, expected))
    # face= picks one: the index counts from the largest; Face objects skip the detector
    (second,) = tiny_pipe.invert(str(photo_file), align=True, face=1).alignments
    assert np.allclose(second.quad, expected[1])
    given = tiny_pipe.edit(Image.open(photo_file), "black hair", align=True, face=two_faces()[1:])
    assert np.allclose(given.alignments[0].quad, expected[1])
    # without alignment there is nothing to put back
    plain = tiny_pipe.edit(str(photo_file), "black hair")
    assert plain.alignments is None and plain.photos is None


def test_bad_face_choices_and_a_photo_without_a_face_are_refused(tiny_pipe, photo_file, monkeypatch):
    for face, message in [("nose", "face must be"), (True, "face must be"), (2, r"has 2 face\(s\)")]:
        with pytest.raises(PipelineError, match=message):
            tiny_pipe.edit(str(photo_file), "black hair", align=True, face=face)
    with pytest.raises(PipelineError, match="one photo"):
        align_photos([str(photo_file)] * 2, face=two_faces())
    monkeypatch.setattr(align, "detect_faces", no_faces)
    with pytest.raises(PipelineError, match="found no face") as err:
        tiny_pipe.edit(str(photo_file), "black hair", align=True)
    assert "\n" not in str(err.value) and "two.png" in str(err.value)


def test_decode_renders_at_the_sizes_the_generator_can(tiny_pipe):
    w = tiny_pipe.generator.mapping.w_avg.expand(1, tiny_pipe.num_ws, -1)
    assert tiny_pipe.render_sizes() == [16]
    assert tiny_pipe.decode(w, resolution=16)[0].size == (16, 16)
    with pytest.raises(PipelineError, match="renders at 16 px, not 64"):
        tiny_pipe.decode(w, resolution=64)


def test_the_edits_go_back_into_the_photo_in_its_mode(tiny_pipe, photo_file):
    photo = smooth_photo(*SIZE).convert("RGBA")
    out = tiny_pipe.edit(photo, "black hair", align=True, face="all", progress=False)
    renders = render_faces(tiny_pipe, out)
    assert renders.sizes == [16, 16]  # a StyleGAN2 generator renders at its own size only
    (pasted,) = paste_edits(out, renders)
    assert pasted.size == SIZE and pasted.mode == "RGBA"
    d = changed(pasted, photo)
    for x, y in CENTRES:  # both faces repainted, the corners are the photo's own
        assert d[y - 20 : y + 20, x - 20 : x + 20].mean() > 5
    assert d[:15, :15].max() == 0 and d[-15:, -15:].max() == 0

    # a local edit's mask travels with the renders and widens the paste past the ellipse
    full = [Image.new("L", r.size, 255) for r in renders.edited]
    wide = FaceRenders(renders.sizes, renders.edited, renders.reconstructions, full)
    (pasted_wide,) = paste_edits(out, wide)
    assert (changed(pasted_wide, photo) > 0).sum() > (d > 0).sum()
    assert changed(pasted_wide, pasted)[:15, :15].max() == 0  # still nothing past the crops


def test_a_hueless_local_edit_renders_without_hue_at_every_size(tiny_pipe, photo_file):
    photo = smooth_photo(*SIZE)
    out = tiny_pipe.edit(photo, "black hair", align=True, face="all", progress=False)
    out.masks = torch.ones(len(out.images), 1, 16, 16)  # as a gray-hair edit: the whole crop is the region
    out.chroma = 0.0
    for edited in render_faces(tiny_pipe, out).edited:
        a = np.asarray(edited.convert("RGB"), dtype=int)
        assert np.abs(a - a.mean(2, keepdims=True)).max() <= 1  # no hue left
    out.chroma = None
    assert any(
        np.ptp(np.asarray(e.convert("RGB"), dtype=int), axis=2).max() > 1
        for e in render_faces(tiny_pipe, out).edited
    )


# ------------------------------------------------------------------------------------------------ the CLI


def _edit(tiny_model_dir, *argv) -> int:
    return main(["edit", "--text", "black hair", "--model", str(tiny_model_dir), *argv])


def test_edit_pastes_every_face_back_into_a_photo_of_its_size(tiny_model_dir, photo_file, capsys):
    rc = _edit(tiny_model_dir, "--image", "two.png", "--align", "--face", "all", "--json")
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["out"] == ["two_edited.png"] and len(summary["faces"]) == 2
    pasted = Image.open("two_edited.png")
    assert pasted.size == SIZE and pasted.mode == "RGB"
    d = changed(pasted, Image.open(photo_file))
    assert all(d[y - 20 : y + 20, x - 20 : x + 20].mean() > 5 for x, y in CENTRES)
    assert d[:15, :15].max() == 0
    # the largest face only, by default
    assert _edit(tiny_model_dir, "--image", "two.png", "--align", "--out", "one.png") == 0
    d = changed(Image.open("one.png"), Image.open(photo_file))
    x, y = CENTRES[1]
    assert d[y - 20 : y + 20, x - 20 : x + 20].max() == 0


def test_aligned_crops_and_the_four_panel_grid(tiny_model_dir, photo_file, capsys):
    assert _edit(tiny_model_dir, "--image", "two.png", "--align", "--aligned", "--scale", "2") == 0
    assert Image.open("two_edited.png").size == (32, 32)  # the tiny model's 16 px crop, --scale 2
    argv = ["--image", "two.png", "--align", "--face", "all", "--aligned", "--out", "crops.png"]
    assert _edit(tiny_model_dir, *argv) == 0
    assert {p.name for p in Path().glob("crops*")} == {"crops_face0.png", "crops_face1.png"}
    assert _edit(tiny_model_dir, "--image", "two.png", "--align", "--grid", "--out", "g.png") == 0
    grid = Image.open("g_grid.png")
    photo_width = round(SIZE[0] * 256 / SIZE[1])  # aligned | reconstruction | edit | photo, 256 px high
    assert grid.size == (3 * 256 + photo_width + 3 * 2, 256)
    gaps = [x for x in range(grid.width) if (np.asarray(grid)[:, x] == 255).all()]
    assert gaps == [256, 257, 514, 515, 772, 773]


def test_a_photo_without_a_face_writes_nothing(tiny_model_dir, photo_file, monkeypatch, capsys):
    monkeypatch.setattr(align, "detect_faces", no_faces)
    rc = _edit(tiny_model_dir, "--image", "two.png", "--align", "--grid")
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert rc == 2 and len(err) == 1 and "found no face" in err[0] and "--no-align" in err[0]
    assert sorted(p.name for p in Path().iterdir()) == ["two.png"]
    # --face and --aligned need alignment
    assert _edit(tiny_model_dir, "--image", "two.png", "--face", "all") == 2
    assert "--face is for a photo" in capsys.readouterr().err
    assert _edit(tiny_model_dir, "--image", "two.png", "--align", "--face", "left") == 2
    assert "--face must be largest, all or an index" in capsys.readouterr().err


def test_a_batch_finds_every_photos_faces_first(tiny_model_dir, photo_file, monkeypatch, capsys):
    Path("photos").mkdir()
    smooth_photo(*SIZE).save("photos/a.png")
    smooth_photo(*SIZE).convert("L").save("photos/blank.png")
    detect = align.detect_faces

    def grey_has_none(img, min_prob=0.9):
        r, g, _ = img.getpixel((0, 0))
        return no_faces(img) if r == g else detect(img)

    monkeypatch.setattr(align, "detect_faces", grey_has_none)
    argv = ["--image", "photos", "--align", "--out", "edited"]
    assert _edit(tiny_model_dir, *argv) == 2
    assert (
        "1 of 2 image(s) have no face to edit: photos/blank.png (found no face in it)"
        in capsys.readouterr().err
    )
    assert not Path("edited").exists()
    assert _edit(tiny_model_dir, *argv, "--skip-bad") == 2
    assert [p.name for p in Path("edited").iterdir()] == ["a__black_hair.png"]
    assert Image.open("edited/a__black_hair.png").size == SIZE
    assert _edit(tiny_model_dir, *argv, "--aligned", "--face", "all") == 2


def test_the_input_chooses_the_model_without_loading_the_faces_generator(tmp_path, monkeypatch, capsys):
    from tedigan import assets
    from tedigan.commands import build_parser, edit
    from tedigan.pipeline import folder

    def no_generator(*a, **k):
        raise AssertionError("the faces generator was loaded")

    monkeypatch.setattr(folder, "packaged_generator", no_generator)
    assert choose_model([Image.open(AVATAR)])[0] == "avatars"
    name, probs = choose_model([Image.open(OBAMA)])
    assert name == "faces" and probs[0] < 0.1
    # without --model: the faces model for a photo, aligned by default; the avatar model for an avatar
    args = build_parser()[1]["edit"].parse_args(["--text", "x"])
    for image, model, aligned in [(OBAMA, "faces", True), (AVATAR, "avatars64", False)]:
        args.model = args.align = None
        edit._choose_model(args, [Image.open(image).convert("RGB")])
        assert Path(args.model).name == model and edit._resolve_align(args) is aligned

    # a photo when the faces generator is missing: one warning line, the avatar model
    def missing(*a, **k):
        raise assets.MissingWeightsError("random-face is not installed")

    monkeypatch.setattr(assets, "mobilestylegan_ir_dir", missing)
    args.model = None
    edit._choose_model(args, [Image.open(OBAMA).convert("RGB")])
    err = capsys.readouterr().err.strip().splitlines()
    assert Path(args.model).name == "avatars64" and len(err) == 1
    assert err[0].startswith("tedigan edit: warning: this looks like a photo")


@pytest.mark.slow
def test_the_avatar_example_still_goes_to_the_avatar_model(tmp_path, monkeypatch):
    from tedigan.pipeline import folder

    monkeypatch.setattr(folder, "packaged_generator", lambda *a, **k: pytest.fail("faces model loaded"))
    monkeypatch.chdir(tmp_path)
    argv = ["edit", "--image", str(AVATAR), "--text", "give her sunglasses"]
    assert (
        main([*argv, "--out", "auto.png"]) == 0
        and main([*argv, "--model", "avatars", "--out", "asked.png"]) == 0
    )
    assert Image.open("auto.png").size == (256, 256)
    assert np.array_equal(np.asarray(Image.open("auto.png")), np.asarray(Image.open("asked.png")))


# ------------------------------------------------------------------------------------- the real faces model


@pytest.mark.needs_faces
@pytest.mark.slow
def test_a_real_photo_is_edited_and_pasted_back(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = ["edit", "--image", str(OBAMA), "--text", "make him look older", "--fast"]
    assert main([*argv, "--grid", "--json"]) == 0  # no --model: a photo goes to the faces model
    summary = json.loads(capsys.readouterr().out)
    assert Path(summary["model"]).name == "faces" and len(summary["faces"]) == 1
    photo, pasted = Image.open(OBAMA), Image.open("pd_obama_portrait_man_edited.png")
    assert pasted.size == photo.size == (910, 1137) and pasted.mode == "RGB"
    d = changed(pasted, photo)
    assert d[150:350, 400:600].mean() > 10 and d[900:, :].max() <= 2  # the face changed, the suit kept
    grid = Image.open("pd_obama_portrait_man_edited_grid.png")
    assert grid.size == (3 * 1024 + round(910 * 1024 / 1137) + 6, 1024)  # a 425 px face: rendered at 1024
    assert main([*argv, "--aligned", "--out", "crop.png"]) == 0
    assert Image.open("crop.png").size == (1024, 1024)


@pytest.mark.needs_faces
@pytest.mark.slow
def test_every_face_of_a_real_two_face_photo(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    left = Image.open(OBAMA).convert("RGB").resize((455, 568))
    right = Image.open(OBAMA).convert("RGB").transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize((364, 455))
    both = Image.new("RGB", (860, 600), (200, 200, 200))
    both.paste(left, (0, 0))
    both.paste(right, (480, 100))
    both.save("both.png")
    argv = [
        "edit",
        "--image",
        "both.png",
        "--text",
        "make him look older",
        "--fast",
        "--face",
        "all",
        "--json",
    ]
    assert main(argv) == 0
    faces = json.loads(capsys.readouterr().out)["faces"]
    assert len(faces) == 2 and faces[0]["quad"][0][0] < 455 < faces[1]["quad"][0][0]  # largest first
    assert Image.open("both_edited.png").size == (860, 600)
    Image.new("RGB", (300, 200), (90, 140, 200)).save("sky.png")
    assert main(["edit", "--image", "sky.png", "--text", "make him smile", "--model", "faces"]) == 2
    assert "found no face" in capsys.readouterr().err and not Path("sky_edited.png").exists()


@pytest.mark.needs_faces
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::tedigan.pipeline.OutOfDomainWarning")
def test_a_tuned_generator_whose_fine_detail_is_noise_renders_at_the_models_size():
    import copy

    import torch

    from tedigan.pipeline import TediGANPipeline

    faces = TediGANPipeline.from_pretrained("faces")
    photo = smooth_photo(1200, 1000)
    face = Face.from_landmarks(landmarks((600, 500), scale=4.0), photo.size)  # a 640 px face: 1024 px renders
    out = faces.edit(photo, "make him look older", align=True, face=face, progress=False)
    intact, broken = copy.deepcopy(faces.generator), copy.deepcopy(faces.generator)
    with torch.no_grad():  # the 1024 px wavelet bands only: what tuning at 256 px leaves untrained
        broken.synthesis.to_img_weight[3:] += 0.2 * torch.randn_like(broken.synthesis.to_img_weight[3:])
    out.tuned_generators = [intact]
    assert render_faces(faces, out).sizes == [1024]
    out.tuned_generators = [broken]
    from tedigan.pipeline import RenderWarning

    with pytest.warns(RenderWarning, match="detail above 256 px is noise"):  # said, not silent
        renders = render_faces(faces, out)
    assert renders.sizes == [256] and renders.edited[0].size == (256, 256)
