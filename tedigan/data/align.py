"""FFHQ-style face alignment of photos: the crop the face generators were trained on, and its transform.

FFHQ (Karras et al., 2019) crops every face by its eyes and mouth: the crop is a square centred a little below the
eyes (``eye centre + 0.1 × eye-to-mouth``), rotated so the eyes are level, with side ``max(2 × eye distance,
1.8 × eye-to-mouth distance)`` (here ``2 ×`` the half-side vector below). The five landmarks come from
facenet-pytorch's MTCNN (offline weights; :func:`tedigan.assets.mtcnn_weights_dir`): both eyes, the nose and the
mouth corners. Where the crop leaves the photo, the photo is extended by reflection, so no black borders reach
the encoder.

:func:`detect_faces` finds every face (largest first); each :class:`Face` carries a :class:`FaceAlignment`: the
crop's quad in the photo and the photo's size, which crops the face (:meth:`FaceAlignment.crop`) and maps points
between the crop and the photo both ways, so an edited crop can be put back (:func:`tedigan.data.paste.paste_back`).

Coordinates: photo points are in the landmarks' pixel coordinates (pixel ``(i, j)`` centred at ``(i, j)``), and
so are crop points, in pixels of a crop of the given size. A photo's EXIF orientation is applied before
anything is measured (:func:`upright`), so the coordinates refer to the photo as it is shown.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageOps

__all__ = [
    "Face",
    "FaceAlignment",
    "NoFaceFound",
    "align_face",
    "detect_faces",
    "ffhq_quad",
    "select_faces",
    "upright",
]

logger = logging.getLogger(__name__)


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


def upright(img: Image.Image) -> Image.Image:
    """``img`` turned as its EXIF orientation says (a copy; the orientation tag removed). Images from
    :func:`tedigan.data.io.load_image` are upright already, and this leaves them as they are."""
    try:
        return ImageOps.exif_transpose(img)
    except Exception as err:  # a malformed EXIF block should not cost us the photo
        logger.warning("ignoring unreadable EXIF orientation (%s)", err)
        return img


@dataclass(frozen=True, eq=False)
class FaceAlignment:
    """The FFHQ crop of one face in one photo: the crop square's corners ``quad`` ``[4, 2]`` (top-left,
    bottom-left, bottom-right, top-right, photo coordinates) and the (upright) photo's ``(width, height)``.

    The crop is a similarity transform of the photo (rotation, scale, shift): :meth:`to_photo` and
    :meth:`to_crop` map points exactly between a crop of any size and the photo.
    """

    quad: np.ndarray
    photo_size: tuple[int, int]

    def __post_init__(self):
        quad = np.array(self.quad, dtype=np.float64)
        if quad.shape != (4, 2):
            raise ValueError(f"expected a quad of four (x, y) corners, got shape {quad.shape}")
        quad.setflags(write=False)
        object.__setattr__(self, "quad", quad)
        object.__setattr__(self, "photo_size", (int(self.photo_size[0]), int(self.photo_size[1])))

    @classmethod
    def from_landmarks(cls, landmarks: np.ndarray, photo_size: tuple[int, int]) -> FaceAlignment:
        """The alignment of the face with these five landmarks (see :func:`ffhq_quad`)."""
        return cls(ffhq_quad(landmarks), photo_size)

    # ------------------------------------------------------------------------------------- geometry

    @property
    def side(self) -> float:
        """The crop's side in photo pixels: the face's size in the photo."""
        return float(np.hypot(*(self.quad[3] - self.quad[0])))

    @property
    def angle(self) -> float:
        """The face's roll in degrees (the crop's x axis against the photo's, clockwise in image space)."""
        dx, dy = self.quad[3] - self.quad[0]
        return float(np.degrees(np.arctan2(dy, dx)))

    def _axes(self) -> np.ndarray:
        """``[2, 2]``: the columns are the crop's x and y axes in photo pixels (one crop side each)."""
        return np.stack([self.quad[3] - self.quad[0], self.quad[1] - self.quad[0]], axis=1)

    def to_photo(self, points: np.ndarray, crop_size: int) -> np.ndarray:
        """Photo coordinates ``[..., 2]`` of points ``[..., 2]`` of a ``crop_size`` px crop."""
        t = (np.asarray(points, dtype=np.float64) + 0.5) / crop_size  # normalised: the crop is [0, 1]^2
        return self.quad[0] + t @ self._axes().T

    def to_crop(self, points: np.ndarray, crop_size: int) -> np.ndarray:
        """Coordinates in a ``crop_size`` px crop ``[..., 2]`` of photo points ``[..., 2]`` (the inverse of
        :meth:`to_photo`)."""
        t = (np.asarray(points, dtype=np.float64) - self.quad[0]) @ np.linalg.inv(self._axes()).T
        return t * crop_size - 0.5

    def box(self) -> tuple[float, float, float, float]:
        """``(left, top, right, bottom)``: the crop's bounding box in photo coordinates (may leave the photo)."""
        lo, hi = self.quad.min(axis=0), self.quad.max(axis=0)
        return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])

    def crop_size_for(self, sizes: Sequence[int] = (256, 1024)) -> int:
        """The smallest of ``sizes`` at least as large as the face in the photo (else the largest): the crop
        size to edit at so that pasting back never upscales (a 300 px face wants the 1024 px crop)."""
        ordered = sorted(int(s) for s in sizes)
        return next((s for s in ordered if s >= self.side - 0.5), ordered[-1])

    # ------------------------------------------------------------------------------------- cropping

    def crop(self, img: Image.Image, size: int = 512) -> Image.Image:
        """The FFHQ crop of this face from ``img`` (the photo this alignment was measured on) at ``size`` px,
        RGB; where the crop leaves the photo, the photo is extended by reflection."""
        img = upright(img).convert("RGB")
        _check_size(img, self)
        quad = self.quad.copy()
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

    # ---------------------------------------------------------------------------------- persistence

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"quad": [[x, y] × 4], "photo_size": [w, h]}``."""
        return {"quad": self.quad.tolist(), "photo_size": list(self.photo_size)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FaceAlignment:
        return cls(np.asarray(d["quad"]), tuple(d["photo_size"]))


def _check_size(img: Image.Image, alignment: FaceAlignment) -> None:
    if img.size != alignment.photo_size:
        raise ValueError(
            f"this face was found in a {alignment.photo_size[0]}x{alignment.photo_size[1]} photo, "
            f"got a {img.width}x{img.height} one"
        )


@dataclass(frozen=True, eq=False)
class Face:
    """One detected face: its five ``landmarks`` ``[5, 2]`` (eyes, nose, mouth corners), the detector's
    ``box`` ``(left, top, right, bottom)`` and probability ``prob``, and the ``alignment`` they give."""

    landmarks: np.ndarray
    alignment: FaceAlignment
    box: tuple[float, float, float, float] | None = None
    prob: float | None = None

    @classmethod
    def from_landmarks(
        cls, landmarks: np.ndarray, photo_size: tuple[int, int], box=None, prob: float | None = None
    ) -> Face:
        pts = np.asarray(landmarks, dtype=np.float64)
        return cls(pts, FaceAlignment.from_landmarks(pts, photo_size), _box(box), prob)

    def crop(self, img: Image.Image, size: int = 512) -> Image.Image:
        """The FFHQ crop of this face (:meth:`FaceAlignment.crop`)."""
        return self.alignment.crop(img, size)

    @property
    def area(self) -> float:
        """The detector box's area (the crop's, without one)."""
        if self.box is None:
            return self.alignment.side**2
        return max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1])


def _box(box) -> tuple[float, float, float, float] | None:
    return None if box is None else tuple(float(v) for v in box)  # type: ignore[return-value]


@functools.cache
def _mtcnn():
    from tedigan.assets import mtcnn_weights_dir

    try:
        from facenet_pytorch import MTCNN
    except ImportError as err:
        raise ImportError(
            "face alignment needs facenet-pytorch: pip install --no-deps facenet-pytorch==2.6.0"
        ) from err
    mtcnn_weights_dir()  # raises MissingWeightsError naming the install step when absent
    return MTCNN(keep_all=True, device="cpu")


def detect_faces(img: Image.Image, min_prob: float = 0.9) -> list[Face]:
    """Every face MTCNN finds in ``img`` with probability at least ``min_prob``, largest (box area) first.

    ``img`` is turned upright by its EXIF orientation first; the faces' coordinates refer to the upright
    photo. Raises :class:`NoFaceFound` when there is none.
    """
    img = upright(img).convert("RGB")
    boxes, probs, points = _mtcnn().detect(img, landmarks=True)
    faces = []
    if boxes is not None:
        for box, prob, pts in zip(boxes, probs, points):
            if prob is not None and float(prob) >= min_prob:
                faces.append(Face.from_landmarks(pts, img.size, box, float(prob)))
    if not faces:
        raise NoFaceFound("found no face in the image")
    faces.sort(key=lambda f: -f.area)
    return faces


def select_faces(faces: Sequence[Face], which: str | int = 0) -> list[Face]:
    """The faces a ``--face`` option names: ``"all"`` (largest first), ``"largest"``, or an index (0 is the
    largest, as :func:`detect_faces` orders them)."""
    if isinstance(which, str):
        key = which.strip().lower()
        if key == "all":
            return list(faces)
        if key == "largest":
            which = 0
        else:
            try:
                which = int(key)
            except ValueError:
                raise ValueError(f"face must be 'all', 'largest' or an index, got {which!r}") from None
    if not -len(faces) <= which < len(faces):
        raise ValueError(f"face {which} asked for, but the photo has {len(faces)} face(s)")
    return [faces[which]]


def align_face(img: Image.Image, size: int = 512, landmarks: np.ndarray | None = None) -> Image.Image:
    """The FFHQ crop of the largest face in ``img`` at ``size`` px (``landmarks`` skips the detector)."""
    img = upright(img).convert("RGB")
    if landmarks is None:
        face = detect_faces(img, min_prob=0.0)[0]
    else:
        face = Face.from_landmarks(landmarks, img.size)
    return face.crop(img, size)
