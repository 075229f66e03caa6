"""Shared plumbing of the user-facing CLIs (``python -m tedigan.edit`` / ``tedigan.generate``).

Errors a user can fix (missing model folder or weights, unreadable image, empty text, bad arguments) end
the program with one line on stderr naming the problem and what to do, and exit status 2; nothing is
written in that case. Anything else is a bug and keeps its traceback (``TEDIGAN_DEBUG=1`` shows the
traceback of user errors too).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from tedigan.assets import MissingWeightsError
from tedigan.data.io import ImageLoadError


class UsageError(ValueError):
    """A bad command-line argument."""


def _user_errors() -> tuple[type[BaseException], ...]:
    from tedigan.pipeline import PipelineError

    return (UsageError, PipelineError, ImageLoadError, MissingWeightsError, FileNotFoundError)


def add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default=None,
        metavar="DIR",
        help="pipeline folder (default: the model shipped with tedigan, tedigan/weights/avatars32)",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        metavar="N",
        help="instance-level optimisation steps after mixing (0 = encoder only)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument(
        "--layers",
        default=None,
        metavar="I,J,..",
        help="W+ layers to take from the text (default: chosen by the model's layer map)",
    )
    parser.add_argument(
        "--scale",
        type=int,
        default=4,
        help="nearest-neighbour upscaling of the written images (default 4; 1 = model size)",
    )


def parse_layers(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise UsageError(f"--layers must be comma-separated integers, got {text!r}") from None


def load_pipeline(args: argparse.Namespace):
    import torch

    from tedigan.pipeline import TediGANPipeline

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for, but torch sees no CUDA GPU: use --device cpu")
    return TediGANPipeline.from_pretrained(args.model, device=args.device)


def upscale(img: Image.Image, scale: int) -> Image.Image:
    if scale <= 1:
        return img
    return img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)


def strip(images: list[Image.Image], scale: int, gap: int = 2) -> Image.Image:
    """Images side by side on white, each upscaled by ``scale``."""
    big = [upscale(im.convert("RGB"), scale) for im in images]
    w = sum(im.width for im in big) + gap * (len(big) - 1)
    out = Image.new("RGB", (w, max(im.height for im in big)), "white")
    x = 0
    for im in big:
        out.paste(im, (x, 0))
        x += im.width + gap
    return out


def check_output(path: Path, inputs: list[Path]) -> None:
    """Check an output image path before any work (so a refusal writes nothing): not an input, not a
    folder, an extension PIL can write."""
    for src in inputs:
        if src.exists() and path.resolve() == src.resolve():
            raise UsageError(f"--out {path} is the input image: choose another file so the input is kept")
    if path.is_dir():
        raise UsageError(f"--out {path} is a folder: give a file name such as {path / 'edited.png'}")
    Image.init()
    if path.suffix.lower() not in Image.EXTENSION:
        raise UsageError(f"--out {path} needs an image extension such as .png or .jpg")


def finish(summary: dict, as_json: bool, line: str) -> int:
    """Print the JSON ``summary`` (``--json``) or the human ``line``; exit status 0."""
    print(json.dumps(summary) if as_json else line)
    return 0


def run(main: Callable[[], int], prog: str) -> int:
    """Call ``main``; user errors -> one line on stderr and exit status 2."""
    try:
        return main()
    except _user_errors() as err:
        if os.environ.get("TEDIGAN_DEBUG"):
            raise
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"{prog}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
