"""Evaluation metrics: a registry with one function per metric, results appended as JSON lines.

Built in (each module names its paper):

=================  ==========================================================================================
``fid``            Fréchet Inception Distance (Heusel et al., 2017) with the real FID Inception network
``kid``            Kernel Inception Distance (Bińkowski et al., 2018), unbiased cubic-kernel MMD² on subsets
``pr``             improved precision / recall (Kynkäänniemi et al., 2019), k-NN manifolds (k = 3)
``ppl_z``          perceptual path length in Z (slerp), StyleGAN (Karras et al., 2019)
``ppl_w``          perceptual path length in W (lerp, end-point sampling as in StyleGAN2)
``separability``   linear separability of W (StyleGAN), judged by the attribute classifier
=================  ==========================================================================================

Usage::

    from tedigan import metrics
    results = metrics.compute("fid,kid,ppl_w", generator=G, dataset=real_ds, num=2000, device="cuda")
    metrics.append_results(out_dir / "metrics.jsonl", {"step": step, "metrics": results})

Each metric is a function ``fn(ctx: MetricContext) -> dict`` whose dict has a headline ``"value"`` and any
details; :func:`compute` adds ``"seconds"``. Everything a metric may need travels in one
:class:`MetricContext`, including a ``memo`` that lets metrics of one :func:`compute` call share work (FID,
KID and precision/recall extract the Inception features of the generated images once). New metrics join
with ``@register("name", needs=(...))``. This package never imports :mod:`tedigan.training`: training calls
metrics, not the reverse.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import importlib
import importlib.util
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tedigan.models.base import eval_mode  # noqa: F401  (re-exported: metrics run models in eval mode)

MetricFn = Callable[["MetricContext"], dict[str, Any]]

METRICS: dict[str, MetricFn] = {}
"""name -> metric function (filled by :func:`register`)."""

_NEEDS: dict[str, tuple[str, ...]] = {}

_NEED_HINTS = {
    "generator": "a generator (generator=G; CLI: --model)",
    "dataset": "real images (dataset=...; CLI: --data-kind/--data-root)",
    "classifier": "an attribute classifier (classifier=...; CLI: --classifier or <model>/classifier/)",
    "text": "held-out captions with their images' codes (text=metrics.text.TextEval(...); the text stage gives them)",
}


class UnknownMetricError(KeyError, ValueError):
    """A metric name that is not registered (a ``KeyError`` and a ``ValueError``)."""

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0]) if self.args else ""


@dataclass
class MetricContext:
    """Inputs shared by all metrics. Only what a metric needs must be set (see ``needs`` in :func:`register`).

    Models are used in eval mode under ``torch.no_grad`` and their training flag is restored afterwards.
    Generators are duck-typed: ``z_dim``, ``mapping(z, truncation_psi=...) -> ws [B, num_ws, w_dim]`` and
    ``synthesis(ws, noise_mode=...) -> images [B, C, H, W]`` in [-1, 1].
    """

    generator: Any = None
    dataset: Any = None  # real images: a Dataset of sample dicts with "image" [C, H, W] in [-1, 1]
    classifier: Any = None  # images -> {attribute: logits [B, V]} (AttributeClassifier)
    encoder: Any = None  # image / sketch / label -> W+ (Encoder), for the reconstruction metrics
    text: Any = None  # held-out captions, their images' codes and text codes (metrics.text.TextEval)
    num: int = 2000  # generated samples per metric
    num_real: int | None = None  # real images for FID/KID/PR (None: num, capped at len(dataset))
    batch_size: int = 16
    device: str | torch.device = "cpu"
    seed: int = 0
    truncation_psi: float = 1.0
    num_workers: int = 0  # DataLoader workers for the real images
    # real-feature cache: a folder and a string naming the data (kind, root, split, resolution...)
    cache_dir: str | os.PathLike | None = None
    data_key: str | None = None
    # shared networks (built on first use when None; tests pass stand-ins)
    feature_extractor: Any = None  # images [B, C, H, W] in [-1, 1] -> features [B, D]
    lpips: Any = None  # (x, y) in [-1, 1] -> [B]
    identity: Any = (
        None  # face descriptor (losses.identity.FaceIdentity) for recon_identity; None: FaceNet if found
    )
    # per-metric options
    fid_method: str = "auto"  # "sqrtm" (reference), "svd" (exact low-rank identity), "auto" (see fid.py)
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    pr_k: int = 3
    ppl_num: int | None = None  # None: num
    ppl_epsilon: float = 1e-4
    ppl_sampling: str | None = None  # None: "full" for ppl_z, "end" for ppl_w
    ppl_crop: bool = False  # StyleGAN's FFHQ face crop (off for data that are already aligned face crops)
    sep_num: int | None = None  # None: num (half of them are kept)
    sep_mode: str = "majority"  # "majority" (one binary problem per head) or "each" (value vs rest)
    sep_space: str = "w"  # "w" or "z"
    progress: bool = False
    # Work shared between metrics: networks ("inception", "lpips"), real features, and per-call entries
    # whose tuple key starts with "generated" (dropped at the start of every compute()).
    memo: dict[Any, Any] = field(default_factory=dict, repr=False)

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device)


def register(name: str, *, needs: Iterable[str] = ()) -> Callable[[MetricFn], MetricFn]:
    """Decorator adding ``fn(ctx) -> dict`` to :data:`METRICS` under ``name``.

    ``needs`` names the :class:`MetricContext` fields that must not be None; :func:`compute` checks them for
    every requested metric before running any, so a long run does not fail half-way.
    """
    if not name or not isinstance(name, str) or "," in name or name != name.strip():
        raise ValueError(f"metric names must be non-empty strings without commas or spaces, got {name!r}")
    needs = tuple(needs)
    known = {f.name for f in dataclasses.fields(MetricContext)}
    bad = [n for n in needs if n not in known]
    if bad:
        raise ValueError(f"metric {name!r} needs unknown context field(s) {bad}")

    def decorator(fn: MetricFn) -> MetricFn:
        if name in METRICS and METRICS[name] is not fn:
            raise ValueError(f"a metric named {name!r} is already registered ({METRICS[name].__module__})")
        METRICS[name] = fn
        _NEEDS[name] = needs
        return fn

    return decorator


def list_metrics() -> list[str]:
    """Registered metric names, sorted."""
    return sorted(METRICS)


def parse_names(names: str | Iterable[str]) -> list[str]:
    """``"fid, kid"`` or ``["fid", "kid"]`` -> ``["fid", "kid"]`` (order kept, duplicates dropped), checked."""
    if isinstance(names, str):
        names = names.split(",")
    out: list[str] = []
    for n in names:
        n = n.strip()
        if n and n not in out:
            out.append(n)
    if not out:
        raise ValueError(f"no metric named; available: {', '.join(list_metrics())}")
    unknown = [n for n in out if n not in METRICS]
    if unknown:
        raise UnknownMetricError(
            f"unknown metric(s) {', '.join(repr(n) for n in unknown)}; available: {', '.join(list_metrics())}"
        )
    return out


def metric_needs(name: str) -> tuple[str, ...]:
    """The :class:`MetricContext` fields metric ``name`` requires (e.g. ``("generator", "dataset")``)."""
    return _NEEDS[parse_names([name])[0]]


def get_metric(name: str) -> MetricFn:
    return METRICS[parse_names([name])[0]]


def make_context(**ctx: Any) -> MetricContext:
    known = {f.name for f in dataclasses.fields(MetricContext)}
    unknown = sorted(set(ctx) - known)
    if unknown:
        raise TypeError(f"unknown metric option(s) {unknown}; known: {', '.join(sorted(known))}")
    return MetricContext(**ctx)


def check_needs(names: Iterable[str], ctx: MetricContext) -> None:
    """Raise a ``ValueError`` listing every input the metrics ``names`` need but ``ctx`` lacks."""
    problems = []
    for name in names:
        missing = [n for n in _NEEDS.get(name, ()) if getattr(ctx, n) is None]
        if missing:
            what = "; ".join(_NEED_HINTS.get(n, n) for n in missing)
            problems.append(f"metric {name!r} needs {what}")
    if problems:
        raise ValueError("; ".join(problems))


def compute(names: str | Iterable[str], ctx: MetricContext | None = None, **options: Any) -> dict[str, dict]:
    """Run the metrics ``names`` (comma-separated string or list) and return ``{name: {value, ..., seconds}}``.

    Options are :class:`MetricContext` fields (``generator=``, ``dataset=``, ``num=`` ...), or pass a
    ready ``ctx``. All names and inputs are checked before the first metric runs.
    """
    names = parse_names(names)
    if ctx is None:
        ctx = make_context(**options)
    elif options:
        ctx = dataclasses.replace(ctx, **options)
    check_needs(names, ctx)
    # The memo may outlive this call (a training loop reusing one context keeps the networks and real
    # features), but generated samples must not: the generator's weights change between calls.
    for key in [k for k in ctx.memo if isinstance(k, tuple) and str(k[0]).startswith("generated")]:
        del ctx.memo[key]
    results: dict[str, dict] = {}
    for name in names:
        start = time.perf_counter()
        out = dict(METRICS[name](ctx))
        out["seconds"] = round(time.perf_counter() - start, 3)
        results[name] = out
    return results


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, torch.Tensor):
        return _jsonable(x.tolist())
    if hasattr(x, "item") and hasattr(x, "dtype"):  # numpy scalar
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else ("inf" if x > 0 else "-inf")  # strict JSON has no nan/inf
    if isinstance(x, Path):
        return str(x)
    return x


def append_results(path: str | os.PathLike, row: dict[str, Any]) -> dict[str, Any]:
    """Append ``row`` as one JSON line to ``path`` (folders created); ``timestamp`` (UTC ISO) is added when
    absent. Returns the row as written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    row = _jsonable(dict(row))
    row.setdefault("timestamp", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    line = json.dumps(row, sort_keys=False, allow_nan=False)
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")
    return row


def read_results(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All rows of a JSON-lines results file (blank lines skipped)."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# ------------------------------------------------------------------------------- helpers for metrics


@contextmanager
def seeded(seed: int, device: str | torch.device = "cpu") -> Iterator[torch.Generator]:
    """Seed the global RNGs (per-layer noise draws from them) inside the block and restore them afterwards;
    yields a CPU ``torch.Generator`` for latents, so samples do not depend on the device."""
    device = torch.device(device)
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, device_type=device.type if devices else "cuda"):
        torch.manual_seed(seed)
        yield torch.Generator().manual_seed(seed)


def batch_sizes(total: int, batch_size: int) -> list[int]:
    """``total`` split into chunks of at most ``batch_size``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return [min(batch_size, total - i) for i in range(0, total, batch_size)]


def progress(iterable: Iterable, ctx: MetricContext, desc: str) -> Iterable:
    if not ctx.progress:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, leave=False)


# Built-in metric modules register themselves on import (the edit benchmark is a separate CLI that needs a
# whole pipeline: tedigan.evaluation.edit_benchmark). Modules listed here but not present are skipped.
_BUILTIN_MODULES = ("fid", "ppl", "separability", "reconstruction", "text")


def _load_builtin() -> None:
    for mod in _BUILTIN_MODULES:
        full = f"{__name__}.{mod}"
        if importlib.util.find_spec(full) is not None:
            importlib.import_module(full)


_load_builtin()

__all__ = [
    "METRICS",
    "MetricContext",
    "UnknownMetricError",
    "append_results",
    "batch_sizes",
    "eval_mode",
    "check_needs",
    "compute",
    "get_metric",
    "list_metrics",
    "make_context",
    "metric_needs",
    "parse_names",
    "read_results",
    "register",
    "seeded",
]
