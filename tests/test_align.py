"""FFHQ-style alignment: the crop geometry from five landmarks, and the crop itself (no detector needed)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tedigan.data.align import align_face, ffhq_quad

# eyes level at y = 100, 40 px apart; mouth 50 px below their centre
LEVEL = np.array([[80.0, 100], [120, 100], [100, 125], [85, 150], [115, 150]])


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
