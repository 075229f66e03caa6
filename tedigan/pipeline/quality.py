"""The output guard: no image the pipeline returns is silent garbage.

A broken model or a run-away optimisation (pivotal tuning at too high a learning rate, a NaN in the weights)
still renders *something*: a black, white or grey square, a wash of saturated colour, a 1-pixel checkerboard.
:func:`check_images` measures every returned image and raises :class:`DegenerateOutputError` (a
:class:`~tedigan.pipeline.inputs.PipelineError`, so a command prints one line, exits with status 2 and writes
nothing) when one is

* **not finite**: a NaN or inf anywhere;
* **flat**: its standard deviation (all pixels and channels, images in [-1, 1]) is below :data:`MIN_STD`;
* **saturated**: more than :data:`MAX_SATURATED` of its pixels have every channel at ±1 (beyond
  :data:`SATURATION_LEVEL`: white, black or a pure primary or secondary colour);
* **checkered**: more than :data:`MAX_CHECKER` of its variance lies in the diagonal Haar band of 2 x 2 blocks
  (``(a - b - c + d) / 2``: all of a 1-pixel checkerboard's, about 1/4 of white noise's, under 0.01 of a
  natural image's at 64 px and above).

The thresholds were calibrated on 227 images the shipped models give (avatars and faces: reconstructions,
encoder-only, optimised, pivotally tuned and faithful edits of the examples and five real photos, 160 samples)
and on the tests' tiny untrained generators, with a wide margin on both sides: see each constant
(``tests/test_quality.py`` holds the degenerate table). The measures cost a few element-wise passes over the
image, nothing against a generator call. :func:`image_stats` gives the numbers themselves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tedigan.pipeline.inputs import PipelineError

if TYPE_CHECKING:
    import torch

__all__ = [
    "MAX_CHECKER",
    "MAX_SATURATED",
    "MIN_STD",
    "SATURATION_LEVEL",
    "DegenerateOutputError",
    "check_images",
    "image_stats",
]

#: below this standard deviation (images in [-1, 1]; one grey level is 0.0078) an image is flat. The shipped
#: models' outputs lie at 0.27 and above; a constant image is 0, a blank one with faint noise a few 0.001.
MIN_STD = 0.02
#: a value this close to ±1 counts as saturated (the generator's output clamped to [-1, 1] at 8 bits: 255 or 0)
SATURATION_LEVEL = 0.99
#: above this share of saturated pixels an image is saturated. Shipped outputs stay at 0.12 and below (avatars
#: on flat backgrounds); an all-white or blown-out image is near 1. The tests' tiny untrained generators reach 0.7
#: (their raw outputs spread over ±15), and a tuning run away on them 0.9.
MAX_SATURATED = 0.8
#: above this share of the variance in the diagonal Haar band an image is checkered. Shipped outputs stay at
#: 0.0045 and below (64 and 256 px); a 1-pixel checkerboard is 1, white noise 0.25.
MAX_CHECKER = 0.15


class DegenerateOutputError(PipelineError):
    """An image the pipeline would return is flat, saturated, checkered or not finite (see the module docs)."""


def image_stats(images: torch.Tensor) -> list[dict[str, float]]:
    """Per image of ``[B, C, H, W]`` (float in [-1, 1]): ``finite`` (1.0 or 0.0), ``std``, ``saturated`` (share of
    pixels with every channel at ±1) and ``checker`` (share of the variance in the diagonal Haar band of 2 x 2
    blocks)."""
    import torch

    x = images.detach().float()
    if x.ndim == 3:
        x = x.unsqueeze(0)
    out = []
    for img in x:
        finite = bool(torch.isfinite(img).all())
        if not finite:
            out.append(
                {"finite": 0.0, "std": float("nan"), "saturated": float("nan"), "checker": float("nan")}
            )
            continue
        c = img.clamp(-1, 1)
        std = float(c.std()) if c.numel() > 1 else 0.0
        saturated = float((c.abs() >= SATURATION_LEVEL).all(dim=0).float().mean())
        h, w = (c.shape[-2] // 2) * 2, (c.shape[-1] // 2) * 2
        if h and w:
            d = c[..., :h, :w] - c[..., :h, :w].mean(dim=(-2, -1), keepdim=True)
            hh = (d[..., 0::2, 0::2] - d[..., 0::2, 1::2] - d[..., 1::2, 0::2] + d[..., 1::2, 1::2]) / 2
            total = float(d.square().sum())
            checker = float(hh.square().sum()) / total if total > 0 else 0.0
        else:
            checker = 0.0
        out.append({"finite": 1.0, "std": std, "saturated": saturated, "checker": checker})
    return out


def _fault(s: dict[str, float]) -> str | None:
    if not s["finite"]:
        return "not finite (NaN/inf)"
    if s["std"] < MIN_STD:
        return f"flat (standard deviation {s['std']:.3g} < {MIN_STD:g})"
    if s["saturated"] > MAX_SATURATED:
        return f"saturated ({s['saturated']:.0%} of its pixels at ±1)"
    if s["checker"] > MAX_CHECKER:
        return f"checkered ({s['checker']:.0%} of its variance at the pixel checkerboard frequency)"
    return None


def check_images(
    images: torch.Tensor,
    what: str = "the image",
    hint: str = "try --fast (fidelity='fast') or fewer --pti-steps",
) -> torch.Tensor:
    """``images`` (``[B, C, H, W]`` in [-1, 1]) unchanged, or :class:`DegenerateOutputError` with one line
    naming the first bad image, what is wrong with it, and ``hint``."""
    stats = image_stats(images)
    for i, s in enumerate(stats):
        fault = _fault(s)
        if fault is not None:
            which = f" (image {i + 1} of {len(stats)})" if len(stats) > 1 else ""
            raise DegenerateOutputError(
                f"{what}{which} is {fault}: the model's weights or its tuning broke, so nothing is written; {hint}"
            )
    return images
