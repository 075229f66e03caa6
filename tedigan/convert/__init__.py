"""Converters from released StyleGAN checkpoints to tedigan safetensors folders (``rosinality``, ``nvlabs``).

``tedigan convert rosinality|nvlabs FILE --out DIR`` refuses a file it cannot read safely with one line on
stderr and exit status 2, writes nothing in that case, and never replaces an existing output folder without
``--overwrite``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["ConversionError", "check_out_dir"]


class ConversionError(ValueError):
    """A checkpoint cannot be converted (or an output folder is in the way); the message says what to do."""


def check_out_dir(out: Path, overwrite: bool) -> None:
    """Refuse to write generator/ and discriminator/ over existing folders unless ``overwrite``."""
    if out.exists() and not out.is_dir():
        raise ConversionError(f"--out {out} is a file: give a folder")
    taken = [out / n for n in ("generator", "discriminator") if (out / n).exists()]
    if taken and not overwrite:
        raise ConversionError(f"{taken[0]} already exists: pass --overwrite to replace it, or another --out")
