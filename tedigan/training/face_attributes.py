"""Label a generated face data set with the region attributes and fit the region labellers on hand labels.

1. :func:`region_features_of_dataset`: the region statistics (:mod:`tedigan.data.face_regions`) of every face
   of a ``tedigan face-data`` folder, kept in resumable chunks under ``parts_regions/`` and merged into
   ``region_features.safetensors``.
2. :func:`fit_labeller`: one logistic model per attribute on the faces that have hand labels
   (``tedigan/data/face_hand_labels.jsonl``, ids of that data set), with its two-fold held-out accuracy
   (even / odd faces), then refitted on all of them; written to ``face_labeller.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from tedigan.data.face_attributes import ATTRIBUTES, INPUTS, LABELLER_FILE, AttributeModel, RegionLabeller
from tedigan.data.face_regions import FEATURES
from tedigan.fs import atomic_write

__all__ = [
    "HAND_LABELS",
    "fit_labeller",
    "labelled",
    "read_hand_labels",
    "region_features_of_dataset",
    "save_npy",
]

HAND_LABELS = Path(__file__).resolve().parents[1] / "data" / "face_hand_labels.jsonl"
FEATURES_FILE = "region_features.safetensors"


def region_features_of_dataset(root: str | Path, chunk: int = 256, progress: bool = True) -> np.ndarray:
    """``[N, len(FEATURES)]`` region statistics of the faces of data set ``root`` (cached in the folder)."""
    import torch
    from safetensors.numpy import load_file, save_file

    from tedigan.data.io import load_image, to_tensor
    from tedigan.models.attribute_reader import RegionAttributeReader

    root = Path(root)
    done = root / FEATURES_FILE
    rows = [json.loads(line) for line in (root / "metadata.jsonl").read_text().splitlines() if line]
    if done.is_file():
        feats = load_file(str(done))["features"]
        if len(feats) == len(rows) and feats.shape[1] == len(FEATURES):
            return feats
    parts = root / "parts_regions"
    parts.mkdir(exist_ok=True)
    reader = None
    out = []
    bar = tqdm(total=len(rows), desc="region statistics", unit="face", disable=not progress)
    for lo in range(0, len(rows), chunk):
        part = parts / f"{lo:07d}.npy"
        n = min(len(rows), lo + chunk) - lo
        done_part = np.load(part) if part.is_file() else None
        if done_part is not None and done_part.shape == (n, len(FEATURES)):
            out.append(done_part)
            bar.update(n)
            continue
        if reader is None:
            reader = RegionAttributeReader.from_package(labeller=None)
        images = torch.stack([to_tensor(load_image(root / r["file_name"]), 256) for r in rows[lo : lo + n]])
        feats = reader.features(images)
        atomic_write(part, lambda tmp, f=feats: save_npy(tmp, f))
        out.append(feats)
        bar.update(n)
    bar.close()
    feats = np.concatenate(out)
    atomic_write(done, lambda tmp: save_file({"features": feats}, str(tmp)))
    return feats


def save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as fh:
        np.save(fh, array)


def read_hand_labels(path: str | Path = HAND_LABELS) -> dict[int, dict[str, str | None]]:
    """``{face index: {attribute: value or None}}`` (the file's first line describes it)."""
    lines = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return {int(r["id"]): {a: v for a, v in r.items() if a != "id"} for r in lines if "id" in r}


def labelled(attribute: str, labels: dict[str, str | None]) -> bool:
    """Whether a hand-labelled face has a value for ``attribute`` (hair colour: only where there is hair)."""
    if labels.get(attribute) is None:
        return False
    return not (attribute == "hair_color" and labels.get("baldness") == "bald")


def fit_labeller(
    features: np.ndarray,
    hand: dict[int, dict[str, str | None]],
    out: str | Path | None = LABELLER_FILE,
    c: float = 1.0,
    balanced: bool = True,
) -> RegionLabeller:
    """Fit every attribute's model on the hand-labelled faces (indices into ``features``); each model's
    ``accuracy`` is its two-fold held-out accuracy (fit on even faces → score odd ones, and back) and
    ``balanced_accuracy`` the mean of the per-value recalls. An attribute with fewer than two hand-labelled
    values gets no model."""
    models = {}
    for attribute, values in ATTRIBUTES.items():
        ids = np.array(sorted(i for i, lab in hand.items() if labelled(attribute, lab) and i < len(features)))
        y = [hand[i][attribute] for i in ids]
        if len(set(y)) < 2:
            continue  # nothing to tell apart: no model
        x = features[ids][:, [FEATURES.index(k) for k in INPUTS[attribute]]]
        pred = [""] * len(ids)
        for fold in (0, 1):
            train, test = ids % 2 != fold, ids % 2 == fold
            ys = [v for v, t in zip(y, train) if t]
            m = AttributeModel.fit(values, INPUTS[attribute], x[train], ys, c, balanced)
            for k, p in zip(np.flatnonzero(test), m.probs(features[ids[test]]).argmax(1)):
                pred[k] = values[p]
        model = AttributeModel.fit(values, INPUTS[attribute], x, y, c, balanced)
        hit = [p == v for p, v in zip(pred, y)]
        model.accuracy = round(float(np.mean(hit)), 4)
        recalls = [np.mean([h for h, v in zip(hit, y) if v == value]) for value in values if value in y]
        model.balanced_accuracy = round(float(np.mean(recalls)), 4)
        model.support = {v: y.count(v) for v in values}
        models[attribute] = model
    labeller = RegionLabeller(models)
    if out is not None:
        labeller.save(
            out, note="fitted by tedigan.training.face_attributes.fit_labeller on " + HAND_LABELS.name
        )
    return labeller
