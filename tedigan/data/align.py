"""FFHQ-style face alignment of photos: the crop the face generators were trained on.

FFHQ (Karras et al., 2019) crops every face by its eyes and mouth: the crop is a square centred a little below the
eyes (``eye centre + 0.1 × eye-to-mouth``), rotated so the eyes are level, with side ``max(2 × eye distance,
1.8 × eye-to-mouth distance)`` (here ``2 ×`` the half-side vector below). The five landmarks come from
facenet-pytorch's MTCNN (offline weights; :func:`tedigan.assets.mtcnn_weights_dir`): both eyes, the nose and the
mouth corners. Where the crop leaves the photo, the photo is extended by reflection, so no black borders reach
the encoder.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

__all__ = ["NoFaceFound", "align_face", "ffhq_quad"]


class NoFaceFound(ValueError):
    """The detector found no face in the photo."""


def ffhq_quad(landmarks: np.ndarray) -> np.ndarray:
    """The FFHQ crop ``[4, 2]`` (top-left, bottom-left, bottom-right, top-right corners in image coordinates)
    from five landmarks ``[5, 2]``: left eye, right eye, nose, left and right mouth corner."""
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.shape != (5, 2):
        raise ValueError(f"expected five (x, y) landmarks, got shape {pts.shape}")
    eye_left, eye_right, mouth = pts[0], pts[1], (pts[3] + pts[4]) / 2
    eye_avg = (eye_left + eye_right) / 2
    eye_to_eye, eye_to_mouth = eye_right - eye_left, mouth - eye_avg
    # the crop's x axis: the eye line, tilted by the face's vertical (eye-to-mouth) axis turned 90 degrees
    x = eye_to_eye - np.array([-eye_to_mouth[1], eye_to_mouth[0]])
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.array([-x[1], x[0]])
    c = eye_avg + eye_to_mouth * 0.1
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def _detect(img: Image.Image) -> np.ndarray:
    from tedigan.assets import mtcnn_weights_dir

    try:
        from facenet_pytorch import MTCNN
    except ImportError as err:
        raise ImportError(
            "face alignment needs facenet-pytorch: pip install --no-deps facenet-pytorch==2.6.0"
        ) from err
    mtcnn_weights_dir()  # raises MissingWeightsError naming the install step when absent
    boxes, probs, points = MTCNN(keep_all=True, device="cpu").detect(img, landmarks=True)
    if boxes is None or len(boxes) == 0:
        raise NoFaceFound("found no face in the image")
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return points[int(np.argmax(areas))]  # the largest face


def align_face(img: Image.Image, size: int = 512, landmarks: np.ndarray | None = None) -> Image.Image:
    """The FFHQ crop of the largest face in ``img`` at ``size`` px (``landmarks`` skips the detector)."""
    img = img.convert("RGB")
    quad = ffhq_quad(_detect(img) if landmarks is None else landmarks)
    # reflect-pad the photo so the crop never samples outside it
    lo = np.floor(quad.min(axis=0)).astype(int)
    hi = np.ceil(quad.max(axis=0)).astype(int)
    pad_l, pad_t = max(0, -lo[0]), max(0, -lo[1])
    pad_r, pad_b = max(0, hi[0] - img.width), max(0, hi[1] - img.height)
    if pad_l or pad_t or pad_r or pad_b:
        arr = np.asarray(img)
        limit = max(arr.shape[:2]) - 1  # numpy reflects at most once per call: pad in steps
        while pad_l or pad_t or pad_r or pad_b:
            step = [min(p, limit) for p in (pad_t, pad_b, pad_l, pad_r)]
            arr = np.pad(arr, ((step[0], step[1]), (step[2], step[3]), (0, 0)), mode="reflect")
            quad = quad + np.array([step[2], step[0]])
            pad_t, pad_b, pad_l, pad_r = (p - s for p, s in zip((pad_t, pad_b, pad_l, pad_r), step))
            limit = max(arr.shape[:2]) - 1
        img = Image.fromarray(arr)
    side = int(np.hypot(*(quad[3] - quad[0])))
    # render large, then shrink with a good filter (QUAD sampling is bilinear, no anti-aliasing)
    big = max(size, min(side, 4 * size))
    out = img.transform(
        (big, big), Image.Transform.QUAD, (quad + 0.5).flatten().tolist(), Image.Resampling.BILINEAR
    )
    return out.resize((size, size), Image.Resampling.LANCZOS) if big != size else out
