"""SWAGAN: style-based, wavelet-driven generator and discriminator (Gal et al., 2021).

A one-level Haar transform splits an image into LL, LH, HL, HH sub-bands at half resolution. The generator's
toRGB layers predict the 4 sub-bands x C channels; between blocks the skip image goes IWT -> FIR upsample
-> DWT, and the output is the IWT of the last skip. The discriminator sees the DWT of its input at every
scale (``fromwav`` layers). Numerics match rosinality's ``swagan.py`` (see the fixture README):

* Haar kernels ``l = [1, 1]/sqrt(2)``, ``h = [-1, 1]/sqrt(2)``; ``ll = l⊗l``, ``lh = h⊗l``, ``hl = l⊗h``,
  ``hh = h⊗h`` (``(u⊗v)[i, j] = u[i] v[j]``).
* DWT: ``upfirdn2d(x, k, down=2)`` per kernel (a true convolution), bands concatenated ``[ll|lh|hl|hh]``.
* IWT: ``sum_b upfirdn2d(band_b, k_b', up=2, pad=(1, 0))`` with ``k' = (ll, -lh, -hl, hh)``; IWT(DWT(x)) = x.

Both transforms run here as one strided conv (DWT) / transposed conv (IWT) over all four bands, which is
algebraically identical to the upfirdn2d form (tested against it).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from tedigan.models.layers import Downsample, EqualConv2d, upfirdn2d
from tedigan.models.stylegan2 import (
    ArchParts,
    DiscriminatorEpilogue,
    GeneratorConfig,
    SynthesisNetwork,
    register_arch,
)


def haar_kernels() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The 2x2 Haar kernels ``(ll, lh, hl, hh)`` as defined upstream."""
    l = torch.tensor([1.0, 1.0]) / math.sqrt(2.0)
    h = torch.tensor([-1.0, 1.0]) / math.sqrt(2.0)
    return torch.outer(l, l), torch.outer(h, l), torch.outer(l, h), torch.outer(h, h)


def dwt_reference(x: torch.Tensor) -> torch.Tensor:
    """DWT written literally with :func:`upfirdn2d` (slow; the definition the fast path is tested against)."""
    return torch.cat([upfirdn2d(x, k, down=2) for k in haar_kernels()], dim=1)


def iwt_reference(x: torch.Tensor) -> torch.Tensor:
    """IWT written literally with :func:`upfirdn2d`."""
    ll, lh, hl, hh = haar_kernels()
    kernels = (ll, -lh, -hl, hh)
    return sum(upfirdn2d(b, k, up=2, pad=(1, 0)) for b, k in zip(x.chunk(4, dim=1), kernels))


class HaarTransform(nn.Module):
    """DWT: ``[N, C, H, W] -> [N, 4C, H/2, W/2]`` with bands ordered ``[ll | lh | hl | hh]``."""

    def __init__(self) -> None:
        super().__init__()
        # conv2d is a correlation: flip the kernels to get upfirdn2d's convolution.
        weight = torch.stack([k.flip([0, 1]) for k in haar_kernels()]).unsqueeze(1)  # [4, 1, 2, 2]
        self.register_buffer("weight", weight, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        if h % 2 or w % 2:
            raise ValueError(f"DWT needs even spatial size, got {tuple(x.shape)}")
        y = F.conv2d(x.reshape(n * c, 1, h, w), self.weight.to(x.dtype), stride=2)  # [NC, 4, h/2, w/2]
        return y.reshape(n, c, 4, h // 2, w // 2).transpose(1, 2).reshape(n, 4 * c, h // 2, w // 2)


class InverseHaarTransform(nn.Module):
    """IWT: ``[N, 4C, H, W] -> [N, C, 2H, 2W]`` (inverse of :class:`HaarTransform`)."""

    def __init__(self) -> None:
        super().__init__()
        ll, lh, hl, hh = haar_kernels()
        # upfirdn2d(up=2, pad=(1, 0)) with a 2x2 kernel k gives out[2i+t, 2j+u] = x[i, j] * k[t, u], which is
        # exactly conv_transpose2d(stride=2) with the unflipped kernel.
        self.register_buffer("weight", torch.stack([ll, -lh, -hl, hh]).unsqueeze(1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c4, h, w = x.shape
        if c4 % 4:
            raise ValueError(f"IWT needs 4*C channels, got {c4}")
        c = c4 // 4
        y = x.reshape(n, 4, c, h, w).transpose(1, 2).reshape(n * c, 4, h, w)
        y = F.conv_transpose2d(y, self.weight.to(x.dtype), stride=2)  # sums the four bands
        return y.reshape(n, c, 2 * h, 2 * w)


class WaveletSynthesisNetwork(SynthesisNetwork):
    """StyleGAN2 skip synthesis whose toRGBs predict Haar sub-bands; runs up to ``resolution / 2``."""

    rgb_factor = 4

    def __init__(self, config: GeneratorConfig) -> None:
        if config.arch != "swagan":
            raise ValueError("WaveletSynthesisNetwork needs arch='swagan'")
        super().__init__(config)
        self.dwt = HaarTransform()
        self.iwt = InverseHaarTransform()

    def skip_upsample(self, img: torch.Tensor) -> torch.Tensor:
        return self.dwt(self.upsample(self.iwt(img)))

    def finalize(self, img: torch.Tensor) -> torch.Tensor:
        return self.iwt(img)


class _WaveletDown(nn.Module):
    """Sub-bands at r -> sub-bands at r/2: IWT -> FIR downsample -> DWT."""

    def __init__(self, blur_kernel) -> None:
        super().__init__()
        self.iwt = InverseHaarTransform()
        self.down = Downsample(blur_kernel)
        self.dwt = HaarTransform()

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.dwt(self.down(self.iwt(img)))


class WaveletDiscriminatorBlock(nn.Module):
    """``x += fromwav(bands)`` then conv0 (3x3) and conv1 (3x3 down); no residual (upstream ConvBlock)."""

    def __init__(
        self, in_channels: int, out_channels: int, img_channels: int, first: bool, blur_kernel
    ) -> None:
        super().__init__()
        self.wavelet_down = None if first else _WaveletDown(blur_kernel)
        self.fromwav = EqualConv2d(4 * img_channels, in_channels, 3, activation="lrelu")
        self.conv0 = EqualConv2d(in_channels, in_channels, 3, activation="lrelu")
        self.conv1 = EqualConv2d(
            in_channels, out_channels, 3, activation="lrelu", down=2, blur_kernel=blur_kernel
        )

    def forward(self, x: torch.Tensor | None, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.wavelet_down is not None:
            img = self.wavelet_down(img)
        y = self.fromwav(img)
        x = y if x is None else y + x
        return self.conv1(self.conv0(x)), img


class WaveletDiscriminatorEpilogue(DiscriminatorEpilogue):
    """4x4 epilogue that first adds ``fromwav`` of the 4x4 sub-bands."""

    def __init__(
        self,
        channels: int,
        img_channels: int,
        mbstd_group_size: int = 4,
        mbstd_num_channels: int = 1,
        blur_kernel=(1, 3, 3, 1),
        downsample: bool = True,
    ) -> None:
        super().__init__(channels, mbstd_group_size, mbstd_num_channels)
        self.wavelet_down = _WaveletDown(blur_kernel) if downsample else None
        self.fromwav = EqualConv2d(4 * img_channels, channels, 3, activation="lrelu")

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None = None) -> torch.Tensor:
        if self.wavelet_down is not None:
            img = self.wavelet_down(img)
        y = self.fromwav(img)
        x = y if x is None else y + x
        return super().forward(x)


__all__ = [
    "HaarTransform",
    "InverseHaarTransform",
    "WaveletDiscriminatorBlock",
    "WaveletDiscriminatorEpilogue",
    "WaveletSynthesisNetwork",
    "dwt_reference",
    "haar_kernels",
    "iwt_reference",
]


def _discriminator_body(D: nn.Module, config, ch: dict[int, int]) -> None:
    """SWAGAN's discriminator: the Haar transform of the input, wavelet blocks and epilogue."""
    D.dwt = HaarTransform()
    for i, r in enumerate(D.block_resolutions):
        D.add_module(
            f"b{r}",
            WaveletDiscriminatorBlock(ch[r], ch[r // 2], config.img_channels, i == 0, config.blur_kernel),
        )
    D.b4 = WaveletDiscriminatorEpilogue(
        ch[4],
        config.img_channels,
        config.mbstd_group_size,
        config.mbstd_num_channels,
        config.blur_kernel,
        downsample=bool(D.block_resolutions),
    )


register_arch("swagan", ArchParts(synthesis=WaveletSynthesisNetwork, discriminator=_discriminator_body))
