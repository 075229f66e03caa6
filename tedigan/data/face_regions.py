"""Colour and texture statistics of landmark regions of an FFHQ-aligned face, the inputs of the region
labellers (:mod:`tedigan.data.face_attributes`).

Regions are boxes placed from face-api's 68 landmarks (relative coordinates, as
:meth:`~tedigan.models.ports.faceapi.FaceApiJudge.landmarks` returns them), in units of the face's own size:
``h`` is the height from the brows to the chin and ``w`` the width of the jaw line, so the boxes follow the
face. Colours are CIELAB (L* 0..100; a*, b* about −100..100), where a distance of ~2.3 is a just-noticeable
difference.

==============  =====================================================================================
region          where
==============  =====================================================================================
``cheeks``      both cheeks between the nose and the jaw, nose-bridge to nose-tip height: the skin reference
``hair``        the person matte outside the face oval, above the mouth (:func:`hair_mask`): hair colour
``crown``       the top of the head, 0.42–0.70 h above the brows: hair, or skin on a bald head
``forehead``    0.10–0.30 h above the brows: skin, or hair under bangs (or a hat)
``corners``     the image's two top corners: the background colour
``eyes``        each eye's landmark box, widened: dark under sunglasses
``bridge``      the nose bridge between the inner eye corners: crossed by a glasses frame
``under_eyes``  a band under each eye: crossed by the lower rim of a frame
``chin``        below the lower lip down to the chin: skin, or beard
``jaw``         along the jaw line below the mouth corners: skin, or beard
``moustache``   between the nose and the upper lip
``lips``        inside the outer lip contour, outside the inner one
==============  =====================================================================================

:func:`region_features` returns one flat dict of numbers per face (medians, spreads, shares of pixels like
the skin or the background, edge strengths); nothing here decides an attribute.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

__all__ = [
    "FEATURES",
    "face_oval",
    "hair_mask",
    "lab_image",
    "region_boxes",
    "region_features",
    "region_pixels",
]

Box = tuple[float, float, float, float]

#: ΔE (CIE76) below which a pixel counts as like the skin reference
SKIN_DELTA = 14.0


def lab_image(image: Image.Image | np.ndarray) -> np.ndarray:
    """``[H, W, 3]`` CIELAB of an RGB image (PIL, or uint8 / float 0..1 array)."""
    from skimage.color import rgb2lab

    arr = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255.0
    return rgb2lab(np.clip(arr, 0.0, 1.0)).astype(np.float32)


def region_boxes(landmarks: np.ndarray, size: int) -> dict[str, list[Box]]:
    """The labelled regions as pixel boxes ``(x0, y0, x1, y1)`` on a ``size``² image, from ``[68, 2]`` relative
    landmarks; each region is a list of one or two boxes."""
    p = np.asarray(landmarks, dtype=np.float64) * size
    yb = p[17:27, 1].mean()  # the brows
    h = max(p[8, 1] - yb, 1.0)  # brows to chin
    xl, xr = p[0:17, 0].min(), p[0:17, 0].max()
    w = max(xr - xl, 1.0)
    cx = (xl + xr) / 2
    c = size * 0.09

    def eye(pts: np.ndarray) -> Box:
        x0, y0 = pts.min(0)
        x1, y1 = pts.max(0)
        mx, my = 0.25 * (x1 - x0), 0.8 * (y1 - y0)
        return (x0 - mx, y0 - my, x1 + mx, y1 + my)

    left_eye, right_eye = p[36:42], p[42:48]
    return {
        "cheeks": [
            (p[1, 0] + 0.06 * w, p[29, 1], p[31, 0] - 0.04 * w, p[33, 1]),
            (p[35, 0] + 0.04 * w, p[29, 1], p[15, 0] - 0.06 * w, p[33, 1]),
        ],
        "crown": [(cx - 0.25 * w, yb - 0.70 * h, cx + 0.25 * w, yb - 0.42 * h)],
        "forehead": [(cx - 0.22 * w, yb - 0.30 * h, cx + 0.22 * w, yb - 0.10 * h)],
        "corners": [(0, 0, c, c), (size - c, 0, size, c)],
        "eyes": [eye(left_eye), eye(right_eye)],
        "bridge": [(p[39, 0] + 0.01 * w, p[27, 1] - 0.06 * h, p[42, 0] - 0.01 * w, p[28, 1] + 0.02 * h)],
        "under_eyes": [
            (p[36, 0], left_eye[:, 1].max() + 0.03 * h, p[39, 0], left_eye[:, 1].max() + 0.12 * h),
            (p[42, 0], right_eye[:, 1].max() + 0.03 * h, p[45, 0], right_eye[:, 1].max() + 0.12 * h),
        ],
        "chin": [(p[6, 0], p[57, 1] + 0.04 * h, p[10, 0], p[8, 1] - 0.03 * h)],
        "jaw": [
            (p[4, 0] + 0.04 * w, p[48, 1], p[48, 0] - 0.02 * w, p[5, 1]),
            (p[54, 0] + 0.02 * w, p[54, 1], p[12, 0] - 0.04 * w, p[11, 1]),
        ],
        "moustache": [(p[48, 0] + 0.02 * w, p[33, 1] + 0.03 * h, p[54, 0] - 0.02 * w, p[51, 1] - 0.01 * h)],
    }


def region_pixels(lab: np.ndarray, boxes: list[Box]) -> np.ndarray:
    """The ``[N, 3]`` Lab pixels inside ``boxes`` (clipped to the image; an empty box gives no pixels)."""
    H, W = lab.shape[:2]
    out = []
    for x0, y0, x1, y1 in boxes:
        xa, xb = int(np.clip(round(x0), 0, W)), int(np.clip(round(x1), 0, W))
        ya, yb = int(np.clip(round(y0), 0, H)), int(np.clip(round(y1), 0, H))
        if xb > xa and yb > ya:
            out.append(lab[ya:yb, xa:xb].reshape(-1, 3))
    return np.concatenate(out) if out else np.zeros((0, 3), np.float32)


def _lip_pixels(lab: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Lab pixels inside the outer lip contour (points 48–59) and outside the inner one (60–67)."""
    H, W = lab.shape[:2]
    p = np.asarray(landmarks, dtype=np.float64) * np.array([W, H])
    mask = Image.new("L", (W, H), 0)
    draw = ImageDraw.Draw(mask)
    draw.polygon([tuple(q) for q in p[48:60]], fill=255)
    draw.polygon([tuple(q) for q in p[60:68]], fill=0)
    return lab[np.asarray(mask) > 0]


def _edge(lab: np.ndarray, boxes: list[Box], axis: int) -> float:
    """Mean absolute L* gradient along ``axis`` (0: vertical, across horizontal lines) inside ``boxes``."""
    grad = np.abs(np.diff(lab[..., 0], axis=axis))
    grad = np.pad(grad, ((0, 1), (0, 0)) if axis == 0 else ((0, 0), (0, 1)))
    vals = region_pixels(np.repeat(grad[..., None], 3, axis=2), boxes)[:, 0]
    return float(vals.mean()) if len(vals) else 0.0


#: the names :func:`region_features` returns, in order
FEATURES = (
    "skin_L", "skin_a", "skin_b",
    "bg_L", "bg_a", "bg_b",
    "hair_L", "hair_a", "hair_b", "hair_C", "hair_L85", "hair_share",
    "crown_person_share", "crown_skin_share", "crown_std",
    "forehead_skin_share", "forehead_dL",
    "eyes_dL", "bridge_edge", "under_eyes_edge",
    "chin_dL", "chin_std", "jaw_dL", "jaw_std", "moustache_dL",
    "lips_da", "lips_C", "lips_dL",
)  # fmt: skip


def face_oval(landmarks: np.ndarray, size: int, top: float = 0.40) -> np.ndarray:
    """``[size, size]`` bool mask of the face: the jaw line (points 0–16) closed over the top by a half
    ellipse reaching ``top`` · h above the brows (about the hairline of a full head of hair)."""
    p = np.asarray(landmarks, dtype=np.float64) * size
    yb = p[17:27, 1].mean()
    h = max(p[8, 1] - yb, 1.0)
    (x0, y0), (x1, y1) = p[0], p[16]
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    rx, ry = (x1 - x0) / 2, max(cy - (yb - top * h), 1.0)
    arc = [(cx + rx * np.cos(t), cy - ry * np.sin(t)) for t in np.linspace(0.0, np.pi, 24)]
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).polygon([tuple(q) for q in p[0:17]] + arc[1:-1], fill=255)
    return np.asarray(mask) > 0


def hair_mask(matte: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """``[S, S]`` bool: the person (``matte`` > 0.5) outside the face oval, above the mouth corners."""
    size = matte.shape[0]
    p = np.asarray(landmarks, dtype=np.float64) * size
    rows = np.arange(size)[:, None] < min(p[48, 1], p[54, 1])
    return (matte > 0.5) & ~face_oval(landmarks, size) & rows


def region_features(
    image: Image.Image | np.ndarray, landmarks: np.ndarray, matte: np.ndarray
) -> dict[str, float]:
    """The region statistics of one aligned face (see the module docs), keyed by :data:`FEATURES`.
    ``matte`` is the person matte ``[S, S]`` in [0, 1] at the image's size
    (:class:`~tedigan.models.ports.graph.SelfieSegmentation`)."""
    lab = lab_image(image)
    size = lab.shape[0]
    boxes = region_boxes(landmarks, size)
    px = {name: region_pixels(lab, b) for name, b in boxes.items()}
    skin = np.median(px["cheeks"], axis=0) if len(px["cheeks"]) else np.array([60.0, 15.0, 15.0])
    bg = np.median(px["corners"], axis=0)

    def near(pixels: np.ndarray, ref: np.ndarray, delta: float) -> np.ndarray:
        return np.linalg.norm(pixels - ref, axis=1) < delta

    hair = lab[hair_mask(np.asarray(matte, dtype=np.float32), landmarks)]
    hair_lab = np.median(hair, axis=0) if len(hair) >= 20 else np.median(px["crown"], axis=0)
    hair_hi = float(np.percentile(hair[:, 0], 85)) if len(hair) >= 20 else float(hair_lab[0])
    crown = px["crown"]
    person = (
        region_pixels(np.repeat(np.asarray(matte, np.float32)[..., None], 3, axis=2), boxes["crown"])[:, 0]
        > 0.5
    )
    is_skin = near(crown, skin, SKIN_DELTA)
    forehead = px["forehead"]
    lips = _lip_pixels(lab, landmarks)
    lips_med = np.median(lips, axis=0) if len(lips) else skin

    def d_l(region: str) -> float:
        return float(skin[0] - np.median(px[region][:, 0])) if len(px[region]) else 0.0

    def std_l(region: str) -> float:
        return float(px[region][:, 0].std()) if len(px[region]) else 0.0

    out = {
        "skin_L": skin[0], "skin_a": skin[1], "skin_b": skin[2],
        "bg_L": bg[0], "bg_a": bg[1], "bg_b": bg[2],
        "hair_L": hair_lab[0], "hair_a": hair_lab[1], "hair_b": hair_lab[2],
        "hair_C": float(np.hypot(hair_lab[1], hair_lab[2])), "hair_L85": hair_hi,
        "hair_share": len(hair) / float(size * size),
        "crown_person_share": float(person.mean()) if len(crown) else 0.0,
        "crown_skin_share": float((is_skin & person).mean()) if len(crown) else 0.0,
        "crown_std": float(crown[person, 0].std()) if person.sum() > 1 else 0.0,
        "forehead_skin_share": float(near(forehead, skin, SKIN_DELTA).mean()) if len(forehead) else 0.0,
        "forehead_dL": d_l("forehead"),
        "eyes_dL": d_l("eyes"),
        "bridge_edge": _edge(lab, boxes["bridge"], axis=0),
        "under_eyes_edge": _edge(lab, boxes["under_eyes"], axis=0),
        "chin_dL": d_l("chin"), "chin_std": std_l("chin"),
        "jaw_dL": d_l("jaw"), "jaw_std": std_l("jaw"),
        "moustache_dL": d_l("moustache"),
        "lips_da": float(lips_med[1] - skin[1]),
        "lips_C": float(np.hypot(lips_med[1], lips_med[2])),
        "lips_dL": float(skin[0] - lips_med[0]),
    }  # fmt: skip
    return {k: float(out[k]) for k in FEATURES}
