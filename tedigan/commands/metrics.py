"""``tedigan metrics --model DIR --metrics fid,kid,pr,ppl_w ...``.

``DIR`` is a folder holding ``generator/`` (a pipeline or training output) or the generator folder itself
(``config.json`` + ``model.safetensors``). One JSON line per run is appended to ``DIR/metrics.jsonl`` (or
``--out``) with the metric values, sample counts, seconds and a timestamp, and printed on stdout.

FID/KID/PR need real images (``--data-kind``/``--data-root``; real-image features are cached in
``<data-root>/.fid_cache/``); separability needs an attribute classifier (``--classifier``, default
``DIR/classifier/`` when present). Defaults suit a CPU (2000 samples: about 7 minutes of Inception per
2000 images on 2 cores); the papers use 50k (FID) and 100k-200k (PPL, separability) samples.

Exit status 0 when every metric gave a finite value; 2 with one line for a bad option, model or data set
(checked before any sampling), and also when a metric came out NaN or infinite (the row is still appended,
with the value as null / "inf", so the failure is on record).
"""

from __future__ import annotations

import argparse
import json
import math
import numbers
import os
import sys
import time
from pathlib import Path

from tedigan import cli

HELP = "generator metrics (FID, KID, precision/recall, PPL, separability) appended as a JSON line"

DEFAULT_METRICS = "fid,kid,pr,ppl_w"


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "metrics",
        help=HELP,
        description="Compute generator metrics and append them as a JSON line next to the model.",
        epilog="example: tedigan metrics --model outputs/avatars64 --metrics fid,ppl_w --data-kind avatars "
        "--data-root data/avatars64 --split val",
    )
    p.add_argument("--model", help="folder with generator/ (or the generator folder itself)")
    p.add_argument("--metrics", default=DEFAULT_METRICS, help=f"comma-separated (default {DEFAULT_METRICS})")
    p.add_argument("--list", action="store_true", help="list the available metrics and exit")
    p.add_argument(
        "--data-kind", default=None, help="kind of --data-root: a tedigan data-set kind (folder, hf, ...)"
    )
    p.add_argument("--data-root", help="real data for fid/kid/pr")
    p.add_argument("--split", default="train", help="data split (default train)")
    p.add_argument("--resolution", type=int, help="real-image resolution (default: the generator's)")
    p.add_argument("--num", type=int, default=2000, help="generated samples per metric (default 2000)")
    p.add_argument("--num-real", type=int, help="real images for fid/kid/pr (default: --num)")
    p.add_argument("--fid-method", choices=("auto", "sqrtm", "svd"), default="auto",
                   help="trace term of FID: sqrtm, the exact SVD identity, or auto (sqrtm when N > 2048)")  # fmt: skip
    p.add_argument("--kid-subsets", type=int, default=100)
    p.add_argument("--kid-subset-size", type=int, default=1000)
    p.add_argument("--ppl-num", type=int, help="samples for ppl (default: --num)")
    p.add_argument("--ppl-sampling", choices=("full", "end"), help="default: full for ppl_z, end for ppl_w")
    p.add_argument("--ppl-crop", action="store_true", help="StyleGAN's FFHQ face crop before LPIPS")
    p.add_argument("--sep-num", type=int, help="samples for separability (default: --num)")
    p.add_argument("--sep-mode", choices=("majority", "each"), default="majority")
    p.add_argument("--batch", type=int, default=16, help="batch size (default 16)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ... (default cpu)")
    p.add_argument("--classifier", help="attribute classifier folder (default: <model>/classifier/)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--truncation-psi", type=float, default=1.0)
    p.add_argument("--cache-dir", help="real-feature cache (default <data-root>/.fid_cache)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the real-feature cache")
    p.add_argument(
        "--out",
        help="results file (default <model>/metrics.jsonl; ./metrics.jsonl for a model inside the installed "
        "package or a folder you cannot write)",
    )
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers for real images")
    p.add_argument("--progress", action="store_true", help="progress bars on stderr")
    return p


def run(args: argparse.Namespace) -> int:
    import torch

    from tedigan import metrics
    from tedigan.models.base import CONFIG_NAME

    if args.list:
        print("\n".join(metrics.list_metrics()))
        return 0
    try:
        names = metrics.parse_names(args.metrics)
    except (KeyError, ValueError) as e:
        raise cli.UsageError(str(e.args[0]) if e.args else str(e)) from None
    if not args.model:
        raise cli.UsageError("--model is required")
    for flag in ("num", "batch"):
        if getattr(args, flag) < 1:
            raise cli.UsageError(f"--{flag} must be >= 1")
    model_root = Path(args.model).expanduser()
    out = Path(args.out).expanduser() if args.out else None

    from tedigan.models.stylegan2 import Generator

    try:
        gen_dir = resolve_generator_dir(args.model)
    except OSError as e:
        raise cli.UsageError(str(e)) from None
    out = out or _default_out(model_root)
    if out.is_dir():
        raise cli.UsageError(f"--out {out} is a folder: give a results file such as {out / 'metrics.jsonl'}")
    cli.check_writable(out.parent, "--out")
    try:
        device = torch.device(args.device)
    except (RuntimeError, TypeError):
        raise cli.UsageError(
            f"--device {args.device!r} is not a device: use cpu or cuda (cuda:0, ...)"
        ) from None
    try:
        G = Generator.from_pretrained(gen_dir, map_location=device).eval()
    except (OSError, ValueError, TypeError) as e:
        raise cli.UsageError(f"cannot load the generator from {gen_dir}: {e}") from None

    needs = {n for name in names for n in metrics.metric_needs(name)}
    dataset = data_key = cache_dir = None
    data_info = None
    if "dataset" in needs:
        if not (args.data_root and args.data_kind):
            raise cli.UsageError(
                f"metric(s) {', '.join(n for n in names if 'dataset' in metrics.metric_needs(n))} need real "
                "images: pass --data-root and --data-kind"
            )
        from tedigan.data import make_dataset

        resolution = args.resolution or G.resolution
        try:
            dataset = make_dataset(args.data_kind, args.data_root, split=args.split, resolution=resolution)
        except (OSError, ValueError) as e:
            raise cli.UsageError(
                f"cannot open the real data ({args.data_kind} at {args.data_root}): {e}"
            ) from None
        if len(dataset) == 0:
            raise cli.UsageError(f"the real data set at {args.data_root} (split {args.split}) is empty")
        local = Path(args.data_root).expanduser()
        root_id = str(local.resolve()) if local.exists() else args.data_root
        data_info = {"kind": args.data_kind, "root": root_id, "split": args.split, "resolution": resolution}
        # the cache key also notes the size and the manifest's age, so re-rendered data is not mistaken
        # for the cached one
        manifests = [local / m for m in ("metadata.jsonl", "captions.jsonl") if (local / m).is_file()]
        stamp = [m.stat().st_mtime_ns for m in manifests]
        data_key = json.dumps({**data_info, "len": len(dataset), "manifest_mtime": stamp}, sort_keys=True)
        if not args.no_cache:
            cache_dir = (
                Path(args.cache_dir).expanduser() if args.cache_dir else _default_cache_dir(args.data_root)
            )

    classifier = None
    if "classifier" in needs:
        clf_dir = Path(args.classifier).expanduser() if args.classifier else model_root / "classifier"
        if not (clf_dir / CONFIG_NAME).is_file():
            raise cli.UsageError(
                f"separability needs an attribute classifier: {clf_dir} holds no {CONFIG_NAME} "
                "(pass --classifier DIR, a folder written by the classifier stage)"
            )
        from tedigan.models.classifier import AttributeClassifier

        classifier = AttributeClassifier.from_pretrained(clf_dir, map_location=device).eval()

    ctx = metrics.make_context(
        generator=G,
        dataset=dataset,
        classifier=classifier,
        num=args.num,
        num_real=args.num_real,
        batch_size=args.batch,
        device=device,
        seed=args.seed,
        truncation_psi=args.truncation_psi,
        num_workers=args.workers,
        cache_dir=cache_dir,
        data_key=data_key,
        fid_method=args.fid_method,
        kid_subsets=args.kid_subsets,
        kid_subset_size=args.kid_subset_size,
        ppl_num=args.ppl_num,
        ppl_sampling=args.ppl_sampling,
        ppl_crop=args.ppl_crop,
        sep_num=args.sep_num,
        sep_mode=args.sep_mode,
        progress=args.progress,
    )
    try:
        metrics.check_needs(names, ctx)
    except ValueError as e:  # metrics of other inputs (text codes, ...) are the Python API's
        raise cli.UsageError(
            f"{e}: this command measures generators (python: tedigan.metrics.compute)"
        ) from None
    few = {"fid", "kid", "pr"} & set(names)
    if few and args.num < 2000:
        print(
            f"tedigan metrics: warning: {', '.join(sorted(few))} on {args.num} samples are biased (FID grows as "
            "the sample shrinks) and noisy: compare only numbers taken with the same --num; papers use 50,000",
            file=sys.stderr,
        )
    start = time.perf_counter()
    results = metrics.compute(names, ctx)
    row = {
        "source": "tedigan.metrics",
        "model": str(model_root),
        "generator": str(gen_dir),
        "data": data_info,
        "num": args.num,
        "seed": args.seed,
        "truncation_psi": args.truncation_psi,
        "device": str(device),
        "metrics": results,
        "seconds": round(time.perf_counter() - start, 3),
    }
    row = metrics.append_results(out, row)
    print(json.dumps(row, indent=2))
    print(f"appended to {out}", file=sys.stderr)
    failed = [name for name, result in results.items() if not all(map(_finite, result.values()))]
    if failed:
        raise cli.UsageError(
            f"{', '.join(failed)} came out NaN or infinite (recorded in {out}): the generator's samples or the "
            "real data hold non-finite values, or too few samples for the metric (--num)"
        )
    return 0


def _finite(value: object) -> bool:
    """A number that is finite, or not a number at all (a count, a name, a per-attribute table)."""
    return not isinstance(value, numbers.Real) or math.isfinite(value)


def resolve_generator_dir(model: str | os.PathLike) -> Path:
    """``DIR/generator`` when it holds a saved component, else ``DIR`` itself; a clear error otherwise."""
    from tedigan.models.base import CONFIG_NAME

    root = Path(model).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"model folder {root} does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"--model must be a folder, got the file {root}")
    for cand in (root / "generator", root):
        if (cand / CONFIG_NAME).is_file():
            return cand
    raise FileNotFoundError(
        f"{root} holds no generator: expected {root / 'generator' / CONFIG_NAME} or {root / CONFIG_NAME} "
        "(a folder written by Generator.save_pretrained)"
    )


def _default_out(model_root: Path) -> Path:
    """``<model>/metrics.jsonl``, unless the model is the installed package's own (or read-only): then the
    results go to the current folder rather than into the package."""
    package = Path(__file__).resolve().parents[1]  # tedigan/
    inside = model_root.resolve().is_relative_to(package / "weights")
    if inside or not os.access(model_root, os.W_OK):
        return Path("metrics.jsonl")
    return model_root / "metrics.jsonl"


def _default_cache_dir(data_root: str) -> Path:
    root = Path(data_root).expanduser()
    if root.is_dir() and os.access(root, os.W_OK):
        return root / ".fid_cache"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tedigan" / "fid_cache"
