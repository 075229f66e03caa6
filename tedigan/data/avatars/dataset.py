"""The data set on disk (images, labels, sketches, metadata, a datasets copy) and its torch Dataset.

Part of :mod:`tedigan.data.avatars` (the package docstring explains the data set).
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import random
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from tedigan.data.avatars.attributes import ATTRIBUTES, PART_CLASSES, RECORD_VERSION, sample_record
from tedigan.data.avatars.captions import captions
from tedigan.data.avatars.render import render
from tedigan.fs import atomic_write_text

# --------------------------------------------------------------------------------------------------------
# Data set on disk
# --------------------------------------------------------------------------------------------------------


def sample_id(index: int) -> str:
    return f"{index:06d}"


def split_ranges(num: int, splits: Sequence[float] = (0.8, 0.1, 0.1)) -> dict[str, range]:
    """Index ranges of the train/val/test splits (cumulative rounding of the fractions)."""
    if len(splits) != 3 or any(s < 0 for s in splits) or sum(splits) <= 0:
        raise ValueError(f"splits must be three non-negative fractions, got {splits}")
    total = float(sum(splits))
    b1 = round(num * splits[0] / total)
    b2 = round(num * (splits[0] + splits[1]) / total)
    return {"train": range(0, b1), "val": range(b1, b2), "test": range(b2, num)}


def record_for(seed: int, index: int) -> dict[str, Any]:
    """The record of sample ``index`` of a data set built with ``seed`` (depends on nothing else)."""
    return sample_record(f"{seed}:{index}:record")


def captions_for(seed: int, index: int, record: Mapping[str, Any], n: int = 10) -> list[str]:
    return captions(record, f"{seed}:{index}:captions", n=n)


def _build_one(job: tuple[str, int, int, int, str]) -> tuple[dict[str, Any], float, float]:
    out, seed, index, resolution, split = job
    t0, c0 = time.perf_counter(), time.process_time()
    record = record_for(seed, index)
    rendered = render(record, resolution)
    sid = sample_id(index)
    root = Path(out)
    rendered.image.save(root / "images" / f"{sid}.png")
    Image.fromarray(rendered.label, "L").save(root / "labels" / f"{sid}.png")
    rendered.sketch.save(root / "sketches" / f"{sid}.png")
    meta = {
        "id": sid,
        "index": index,
        "split": split,
        "file_name": f"images/{sid}.png",
        "label_file": f"labels/{sid}.png",
        "sketch_file": f"sketches/{sid}.png",
        "captions": captions_for(seed, index, record),
        "attributes": {name: record[name] for name in ATTRIBUTES},
        "record": record,
    }
    return meta, time.perf_counter() - t0, time.process_time() - c0


def _hf_rows(root: str, rows: list[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    out = Path(root)

    def img(rel: str) -> dict[str, Any]:
        return {"bytes": (out / rel).read_bytes(), "path": None}  # embedded: hf/ is self-contained

    for m in rows:
        yield {
            "id": m["id"],
            "image": img(m["file_name"]),
            "label": img(m["label_file"]),
            "sketch": img(m["sketch_file"]),
            "captions": m["captions"],
            "attributes": m["attributes"],
            "record": json.dumps(m["record"], sort_keys=True),
        }


def _save_hf(out: Path, metas: list[dict[str, Any]]) -> None:
    """Write ``out/hf`` (a DatasetDict with train/val/test), streaming rows so memory stays flat."""
    import shutil
    import tempfile

    import datasets

    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "image": datasets.Image(),
            "label": datasets.Image(),
            "sketch": datasets.Image(),
            "captions": datasets.Sequence(datasets.Value("string")),
            "attributes": {name: datasets.Value("string") for name in ATTRIBUTES},
            "record": datasets.Value("string"),
        }
    )
    # a fresh cache per build: datasets would otherwise reuse a cached table with the same fingerprint
    cache = Path(tempfile.mkdtemp(prefix=".hf-build-", dir=out))
    progress = datasets.utils.logging.is_progress_bar_enabled()
    datasets.utils.logging.disable_progress_bar()
    try:
        splits = {}
        for split in ("train", "val", "test"):
            rows = [m for m in metas if m["split"] == split]
            if rows:
                splits[split] = datasets.Dataset.from_generator(
                    _hf_rows,
                    features=features,
                    cache_dir=str(cache),
                    gen_kwargs={"root": str(out), "rows": rows},
                )
            else:
                splits[split] = datasets.Dataset.from_dict({k: [] for k in features}, features=features)
        if (out / "hf").exists():
            shutil.rmtree(out / "hf")
        # one shard per split at least: an empty split saved with zero shards cannot be loaded back
        num_shards = {k: max(1, math.ceil(len(v) / 20000)) for k, v in splits.items()}
        datasets.DatasetDict(splits).save_to_disk(str(out / "hf"), num_shards=num_shards)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        if progress:
            datasets.utils.logging.enable_progress_bar()


def build_dataset(
    out: str | os.PathLike,
    num: int,
    resolution: int = 64,
    seed: int = 0,
    workers: int | None = None,
    splits: Sequence[float] = (0.8, 0.1, 0.1),
    hf: bool = True,
    progress: bool = True,
) -> Path:
    """Render ``num`` avatars into ``out`` (images/, labels/, sketches/, metadata.jsonl, info.json, hf/).

    Sample ``i`` depends only on ``(seed, i)``, so a larger ``num`` keeps every earlier sample; splits are
    index ranges (first ``splits[0]`` share train, then val, then test). Rendering runs on ``workers``
    processes (default: all cores) with a tqdm bar; ``seconds_per_image`` in info.json is the measured
    render+write time of one image in one worker (``cpu_seconds_per_image``: its CPU time).
    """
    from tqdm.auto import tqdm

    if num < 0:
        raise ValueError(f"num must be >= 0, got {num}")
    out = Path(out)
    for sub in ("images", "labels", "sketches"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    workers = max(1, int(workers or os.cpu_count() or 1))
    ranges = split_ranges(num, splits)
    split_of = {i: name for name, r in ranges.items() for i in r}
    jobs = [(str(out), int(seed), i, int(resolution), split_of[i]) for i in range(num)]
    metas: list[dict[str, Any]] = []
    busy = cpu = 0.0
    t0 = time.perf_counter()
    bar = tqdm(total=num, desc=f"avatars {resolution}px", unit="img", disable=not progress)
    if workers == 1 or num <= 1:
        results: Iterable = map(_build_one, jobs)
        pool = None
    else:
        pool = mp.get_context().Pool(min(workers, num))
        results = pool.imap(_build_one, jobs, chunksize=max(1, min(16, num // (workers * 8) or 1)))
    try:
        for meta, seconds, cpu_seconds in results:
            metas.append(meta)
            busy += seconds
            cpu += cpu_seconds
            bar.update(1)
    finally:
        bar.close()
        if pool is not None:
            pool.close()
            pool.join()
    wall = time.perf_counter() - t0
    with open(out / "metadata.jsonl", "w", encoding="utf-8") as f:
        for meta in metas:
            f.write(json.dumps(meta, sort_keys=True) + "\n")
    info = {
        "num": num,
        "resolution": resolution,
        "seed": seed,
        "splits": {name: len(r) for name, r in ranges.items()},
        "ATTRIBUTES": {k: list(v) for k, v in ATTRIBUTES.items()},
        "PART_CLASSES": list(PART_CLASSES),
        "seconds_per_image": busy / max(num, 1),  # wall time in a worker (grows when cores are shared)
        "cpu_seconds_per_image": cpu / max(num, 1),
        "wall_seconds": wall,
        "images_per_second": num / wall if wall > 0 else None,
        "workers": workers,
        "record_version": RECORD_VERSION,
        "python_avatars": _version("python_avatars"),
        "cairosvg": _version("cairosvg"),
    }
    if hf:
        _save_hf(out, metas)
    # info.json last and atomically: its presence marks a complete data set (train_all.sh, ensure_data)
    atomic_write_text(out / "info.json", json.dumps(info, indent=2) + "\n")
    return out


def _version(package: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(package)
    except Exception:
        return None


# --------------------------------------------------------------------------------------------------------
# torch Dataset
# --------------------------------------------------------------------------------------------------------


def _to_tensor(im: Image.Image) -> torch.Tensor:
    arr = np.asarray(im, dtype=np.float32) / 127.5 - 1.0
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(arr))


class AvatarDataset(torch.utils.data.Dataset):
    """A built avatar folder (see :func:`build_dataset`) as a torch Dataset.

    Items are dicts: ``image`` float [3,H,W] in [-1,1]; ``caption`` (one of the 10, chosen at random);
    ``captions`` (all 10); ``index`` (position in this split); ``attributes`` long [len(ATTRIBUTES)] in
    ``ATTRIBUTES`` order; ``label`` long [H,W] of PART_CLASSES indices; ``sketch`` float [1,H,W] in [-1,1]
    (white = 1). ``resolution`` resizes on load (LANCZOS image, NEAREST label, bilinear sketch).
    ``split`` is "train", "val", "test" or "all".
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", resolution: int | None = None) -> None:
        self.root = Path(root)
        manifest = self.root / "metadata.jsonl"
        if not manifest.is_file():
            raise FileNotFoundError(
                f"{self.root} has no metadata.jsonl; create it with: "
                f"tedigan avatars --num 2000 --resolution 64 --out {self.root}"
            )
        if split not in ("train", "val", "test", "all"):
            raise ValueError(f"split must be train, val, test or all, got {split!r}")
        with open(manifest, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
        self.metadata: list[dict[str, Any]] = [m for m in rows if split == "all" or m["split"] == split]
        self.split = split
        self.resolution = resolution

    @property
    def records(self) -> list[dict[str, Any]]:
        return [m["record"] for m in self.metadata]

    def __len__(self) -> int:
        return len(self.metadata)

    def _open(self, rel: str, mode: str, resample: Image.Resampling) -> Image.Image:
        im = Image.open(self.root / rel)
        im = im.convert(mode)
        if self.resolution is not None and im.size != (self.resolution, self.resolution):
            im = im.resize((self.resolution, self.resolution), resample)
        return im

    def __getitem__(self, index: int) -> dict[str, Any]:
        meta = self.metadata[index]
        image = self._open(meta["file_name"], "RGB", Image.Resampling.LANCZOS)
        label = self._open(meta["label_file"], "L", Image.Resampling.NEAREST)
        sketch = self._open(meta["sketch_file"], "L", Image.Resampling.BILINEAR)
        attrs = [ATTRIBUTES[name].index(meta["attributes"][name]) for name in ATTRIBUTES]
        return {
            "image": _to_tensor(image),
            "caption": random.choice(meta["captions"]),
            "captions": list(meta["captions"]),
            "index": index,
            "attributes": torch.tensor(attrs, dtype=torch.long),
            "label": torch.from_numpy(np.asarray(label, dtype=np.int64).copy()),
            "sketch": _to_tensor(sketch),
        }
