"""``tedigan face-benchmark --model DIR --data data/faces256 --out DIR``: edits of held-out generated faces
and real photos with a faces pipeline, scored by an independent judge (human's nets;
:mod:`tedigan.evaluation.face_benchmark`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from tedigan import cli

HELP = "the faces benchmark: edits of held-out faces and photos, scored by an independent judge"


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "face-benchmark",
        help=HELP,
        description="Edit held-out generated faces and real photos with a faces pipeline; score them with an "
        "independent judge (human's nets).",
        epilog="example: tedigan face-benchmark --model faces --data data/faces256 --out reports/faces "
        "--photo photo.jpg",
    )
    p.add_argument("--model", default="faces", help="faces pipeline folder or name (default faces)")
    p.add_argument("--data", default="data/faces256", help="face data set (its test split is used)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--num", type=int, default=24, help="held-out faces to edit (default 24)")
    p.add_argument("--photo", action="append", default=[], help="a real photo to invert (repeatable)")
    p.add_argument("--t2i-samples", type=int, default=4)
    p.add_argument("--modes", default="mix,delta", help="edit modes to measure (default mix,delta)")
    p.add_argument("--opt-steps", type=int, default=0, help="also optimise a few edits this many steps")
    p.add_argument("--strength", type=float, default=1.0, help="edit strength (default 1)")
    p.add_argument("--num-optimized", type=int, default=2, help="how many edits --opt-steps optimises")
    p.add_argument("--device", default="cpu")
    return p


def run(args: argparse.Namespace) -> int:
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in cli.EDIT_MODES]
    if not modes or unknown:
        raise cli.UsageError(
            f"--modes must name edit modes of {', '.join(cli.EDIT_MODES)}, got {args.modes!r}"
        )
    if args.num < 1 or args.t2i_samples < 0 or args.opt_steps < 0 or args.num_optimized < 0:
        raise cli.UsageError("--num must be >= 1; --t2i-samples, --opt-steps and --num-optimized >= 0")
    out = Path(args.out)
    cli.check_writable(out, "--out")
    from tedigan.data.io import load_image
    from tedigan.evaluation.face_benchmark import run_face_benchmark
    from tedigan.pipeline import TediGANPipeline

    for photo in args.photo:
        load_image(photo)  # every photo is readable before the model loads
    pipe = TediGANPipeline.from_pretrained(args.model, device=args.device)
    try:
        run_face_benchmark(
            pipe, args.data, out, args.num, args.photo, args.t2i_samples, modes=modes,
            opt_steps=args.opt_steps, num_optimized=args.num_optimized, strength=args.strength,
        )  # fmt: skip
    except ValueError as err:  # a data set without a test split, or too few faces in it
        raise cli.UsageError(str(err)) from None
    print((out / "face_benchmark.md").read_text())
    return 0
