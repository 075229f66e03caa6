"""``tedigan benchmark --model DIR --out DIR``: the ground-truth edit benchmark of an avatar pipeline on
held-out rendered avatars (:mod:`tedigan.evaluation.edit_benchmark`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from tedigan import cli

HELP = "the ground-truth edit benchmark of an avatar pipeline (report.md, benchmark.json, grids)"


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "benchmark",
        help=HELP,
        description="Ground-truth edit benchmark of a TediGAN pipeline on held-out procedural avatars.",
        epilog="example: tedigan benchmark --out outputs/benchmark --data-root data/avatars64",
    )
    parser.add_argument("--model", default=None, help="pipeline folder (default: the shipped model)")
    parser.add_argument("--out", default="outputs/edit_benchmark", help="folder for json, report and grids")
    parser.add_argument("--num-sources", type=int, default=100, help="held-out avatars to edit (default 100)")
    parser.add_argument("--num-optimized", type=int, default=40, help="sources also edited with optimisation")
    parser.add_argument(
        "--steps", type=int, default=30, help="optimisation steps of optimised edits (default 30)"
    )
    parser.add_argument("--samples-per-prompt", type=int, default=8, help="text-to-image samples per prompt")
    parser.add_argument(
        "--data-root", default=None, help="avatar data set for the generator's FID (optional)"
    )
    parser.add_argument(
        "--fid-num", type=int, default=1000, help="generated images for FID (default 1000; 0 = no FID)"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of the held-out source records (default: the benchmark's)",
    )
    parser.add_argument("--strength", type=float, default=1.0, help="edit strength (default 1)")
    parser.add_argument(
        "--pti-steps",
        type=int,
        default=0,
        help="also invert --num-pti sources with pivotal tuning (default 0: off)",
    )
    parser.add_argument(
        "--num-pti", type=int, default=20, help="sources inverted with pivotal tuning (default 20)"
    )
    parser.add_argument(
        "--mode",
        choices=cli.EDIT_MODES,
        default=None,
        help="edit mode: mix (TediGAN: the prompt's layers from the text code), delta (moved along the text "
        "direction) or prototype; default: the model's own",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing benchmark in --out")
    return parser


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if (out / "benchmark.json").exists() and not args.overwrite:
        raise cli.UsageError(
            f"{out}/benchmark.json exists: pass --overwrite to replace it, or choose another --out"
        )
    for flag in ("num_sources", "samples_per_prompt"):
        if getattr(args, flag) < 1:
            raise cli.UsageError(f"--{flag.replace('_', '-')} must be >= 1")
    for flag in ("num_optimized", "steps", "fid_num", "pti_steps", "num_pti"):
        if getattr(args, flag) < 0:
            raise cli.UsageError(f"--{flag.replace('_', '-')} must be >= 0")
    cli.check_writable(out, "--out")
    from tedigan.evaluation.edit_benchmark import BENCH_SEED, BenchmarkConfig, run_benchmark
    from tedigan.pipeline import TediGANPipeline

    pipe = TediGANPipeline.from_pretrained(args.model, device=args.device)
    cfg = BenchmarkConfig(
        num_sources=args.num_sources,
        num_optimized=args.num_optimized,
        steps=args.steps,
        samples_per_prompt=args.samples_per_prompt,
        seed=BENCH_SEED if args.seed is None else args.seed,
        fid_num=args.fid_num,
        strength=args.strength,
        pti_steps=args.pti_steps,
        num_pti=args.num_pti,
        mode=args.mode,
    )
    s = run_benchmark(pipe, out, cfg, data_root=args.data_root)
    print((out / "report.md").read_text())
    print(f"-> {out}/benchmark.json ({s['seconds_total']:.0f} s)")
    return 0
