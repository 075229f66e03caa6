"""The generated face data set: seeds → W+ codes → photo-real faces, judged and captioned.

``tedigan face-data --num 10000 --out data/faces256`` renders faces with the FFHQ
generator (MobileStyleGAN; research / non-commercial weights), a share of them style-mixed so the codes cover
W+ and not only W, lets the *training* judge (face-api: expression, age, gender) label them, and writes ten
captions per face from the face vocabulary (:mod:`tedigan.data.faces`). The folder is a tedigan image
folder (``make_dataset("folder", root)`` reads images and captions) plus what the later stages need:

- ``images/ID.png``, ``captions.jsonl`` (``file_name``, ``captions``), ``metadata.jsonl`` (per face: split,
  seed, mixing, labels, the judge's age and probabilities);
- ``codes.safetensors``: ``ws`` ``[N, 23, 512]`` (float16), the true W+ code of every face, for the
  encoder's latent loss;
- ``vocabulary.json`` (the face vocabulary) and ``info.json`` (settings, speed), written last;
- ``parts/``: the resumable chunks the files above are merged from (a killed build goes on where it stopped).

Sample *i* depends only on ``(seed, i)``; splits are index ranges (80/10/10).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from tedigan.data.avatars import split_ranges
from tedigan.data.faces import FACE_VOCABULARY, age_group, face_captions
from tedigan.data.io import to_pil
from tedigan.fs import atomic_write, atomic_write_text

__all__ = ["build_face_dataset"]


def _codes(G, seeds: list[int], psi: float, mixing_prob: float) -> tuple:
    """W+ codes of ``seeds`` (NVlabs' seed convention), each style-mixed with probability ``mixing_prob`` with
    the code of seed + 10⁹ from a random crossover site on (a share of the sites from a second face). Each
    face's draws come from its own seed, so a face does not depend on the batch it was made in."""
    from tedigan.models.latents import seed_latents

    ws = seed_latents(G, seeds, psi)
    draws = [np.random.RandomState((s + 2 * 10**9) % 2**32) for s in seeds]
    mixed = np.array([d.random_sample() < mixing_prob for d in draws])
    cut = np.array([d.randint(1, G.num_ws) if m else G.num_ws for d, m in zip(draws, mixed)])
    if mixed.any():
        other = seed_latents(G, [s + 10**9 for s in seeds], psi)
        sites = torch.arange(G.num_ws)[None, :, None] >= torch.from_numpy(cut)[:, None, None]
        ws = torch.where(sites.to(ws.device), other, ws)
    return ws, cut


def _render_chunk(
    G, judge, idx: list[int], seed: int, psi: float, mixing_prob: float, batch_size: int, out: Path, bar
) -> tuple[list[dict], torch.Tensor]:
    """Render, judge and caption faces ``idx`` (images written as they come); returns rows and W+ codes."""
    rows, codes = [], []
    for lo in range(0, len(idx), batch_size):
        batch = idx[lo : lo + batch_size]
        seeds = [seed * 10**7 + i for i in batch]
        with torch.no_grad():
            ws, cut = _codes(G, seeds, psi, mixing_prob)
            images = G.synthesis(ws, resolution=G.resolution).clamp(-1, 1)
            verdict = judge.judge(images)
        expr = verdict.probs["expression"].cpu()
        gender = verdict.probs["gender"].cpu()
        ages = verdict.values["age"].cpu()
        for k, (i, img) in enumerate(zip(batch, to_pil(images.float().cpu()))):
            sid = f"{i:06d}"
            atomic_write(out / "images" / f"{sid}.png", lambda tmp, img=img: img.save(tmp))
            labels = {
                "expression": judge.attribute_values["expression"][int(expr[k].argmax())],
                "gender": judge.attribute_values["gender"][int(gender[k].argmax())],
                "age_group": age_group(float(ages[k])),
            }
            rows.append(
                {
                    "id": sid,
                    "file_name": f"images/{sid}.png",
                    "seed": seeds[k],
                    "mixed_from_site": int(cut[k]) if int(cut[k]) < G.num_ws else None,
                    "attributes": labels,
                    "age": round(float(ages[k]), 2),
                    "expression_probs": [round(float(p), 4) for p in expr[k]],
                    "gender_probs": [round(float(p), 4) for p in gender[k]],
                    "captions": face_captions(labels, f"{seed}:{i}"),
                }
            )
        codes.append(ws.detach().to(torch.float16).cpu())
        bar.update(len(batch))
    return rows, torch.cat(codes)


def build_face_dataset(
    out: str | Path,
    num: int,
    resolution: int = 256,
    seed: int = 0,
    psi: float = 0.8,
    mixing_prob: float = 0.5,
    batch_size: int = 8,
    device: str = "cpu",
    progress: bool = True,
    chunk: int = 256,
) -> Path:
    """Render, judge and caption ``num`` faces into ``out`` (see the module docs); returns ``out``.

    Work is kept in chunks of ``chunk`` faces under ``out/parts/`` (rows + codes, written atomically once a
    chunk is whole), so a killed build resumes where it stopped: call it again with the same settings. Other
    settings than those the parts were made with are refused (start a new folder, or remove ``parts/``)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    from tedigan.models.ports.faceapi import FaceApiJudge
    from tedigan.models.ports.mobilestylegan import MobileStyleGAN

    out = Path(out)
    parts = out / "parts"
    settings = {
        "resolution": resolution,
        "seed": seed,
        "truncation_psi": psi,
        "mixing_prob": mixing_prob,
        "chunk": chunk,
    }
    if (parts / "settings.json").exists():
        made = json.loads((parts / "settings.json").read_text())
        if made != settings:
            raise ValueError(
                f"{parts} was made with {made}, not {settings}: use those settings to resume, or another folder"
            )
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "info.json").unlink(missing_ok=True)  # a rebuilt folder is unfinished until info.json is back
    atomic_write_text(parts / "settings.json", json.dumps(settings) + "\n")

    def part(lo: int) -> tuple[Path, Path]:
        return parts / f"{lo:07d}.safetensors", parts / f"{lo:07d}.jsonl"

    chunks = [list(range(lo, min(num, lo + chunk))) for lo in range(0, num, chunk)]
    todo = [
        c
        for c in chunks
        if not all(f.exists() for f in part(c[0])) or len(_read_rows(part(c[0])[1])) != len(c)
    ]
    G = judge = None
    bar = tqdm(total=num, initial=num - sum(map(len, todo)), desc="faces", unit="face", disable=not progress)
    for idx in todo:
        if G is None:
            G = MobileStyleGAN.from_package(device=device, resolution=resolution)
            judge = FaceApiJudge.from_package(heads=("expression", "age_gender")).to(device)
        start = time.perf_counter()
        rows, ws = _render_chunk(G, judge, idx, seed, psi, mixing_prob, batch_size, out, bar)
        meta = {"seconds": f"{time.perf_counter() - start:.3f}"}
        codes_file, rows_file = part(idx[0])
        atomic_write(
            codes_file,
            lambda tmp, ws=ws, meta=meta: save_file({"ws": ws.contiguous()}, str(tmp), metadata=meta),
        )
        atomic_write_text(rows_file, "".join(json.dumps(r) + "\n" for r in rows))  # the chunk's marker, last
    bar.close()

    splits = split_ranges(num)
    split_of = {i: name for name, r in splits.items() for i in r}
    rows, codes, seconds = [], [], 0.0
    for idx in chunks:
        codes_file, rows_file = part(idx[0])
        with safe_open(str(codes_file), "pt") as fh:
            codes.append(fh.get_tensor("ws")[: len(idx)])
            seconds += float(fh.metadata()["seconds"])
        rows += [{**r, "split": split_of[int(r["id"])]} for r in _read_rows(rows_file)[: len(idx)]]
    ws_all = torch.cat(codes).contiguous()
    atomic_write(out / "codes.safetensors", lambda tmp: save_file({"ws": ws_all}, str(tmp)))
    atomic_write_text(out / "metadata.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    captions = "".join(
        json.dumps({"file_name": r["file_name"], "captions": r["captions"]}) + "\n" for r in rows
    )
    atomic_write_text(out / "captions.jsonl", captions)
    FACE_VOCABULARY.save(out)
    counts = {a: {} for a in ("expression", "gender", "age_group")}
    for r in rows:
        for a, v in r["attributes"].items():
            counts[a][v] = counts[a].get(v, 0) + 1
    info = {
        "num": num,
        "resolution": resolution,
        "seed": seed,
        "truncation_psi": psi,
        "mixing_prob": mixing_prob,
        "generator": "MobileStyleGAN (random-face 2021.7.21.1; FFHQ; research / non-commercial)",
        "judge": "face-api 1.7.15 expression + age/gender",
        "splits": {k: [r.start, r.stop] for k, r in splits.items()},
        "labels": counts,
        "seconds": round(seconds, 1),
        "seconds_per_image": round(seconds / max(1, num), 4),
    }
    return atomic_write_text(out / "info.json", json.dumps(info, indent=2) + "\n").parent


def _read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
