"""The independent judge's same-person threshold, calibrated on real photos.

human's faceres descriptor is the benchmark's identity judge (:class:`tedigan.models.ports.human.HumanJudge`;
never a loss). human's own cut-off, Euclidean distance 10 (similarity 0.5 in its faceid demo), accepts other
people on real photos: a reconstruction of Obama as another man reads 9.79. The issue's standard: *two photos of
one person* — a reconstruction must be closer to its photo than that. This module measures the three kinds of
distance that can be had offline and picks a threshold between them:

* **different people** (``"different"``): every pair of the benchmark's photos (one person each), and every
  pair of faces *within* one group photo (two faces of one photo are two people). The smallest of these is an
  upper bound for any threshold that must not accept another person.
* **second views** (``"views"``): one photo against a view of itself made honestly (:func:`second_views`):
  jittered landmarks (another alignment), a horizontal flip, JPEG re-encoding, colour jitter, greyscale and a
  low-resolution copy. These *underestimate* real same-person variation (same pose, light, expression, age,
  camera), so their largest distance is a lower bound for a usable threshold.
* **one person, other photos** (``"one_person"``): photos said to show one person, compared pairwise. Reported,
  not used for the choice, unless their identity is known (:func:`choose_threshold` takes what it is given).

:func:`choose_threshold` takes the midpoint between the largest same-person distance and the smallest
different-people distance, and refuses when they overlap. The chosen value and its evidence live in
``faceres_threshold.json`` beside this module (:func:`load_faceres_threshold`); ``benchmarks/calibrate_faceres.py``
writes it.
"""

from __future__ import annotations

import io
import itertools
import json
import statistics
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps

__all__ = [
    "THRESHOLD_FILE",
    "VIEWS",
    "calibrate",
    "choose_threshold",
    "distance_summary",
    "load_faceres_threshold",
    "pairwise",
    "second_views",
]

#: where the calibrated threshold and its evidence are stored
THRESHOLD_FILE = Path(__file__).with_name("faceres_threshold.json")
#: the second views :func:`second_views` makes, in order
VIEWS = ("landmarks_a", "landmarks_b", "flip", "jpeg30", "jpeg10", "colour", "grey", "lowres64")
#: landmark jitter: Gaussian noise of this fraction of the eye distance on each of the five landmarks
LANDMARK_JITTER = 0.03
#: the low-resolution view: the photo shrunk so that the face's crop is this many pixels across
LOWRES_SIDE = 64


def _jpeg(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def _tensor(img: Image.Image, size: int) -> torch.Tensor:
    from tedigan.data.io import to_tensor

    return to_tensor(img, size)


def second_views(img: Image.Image, face: Any, size: int = 256, seed: int = 0) -> dict[str, torch.Tensor]:
    """The aligned crop (``"photo"``) of ``face`` (a :class:`tedigan.data.align.Face` found in ``img``) and
    second views of it (:data:`VIEWS`), each ``[3, size, size]`` in [-1, 1]. No detector runs: the views reuse
    the face's landmarks (jittered for ``landmarks_*``, scaled for ``lowres64``)."""
    from tedigan.data.align import Face

    img = img.convert("RGB")
    crop = face.alignment.crop(img, 512)
    out = {"photo": _tensor(crop, size)}
    rng = np.random.default_rng(seed)
    eye = float(np.linalg.norm(face.landmarks[0] - face.landmarks[1]))
    for name in ("landmarks_a", "landmarks_b"):
        lm = face.landmarks + rng.normal(0.0, LANDMARK_JITTER * eye, face.landmarks.shape)
        out[name] = _tensor(Face.from_landmarks(lm, img.size).crop(img, 512), size)
    out["flip"] = out["photo"].flip(-1)
    out["jpeg30"] = _tensor(face.alignment.crop(_jpeg(img, 30), 512), size)
    out["jpeg10"] = _tensor(face.alignment.crop(_jpeg(img, 10), 512), size)
    jittered = ImageEnhance.Brightness(img).enhance(1.15)
    jittered = ImageEnhance.Color(ImageEnhance.Contrast(jittered).enhance(0.8)).enhance(0.6)
    out["colour"] = _tensor(face.alignment.crop(jittered, 512), size)
    out["grey"] = _tensor(face.alignment.crop(ImageOps.grayscale(img).convert("RGB"), 512), size)
    k = min(1.0, LOWRES_SIDE / face.alignment.side)
    small = img.resize(
        (max(1, round(img.width * k)), max(1, round(img.height * k))), Image.Resampling.BICUBIC
    )
    scale = np.array([small.width / img.width, small.height / img.height])
    out["lowres64"] = _tensor(Face.from_landmarks(face.landmarks * scale, small.size).crop(small, 512), size)
    return out


def pairwise(embeddings: Mapping[str, torch.Tensor], distance: Callable | None = None) -> dict[str, float]:
    """``{"a|b": distance}`` for every pair of named embeddings ``[D]`` (Euclidean unless ``distance``)."""
    dist = distance or (lambda a, b: (a - b).norm(dim=-1))
    names = list(embeddings)
    return {
        f"{a}|{b}": float(dist(embeddings[a][None], embeddings[b][None])[0])
        for a, b in itertools.combinations(names, 2)
    }


def distance_summary(values: Sequence[float], decimals: int = 2) -> dict[str, float]:
    """n, min, 10th percentile, median, 90th percentile and max of ``values`` (rounded to ``decimals``)."""
    v = sorted(float(x) for x in values)
    if not v:
        return {"n": 0}
    q = np.percentile(v, [10, 90])
    return {
        "n": len(v),
        "min": round(v[0], decimals),
        "p10": round(float(q[0]), decimals),
        "median": round(statistics.median(v), decimals),
        "p90": round(float(q[1]), decimals),
        "max": round(v[-1], decimals),
    }


def choose_threshold(same: Sequence[float], different: Sequence[float], decimals: int = 1) -> float:
    """The midpoint between the largest same-person distance and the smallest different-people distance,
    rounded to ``decimals``. Raises ``ValueError`` when either is empty or they overlap (no threshold
    separates them)."""
    if not same or not different:
        raise ValueError("a threshold needs same-person and different-people distances")
    hi, lo = max(same), min(different)
    if hi >= lo:
        raise ValueError(
            f"the distances overlap: same person up to {hi:.2f}, different people from {lo:.2f}; no threshold "
            "separates them"
        )
    return round((hi + lo) / 2, decimals)


def load_faceres_threshold(path: str | Path = THRESHOLD_FILE) -> float:
    """The calibrated faceres same-person threshold (``faceres_threshold.json``'s ``threshold``)."""
    return float(json.loads(Path(path).read_text())["threshold"])


def _pad_up(img: Image.Image, factor: int = 4) -> Image.Image:
    """A tight face crop made detectable: edge-padded by its own size on every side, then upscaled."""
    arr = np.asarray(img.convert("RGB"))
    h, w = arr.shape[:2]
    arr = np.pad(arr, ((h, h), (w, w), (0, 0)), mode="edge")
    big = Image.fromarray(arr)
    return big.resize((big.width * factor, big.height * factor), Image.Resampling.BICUBIC)


def calibrate(
    judge: Any,
    photos: Mapping[str, Image.Image],
    group_photos: Mapping[str, Image.Image] | None = None,
    one_person: Mapping[str, Image.Image] | None = None,
    *,
    identity: Any = None,
    detect: Callable | None = None,
    size: int = 256,
    use_one_person: bool = False,
    group_min_prob: float = 0.99,
) -> dict[str, Any]:
    """Measure the three kinds of distance (see the module docs) with ``judge`` (a
    :class:`tedigan.models.judge.Judge` giving embeddings: faceres) and choose a threshold.

    ``photos``: one person each (the benchmark's photos): their pairs are different people, and each gives
    second views. ``group_photos``: every pair of faces found in one photo is two people. ``one_person``:
    photos or tight face crops (padded before detection) said to show one person; their pairs go into the
    choice only with ``use_one_person``. ``identity``: optionally a :class:`tedigan.losses.identity.FaceIdentity`
    (dlib) whose distances are reported beside faceres's. ``detect``: ``img -> [Face, ...]`` largest first
    (default :func:`tedigan.data.align.detect_faces`); in group photos only faces the detector gives at least
    ``group_min_prob`` count (at its default 0.9 MTCNN takes a dress pattern in one demo photo for a face).

    Returns ``{"threshold", "rule", "faceres": {kind: {"summary", "distances"}}, "dlib": ...}``."""
    if detect is None:
        from tedigan.data.align import detect_faces as detect

    def embed(crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        with torch.no_grad():
            e = judge.judge(crops).embedding
            d = identity.embed(crops) if identity is not None else None
        return e, d

    def dist(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a - b).norm())

    groups: dict[str, dict[str, float]] = {"different": {}, "views": {}, "one_person": {}}
    dlib: dict[str, dict[str, float]] = {k: {} for k in groups}
    base: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}
    for name, img in photos.items():
        face = detect(img)[0]
        views = second_views(img, face, size)
        e, d = embed(torch.stack(list(views.values())))
        base[name] = (e[0], None if d is None else d[0])
        for k, view in enumerate(list(views)[1:], start=1):
            groups["views"][f"{name}|{view}"] = dist(e[0], e[k])
            if d is not None:
                dlib["views"][f"{name}|{view}"] = dist(d[0], d[k])
    for a, b in itertools.combinations(base, 2):
        groups["different"][f"{a}|{b}"] = dist(base[a][0], base[b][0])
        if identity is not None:
            dlib["different"][f"{a}|{b}"] = dist(base[a][1], base[b][1])
    for name, img in (group_photos or {}).items():
        faces = [f for f in detect(img) if f.prob is None or f.prob >= group_min_prob]
        if len(faces) < 2:
            continue
        crops = torch.stack([_tensor(f.alignment.crop(img, 512), size) for f in faces])
        e, d = embed(crops)
        for i, j in itertools.combinations(range(len(faces)), 2):
            key = f"{name}#{i}|{name}#{j}"
            groups["different"][key] = dist(e[i], e[j])
            if d is not None:
                dlib["different"][key] = dist(d[i], d[j])
    if one_person:
        crops, names = [], []
        for name, img in one_person.items():
            padded = _pad_up(img)
            faces = detect(padded)
            if faces:
                crops.append(_tensor(faces[0].alignment.crop(padded, 512), size))
                names.append(name)
        if len(crops) > 1:
            e, d = embed(torch.stack(crops))
            for i, j in itertools.combinations(range(len(names)), 2):
                key = f"{names[i]}|{names[j]}"
                groups["one_person"][key] = dist(e[i], e[j])
                if d is not None:
                    dlib["one_person"][key] = dist(d[i], d[j])
    same = list(groups["views"].values()) + (list(groups["one_person"].values()) if use_one_person else [])
    result: dict[str, Any] = {
        "threshold": choose_threshold(same, list(groups["different"].values())),
        "rule": "midpoint between the largest same-person distance (second views"
        + (" and one-person photos" if use_one_person else "")
        + ") and the smallest different-people distance",
        "faceres": {
            k: {
                "summary": distance_summary(list(v.values())),
                "distances": {n: round(x, 2) for n, x in v.items()},
            }
            for k, v in groups.items()
        },
    }
    if identity is not None:
        result["dlib"] = {
            k: {
                "summary": distance_summary(list(v.values()), 3),
                "distances": {n: round(x, 3) for n, x in v.items()},
            }
            for k, v in dlib.items()
        }
    per_view = {v: [x for n, x in groups["views"].items() if n.endswith(f"|{v}")] for v in VIEWS}
    result["faceres"]["views"]["max_per_view"] = {v: round(max(x), 2) for v, x in per_view.items() if x}
    return result
