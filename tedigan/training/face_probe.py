"""Training labels for the attribute boundaries: a linear probe on ImageNet features, fitted on the hand labels.

The region labellers (:mod:`tedigan.data.face_attributes`) read a few colour statistics per region. On the hand
labels they confuse a red or yellow hat with red or blond hair and over-call the rare values (bald, beard,
sunglasses). The boundaries are fitted on labels, so those errors become directions. This module labels the
data set another way:

1. :func:`probe_features_of_dataset`: AlexNet's ImageNet features of every face (the offline LPIPS backbone,
   :func:`tedigan.assets.lpips_backbone_state_dict`): the rectified maps after conv2, conv4 and conv5 at 224 px,
   each averaged over a 4×4 grid and over the whole image, square-rooted with their sign; cached in the data
   set folder (``probe_features.npy``, float16).
2. :func:`fit_probe`: per attribute one logistic regression (standardised features, L2, balanced classes) on
   the hand-labelled faces; its two-fold held-out accuracy (even / odd faces) is measured, then it is refitted on
   all of them and labels every face.

It reads the attributes of :data:`PROBE_ATTRIBUTES`: the region attributes and ``headwear`` (a hat or a scarf
hides the hair), which the boundaries keep fixed so that a hair edit does not paint a hat. The probe is a
training tool, not a part of the model: the benchmark's checks stay the region statistics and human's judges,
which share nothing with it but the hand labels.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from tedigan.data.face_attributes import ATTRIBUTES
from tedigan.fs import atomic_write
from tedigan.training.face_attributes import labelled, save_npy
from tedigan.training.face_boundaries import KEPT_ONLY

__all__ = [
    "PROBE_ATTRIBUTES",
    "ProbeFit",
    "ProbeReader",
    "fit_probe",
    "probe_features",
    "probe_features_of_dataset",
]

#: what the probe reads: the region attributes and whether a hat hides the hair
PROBE_ATTRIBUTES: dict[str, tuple[str, ...]] = {**ATTRIBUTES, **KEPT_ONLY}
FEATURES_FILE = "probe_features.npy"
#: AlexNet ``features`` indices whose (rectified) outputs are pooled: after conv2, conv4 and conv5
TAPS = (4, 9, 11)
SIDE, GRID = 224, 4
#: the probes' inverse L2 strength (chosen on the hand labels' held-out balanced accuracy: 1e-4 … 1e-3)
C = 3e-4
_MEAN, _STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _trunk():
    import torchvision

    from tedigan import assets

    trunk = torchvision.models.alexnet().features
    trunk.load_state_dict(assets.lpips_backbone_state_dict("alex"))
    return trunk.eval().requires_grad_(False)


def probe_features(images, trunk=None) -> np.ndarray:
    """``[B, D]`` float32 probe features of ``[B, 3, H, W]`` images in [-1, 1]."""
    import torch
    import torch.nn.functional as F

    trunk = trunk or _trunk()
    mean = torch.tensor(_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        x = F.interpolate(
            images.float().clamp(-1, 1),
            size=(SIDE, SIDE),
            mode="bilinear",
            align_corners=False,
            antialias=True,
        )
        x = ((x + 1) / 2 - mean) / std
        pooled = []
        for k, layer in enumerate(trunk):
            x = layer(x)
            if k in TAPS:
                pooled += [F.adaptive_avg_pool2d(x, GRID).flatten(1), x.mean((2, 3))]
            if k >= max(TAPS):
                break
        f = torch.cat(pooled, 1)
    return (f.sign() * f.abs().sqrt()).numpy()


def probe_features_of_dataset(root: str | Path, chunk: int = 100, progress: bool = True) -> np.ndarray:
    """``[N, D]`` probe features of the faces of data set ``root`` (cached in the folder)."""
    import torch

    from tedigan.data.io import load_image, to_tensor

    root = Path(root)
    rows = [json.loads(line) for line in (root / "metadata.jsonl").read_text().splitlines() if line]
    done = root / FEATURES_FILE
    if done.is_file():
        feats = np.load(done)
        if len(feats) == len(rows):
            return feats.astype(np.float32)
    trunk = _trunk()
    out = []
    for lo in tqdm(range(0, len(rows), chunk), desc="probe features", unit="chunk", disable=not progress):
        images = torch.stack(
            [to_tensor(load_image(root / r["file_name"]), 256) for r in rows[lo : lo + chunk]]
        )
        out.append(probe_features(images, trunk).astype(np.float16))
    feats = np.concatenate(out)
    atomic_write(done, lambda tmp: save_npy(tmp, feats))
    return feats.astype(np.float32)


class ProbeFit(dict):
    """``{attribute: [N] value names}`` for every face (``""``: not read), with ``info``: per attribute its
    held-out ``accuracy``, ``balanced_accuracy``, per-value ``precision`` and the hand labels' ``support``;
    ``models``: the fitted probes (scikit-learn pipelines over :func:`probe_features`)."""

    info: dict[str, dict]
    models: dict


class ProbeReader:
    """Reads images with fitted probes, as the region reader does (``labels(images)``): how
    :func:`tedigan.training.face_boundaries.measure_sites` judges the edits it tries, so that the benchmark's
    region statistics stay an independent check of the sites it chose."""

    def __init__(self, fit: ProbeFit) -> None:
        self.models = fit.models
        self.trunk = _trunk()

    def labels(self, images) -> list[dict[str, str]]:
        """Per image ``{attribute: value}``; ``hair_color`` is ``"none"`` on a bald or hatted head."""
        feats = probe_features(images, self.trunk)
        read = _no_hair_colour_unseen(
            {a: m.predict(feats).astype(str) for a, m in self.models.items()}, "none"
        )
        return [{a: str(v[i]) for a, v in read.items()} for i in range(len(feats))]


def fit_probe(features: np.ndarray, hand: dict[int, dict[str, str | None]], c: float = C) -> ProbeFit:
    """Fit one probe per attribute of :data:`PROBE_ATTRIBUTES` on the hand-labelled faces (indices into
    ``features``) and label every face. Hair colour is blank on faces labelled bald or hatted."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def model():
        return make_pipeline(
            StandardScaler(), LogisticRegression(C=c, max_iter=3000, class_weight="balanced")
        )

    out = ProbeFit()
    out.info, out.models = {}, {}
    for attribute, values in PROBE_ATTRIBUTES.items():
        ids = np.array(sorted(i for i, lab in hand.items() if labelled(attribute, lab) and i < len(features)))
        y = np.array([hand[i][attribute] for i in ids])
        if len(set(y)) < 2:
            continue
        pred = np.empty_like(y)
        for fold in (0, 1):
            train = ids % 2 != fold
            pred[~train] = model().fit(features[ids[train]], y[train]).predict(features[ids[~train]])
        hit = pred == y
        seen = [v for v in values if (y == v).any()]
        out.info[attribute] = {
            "accuracy": round(float(hit.mean()), 4),
            "balanced_accuracy": round(float(np.mean([hit[y == v].mean() for v in seen])), 4),
            "precision": {v: round(float((y[pred == v] == v).mean()), 4) for v in seen if (pred == v).any()},
            "support": {v: int((y == v).sum()) for v in seen},
        }
        out.models[attribute] = model().fit(features[ids], y)
        out[attribute] = out.models[attribute].predict(features).astype(str)
    _no_hair_colour_unseen(out, "")
    return out


def _no_hair_colour_unseen(read: dict[str, np.ndarray], blank: str) -> dict[str, np.ndarray]:
    """``read`` (changed in place) with hair colour ``blank`` on a bald or hatted head: no hair colour to see."""
    if "hair_color" in read:
        unseen = np.zeros(len(read["hair_color"]), dtype=bool)
        if "baldness" in read:
            unseen |= read["baldness"] == "bald"
        if "headwear" in read:
            unseen |= read["headwear"] == "hat"
        read["hair_color"] = np.where(unseen, blank, read["hair_color"])
    return read
