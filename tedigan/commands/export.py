"""``tedigan export RUN --out DIR [--checkpoint checkpoint-N]``:
write a generator-stage checkpoint's ``G_ema`` and ``D`` as ``DIR/generator`` + ``DIR/discriminator``, to
measure or sample a long run while it trains (:mod:`tedigan.training.export`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from tedigan import cli

HELP = "write a running generator stage's checkpoint as generator/ + discriminator/ folders"


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "export",
        help=HELP,
        description="Export G_ema and D of a generator-stage checkpoint as generator/ and discriminator/ folders.",
        epilog="example: tedigan export outputs/avatars64/generator --out at_latest",
    )
    parser.add_argument("run", help="the generator stage's train.output_dir")
    parser.add_argument("--checkpoint", default="latest", help="latest (default) or checkpoint-N")
    parser.add_argument("--out", required=True, help="folder for generator/ and discriminator/")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output folders")
    return parser


def run(args: argparse.Namespace) -> int:
    from tedigan.convert import check_out_dir
    from tedigan.training.export import export_generator

    out = Path(args.out)
    check_out_dir(out, args.overwrite)
    cli.check_writable(out, "--out")
    out = export_generator(args.run, out, args.checkpoint)
    print(f"{args.run} ({args.checkpoint}) -> {out / 'generator'}, {out / 'discriminator'}")
    return 0
