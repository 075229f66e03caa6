"""``tedigan demo``: the web demo (:mod:`tedigan.app`) on localhost."""

from __future__ import annotations

import argparse

from tedigan import cli

HELP = "the web demo (edit, text to image, sketch/labels, FFHQ samples) on http://127.0.0.1:7860"


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "demo",
        help=HELP,
        description="Serve the tedigan web demo (edit, text to image, sketch/labels, FFHQ samples) on localhost.",
    )
    parser.add_argument("--model", default=None, help="pipeline folder (default: the shipped model)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    return parser


def run(args: argparse.Namespace) -> int:
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise cli.UsageError('the demo needs gradio: pip install -e ".[demo]"') from None
    if not 0 < args.port < 65536:
        raise cli.UsageError(f"--port must be in 1..65535, got {args.port}")
    from tedigan import app

    app.serve(args.model, args.host, args.port)
    return 0
