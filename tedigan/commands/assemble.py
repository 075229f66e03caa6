"""``tedigan assemble --stages OUT --out DIR``: a pipeline folder from the stage outputs of train_all.sh.

Its options and work are still :func:`tedigan.training.assemble.main` (that module is being moved); this file
hands every argument on until the option parsing moves in here.
"""

from __future__ import annotations

import argparse

HELP = "assemble a pipeline folder from the stage outputs of train_all.sh"

#: every option is the wrapped main()'s: they arrive as ``args.extra``
TAKES_EXTRA = True


def add_parser(subparsers) -> argparse.ArgumentParser:
    return subparsers.add_parser("assemble", help=HELP, add_help=False)


def run(args: argparse.Namespace) -> int:
    from tedigan.training.assemble import main

    return main(args.extra)
