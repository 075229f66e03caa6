"""What judges say about generated faces: label distributions, ages and agreement between judges.

``python -m tedigan.evaluation.judges --model faces --num 64 --out reports/faces`` samples seeds ``0..num-1``
of a generator, lets every judge read them (face-api's expression / age / gender and human's emotion /
faceres by default) and writes ``judges.json`` (per judge and attribute: the share of each label, mean
probabilities, age statistics; where two judges read the same attribute, how often they agree) and
``judges.jpg`` (the first 16 faces with both judges' labels). Agreement between two independent judges is the
honest check that a judge reads these faces at all: the optimisation of an edit may fool one judge, rarely
two.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from tedigan.models.judge import Judge

__all__ = ["judge_images", "judge_report", "main"]


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


def _labelled_grid(
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tedigan.evaluation.judges",
        description="Let the face judges read generated faces; write their label distributions and agreement.",
        epilog="example: python -m tedigan.evaluation.judges --model faces --num 64 --out reports/faces",
    )
    parser.add_argument("--model", default="faces", help="'faces' (MobileStyleGAN) or a pipeline folder")
    parser.add_argument("--num", type=int, default=64, help="faces to judge, seeds 0..num-1 (default 64)")
    parser.add_argument("--psi", type=float, default=0.7, help="truncation (default 0.7)")
    parser.add_argument("--resolution", type=int, default=256, help="faces: render size (default 256)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--out", required=True, help="folder for judges.json and judges.jpg")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    from tedigan import cli
    from tedigan.assets import MissingWeightsError
    from tedigan.fs import atomic_write_text
    from tedigan.models.faceapi import FaceApiJudge
    from tedigan.models.human import HumanJudge
    from tedigan.models.latents import seed_latents

    if not 1 <= args.num <= 10_000:
        parser.error("--num must be in 1..10000")
    try:
        G, _, what = cli.load_generator(args, args.resolution if args.model in cli.NAMED_GENERATORS else None)
        judges: dict[str, Judge] = {
            "face-api": FaceApiJudge.from_package(heads=("expression", "age_gender")),
            "human": HumanJudge.from_package(nets=("emotion", "faceres")),
        }
    except (MissingWeightsError, cli.UsageError, ValueError) as err:
        print(f"tedigan.evaluation.judges: error: {err}", file=sys.stderr)
        return 2
    kwargs = {"resolution": args.resolution} if args.model in cli.NAMED_GENERATORS else {}
    start = time.perf_counter()
    parts, first = [], None
    seeds = list(range(args.num))
    for i in range(0, len(seeds), args.batch):
        with torch.no_grad():
            images = G.synthesis(
                seed_latents(G, seeds[i : i + args.batch], args.psi), noise_mode="const", **kwargs
            )
        images = images.float().clamp(-1, 1)
        parts.append(judge_images(judges, images))
        first = images if first is None else torch.cat([first, images])[:16]
    reads = _merge(parts)
    report = {
        "model": what,
        "num": args.num,
        "psi": args.psi,
        "seeds": f"0-{args.num - 1}",
        **judge_report(judges, reads),
        "seconds": round(time.perf_counter() - start, 1),
    }
    out = Path(args.out)
    _labelled_grid(first, reads, out / "judges.jpg")
    atomic_write_text(out / "judges.json", json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("judges", "agreement")}, indent=1)[:4000])
    print(f"-> {out}/judges.json, {out}/judges.jpg ({report['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
