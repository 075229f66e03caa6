"""Differentiable augmentation for GAN training on small data sets (DiffAugment-style).

Zhao et al., "Differentiable Augmentation for Data-Efficient GAN Training" (NeurIPS 2020): the same *kinds*
of random transformation are applied to real and generated images before D, and because every transform is
differentiable, G is trained through them. D then cannot memorise a small training set, while G is not
pushed to reproduce the augmentations (each image draws its own random parameters, as for the reals).

Transforms on images in [-1, 1] (``[B, C, H, W]``):

- ``color``: brightness ``x + (u - 0.5)``, saturation ``(x - mean_c)·2u + mean_c``,
  contrast ``(x - mean)·(u + 0.5) + mean`` (``u ~ U[0, 1)`` per sample);
- ``translation``: integer shift by up to ``translation_ratio·size`` pixels, zero (mid-grey) fill;
- ``cutout``: one square of side ``cutout_ratio·size`` at a random centre set to zero.

All random numbers come from a caller-owned CPU ``torch.Generator``, never the global RNG, so a training
run resumed from a checkpoint (which saves that generator's state) replays the same augmentations.
``p`` < 1 applies each transform to a random subset of the batch (per sample), which also lets a schedule
fade augmentation out; p = 1 is DiffAugment.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["POLICIES", "DiffAugment", "color", "cutout", "translation"]

POLICIES = ("color", "translation", "cutout")


def _uniform(n: int, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    return torch.rand(n, 1, 1, 1, generator=generator).to(like.device, like.dtype)


def color(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random brightness, saturation and contrast per sample."""
    b = x.shape[0]
    u_bright, u_sat, u_con = (_uniform(b, generator, x) for _ in range(3))
    x = x + (u_bright - 0.5)
    mean_c = x.mean(dim=1, keepdim=True)
    x = (x - mean_c) * (u_sat * 2) + mean_c
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * (u_con + 0.5) + mean


def translation(
    x: torch.Tensor, ratio: float = 0.125, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Shift each image by integers in ``[-s, s]`` (``s = round(ratio·size)``) per axis; zero fill."""
    b, _, h, w = x.shape
    sy, sx = int(round(h * ratio)), int(round(w * ratio))
    dy = torch.randint(-sy, sy + 1, (b,), generator=generator).to(x.device)
    dx = torch.randint(-sx, sx + 1, (b,), generator=generator).to(x.device)
    if sy == 0 and sx == 0:
        return x
    padded = torch.nn.functional.pad(x, [sx, sx, sy, sy])
    rows = torch.arange(h, device=x.device)[None, :] + sy - dy[:, None]  # [B, H] source row per output row
    cols = torch.arange(w, device=x.device)[None, :] + sx - dx[:, None]  # [B, W]
    batch = torch.arange(b, device=x.device)[:, None, None]
    out = padded[batch, :, rows[:, :, None], cols[:, None, :]]  # advanced indexing -> [B, H, W, C]
    return out.permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, ratio: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero one ``ratio·size`` square per image at a uniformly random centre (clipped at the borders)."""
    b, _, h, w = x.shape
    ch, cw = max(1, int(round(h * ratio))), max(1, int(round(w * ratio)))
    cy = torch.randint(0, h, (b,), generator=generator).to(x.device)
    cx = torch.randint(0, w, (b,), generator=generator).to(x.device)
    ys = torch.arange(h, device=x.device)[None, :]
    xs = torch.arange(w, device=x.device)[None, :]
    in_y = (ys >= (cy - ch // 2)[:, None]) & (ys < (cy - ch // 2 + ch)[:, None])  # [B, H]
    in_x = (xs >= (cx - cw // 2)[:, None]) & (xs < (cx - cw // 2 + cw)[:, None])  # [B, W]
    keep = ~(in_y[:, :, None] & in_x[:, None, :])
    return x * keep[:, None].to(x.dtype)


class DiffAugment:
    """Apply ``policy`` (a subset of :data:`POLICIES`, in order) to a batch.

    ``aug(x, generator)`` returns augmented images; call it the same way on reals and fakes. With ``p`` < 1
    each transform is applied to each sample with probability ``p``. The number of random draws does not
    depend on ``p`` or the data, so the generator advances identically every call of the same batch size.
    """

    def __init__(
        self,
        policy: Sequence[str] = POLICIES,
        translation_ratio: float = 0.125,
        cutout_ratio: float = 0.5,
        p: float = 1.0,
    ) -> None:
        unknown = [name for name in policy if name not in POLICIES]
        if unknown:
            raise ValueError(f"unknown augmentation(s) {unknown}; choose from {list(POLICIES)}")
        if not 0 <= p <= 1:
            raise ValueError(f"augmentation probability must be in [0, 1], got {p}")
        self.policy = tuple(policy)
        self.translation_ratio = translation_ratio
        self.cutout_ratio = cutout_ratio
        self.p = p

    def _one(self, name: str, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if name == "color":
            return color(x, generator)
        if name == "translation":
            return translation(x, self.translation_ratio, generator)
        return cutout(x, self.cutout_ratio, generator)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        for name in self.policy:
            y = self._one(name, x, generator)
            if self.p < 1:
                apply = torch.rand(x.shape[0], generator=generator) < self.p
                x = torch.where(apply.to(x.device)[:, None, None, None], y, x)
            else:
                x = y
        return x

    def __repr__(self) -> str:
        return (
            f"DiffAugment(policy={list(self.policy)}, translation_ratio={self.translation_ratio}, "
            f"cutout_ratio={self.cutout_ratio}, p={self.p})"
        )
