"""``tedigan mix --seeds ROWS --mix-seeds COLUMNS``: a style-mixing grid (``tedigan generate`` with
``--mix-seeds`` required): the row seeds' W+ codes with ``--mix-layers`` taken from the column seeds."""

from __future__ import annotations

import argparse

from tedigan import cli
from tedigan.commands import generate

HELP = "style-mixing grid: --seeds ROWS --mix-seeds COLUMNS [--mix-layers ...]"


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "mix",
        help=HELP,
        description="Draw a style-mixing grid: rows are --seeds, columns --mix-seeds, and each cell the row's "
        "code with the --mix-layers of the column's (default: the coarse third of W+).",
        epilog="example: tedigan mix --seeds 0-3 --mix-seeds 10-13 --out mixing/   (writes mixing/mixing.png)",
    )
    generate.add_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    if args.seeds is None or args.mix_seeds is None:
        raise cli.UsageError("give --seeds ROWS and --mix-seeds COLUMNS, e.g. --seeds 0-3 --mix-seeds 10-13")
    return generate.run(args)
