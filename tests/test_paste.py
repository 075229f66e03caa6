"""Paste-back of edited FFHQ crops into the photo (tedigan.data.paste): synthetic photos with given landmarks
(no detector), plus one real photo through MTCNN (needs_faces)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps
from test_align import landmarks, sideways_with_exif, smooth_photo

from tedigan.data.align import Face, FaceAlignment, detect_faces
from tedigan.data.paste import crop_mask, face_mask, paste_back, paste_back_all

REAL = "/work/shared/fixtures/real_photos/wmf_katherine_maher_woman.jpg"


def photo_mask(alignment: FaceAlignment, **kw) -> np.ndarray:
    """The paste mask over every photo pixel ``[H, W]``, from the public pieces."""
    w, h = alignment.photo_size
    xs, ys = np.meshgrid(np.arange(w, dtype=float), np.arange(h, dtype=float))
    t = (alignment.to_crop(np.stack([xs, ys], axis=-1), 1000) + 0.5) / 1000
    return face_mask(t, **kw)


def diff(a: Image.Image, b: Image.Image) -> np.ndarray:
    return np.abs(np.asarray(a).astype(int) - np.asarray(b).astype(int))


# ------------------------------------------------------------------------------------------- geometry


# ------------------------------------------------------------------------------------------ round trip


@pytest.mark.parametrize("crop_size", [256, 1024])
def test_pasting_back_the_unedited_crop_restores_the_photo(crop_size):
    photo = smooth_photo()
    al = FaceAlignment.from_landmarks(landmarks((170, 150), degrees=25), photo.size)
    out = paste_back(photo, al, al.crop(photo, crop_size))
    assert out.size == photo.size and out.mode == photo.mode
    m = photo_mask(al)
    d = diff(out, photo)
    assert d[m == 0].max() == 0  # outside the mask: the photo, bit for bit
    assert (d.max(-1) > 0).sum() > 5000  # inside: repainted...
    assert d[m > 0].mean() < 3  # ...and nearly the photo again


def test_a_changed_crop_shows_inside_the_mask_only():
    photo = smooth_photo()
    al = FaceAlignment.from_landmarks(landmarks((170, 150), degrees=-15), photo.size)
    inverted = ImageOps.invert(al.crop(photo, 256))
    out = paste_back(photo, al, inverted, color_match=None)
    m, d = photo_mask(al), diff(out, photo)
    assert d[m == 0].max() == 0
    core = m > 0.999
    assert core.sum() > 10000
    want = 255 - np.asarray(photo).astype(int)
    assert np.abs(np.asarray(out).astype(int) - want)[core].mean() < 4
    # a bigger mask reaches further, still never past the crop (no black from outside it)
    grown = dict(mask_scale=1.3, feather=0.04)
    wider = paste_back(photo, al, inverted, color_match=None, **grown)
    assert (diff(wider, photo).max(-1) > 0).sum() > (d.max(-1) > 0).sum() + 5000
    d = diff(paste_back(photo, al, al.crop(photo, 256), **grown), photo)
    assert d[photo_mask(al, scale=1.3, feather=0.04) > 0].mean() < 3


def test_mask_layout_covers_the_face_and_stays_inside_the_crop():
    mask = np.asarray(crop_mask(200)) / 255.0
    at = lambda x, y: mask[int(y * 200), int(x * 200)]  # noqa: E731
    for x, y in [
        (0.375, 0.47),
        (0.625, 0.47),
        (0.5, 0.75),
        (0.5, 0.85),
        (0.5, 0.2),
    ]:  # eyes, mouth, chin, hair
        assert at(x, y) > 0.98
    assert mask[0].max() == mask[-1].max() == mask[:, 0].max() == mask[:, -1].max() == 0
    grown = np.asarray(crop_mask(200, scale=2.0))  # a mask grown past the crop fades out at its border
    assert grown[100, 100] == 255 and grown[[0, -1]].max() <= 3 and grown[:, [0, -1]].max() <= 3


def test_colour_match_takes_out_a_tone_drift_but_keeps_an_intended_change():
    photo = smooth_photo()
    al = FaceAlignment.from_landmarks(landmarks((170, 150)), photo.size)
    crop = np.asarray(al.crop(photo, 256)).astype(float)
    drifted = np.clip(crop * [1.1, 0.9, 0.95] + [-12, 8, 5], 0, 255).astype(np.uint8)
    m = photo_mask(al) > 0.5
    matched = diff(paste_back(photo, al, drifted), photo)[m].mean()
    unmatched = diff(paste_back(photo, al, drifted, color_match=None), photo)[m].mean()
    assert matched < 1 < 3 < unmatched
    assert diff(paste_back(photo, al, drifted, color_match="mean"), photo)[m].mean() < unmatched
    # an edit that darkens everything: measured on the edit itself it would be matched away; measured on the
    # unedited reconstruction (the same drift) the darkening survives and the drift does not
    edited = np.clip(drifted.astype(int) - 40, 0, 255).astype(np.uint8)
    core = photo_mask(al) > 0.999
    darker = lambda img: (np.asarray(photo).astype(float) - np.asarray(img))[core].mean(0)  # noqa: E731
    assert np.abs(darker(paste_back(photo, al, edited, color_reference=drifted)) - 40).max() < 6
    assert np.abs(darker(paste_back(photo, al, edited))).max() < 3
    with pytest.raises(ValueError, match="color_match"):
        paste_back(photo, al, drifted, color_match="histogram")


def test_a_face_partly_outside_the_photo():
    photo = smooth_photo(200, 180)
    al = FaceAlignment.from_landmarks(landmarks((185, 20), degrees=10), photo.size)  # crop leaves 3 sides
    left, top, right, bottom = al.box()
    assert left > 0 and top < 0 and right > 200 and bottom < 180
    crop = al.crop(photo, 256)  # reflect-padded
    out = paste_back(photo, al, crop)
    assert out.size == photo.size and out.mode == "RGB"
    m, d = photo_mask(al), diff(out, photo)
    assert d[m == 0].max() == 0 and (m > 0).sum() > 3000
    assert d[m > 0].mean() < 3
    # a face wholly outside: nothing to do
    gone = FaceAlignment.from_landmarks(landmarks((900, 900)), photo.size)
    assert diff(paste_back(photo, gone, crop), photo).max() == 0


def test_a_region_mask_carries_the_edit_past_the_ellipse():
    # a hair edit: the region reaches the crop's top corners, far outside the ellipse
    photo = smooth_photo()
    al = FaceAlignment.from_landmarks(landmarks((170, 150), degrees=10), photo.size)
    inverted = ImageOps.invert(al.crop(photo, 256))
    region = np.zeros((256, 256), dtype=np.float32)
    region[10:60, 20:236] = 1.0  # a band across the top of the crop, mostly outside the ellipse
    plain = paste_back(photo, al, inverted, color_match=None)
    out = paste_back(photo, al, inverted, color_match=None, region=region)
    w, h = photo.size
    xs, ys = np.meshgrid(np.arange(w, dtype=float), np.arange(h, dtype=float))
    t = (al.to_crop(np.stack([xs, ys], axis=-1), 1000) + 0.5) / 1000
    m = photo_mask(al)
    band = (t[..., 0] > 0.15) & (t[..., 0] < 0.85) & (t[..., 1] > 0.08) & (t[..., 1] < 0.2) & (m == 0)
    outside = (t < -0.01).any(-1) | (t > 1.01).any(-1)
    assert band.sum() > 150
    assert diff(plain, photo)[band].max() == 0  # the ellipse alone leaves the band as it was
    assert diff(out, photo)[band].mean() > 40  # the region pastes it
    assert diff(out, photo)[outside].max() == 0  # never past the crop
    # the rest of the crop outside both masks is the photo's own
    rest = (m == 0) & ~outside & ((t[..., 1] > 0.3) | (t[..., 0] < 0.03) | (t[..., 0] > 0.97))
    assert diff(out, photo)[rest].max() == 0
    # the same through paste_back_all, as a 4-tuple
    same = paste_back_all(photo, [(al, inverted, None, region)], color_match=None)
    assert np.array_equal(np.asarray(same), np.asarray(out))


def test_two_faces_pasted_independently():
    photo = smooth_photo(420, 220)
    a = Face.from_landmarks(landmarks((110, 110)), photo.size)
    b = Face.from_landmarks(landmarks((320, 115), degrees=-20, scale=0.8), photo.size)
    ma, mb = photo_mask(a.alignment), photo_mask(b.alignment)
    assert not ((ma > 0) & (mb > 0)).any()
    edits = [(a, ImageOps.invert(a.crop(photo, 256))), (b, b.crop(photo, 256))]
    out = paste_back_all(photo, edits, color_match=None)
    assert np.array_equal(np.asarray(out), np.asarray(paste_back_all(photo, edits[::-1], color_match=None)))
    d = diff(out, photo)
    assert d[(ma == 0) & (mb == 0)].max() == 0
    assert d[ma > 0.999].mean() > 40  # face a inverted
    assert d[mb > 0].mean() < 3  # face b pasted back unedited
    same = paste_back(paste_back(photo, a, edits[0][1], color_match=None), b, edits[1][1], color_match=None)
    assert np.array_equal(np.asarray(out), np.asarray(same))


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "P", "CMYK"])
def test_the_result_has_the_photos_size_and_mode(mode):
    photo = smooth_photo(mode=mode)
    if mode in ("RGBA", "LA"):
        photo.putalpha(Image.fromarray(np.tile(np.arange(300, dtype=np.uint8)[:, None] % 200 + 50, (1, 340))))
    photo.info["dpi"] = (300, 300)
    al = FaceAlignment.from_landmarks(landmarks((170, 150)), photo.size)
    edited = ImageOps.invert(al.crop(photo, 256))
    out = paste_back(photo, al, np.asarray(edited).astype(np.float32) / 255.0)  # floats in [0, 1] work too
    assert out.size == photo.size and out.mode == photo.mode and out.info["dpi"] == (300, 300)
    m = photo_mask(al)
    before, after = np.asarray(photo), np.asarray(out)
    assert np.array_equal(before[m == 0], after[m == 0])
    assert not np.array_equal(before[m > 0.999], after[m > 0.999])
    if mode in ("RGBA", "LA"):
        assert np.array_equal(before[..., -1], after[..., -1])  # the alpha is the photo's


def test_the_wrong_photo_or_a_16_bit_one_is_refused():
    photo = smooth_photo()
    al = FaceAlignment.from_landmarks(landmarks((170, 150)), photo.size)
    with pytest.raises(ValueError, match="340x300"):
        paste_back(photo.resize((100, 100)), al, al.crop(photo, 64))
    with pytest.raises(ValueError, match="8-bit"):
        paste_back(photo.convert("I"), al, al.crop(photo, 64))
    with pytest.raises(ValueError, match="square"):
        paste_back(photo, al, Image.new("RGB", (64, 32)))


# ---------------------------------------------------------------------------------------------- EXIF


def test_exif_orientation_is_honoured_and_the_result_is_upright():
    photo = smooth_photo()
    raw = sideways_with_exif(photo)
    assert raw.size == (300, 340)  # stored sideways
    al = FaceAlignment.from_landmarks(landmarks((170, 150), degrees=5), photo.size)
    crop = al.crop(raw, 256)
    out = paste_back(raw, al, crop)
    assert out.size == photo.size  # the result is upright
    assert out.getexif().get(0x0112) in (None, 1)
    assert np.array_equal(np.asarray(out), np.asarray(paste_back(photo, al, crop)))


# ------------------------------------------------------------------------------------ real photo, MTCNN


@pytest.mark.needs_faces
def test_real_photo_detected_aligned_and_pasted_back():
    photo = Image.open(REAL)
    photo = photo.resize((photo.width // 2, photo.height // 2), Image.Resampling.LANCZOS)  # light on the CPU
    faces = detect_faces(photo)
    assert len(faces) == 1 and faces[0].prob > 0.99
    al = faces[0].alignment
    assert 150 < al.side < 210 and abs(al.angle) < 10
    crop = al.crop(photo, al.crop_size_for())
    out = paste_back(photo, faces[0], crop)
    m, d = photo_mask(al), diff(out, photo)
    assert out.size == photo.size and out.mode == photo.mode
    assert d[m == 0].max() == 0 and d[m > 0].mean() < 3
    # the same photo stored sideways with an EXIF orientation: the same face, in upright coordinates
    turned = detect_faces(sideways_with_exif(photo))
    assert len(turned) == 1 and np.abs(turned[0].landmarks - faces[0].landmarks).max() < 3
