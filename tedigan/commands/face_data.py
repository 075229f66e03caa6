"""``tedigan face-data --num 10000 --out data/faces256``: render, judge and caption generated FFHQ faces
for the face stages (:mod:`tedigan.training.face_data`; resumable; research / non-commercial generator
weights)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tedigan import cli

HELP = "render, judge and caption generated FFHQ faces for the face stages (resumable)"


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "face-data",
        help=HELP,
        description="Render, judge and caption generated FFHQ faces for the face stages (research / "
        "non-commercial generator weights). A killed run goes on where it stopped when run again.",
        epilog="example: tedigan face-data --num 10000 --out data/faces256",
    )
    parser.add_argument("--num", type=int, required=True, help="number of faces")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--resolution", type=int, default=256, choices=(64, 128, 256, 512, 1024))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--psi", type=float, default=0.8, help="truncation (default 0.8)")
    parser.add_argument("--mixing-prob", type=float, default=0.5, help="share of style-mixed codes")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--chunk", type=int, default=256, help="faces per resumable chunk (default 256)")
    parser.add_argument("--overwrite", action="store_true", help="render again into an existing data set")
    return parser


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.num <= 10**7 or not 0 <= args.mixing_prob <= 1 or not 0 <= args.psi <= 2:
        raise cli.UsageError("--num must be in 1..10000000, --mixing-prob in [0, 1], --psi in [0, 2]")
    if args.chunk < 1 or args.batch < 1:
        raise cli.UsageError("--chunk and --batch must be >= 1")
    if (args.out / "info.json").exists() and not args.overwrite:
        raise cli.UsageError(f"{args.out} already holds a data set: pass --overwrite to render it again")
    cli.check_writable(args.out, "--out")
    from tedigan.training.face_data import build_face_dataset

    try:
        build_face_dataset(
            args.out,
            args.num,
            args.resolution,
            args.seed,
            args.psi,
            args.mixing_prob,
            args.batch,
            args.device,
            chunk=args.chunk,
        )
    except ValueError as err:  # parts made with other settings, an unknown device
        raise cli.UsageError(str(err)) from None
    info = json.loads((args.out / "info.json").read_text())
    print(f"{args.num} faces -> {args.out} ({info['seconds_per_image']:.3f} s/face); labels {info['labels']}")
    return 0
