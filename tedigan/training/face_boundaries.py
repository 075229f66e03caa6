"""Fit the attribute boundaries of the faces model (:class:`tedigan.editing.boundaries.AttributeBoundaries`)
on a generated face data set made without style mixing (``tedigan face-data --mixing-prob 0``), so each face's
code is one w.

Rows:

- ``attribute=value`` for every value of the region attributes (:data:`tedigan.data.face_attributes.ATTRIBUTES`)
  and of ``headwear`` (held fixed by the other edits, not itself an edit): one-vs-rest logistic regression of
  the faces' labels on ``w − w_avg`` (hair colour only on faces with visible hair). The labels come from the
  ImageNet-feature probe fitted on the hand labels (:mod:`tedigan.training.face_probe`), or from the region
  labellers;
- ``expression=...``, ``gender=...``: the same on the training judge's labels (face-api, stored with the data
  set), so prompts about these can use the boundaries too;
- ``keep:age`` (years, ridge regression on face-api's age), ``keep:female`` and ``keep:happy`` (face-api logits):
  quantities an edit of another attribute holds fixed.

Each row's held-out accuracy (logistic rows) or R² (kept rows) on the last 20 % of the faces is kept in the
folder's ``config.json``; a row's ``target`` is the median score of the training faces that have its value.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from tedigan.data.face_attributes import ATTRIBUTES, RegionLabeller
from tedigan.data.face_regions import FEATURES
from tedigan.editing.boundaries import AttributeBoundaries

__all__ = ["fit_boundaries", "dataset_labels", "keep_by_eye", "measure_sites", "sites_by_eye"]

#: attributes an edit holds fixed but does not edit (no vocabulary, no reader): rows only when labelled
KEPT_ONLY = {"headwear": ("none", "hat")}
FACE_API_ATTRIBUTES = {
    "expression": ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised"),
    "gender": ("male", "female"),
    "age_group": ("child", "young", "middle_aged", "old"),
}
#: the layer sets :func:`measure_sites` tries (MobileStyleGAN's 23 style inputs: w0 4 px, w1-3 8 px, w4-6
#: 16 px, w7-9 32 px, w10-12 64 px, w13-15 128 px, w16-18 256 px, w19-21 512 px, w22 RGB)
SITES = {
    "all": list(range(23)),
    "coarse": list(range(0, 7)),
    "coarse+middle": list(range(0, 13)),
    "middle": list(range(4, 13)),
    "middle+fine": list(range(7, 16)),
    "fine": list(range(10, 23)),
}
#: the gains tried at each row's chosen layers (a gain of 2 moves twice the way to the value's median score)
GAINS = (1.0, 1.5, 2.0, 3.0)
#: the identity-distance limit of the style-site choice for attributes that change identity by nature
IDENTITY_LIMITS = {"gender": 0.75, "age_group": 0.75}
#: values moved by setting region statistics to their hand-labelled median (``AttributeBoundaries.value_targets``):
#: brown hair lies between black and blond, on no side of one line. (Moving every hair colour this way reads
#: weaker on the grids than the boundaries do: the statistics are predicted from w with R² 0.36-0.66.)
VALUE_STATS: dict[str, tuple[str, ...]] = {"hair_color": ("hair_L", "hair_a", "hair_b")}
STAT_VALUES: dict[str, tuple[str, ...]] = {"hair_color": ("brown",)}
#: region colours every edit keeps (CIELAB of the skin and of the background): a hair colour must not tint the
#: face or the wall behind it
COLOURS = ("skin_L", "skin_a", "skin_b", "bg_L", "bg_a", "bg_b")


def dataset_labels(
    root: str | Path,
    features: np.ndarray,
    labeller: RegionLabeller,
    probe: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Per-face label arrays (value names; ``""`` = not labelled) and face-api's numbers of data set ``root``:
    the region attributes from ``probe`` (:func:`tedigan.training.face_probe.fit_probe`) when given, else from
    the region ``labeller``; ``features``: the region statistics (the kept colour and statistic rows)."""
    rows = [json.loads(line) for line in (Path(root) / "metadata.jsonl").read_text().splitlines() if line]
    out: dict[str, np.ndarray] = {}
    if probe is not None:
        out.update({a: np.asarray(v) for a, v in probe.items()})
    else:
        for a, labels in zip(labeller.models, zip(*[list(d.values()) for d in labeller.labels(features)])):
            out[a] = np.array(labels)
        out["hair_color"] = np.where(out["hair_color"] == "none", "", out["hair_color"])
    for a in FACE_API_ATTRIBUTES:
        out[a] = np.array([r["attributes"][a] for r in rows])
    out["age"] = np.array([r["age"] for r in rows], dtype=np.float64)
    out["female"] = np.array([r["gender_probs"][1] for r in rows], dtype=np.float64)
    out["happy"] = np.array([r["expression_probs"][1] for r in rows], dtype=np.float64)
    for name in {*COLOURS, *(k for stats in VALUE_STATS.values() for k in stats)}:
        out[name] = features[:, FEATURES.index(name)]
    return out


def hand_value_medians(features: np.ndarray, hand: dict[int, dict]) -> dict[str, dict[str, list[float]]]:
    """Per attribute of :data:`VALUE_STATS` and value: the median of its statistics over the hand-labelled
    faces with that value (indices into ``features``)."""
    out: dict[str, dict[str, list[float]]] = {}
    for attribute, stats in VALUE_STATS.items():
        cols = [FEATURES.index(k) for k in stats]
        for value in ATTRIBUTES[attribute]:
            ids = [i for i, lab in hand.items() if lab.get(attribute) == value and i < len(features)]
            if ids and value in STAT_VALUES.get(attribute, ()):
                out.setdefault(attribute, {})[value] = [
                    round(float(v), 3) for v in np.median(features[ids][:, cols], 0)
                ]
    return out


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def fit_boundaries(
    codes: torch.Tensor,
    labels: dict[str, np.ndarray],
    w_avg: torch.Tensor,
    layers: dict[str, list[int]],
    c: float = 0.01,
    holdout: float = 0.2,
    min_positives: int = 20,
    value_medians: dict[str, dict[str, list[float]]] | None = None,
) -> AttributeBoundaries:
    """Rows for every attribute value with at least ``min_positives`` labelled faces (see the module docs).
    ``codes`` ``[N, w_dim]`` (or ``[N, num_ws, w_dim]``, first layer taken); ``c`` is the logistic
    regressions' inverse L2 strength. ``value_medians`` (:func:`hand_value_medians`) adds the statistic rows
    of :data:`VALUE_STATS` and moves those attributes to their values' medians."""
    from sklearn.linear_model import LogisticRegression, Ridge

    w = (codes[:, 0] if codes.ndim == 3 else codes).double().numpy() - w_avg.double().numpy()
    n = len(w)
    cut = int(round(n * (1 - holdout)))
    train, test = np.arange(n) < cut, np.arange(n) >= cut
    names, normals, offsets, targets, info = [], [], [], [], {"rows": {}}
    for attribute, values in {**ATTRIBUTES, **KEPT_ONLY, **FACE_API_ATTRIBUTES}.items():
        if attribute not in labels:
            continue
        y = labels[attribute]
        seen = y != ""
        for value in values:
            pos = (y == value) & seen
            if pos[train].sum() < min_positives or (~pos & seen)[train].sum() < min_positives:
                info["rows"][f"{attribute}={value}"] = {"skipped": f"{int(pos[train].sum())} positives"}
                continue
            model = LogisticRegression(C=c, max_iter=3000, class_weight="balanced")
            model.fit(w[train & seen], pos[train & seen])
            normal, offset = model.coef_[0], float(model.intercept_[0])
            score = w @ normal + offset
            hit = (score > 0) == pos
            recall = [float(hit[test & seen & m].mean()) for m in (pos, ~pos) if (test & seen & m).any()]
            names.append(f"{attribute}={value}")
            normals.append(normal)
            offsets.append(offset)
            targets.append(float(np.median(score[train & pos])))
            info["rows"][names[-1]] = {
                "positives": int(pos.sum()),
                "balanced_accuracy": round(float(np.mean(recall)), 4),
            }
    kept = {
        "keep:age": labels["age"],
        "keep:female": _logit(labels["female"]),
        "keep:happy": _logit(labels["happy"]),
        **{f"keep:{c}": labels[c] for c in COLOURS if c in labels},
    }
    value_targets = {}
    for attribute, by_value in (value_medians or {}).items():
        stats = VALUE_STATS[attribute]
        kept.update({f"stat:{k}": labels[k] for k in stats})
        value_targets[attribute] = {"rows": [f"stat:{k}" for k in stats], "values": by_value}
    for name, y in kept.items():
        model = Ridge(alpha=1.0).fit(w[train], y[train])
        r2 = 1 - ((model.predict(w[test]) - y[test]) ** 2).mean() / y[test].var()
        names.append(name)
        normals.append(model.coef_)
        offsets.append(float(model.intercept_))
        targets.append(float(np.median(y)))
        info["rows"][name] = {"r2": round(float(r2), 4)}
    info.update({"faces": n, "holdout": holdout, "c": c})
    return AttributeBoundaries(
        names,
        torch.tensor(np.stack(normals), dtype=torch.float32),
        torch.tensor(offsets, dtype=torch.float32),
        torch.tensor(targets, dtype=torch.float32),
        w_avg.float().clone(),
        layers,
        {},
        {},
        info,
        value_targets,
    )


def measure_sites(
    generator,
    boundaries: AttributeBoundaries,
    codes: torch.Tensor,
    labels: dict[str, np.ndarray],
    reader,
    judge,
    faces: int = 8,
    max_identity: float = 0.5,
    progress: bool = True,
    only: set[str] | None = None,
) -> dict[str, dict]:
    """Where and how far each attribute moves. For every ``attribute=value`` row, ``faces`` held-out faces that
    lack the value are edited and read — by the region labellers (``reader``) for the region attributes, by
    face-api (``judge``: the data set's own labeller) for expression, gender and age — with the identity
    distance of face-api's dlib descriptor (``judge``, the identity loss's network):

    1. on each layer set of :data:`SITES` at gain 2; per attribute, the set whose edits most often both succeed
       and keep the person (the highest ``min(success, kept)`` over its values, ``kept`` being the share of
       faces whose identity distance stays under ``max_identity``; face-api's same-person line is 0.6) goes
       into ``boundaries.layers``;
    2. on those layers at each gain of :data:`GAINS`; per value, the gain chosen the same way goes into
       ``boundaries.gains``.

    Gender and age change what a face-recognition net reads by their nature: their limit is
    :data:`IDENTITY_LIMITS`. ``only``: measure these attributes, keep the others' layers and gains as they are.
    Returns every measurement (also kept in ``boundaries.info["sites"]``)."""
    from tqdm.auto import tqdm

    from tedigan.data.faces import age_group

    w = codes[:, 0] if codes.ndim == 3 else codes
    n = len(w)
    start = int(round(n * (1 - boundaries.info.get("holdout", 0.2))))
    rows = [
        r
        for r in boundaries.names
        if "=" in r and r.split("=", 1)[0] not in KEPT_ONLY and (only is None or r.split("=", 1)[0] in only)
    ]
    results: dict[str, dict] = {r: {} for r in rows}

    def read(images: torch.Tensor, attribute: str) -> list[str]:
        if attribute in FACE_API_ATTRIBUTES:
            verdict = judge.judge(images)
            if attribute == "age_group":
                return [age_group(float(a)) for a in verdict.values["age"]]
            names = FACE_API_ATTRIBUTES[attribute]
            return [names[int(i)] for i in verdict.probs[attribute].argmax(1)]
        return [lab[attribute] for lab in reader.labels(images)]

    sources = {}
    for row in rows:
        attribute, value = row.split("=", 1)
        idx = [i for i in range(start, n) if labels[attribute][i] not in (value, "")][:faces]
        wp = w[idx].float()[:, None].repeat(1, generator.num_ws, 1)
        with torch.no_grad():
            src = generator.synthesis(wp, noise_mode="const").clamp(-1, 1)
            sources[row] = (wp, judge.descriptor(src))

    def trial(row: str, layers: list[int], gain: float) -> dict[str, float]:
        attribute, value = row.split("=", 1)
        wp, src_desc = sources[row]
        with torch.no_grad():
            moved = boundaries.edit(wp, {attribute: value}, gain, layers=layers, gains=False)
            out = generator.synthesis(moved, noise_mode="const").clamp(-1, 1)
            ident = judge.distance(judge.descriptor(out), src_desc)
        hits = [v == value for v in read(out, attribute)]
        limit = IDENTITY_LIMITS.get(attribute, max_identity)
        return {
            "success": round(float(np.mean(hits)), 3),
            "kept": round(float((ident < limit).float().mean()), 3),
            "identity": round(float(ident.mean()), 3),
        }

    def best(table: dict[str, list[dict]]) -> str:
        """The key whose edits both succeed and keep the person most often: the highest ``min(success,
        kept)``, then success, then the smaller identity change."""
        score = {}
        for k, ms in table.items():
            success, kept = np.mean([m["success"] for m in ms]), np.mean([m["kept"] for m in ms])
            score[k] = (min(success, kept), success, -np.mean([m["identity"] for m in ms]))
        return max(score, key=lambda k: score[k])

    bar = tqdm(total=len(rows) * (len(SITES) + len(GAINS)), desc="style sites", disable=not progress)
    for attribute in dict.fromkeys(r.split("=", 1)[0] for r in rows):
        mine = [r for r in rows if r.startswith(attribute + "=")]
        per_site: dict[str, list[dict]] = {}
        for site, layers in SITES.items():
            for row in mine:
                results[row][f"{site}@2"] = m = trial(row, layers, 2.0)
                per_site.setdefault(site, []).append(m)
                bar.update(1)
        site = best(per_site)
        boundaries.layers[attribute] = SITES[site]
        for row in mine:
            per_gain = {}
            for gain in GAINS:
                key = f"{site}@{gain:g}"
                results[row][key] = m = results[row].get(key) or trial(row, SITES[site], gain)
                per_gain[f"{gain:g}"] = [m]
                bar.update(1)
            boundaries.gains[row] = float(best(per_gain))
    bar.close()
    boundaries.info["sites"] = {**boundaries.info.get("sites", {}), **results}
    return results


def keep_by_eye(boundaries: AttributeBoundaries, choices: dict[str, dict]) -> None:
    """Before :func:`measure_sites`: the kept rows chosen by eye (``choices[key]["set"]["keep"]``, ``key`` an
    attribute or an ``attribute=value``), so the sites and gains are measured with the moves the model makes."""
    for key, choice in choices.items():
        if "keep" in choice.get("set", {}):
            boundaries.keep[key] = list(choice["set"]["keep"])


def sites_by_eye(boundaries: AttributeBoundaries, choices: dict[str, dict]) -> None:
    """After :func:`measure_sites`: the layers and gains chosen by eye replace the measured ones, which are
    kept beside them (``choices[key]["measured"]``); the choices go into ``boundaries.info["set_by_eye"]``."""
    for key, choice in choices.items():
        attribute = key.split("=", 1)[0]
        chosen, measured = choice.get("set", {}), {}
        if "layers" in chosen:
            measured["layers"] = boundaries.layers.get(attribute)
            boundaries.layers[attribute] = list(chosen["layers"])
        for row, gain in chosen.get("gains", {}).items():
            measured.setdefault("gains", {})[row] = boundaries.gains.get(row)
            boundaries.gains[row] = float(gain)
        if measured:
            choice["measured"] = measured
    if choices:
        boundaries.info["set_by_eye"] = choices
