"""Faces benchmark: ``tedigan face-benchmark --model DIR --data data/faces256 --out DIR``.

Edits of held-out generated faces (the data set's ``test`` split: faces and codes no stage trained on) and of
real photos, scored by judges that neither the training data nor any optimisation used: **human**'s emotion
and faceres nets (expression, gender, age, identity; :func:`tedigan.models.named.face_judge`). face-api
labelled the training faces, so it is not asked.

For every source, each edit of :data:`EDITS` that applies to it (the independent judge's reading of the
source decides: only non-smiling faces are asked to smile, and so on) is made with one of its phrasings, in
turn, so every phrasing is measured. Per edit (JSON + markdown report + grid):

* ``success``: the judge reads the asked change on the edit (expression or gender: the asked value is the
  most probable; older / younger: the judged age moved at least ``AGE_STEP`` years the asked way);
* ``same_person``: share of edits the identity net (faceres) still calls the source's person (distance below
  the threshold calibrated on real photos, :mod:`tedigan.evaluation.identity_calibration`; human's own 10
  accepts other people), and the mean distance;
* ``kept``: share of the attributes not asked for that the judge reads as on the source (expression and
  gender by label, age within ``AGE_KEEP`` years);
* ``lpips_to_source`` and ``seconds_per_edit`` (encoder-only: one batch per prompt);

each for every edit mode asked (``mix``: TediGAN's layer mixing; ``delta``: a move along the text direction).

Plus the inversion of the held-out faces and of the real photos (LPIPS to the input at 256 px, identity
distance and same-person share), and text-to-image: attributes the prompt names read back by the judge, and
diversity (mean pairwise LPIPS of the samples of one prompt).
"""

from __future__ import annotations

import itertools
import json
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from tedigan.data.io import to_tensor
from tedigan.domains import DOMAINS
from tedigan.fs import atomic_write_text

__all__ = ["AGE_KEEP", "AGE_STEP", "EDITS", "T2I_PROMPTS", "run_face_benchmark"]

#: (name, attribute, value, which sources apply, phrasings)
EDITS: list[tuple[str, str, str, str, tuple[str, ...]]] = [
    ("smile", "expression", "happy", "not happy", ("make the person smile", "with a big smile")),
    ("stop smiling", "expression", "neutral", "happy", ("stop smiling", "a neutral expression")),
    ("older", "age_group", "old", "under 45", ("make the person older", "an elderly person")),
    ("younger", "age_group", "young", "over 30", ("make the person younger", "a young person")),
    ("to woman", "gender", "female", "male", ("turn this person into a woman", "as a woman")),
    ("to man", "gender", "male", "female", ("turn this person into a man", "as a man")),
]
#: years the judged age must move for an older / younger edit to count, and may move for others to be kept
AGE_STEP, AGE_KEEP = 5.0, 8.0
T2I_PROMPTS = (
    "a smiling woman",
    "an old man",
    "a young man with a neutral expression",
    "a happy child",
    "a serious middle-aged woman",
    "an elderly lady who is smiling",
)


def _applies(rule: str, src: dict[str, Any]) -> bool:
    return {
        "not happy": src["expression"] != "happy",
        "happy": src["expression"] == "happy",
        "under 45": src["age"] < 45,
        "over 30": src["age"] > 30,
        "male": src["gender"] == "male",
        "female": src["gender"] == "female",
    }[rule]


@torch.no_grad()
def _read(judge: Any, images: torch.Tensor, batch: int = 16) -> list[dict[str, Any]]:
    """The judge's reading of each image: expression, gender (labels), age (years), embedding."""
    out = []
    for i in range(0, len(images), batch):
        j = judge.judge(images[i : i + batch])
        labels = j.labels(judge.attribute_values)
        for k in range(len(j.values["age"])):
            out.append(
                {
                    "expression": labels["expression"][k],
                    "gender": labels["gender"][k],
                    "age": float(j.values["age"][k]),
                    "embedding": j.embedding[k],
                }
            )
    return out


def _success(name: str, attribute: str, value: str, src: dict, edit: dict) -> bool:
    if attribute == "age_group":
        moved = edit["age"] - src["age"]
        return moved >= AGE_STEP if name == "older" else moved <= -AGE_STEP
    return edit[attribute] == value


def _kept(attribute: str, src: dict, edit: dict) -> list[bool]:
    kept = [edit[a] == src[a] for a in ("expression", "gender") if a != attribute]
    if attribute != "age_group":
        kept.append(abs(edit["age"] - src["age"]) <= AGE_KEEP)
    return kept


def _per_edit(rows: list[dict[str, Any]], threshold: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, *_ in EDITS:
        mine = [r for r in rows if r["edit"] == name]
        if not mine:
            continue
        kept = [k for r in mine for k in r["kept"]]
        out[name] = {
            "num": len(mine),
            "prompts": sorted({r["prompt"] for r in mine}),
            "success": sum(r["success"] for r in mine) / len(mine),
            "same_person": sum(r["identity_distance"] < threshold for r in mine) / len(mine),
            "identity_distance": sum(r["identity_distance"] for r in mine) / len(mine),
            "kept": sum(kept) / max(1, len(kept)),
            "lpips_to_source": sum(r["lpips_to_source"] for r in mine) / len(mine),
            "seconds_per_edit": sum(r["seconds"] for r in mine) / len(mine),
        }
    return out


def _pairwise_lpips(lpips: Any, images: torch.Tensor) -> float:
    pairs = list(itertools.combinations(range(len(images)), 2))
    if not pairs:
        return float("nan")
    a = torch.stack([images[i] for i, _ in pairs])
    b = torch.stack([images[j] for _, j in pairs])
    return float(lpips(a, b).mean())


def _tensor(pils: Sequence[Any], resolution: int) -> torch.Tensor:
    return torch.stack([to_tensor(p, resolution) for p in pils])


def run_face_benchmark(
    pipe: Any,
    data: str | Path,
    out: str | Path,
    num: int = 24,
    photos: Sequence[str | Path] = (),
    t2i_samples: int = 4,
    progress: bool = True,
    modes: Sequence[str] = ("mix", "delta"),
    opt_steps: int = 0,
    num_optimized: int = 2,
    strength: float = 1.0,
) -> dict[str, Any]:
    """Run the benchmark (see the module docs); writes ``face_benchmark.json``, ``face_benchmark.md`` and
    ``edits.png`` into ``out`` and returns the results."""
    from tedigan.data import make_dataset
    from tedigan.evaluation.identity_calibration import load_faceres_threshold
    from tedigan.losses.perceptual import LPIPS
    from tedigan.models.named import face_judge

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    res = pipe.resolution
    judge = face_judge(DOMAINS["faces"].benchmark_judge, pipe.device)
    lpips = LPIPS("vgg").to(pipe.device)
    threshold = load_faceres_threshold()  # calibrated on real photos (human's own 10 accepts other people)
    test = make_dataset("faces", data, split="test", resolution=res, with_codes=False)
    n = min(num, len(test))
    sources = torch.stack([test[i]["image"] for i in range(n)])
    start = time.perf_counter()
    inv = pipe.invert(sources, fidelity="fast")
    invert_seconds = (time.perf_counter() - start) / n
    recon = _tensor(inv.images, res)
    src_read, rec_read = _read(judge, sources), _read(judge, recon)

    def identity(a: list[dict], b: list[dict]) -> torch.Tensor:
        return torch.stack([judge.distance(x["embedding"], y["embedding"]) for x, y in zip(a, b)])

    def inversion_row(x: torch.Tensor, r: torch.Tensor, xr: list, rr: list) -> dict[str, float]:
        d = identity(xr, rr)
        return {
            "num": len(x),
            "lpips": float(lpips(r, x).mean()),
            "identity_distance": float(d.mean()),
            "same_person": float((d < threshold).float().mean()),
        }

    results: dict[str, Any] = {
        "judge": "human (emotion + faceres; never used by training or optimisation)",
        "strength": strength,
        "same_person_threshold": threshold,
        "human_default_threshold": float(judge.same_person_threshold),
        "num_sources": n,
        "inversion": {
            **inversion_row(sources, recon, src_read, rec_read),
            "seconds_per_image": invert_seconds,
        },
    }

    # ---- edits: every applicable edit of every source, phrasings in turn, one batch per prompt
    jobs: dict[str, list[int]] = defaultdict(list)
    turn: dict[str, int] = defaultdict(int)
    for i, src in enumerate(src_read):
        for name, _, _, rule, phrasings in EDITS:
            if _applies(rule, src):
                jobs[phrasings[turn[name] % len(phrasings)]].append(i)
                turn[name] += 1
    by_prompt = {p: e for e in EDITS for p in e[4]}
    grid: dict[str, tuple[int, dict[str, torch.Tensor]]] = {}
    results["edits"], results["success_per_prompt"] = {}, {}
    for mode in modes:
        rows: list[dict[str, Any]] = []
        for prompt, idx in tqdm(jobs.items(), desc=f"face edits ({mode})", disable=not progress):
            name, attribute, value, _, _ = by_prompt[prompt]
            t0 = time.perf_counter()
            edited = pipe.edit(
                sources[idx], prompt, progress=False, mode=mode, strength=strength, fidelity="fast"
            )
            seconds = (time.perf_counter() - t0) / len(idx)
            images = _tensor(edited.images, res)
            reads = _read(judge, images)
            d = identity([src_read[i] for i in idx], reads)
            lp = lpips(images, sources[idx]).reshape(-1)
            for k, i in enumerate(idx):
                rows.append(
                    {
                        "edit": name,
                        "prompt": prompt,
                        "source": i,
                        "success": _success(name, attribute, value, src_read[i], reads[k]),
                        "kept": _kept(attribute, src_read[i], reads[k]),
                        "identity_distance": float(d[k]),
                        "lpips_to_source": float(lp[k]),
                        "seconds": seconds,
                    }
                )
            first, shown = grid.setdefault(name, (idx[0], {}))
            if first == idx[0] and mode not in shown:  # the same source in every mode's column
                shown[mode] = images[0]
        results["edits"][mode] = _per_edit(rows, threshold)
        results["success_per_prompt"][mode] = {
            p: sum(r["success"] for r in rows if r["prompt"] == p) / len(idx)
            for p, idx in jobs.items()
            if idx
        }

    # ---- instance-level optimisation on a few edits (slow on a CPU: its cost is the point of measuring it)
    if opt_steps > 0:
        rows = []
        for prompt, idx in list(jobs.items())[:num_optimized]:
            name, attribute, value, _, _ = by_prompt[prompt]
            i = idx[0]
            t0 = time.perf_counter()
            edited = pipe.edit(
                sources[i : i + 1], prompt, steps=opt_steps, progress=progress, mode=modes[0], fidelity="fast"
            )
            seconds = time.perf_counter() - t0
            images = _tensor(edited.images, res)
            (read,) = _read(judge, images)
            d = float(identity([src_read[i]], [read])[0])
            rows.append(
                {
                    "edit": name,
                    "prompt": prompt,
                    "success": _success(name, attribute, value, src_read[i], read),
                    "kept": _kept(attribute, src_read[i], read),
                    "identity_distance": d,
                    "seconds": seconds,
                    "lpips_to_source": float(lpips(images, sources[i : i + 1]).mean()),
                }  # fmt: skip
            )
        results["optimized"] = {"steps": opt_steps, "mode": modes[0], "edits": rows}
        k = min(num_optimized, n)
        t0 = time.perf_counter()
        inv_opt = pipe.invert(sources[:k], steps=opt_steps, progress=progress, fidelity="fast")
        seconds = (time.perf_counter() - t0) / k
        rec_opt = _tensor(inv_opt.images, res)
        results["inversion_optimized"] = {
            "steps": opt_steps,
            **inversion_row(sources[:k], rec_opt, src_read[:k], _read(judge, rec_opt)),
            "encoder_only_lpips_same_faces": float(lpips(recon[:k], sources[:k]).mean()),
            "seconds_per_image": seconds,
        }

    # ---- real photos: aligned, inverted, judged for identity
    photo_rows = []
    for path in photos:
        try:
            p_inv = pipe.invert(str(path), align=True, fidelity="fast")
        except Exception as err:  # noqa: BLE001 - a photo without a face is reported, not fatal
            photo_rows.append({"photo": str(path), "error": " ".join(str(err).split())})
            continue
        x, r = _tensor(p_inv.source_images, res), _tensor(p_inv.images, res)
        photo_rows.append({"photo": Path(path).name, **inversion_row(x, r, _read(judge, x), _read(judge, r))})
    results["photos"] = photo_rows

    # ---- text to image: named attributes read back, and diversity
    t2i: dict[str, Any] = {}
    if pipe.text_encoder is not None:
        for prompt in T2I_PROMPTS:
            gen = pipe.generate(prompt, num_images=t2i_samples, seed=0, progress=False)
            images = _tensor(gen.images, res)
            reads = _read(judge, images)
            wanted = pipe.read_prompt(prompt)
            hits = []
            for rd in reads:
                for a, v in wanted.items():
                    if a == "age_group":
                        from tedigan.data.faces import age_group

                        hits.append(age_group(rd["age"]) == v)
                    else:
                        hits.append(rd[a] == v)
            t2i[prompt] = {
                "accuracy": sum(hits) / max(1, len(hits)),
                "diversity": _pairwise_lpips(lpips, images),
            }
        results["text_to_image"] = {
            "prompts": t2i,
            "accuracy": sum(v["accuracy"] for v in t2i.values()) / len(t2i),
            "diversity": sum(v["diversity"] for v in t2i.values()) / len(t2i),
        }
    results["seconds"] = round(time.perf_counter() - start, 1)

    from tedigan.training.loop import save_image_grid

    if grid:
        tiles = [torch.stack([sources[i], recon[i], *(imgs[m] for m in modes)]) for i, imgs in grid.values()]
        save_image_grid(torch.cat(tiles), out / "edits.png", nrow=2 + len(modes))
    atomic_write_text(out / "face_benchmark.json", json.dumps(results, indent=2) + "\n")
    atomic_write_text(out / "face_benchmark.md", _report(results, list(grid), modes))
    return results


def _report(r: dict[str, Any], grid_rows: list[str], modes: Sequence[str] = ()) -> str:
    inv = r["inversion"]
    lines = [
        "# Faces benchmark",
        "",
        f"Judge: {r['judge']}; same person below faceres distance {r['same_person_threshold']}; edit strength "
        f"{r['strength']}.",
        "",
        f"Inversion of {inv['num']} held-out generated faces: LPIPS {inv['lpips']:.3f}, identity distance "
        f"{inv['identity_distance']:.2f}, same person {inv['same_person']:.0%}, {inv['seconds_per_image']:.2f} s.",
        "",
        "| mode | edit | n | success | same person | kept | LPIPS to source | s / edit | prompts |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for mode, edits in r["edits"].items():
        for name, e in edits.items():
            lines.append(
                f"| {mode} | {name} | {e['num']} | {e['success']:.2f} | {e['same_person']:.2f} | {e['kept']:.2f} | "
                f"{e['lpips_to_source']:.3f} | {e['seconds_per_edit']:.2f} | {'; '.join(e['prompts'])} |"
            )
    if r["photos"]:
        lines += ["", "| photo | LPIPS | identity distance | same person |", "|---|---|---|---|"]
        for p in r["photos"]:
            if "error" in p:
                lines.append(f"| {p['photo']} | {p['error']} | | |")
            else:
                lines.append(
                    f"| {p['photo']} | {p['lpips']:.3f} | {p['identity_distance']:.2f} | {p['same_person']:.0%} |"
                )
    if "inversion_optimized" in r:
        o = r["inversion_optimized"]
        lines += [
            "",
            f"Inversion with {o['steps']} optimisation steps ({o['num']} faces): LPIPS {o['lpips']:.3f} (encoder only "
            f"{o['encoder_only_lpips_same_faces']:.3f} on the same faces), same person {o['same_person']:.0%}, "
            f"{o['seconds_per_image']:.0f} s per face.",
        ]
    if "optimized" in r:
        o = r["optimized"]
        lines += ["", f"Instance-level optimisation ({o['steps']} steps, {o['mode']}):"]
        for e in o["edits"]:
            lines.append(
                f"- {e['prompt']}: success {e['success']}, identity distance {e['identity_distance']:.2f}, "
                f"LPIPS to source {e['lpips_to_source']:.3f}, {e['seconds']:.0f} s"
            )
    if "text_to_image" in r:
        t = r["text_to_image"]
        lines += ["", f"Text to image: accuracy {t['accuracy']:.2f}, diversity {t['diversity']:.3f}."]
    columns = " | ".join(["source", "reconstruction", *(f"edit ({m})" for m in modes)])
    lines += ["", f"edits.png rows ({columns}): {', '.join(grid_rows)}", ""]
    return "\n".join(lines)
