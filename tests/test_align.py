"""FFHQ-style alignment: the crop geometry from five landmarks, the crop itself and its transform (no detector
needed), EXIF orientation."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tedigan.data.align import Face, FaceAlignment, align_face, ffhq_quad, select_faces

# eyes level at y = 100, 40 px apart; mouth 50 px below their centre
LEVEL = np.array([[80.0, 100], [120, 100], [100, 125], [85, 150], [115, 150]])


def landmarks(center, degrees=0.0, scale=1.0):
    """``LEVEL`` turned by ``degrees`` and scaled about its eye-mouth centre, moved to ``center``."""
    th = np.deg2rad(degrees)
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]]) * scale
    return (LEVEL - [100, 125]) @ rot.T + center


def smooth_photo(w=340, h=300, mode="RGB"):
    """A smooth, textured synthetic photo (resampling twice must not lose much of it)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    arr = np.stack(
        [
            128 + 60 * np.sin(xx / 13.0) * np.cos(yy / 17.0),
            128 + 50 * np.cos((xx + yy) / 11.0),
            100 + 40 * np.sin(yy / 9.0) + 0.2 * xx,
        ],
        axis=-1,
    )
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    return img if mode == "RGB" else img.convert(mode)


def sideways_with_exif(img: Image.Image, orientation: int = 6) -> Image.Image:
    """``img`` stored the way a phone stores a photo taken turned: the pixels turned, the EXIF tag saying how
    to turn them back (6: turn 90 degrees clockwise to view)."""
    stored = img.transpose(Image.Transpose.ROTATE_90)  # counter-clockwise; orientation 6 undoes it
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    stored.save(buf, "PNG", exif=exif.tobytes())
    return Image.open(io.BytesIO(buf.getvalue()))


def test_level_face_gives_an_upright_square_below_the_eyes():
    q = ffhq_quad(LEVEL)
    # half side max(2 * 40, 1.8 * 50) = 90; centre (100, 100 + 0.1 * 50)
    assert np.allclose(q, [[10, 15], [10, 195], [190, 195], [190, 15]])


def test_the_crop_turns_with_the_face():
    theta = np.deg2rad(30)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    q = ffhq_quad(LEVEL @ rot.T)
    assert np.allclose(q, ffhq_quad(LEVEL) @ rot.T)
    with pytest.raises(ValueError, match="five"):
        ffhq_quad(np.zeros((4, 2)))


def test_align_face_crops_and_pads_by_reflection():
    img = Image.new("RGB", (200, 200), (200, 30, 30))
    out = align_face(img, size=64, landmarks=LEVEL)  # the crop runs 5 px past the bottom edge
    assert out.size == (64, 64)
    arr = np.asarray(out).astype(int)
    assert (np.abs(arr - [200, 30, 30]).max()) <= 2  # reflected photo, not black borders


def test_to_crop_inverts_to_photo_and_puts_the_eyes_where_ffhq_does():
    lm = landmarks((170, 150), degrees=25)
    al = FaceAlignment.from_landmarks(lm, (340, 300))
    assert al.side == pytest.approx(180) and al.angle == pytest.approx(25)
    in_crop = al.to_crop(lm, 1024)
    assert np.allclose(al.to_photo(in_crop, 1024), lm)
    # FFHQ layout: eyes level at y ~ 0.47, a quarter of the crop apart; the mouth at y ~ 0.75
    assert np.allclose(in_crop[:2, 1], in_crop[0, 1]) and in_crop[0, 1] / 1024 == pytest.approx(
        0.47, abs=0.01
    )
    assert (in_crop[1, 0] - in_crop[0, 0]) / 1024 == pytest.approx(40 / 180)
    assert in_crop[3, 1] / 1024 == pytest.approx(0.75, abs=0.01)
    # the crop shows the photo's pixel at to_photo of each crop pixel
    photo = smooth_photo()
    crop = np.asarray(al.crop(photo, 180)).astype(int)
    pts = np.array([[40, 60], [90, 90], [150, 120]])
    at = np.rint(al.to_photo(pts, 180)).astype(int)
    assert np.abs(crop[pts[:, 1], pts[:, 0]] - np.asarray(photo).astype(int)[at[:, 1], at[:, 0]]).max() <= 12


def test_alignment_round_trips_through_a_dict_and_picks_a_crop_size():
    al = FaceAlignment.from_landmarks(landmarks((170, 150)), (340, 300))
    again = FaceAlignment.from_dict(al.to_dict())
    assert np.array_equal(again.quad, al.quad) and again.photo_size == (340, 300)
    assert al.crop_size_for() == 256  # a 180 px face
    assert FaceAlignment.from_landmarks(landmarks((0, 0), scale=1.7), (9, 9)).crop_size_for() == 1024
    assert FaceAlignment.from_landmarks(landmarks((0, 0), scale=20), (9, 9)).crop_size_for() == 1024
    with pytest.raises(ValueError, match="four"):
        FaceAlignment(np.zeros((3, 2)), (9, 9))


def test_select_faces():
    faces = [Face.from_landmarks(landmarks((100, 100), scale=s), (300, 300)) for s in (1.0, 0.5)]
    assert select_faces(faces, "all") == faces
    assert select_faces(faces, "largest") == faces[:1] and select_faces(faces, "1") == faces[1:]
    with pytest.raises(ValueError, match="2 face"):
        select_faces(faces, 2)
    with pytest.raises(ValueError, match="'all'"):
        select_faces(faces, "biggest")


def test_exif_orientation_is_honoured():
    photo = smooth_photo()
    raw = sideways_with_exif(photo)
    assert raw.size == (300, 340)  # stored sideways
    lm = landmarks((170, 150), degrees=5)
    want = np.asarray(align_face(photo, 128, landmarks=lm))
    assert np.array_equal(np.asarray(align_face(raw, 128, landmarks=lm)), want)
    al = FaceAlignment.from_landmarks(lm, photo.size)
    assert np.array_equal(np.asarray(al.crop(raw, 128)), want)
    with pytest.raises(ValueError, match="340x300"):  # the stored, sideways pixels are not this photo
        al.crop(raw.transpose(Image.Transpose.ROTATE_90), 128)
