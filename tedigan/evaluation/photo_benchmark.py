"""Real photos: ``tedigan face-benchmark --photos DIR [--modes fast,faithful] --out DIR``.

Each photo is aligned, inverted and edited by one pipeline call per prompt and fidelity mode
(``pipe.edit(photo, prompt, align=True, fidelity=mode)``; a pipeline without fidelity modes makes the fast,
encoder-only edit), and measured at 256 px against its aligned crop:

* **reconstruction** (the inverted code rendered by the generator the edit used: ``out.reconstructions``, else
  ``pipe.decode(out.source_latents)``, with ``out.tuned_generators[0]`` if any): LPIPS (VGG); human's faceres
  distance and **same person** below the calibrated threshold (:mod:`tedigan.evaluation.identity_calibration`),
  the independent judge; the dlib descriptor's distance (face-api's port: it *is* the identity loss, so it is
  reported, never called the judge);
* **edit**: whether human's nets read what the prompt asks (``pipe.read_prompt``: e.g. "make them smile" asks
  expression = happy; success when it is the most probable value) and the probability of that value — for
  hair colour, eyewear, beard and lipstick, which human cannot read, the region labellers do
  (:mod:`tedigan.data.face_attributes`; weak: their accuracy is in the faces model card); faceres
  distance to the photo and same person after the edit; the dlib distance;
* **seconds**: wall time of the pipeline call (alignment, inversion, edit; per photo and prompt).

Writes ``photos.json``, ``photos.md`` (one table, the modes side by side in each cell), a grid per photo
(``grids/<photo>.png``; one row per mode: aligned photo | reconstruction | edit | the photo with the edit
pasted back, when the pipeline gives ``out.alignments``) and ``contact_sheet.png`` (every photo's grid).
The judges only measure: nothing here enters a loss or a label.
"""

from __future__ import annotations

import inspect
import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageDraw

from tedigan.data.face_attributes import ATTRIBUTES as REGION_ATTRIBUTES
from tedigan.fs import atomic_write_text

__all__ = [
    "FIDELITIES",
    "PHOTO_EXTENSIONS",
    "PROMPTS",
    "find_photos",
    "photo_report",
    "run_photo_benchmark",
    "supports_fidelity",
]

#: the edits asked of every photo (the issue names the smile)
PROMPTS: tuple[str, ...] = ("make them smile",)
#: the pipeline's fidelity modes: ``fast`` (encoder only), ``faithful`` (optimised / tuned inversion)
FIDELITIES = ("fast", "faithful")
PHOTO_EXTENSIONS = ("jpg", "jpeg", "png")
#: every measurement is made at this size (LPIPS of the reconstruction "at 256 px")
SIZE = 256
TILE = 256


def find_photos(sources: Sequence[str | Path]) -> list[Path]:
    """The photos named by ``sources``: files as given, folders by their jpg/png files (sorted). Raises
    ``ValueError`` naming a path that does not exist or a folder without photos."""
    from tedigan.data.folder import scan_images

    found: list[Path] = []
    for src in sources:
        path = Path(src)
        if path.is_dir():
            names = scan_images(path, PHOTO_EXTENSIONS)
            if not names:
                raise ValueError(f"no photos ({', '.join(PHOTO_EXTENSIONS)}) in {path}")
            found += [path / n for n in names]
        elif path.is_file():
            found.append(path)
        else:
            raise ValueError(f"{path}: no such file or folder")
    return list(dict.fromkeys(found))


def supports_fidelity(pipe: Any) -> bool:
    """Whether ``pipe.edit`` takes ``fidelity=`` (as a parameter or an ``EditOptions`` field)."""
    try:
        if "fidelity" in inspect.signature(pipe.edit).parameters:
            return True
    except (TypeError, ValueError):
        return False
    from tedigan.pipeline.outputs import EditOptions

    return "fidelity" in {f.name for f in fields(EditOptions)}


def _edit(pipe: Any, photo: Path, prompt: str, mode: str, align: bool) -> Any:
    if supports_fidelity(pipe):
        return pipe.edit(str(photo), prompt, align=align, fidelity=mode)
    if mode != "fast":
        raise ValueError(f"this pipeline has no fidelity modes: only 'fast' can be measured, not {mode!r}")
    return pipe.edit(str(photo), prompt, align=align)


def _reconstruction(pipe: Any, out: Any) -> Image.Image:
    """The inverted code rendered by the generator the edit used: ``out.reconstructions``, else the code
    decoded with the tuned generator (if any), else with the pipeline's."""
    recs = getattr(out, "reconstructions", None)
    if recs:
        return recs[0]
    tuned = getattr(out, "tuned_generators", None)
    return pipe.decode(out.source_latents[:1], generator=tuned[0] if tuned else None)[0]


def _t(img: Image.Image) -> torch.Tensor:
    from tedigan.data.io import to_tensor

    return to_tensor(img.convert("RGB"), SIZE)


def _pasted(photo: Path, out: Any, rec: Image.Image) -> Image.Image | None:
    alignments = getattr(out, "alignments", None)
    if not alignments or alignments[0] is None:
        return None
    from tedigan.data.io import load_image
    from tedigan.data.paste import paste_back

    return paste_back(load_image(photo), alignments[0], out.images[0], color_reference=rec)


class _Measure:
    """The judge (human: expression, faceres), the identity loss's net (dlib) and LPIPS, at 256 px."""

    def __init__(self, judge: Any, identity: Any, lpips: Any, threshold: float, regions: Any = None) -> None:
        self.judge, self.identity, self.lpips, self.threshold = judge, identity, lpips, float(threshold)
        self.regions = regions  # the region labellers (hair colour, eyewear, ...), for what human cannot read

    @torch.no_grad()
    def reads(self, x: torch.Tensor) -> tuple[dict[str, list[str]], dict[str, torch.Tensor], torch.Tensor]:
        j = self.judge.judge(x)
        return j.labels(self.judge.attribute_values), j.probs, j.embedding

    @torch.no_grad()
    def dlib(self, a: torch.Tensor, b: torch.Tensor) -> float | None:
        return None if self.identity is None else float(self.identity.distance(a, b)[0])

    def faceres(self, ea: torch.Tensor, eb: torch.Tensor) -> float:
        return float(self.judge.distance(ea, eb)[0])


def _asked(pipe: Any, prompt: str) -> dict[str, str]:
    try:
        return dict(pipe.read_prompt(prompt))
    except Exception:  # noqa: BLE001 - a prompt the vocabulary cannot read is scored by nothing, not fatal
        return {}


def _measure(
    m: _Measure, x: torch.Tensor, rec: torch.Tensor, edit: torch.Tensor, asked: dict[str, str]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(the photo's reading, the reconstruction's measures, the edit's) for one call."""
    labels, probs, emb = m.reads(torch.stack([x, rec, edit]))
    values = m.judge.attribute_values

    def p(attr: str, value: str, k: int) -> float:
        return float(probs[attr][k, values[attr].index(value)])

    photo = {a: labels[a][0] for a in ("expression", "gender") if a in labels}
    if "expression" in labels and "happy" in values.get("expression", []):
        photo["p_happy"] = round(p("expression", "happy", 0), 4)
    d_rec = m.faceres(emb[0:1], emb[1:2])
    recon = {
        "lpips": float(m.lpips(rec[None], x[None]).mean()),
        "faceres": d_rec,
        "same_person": d_rec < m.threshold,
        "dlib": m.dlib(rec[None], x[None]),
    }
    judged = {a: v for a, v in asked.items() if a in labels and v in values.get(a, [])}
    p_judged = {a: p(a, v, 2) for a, v in judged.items()}
    if m.regions is not None:  # the region labellers read what human's nets cannot
        models = m.regions.labeller.models
        by_region = {
            a: v for a, v in asked.items() if a not in judged and a in models and v in models[a].values
        }
        if by_region:
            region_probs = m.regions.probs(torch.stack([x, rec, edit]))
            for a, v in by_region.items():
                names = list(models[a].values)
                labels[a] = [names[int(k)] for k in region_probs[a].argmax(1)]
                p_judged[a] = float(region_probs[a][2, names.index(v)])
            judged.update(by_region)
    d_edit = m.faceres(emb[0:1], emb[2:3])
    edit_row = {
        "asked": asked,
        "success": all(labels[a][2] == v for a, v in judged.items()) if judged else None,
        "p_asked": min(p_judged.values()) if judged else None,
        "already": all(labels[a][0] == v for a, v in judged.items()) if judged else None,
        "reads": {a: labels[a][2] for a in judged},
        "faceres": d_edit,
        "same_person": d_edit < m.threshold,
        "dlib": m.dlib(edit[None], x[None]),
        "lpips_to_photo": float(m.lpips(edit[None], x[None]).mean()),
    }
    return photo, recon, edit_row


def _fit(img: Image.Image, height: int = TILE) -> Image.Image:
    w = max(1, round(img.width * height / img.height))
    return img.convert("RGB").resize((w, height), Image.Resampling.LANCZOS)


def _row(tiles: list[Image.Image], gap: int = 2) -> Image.Image:
    width = sum(t.width for t in tiles) + gap * (len(tiles) - 1)
    row = Image.new("RGB", (width, max(t.height for t in tiles)), (255, 255, 255))
    x = 0
    for t in tiles:
        row.paste(t, (x, 0))
        x += t.width + gap
    return row


def _stack(rows: list[Image.Image], gap: int = 2, labels: Sequence[str] = ()) -> Image.Image:
    width = max(r.width for r in rows)
    sheet = Image.new("RGB", (width, sum(r.height for r in rows) + gap * (len(rows) - 1)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    y = 0
    for k, r in enumerate(rows):
        sheet.paste(r, (0, y))
        if k < len(labels) and labels[k]:
            draw.rectangle((0, y, 6 * len(labels[k]) + 6, y + 13), fill=(0, 0, 0))
            draw.text((3, y + 1), labels[k], fill=(255, 255, 255))
        y += r.height + gap
    return sheet


def run_photo_benchmark(
    pipe: Any,
    photos: Sequence[str | Path],
    out: str | Path,
    modes: Sequence[str] = FIDELITIES,
    prompts: Sequence[str] = PROMPTS,
    *,
    judge: Any = None,
    identity: Any = None,
    lpips: Any = None,
    threshold: float | None = None,
    align: bool = True,
    progress: bool = True,
    regions: Any = None,
) -> dict[str, Any]:
    """Measure every photo in every mode (see the module docs); write the report into ``out`` and return it.

    ``judge`` (default human's emotion + faceres nets), ``identity`` (default the dlib descriptor; ``False``:
    none), ``lpips`` (default VGG) and ``threshold`` (default the calibrated one,
    :func:`tedigan.evaluation.identity_calibration.load_faceres_threshold`) can be given (tests). ``regions``:
    the region labellers that read a prompt's hair colour, eyewear, beard or lipstick (default: loaded when a
    prompt asks one; ``False``: none)."""
    from tqdm.auto import tqdm

    from tedigan.evaluation.identity_calibration import THRESHOLD_FILE, load_faceres_threshold

    out = Path(out)
    (out / "grids").mkdir(parents=True, exist_ok=True)
    if judge is None:
        from tedigan.models.named import face_judge

        judge = face_judge("human", pipe.device)
    if identity is None:
        from tedigan.losses.identity import FaceIdentity

        identity = FaceIdentity().to(pipe.device)
    if lpips is None:
        from tedigan.losses.perceptual import LPIPS

        lpips = LPIPS("vgg").to(pipe.device)
    calibrated = threshold is None
    if threshold is None:
        threshold = load_faceres_threshold()
    asked = {p: _asked(pipe, p) for p in prompts}
    if regions is None and any(a in REGION_ATTRIBUTES for a_v in asked.values() for a in a_v):
        from tedigan.models.attribute_reader import RegionAttributeReader

        regions = RegionAttributeReader.from_package()
    m = _Measure(judge, None if identity is False else identity, lpips, threshold, regions or None)
    rows: list[dict[str, Any]] = []
    grids: list[Image.Image] = []
    start = time.perf_counter()
    for path in tqdm([Path(p) for p in photos], desc="photos", disable=not progress):
        row: dict[str, Any] = {"photo": path.name, "path": str(path), "modes": {}}
        grid_rows: list[Image.Image] = []
        try:
            for mode in modes:
                res: dict[str, Any] = {"edits": {}, "seconds": {}}
                tiles: list[Image.Image] = []
                for prompt in prompts:
                    t0 = time.perf_counter()
                    o = _edit(pipe, path, prompt, mode, align)
                    res["seconds"][prompt] = time.perf_counter() - t0
                    src, rec, edit = o.source_images[0], _reconstruction(pipe, o), o.images[0]
                    photo, recon, edit_row = _measure(m, _t(src), _t(rec), _t(edit), asked[prompt])
                    row.setdefault("reads", photo)
                    res.setdefault("reconstruction", recon)  # the inversion does not depend on the prompt
                    res["edits"][prompt] = edit_row
                    if not tiles:
                        tiles = [_fit(src), _fit(rec)]
                    tiles.append(_fit(edit))
                    pasted = _pasted(path, o, rec)
                    if pasted is not None:
                        tiles.append(_fit(pasted))
                        res["edits"][prompt]["pasted_back"] = True
                res["seconds_total"] = sum(res["seconds"].values())
                row["modes"][mode] = res
                grid_rows.append(_row(tiles))
        except Exception as err:  # noqa: BLE001 - a photo without a face is reported, not fatal
            row["error"] = " ".join(str(err).split())
        rows.append(row)
        if grid_rows:
            grid = _stack(grid_rows, labels=list(modes))
            grid.save(out / "grids" / f"{path.stem}.png")
            grids.append(grid)
    result: dict[str, Any] = {
        "judge": "human: emotion (expression) and faceres (identity); measuring only, never a loss or a label",
        "identity_loss_net": "dlib descriptor (face-api port): the identity loss's own net, reported beside the "
        "judge, never called the judge; same person below 0.6",
        "same_person_threshold": float(threshold),
        "threshold_source": THRESHOLD_FILE.name if calibrated else "given",
        "human_default_threshold": 10.0,
        "size": SIZE,
        "modes": list(modes),
        "prompts": list(prompts),
        "asked": asked,
        "photos": rows,
        "summary": _summary(rows, modes, prompts),
        "seconds": round(time.perf_counter() - start, 1),
    }
    atomic_write_text(out / "photos.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(out / "photos.md", photo_report(result))
    if grids:
        scale = 0.5
        small = [
            g.resize((round(g.width * scale), round(g.height * scale)), Image.Resampling.LANCZOS)
            for g in grids
        ]
        _stack(small, gap=4, labels=[r["photo"] for r in rows if r["modes"]]).save(out / "contact_sheet.png")
    return result


def _mean(values: list[float | None]) -> float | None:
    v = [x for x in values if x is not None]
    return sum(v) / len(v) if v else None


def _share(values: list[bool | None]) -> list[int]:
    v = [x for x in values if x is not None]
    return [sum(bool(x) for x in v), len(v)]


def _summary(rows: list[dict[str, Any]], modes: Sequence[str], prompts: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mode in modes:
        done = [r["modes"][mode] for r in rows if mode in r["modes"] and "reconstruction" in r["modes"][mode]]
        s: dict[str, Any] = {
            "num": len(done),
            "lpips": _mean([d["reconstruction"]["lpips"] for d in done]),
            "faceres": _mean([d["reconstruction"]["faceres"] for d in done]),
            "same_person": _share([d["reconstruction"]["same_person"] for d in done]),
            "dlib": _mean([d["reconstruction"]["dlib"] for d in done]),
            "seconds_median": statistics.median([d["seconds_total"] for d in done]) if done else None,
            "edits": {},
        }
        for p in prompts:
            e = [d["edits"][p] for d in done if p in d["edits"]]
            s["edits"][p] = {
                "success": _share([x["success"] for x in e]),
                "success_not_already": _share([x["success"] for x in e if x["already"] is False]),
                "p_asked": _mean([x["p_asked"] for x in e]),
                "faceres": _mean([x["faceres"] for x in e]),
                "same_person": _share([x["same_person"] for x in e]),
                "dlib": _mean([x["dlib"] for x in e]),
            }
        out[mode] = s
    return out


def _cell(values: list[Any], fmt: str) -> str:
    def one(v: Any) -> str:
        if v is None:
            return "–"
        if isinstance(v, bool):
            return "yes" if v else "no"
        if isinstance(v, list):  # a share [k, n]
            return f"{v[0]}/{v[1]}"
        return format(v, fmt)

    return " / ".join(one(v) for v in values)


def photo_report(r: dict[str, Any]) -> str:
    """``photos.md``: one table, one row per photo (and a mean row), each cell the modes side by side."""
    modes, prompts = r["modes"], r["prompts"]
    side = " / ".join(modes)
    lines = [
        "# Faces benchmark: real photos",
        "",
        f"Modes in every cell: **{side}**. Judge: {r['judge']}. Same person: faceres distance below "
        f"{r['same_person_threshold']:g} ({r['threshold_source']}; human's own cut-off is "
        f"{r['human_default_threshold']:g}, which accepts other people on real photos). dlib: "
        f"{r['identity_loss_net']}. Everything at {r['size']} px against the aligned photo; seconds: one pipeline "
        "call (align, invert, edit).",
        "",
    ]
    head = ["photo", "reads", "LPIPS", "faceres", "same person", "dlib"]
    for p in prompts:
        what = ", ".join(f"{a} {v}" for a, v in r["asked"].get(p, {}).items()) or "nothing judged"
        head += [f"{p!r}: {what} (p)", "faceres after", "same after"]
    head.append("s")
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in r["photos"]:
        if "error" in row and not row["modes"]:
            lines.append(f"| {row['photo']} | error: {row['error']} |" + " |" * (len(head) - 2))
            continue
        ms = [row["modes"].get(m, {}) for m in modes]
        rec = [x.get("reconstruction", {}) for x in ms]
        reads = row.get("reads", {})
        cells = [
            row["photo"],
            " ".join(str(reads[a]) for a in ("expression", "gender") if a in reads),
            _cell([x.get("lpips") for x in rec], ".3f"),
            _cell([x.get("faceres") for x in rec], ".2f"),
            _cell([x.get("same_person") for x in rec], ""),
            _cell([x.get("dlib") for x in rec], ".3f"),
        ]
        for p in prompts:
            e = [x.get("edits", {}).get(p, {}) for x in ms]
            ok = _cell([x.get("success") for x in e], "")
            cells += [
                f"{ok} ({_cell([x.get('p_asked') for x in e], '.2f')})",
                _cell([x.get("faceres") for x in e], ".2f"),
                _cell([x.get("same_person") for x in e], ""),
            ]
        cells.append(_cell([x.get("seconds_total") for x in ms], ".1f"))
        lines.append("| " + " | ".join(cells) + " |")
    s = [r["summary"][m] for m in modes]
    cells = [
        f"**all ({_cell([x['num'] for x in s], 'd')})**",
        "",
        _cell([x["lpips"] for x in s], ".3f"),
        _cell([x["faceres"] for x in s], ".2f"),
        _cell([x["same_person"] for x in s], ""),
        _cell([x["dlib"] for x in s], ".3f"),
    ]
    for p in prompts:
        e = [x["edits"][p] for x in s]
        cells += [
            f"{_cell([x['success'] for x in e], '')} ({_cell([x['p_asked'] for x in e], '.2f')}); not already "
            f"{_cell([x['success_not_already'] for x in e], '')}",
            _cell([x["faceres"] for x in e], ".2f"),
            _cell([x["same_person"] for x in e], ""),
        ]
    cells.append(_cell([x["seconds_median"] for x in s], ".1f") + " (median)")
    lines.append("| " + " | ".join(cells) + " |")
    errors = [row for row in r["photos"] if "error" in row and row["modes"]]
    for row in errors:
        lines.append(f"\n{row['photo']}: stopped after {', '.join(row['modes'])}: {row['error']}")
    already = [
        f"{row['photo']} ({p!r})"
        for row in r["photos"]
        for p in prompts
        if any(row["modes"].get(m, {}).get("edits", {}).get(p, {}).get("already") for m in modes)
    ]
    lines += [
        "",
        "LPIPS / faceres / same person / dlib: the reconstruction (the inverted code rendered by the generator the "
        "edit used) against the aligned photo. The prompt's column: whether human's emotion/faceres nets read "
        "the asked value on the edit (its probability in brackets); faceres after / same after: the edit against "
        "the photo.",
    ]
    if already:
        lines.append(f"The photo already reads as asked (success says little there): {', '.join(already)}.")
    lines += [
        "",
        "Grids (`grids/<photo>.png`, one row per mode): aligned photo | reconstruction | edit per prompt (| the "
        "photo with the edit pasted back, where the pipeline gives alignments); `contact_sheet.png`: all of them.",
        "",
    ]
    return "\n".join(lines)
