"""What judges say about generated faces: label distributions, ages and agreement between judges.

``tedigan judges --model mobilestylegan --num 64 --out reports/faces`` samples seeds ``0..num-1``
of a generator, lets every judge read them (face-api's expression / age / gender and human's emotion /
faceres by default) and writes ``judges.json`` (per judge and attribute: the share of each label, mean
probabilities, age statistics; where two judges read the same attribute, how often they agree) and
``judges.jpg`` (the first 16 faces with both judges' labels). Agreement between two independent judges is the
honest check that a judge reads these faces at all: the optimisation of an edit may fool one judge, rarely
two.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from tedigan.models.judge import Judge

__all__ = ["judge_images", "judge_report", "judge_samples", "labelled_grid"]


@torch.no_grad()
def judge_images(judges: Mapping[str, Judge], images: torch.Tensor) -> dict[str, dict[str, Any]]:
    """Per judge: ``labels`` (attribute → list of names), ``probs`` (attribute → [B, V]), ``values``."""
    out: dict[str, dict[str, Any]] = {}
    for name, judge in judges.items():
        j = judge.judge(images)
        out[name] = {
            "labels": j.labels(judge.attribute_values),
            "probs": {a: p.cpu() for a, p in j.probs.items()},
            "values": {k: v.cpu() for k, v in j.values.items()},
        }
    return out


def _merge(parts: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for part in parts:
        for name, res in part.items():
            m = merged.setdefault(name, {"labels": {}, "probs": {}, "values": {}})
            for a, labels in res["labels"].items():
                m["labels"].setdefault(a, []).extend(labels)
            for key in ("probs", "values"):
                for a, t in res[key].items():
                    m[key].setdefault(a, []).append(t)
    for m in merged.values():
        for key in ("probs", "values"):
            m[key] = {a: torch.cat(ts) for a, ts in m[key].items()}
    return merged


@torch.no_grad()
def judge_samples(
    G: Any, judges: Mapping[str, Judge], num: int, psi: float, batch: int = 4, **synthesis: Any
) -> tuple[dict[str, dict[str, Any]], torch.Tensor]:
    """Let every judge read the faces of seeds ``0..num-1`` of generator ``G`` (truncation ``psi``, ``batch``
    at a time; ``synthesis`` goes to ``G.synthesis``). Returns the merged reads and the first 16 images."""
    from tedigan.models.latents import seed_latents

    parts, first = [], None
    seeds = list(range(num))
    for i in range(0, len(seeds), batch):
        images = G.synthesis(seed_latents(G, seeds[i : i + batch], psi), noise_mode="const", **synthesis)
        images = images.float().clamp(-1, 1)
        parts.append(judge_images(judges, images))
        first = images if first is None else torch.cat([first, images])[:16]
    return _merge(parts), first


def judge_report(judges: Mapping[str, Judge], reads: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Distributions per judge and attribute, and pairwise agreement on shared attributes."""
    report: dict[str, Any] = {"judges": {}, "agreement": {}}
    for name, res in reads.items():
        attrs = {}
        for a, labels in res["labels"].items():
            names = judges[name].attribute_values[a]
            attrs[a] = {
                "share": {v: labels.count(v) / len(labels) for v in names},
                "mean_prob": dict(zip(names, res["probs"][a].mean(0).tolist())),
                "top_prob_mean": float(res["probs"][a].max(1).values.mean()),
            }
        values = {
            k: {"mean": float(v.mean()), "std": float(v.std()), "min": float(v.min()), "max": float(v.max())}
            for k, v in res["values"].items()
        }
        report["judges"][name] = {"attributes": attrs, "values": values}
    names = list(reads)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            for attr in sorted(set(reads[a]["labels"]) & set(reads[b]["labels"])):
                la, lb = reads[a]["labels"][attr], reads[b]["labels"][attr]
                report["agreement"][f"{a}~{b}:{attr}"] = sum(x == y for x, y in zip(la, lb)) / len(la)
            if "age" in reads[a]["values"] and "age" in reads[b]["values"]:
                xa, xb = reads[a]["values"]["age"], reads[b]["values"]["age"]
                report["agreement"][f"{a}~{b}:age_corr"] = float(torch.corrcoef(torch.stack([xa, xb]))[0, 1])
                report["agreement"][f"{a}~{b}:age_mean_abs_diff"] = float((xa - xb).abs().mean())
    return report


def labelled_grid(
    images: torch.Tensor, reads: dict[str, dict[str, Any]], path: Path, n: int = 16, tile: int = 160
) -> None:
    import torch.nn.functional as F
    from PIL import Image, ImageDraw

    from tedigan.data.io import to_pil

    small = images[:n].float().clamp(-1, 1).cpu()
    if small.shape[-1] > tile:
        small = F.interpolate(small, size=(tile, tile), mode="bilinear", antialias=True, align_corners=False)
    pils = list(to_pil(small))
    side = pils[0].width
    cols = min(8, len(pils))
    rows = -(-len(pils) // cols)
    text_h = 14 * (len(reads) + 1)
    grid = Image.new("RGB", (cols * side, rows * (side + text_h)), "white")
    draw = ImageDraw.Draw(grid)
    for k, img in enumerate(pils):
        x, y = (k % cols) * side, (k // cols) * (side + text_h)
        grid.paste(img, (x, y))
        for j, (name, res) in enumerate(reads.items()):
            parts = [res["labels"][a][k] for a in ("expression", "gender") if a in res["labels"]]
            if "age" in res["values"]:
                parts.append(f"{res['values']['age'][k]:.0f}y")
            draw.text((x + 2, y + side + 1 + 14 * j), f"{name[:6]}: {' '.join(parts)}", fill=(0, 0, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path, quality=88)
