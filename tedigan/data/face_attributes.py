"""Region labellers: hair colour, baldness, bangs, eyewear, facial hair and lipstick of FFHQ-aligned faces.

No network on the offline registries labels these attributes on real faces, so they are read from colour and
texture statistics of landmark regions (:mod:`tedigan.data.face_regions`), one small logistic model per
attribute over a few of those statistics. The models were fitted on hand labels: 1,499 generated faces labelled
by eye from contact sheets (``tedigan/data/face_hand_labels.jsonl``: 1,279 in order, 256 picked where an earlier
fit over-called a rare value or the probe was least sure); their held-out accuracy (two-fold, even/odd faces) is stored with them in
``face_labeller.json`` and printed in the faces model card. The boundaries' training labels come from a
stronger probe on ImageNet features (:mod:`tedigan.training.face_probe`); these region labellers are the
reader of edits and photos, and the benchmark's check.

These labellers *label training data* (the attribute directions of :mod:`tedigan.editing.boundaries`). They
are not the judges of an edit's success on their own: the edit benchmark reads them beside a second check
that shares none of their fitted weights (the raw region statistic that the attribute is about, e.g. the hair's
CIELAB lightness and yellowness for ``blond``) and beside hand-checked grids.

================  ===========================================  =============================================
attribute         values                                       statistics
================  ===========================================  =============================================
``hair_color``    black, brown, blond, red, gray               CIELAB median and highlights of the hair
``baldness``      hair, bald                                   person / skin shares and texture of the crown
``bangs``         none, bangs                                  share of skin-like pixels on the forehead
``eyewear``       none, glasses, sunglasses                    edges across the nose bridge and under the
                                                               eyes, darkness of the eyes
``facial_hair``   none, beard                                  darkness and texture of chin, jaw, upper lip
``makeup``        none, lipstick                               redness and chroma of the lips against skin
================  ===========================================  =============================================

``hair_color`` is read only where the crown shows hair (a hat or a bald head has none): callers read
``baldness`` first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tedigan.data.face_regions import FEATURES

__all__ = ["ATTRIBUTES", "LABELLER_FILE", "AttributeModel", "RegionLabeller"]

#: the attributes the region labellers read, with their values (the face vocabulary's names)
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "hair_color": ("black", "brown", "blond", "red", "gray"),
    "baldness": ("hair", "bald"),
    "bangs": ("none", "bangs"),
    "eyewear": ("none", "glasses", "sunglasses"),
    "facial_hair": ("none", "beard"),
    "makeup": ("none", "lipstick"),
}
#: the region statistics each attribute's model reads
INPUTS: dict[str, tuple[str, ...]] = {
    "hair_color": ("hair_L", "hair_a", "hair_b", "hair_L85"),
    "baldness": ("crown_person_share", "crown_skin_share", "crown_std", "hair_share", "hair_L"),
    "bangs": ("forehead_skin_share", "forehead_dL"),
    "eyewear": ("bridge_edge", "under_eyes_edge", "eyes_dL"),
    "facial_hair": ("chin_dL", "chin_std", "jaw_dL", "jaw_std", "moustache_dL"),
    "makeup": ("lips_da", "lips_C", "lips_dL", "skin_a"),
}
LABELLER_FILE = Path(__file__).with_name("face_labeller.json")


@dataclass
class AttributeModel:
    """A multinomial (or binary) logistic model over standardised region statistics."""

    values: tuple[str, ...]
    inputs: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray  # [V, F] (a binary model is stored with both rows: [-w, w] / 2)
    intercept: np.ndarray  # [V]
    accuracy: float | None = None  # held-out, on the hand labels
    balanced_accuracy: float | None = None  # held-out mean recall over the values
    support: dict[str, int] | None = None

    def probs(self, features: dict[str, float] | np.ndarray) -> np.ndarray:
        """``[N, V]`` value probabilities of one feature dict (N = 1) or a ``[N, len(FEATURES)]`` array."""
        if isinstance(features, dict):
            x = np.array([[features[k] for k in self.inputs]], dtype=np.float64)
        else:
            x = np.asarray(features, dtype=np.float64)[:, [FEATURES.index(k) for k in self.inputs]]
        z = (x - self.mean) / self.scale @ self.coef.T + self.intercept
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    def to_json(self) -> dict:
        return {
            "values": list(self.values),
            "inputs": list(self.inputs),
            "mean": self.mean.round(6).tolist(),
            "scale": self.scale.round(6).tolist(),
            "coef": self.coef.round(6).tolist(),
            "intercept": self.intercept.round(6).tolist(),
            "accuracy": self.accuracy,
            "balanced_accuracy": self.balanced_accuracy,
            "support": self.support,
        }

    @classmethod
    def from_json(cls, d: dict) -> AttributeModel:
        return cls(
            tuple(d["values"]),
            tuple(d["inputs"]),
            np.array(d["mean"]),
            np.array(d["scale"]),
            np.array(d["coef"]),
            np.array(d["intercept"]),
            d.get("accuracy"),
            d.get("balanced_accuracy"),
            d.get("support"),
        )

    @classmethod
    def fit(
        cls,
        values: tuple[str, ...],
        inputs: tuple[str, ...],
        x: np.ndarray,
        y: list[str],
        c: float = 1.0,
        balanced: bool = True,
    ):
        """Fit on ``x`` ``[N, len(inputs)]`` and value names ``y`` (scikit-learn's logistic regression;
        ``balanced`` weighs each value equally, so a rare value — a bald head, lipstick — is not ignored)."""
        from sklearn.linear_model import LogisticRegression

        mean, scale = x.mean(0), x.std(0) + 1e-6
        weight = "balanced" if balanced else None
        model = LogisticRegression(C=c, max_iter=5000, class_weight=weight).fit((x - mean) / scale, y)
        coef, intercept = model.coef_, model.intercept_
        if len(model.classes_) == 2:  # sklearn keeps one row for two classes
            coef, intercept = np.concatenate([-coef, coef]) / 2, np.concatenate([-intercept, intercept]) / 2
        order = [list(model.classes_).index(v) if v in model.classes_ else None for v in values]
        full_coef = np.zeros((len(values), x.shape[1]))
        full_int = np.full(len(values), -30.0)  # a value never seen in the hand labels is never predicted
        for i, j in enumerate(order):
            if j is not None:
                full_coef[i], full_int[i] = coef[j], intercept[j]
        return cls(values, inputs, mean, scale, full_coef, full_int)


class RegionLabeller:
    """All attribute models (``face_labeller.json``): :meth:`probs` / :meth:`labels` of region statistics."""

    def __init__(self, models: dict[str, AttributeModel]) -> None:
        self.models = models

    @classmethod
    def load(cls, path: str | Path = LABELLER_FILE) -> RegionLabeller:
        data = json.loads(Path(path).read_text())
        return cls({a: AttributeModel.from_json(d) for a, d in data["attributes"].items()})

    def save(self, path: str | Path = LABELLER_FILE, note: str = "") -> Path:
        from tedigan.fs import atomic_write_text

        data = {"note": note, "attributes": {a: m.to_json() for a, m in self.models.items()}}
        return atomic_write_text(Path(path), json.dumps(data, indent=1) + "\n")

    def probs(self, features: np.ndarray) -> dict[str, np.ndarray]:
        """``{attribute: [N, V]}`` for a ``[N, len(FEATURES)]`` feature array."""
        return {a: m.probs(features) for a, m in self.models.items()}

    def labels(self, features: np.ndarray) -> list[dict[str, str]]:
        """The most probable value of each attribute, per face; ``hair_color`` is ``"none"`` on a bald crown."""
        probs = self.probs(np.atleast_2d(features))
        n = len(next(iter(probs.values())))
        out = [{a: self.models[a].values[int(p[i].argmax())] for a, p in probs.items()} for i in range(n)]
        for row in out:
            if row.get("baldness") == "bald" and "hair_color" in row:
                row["hair_color"] = "none"
        return out
