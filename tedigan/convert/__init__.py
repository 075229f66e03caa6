"""Converters from released StyleGAN checkpoints to tedigan safetensors folders (``rosinality``, ``nvlabs``).

Both CLIs refuse a file they cannot read safely with one line on stderr and exit status 2, write nothing in
that case, and never replace an existing output folder without ``--overwrite``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["ConversionError", "check_out_dir", "run_cli"]


class ConversionError(ValueError):
    """A checkpoint cannot be converted (or an output folder is in the way); the message says what to do."""


def check_out_dir(out: Path, overwrite: bool) -> None:
    """Refuse to write generator/ and discriminator/ over existing folders unless ``overwrite``."""
    if out.exists() and not out.is_dir():
        raise ConversionError(f"--out {out} is a file: give a folder")
    taken = [out / n for n in ("generator", "discriminator") if (out / n).exists()]
    if taken and not overwrite:
        raise ConversionError(f"{taken[0]} already exists: pass --overwrite to replace it, or another --out")


def run_cli(prog: str, main: Callable[[], None]) -> int:
    """Run a converter; a file it refuses (unsafe, damaged, not a checkpoint) -> one line, exit status 2."""
    try:
        main()
    except Exception as err:  # noqa: BLE001 - any failure to parse an untrusted file is a refusal
        if os.environ.get("TEDIGAN_DEBUG"):
            raise
        msg = " ".join(str(err).split())[:400] or "unreadable file"
        print(f"{prog}: error: {type(err).__name__}: {msg}", file=sys.stderr)
        return 2
    return 0
