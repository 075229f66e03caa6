"""Style-based generator and discriminator: StyleGAN2 (default), its StyleGAN1 (AdaIN) variant, and SWAGAN.

Papers: Karras et al., "A Style-Based Generator Architecture for GANs" (StyleGAN, 2019); Karras et al.,
"Analyzing and Improving the Image Quality of StyleGAN" (StyleGAN2, 2020); Gal et al., "SWAGAN: A
Style-based Wavelet-driven Generative Model" (2021; wavelet parts in :mod:`tedigan.models.swagan`).

``Generator = mapping + synthesis``: ``G.mapping(z) -> ws [B, num_ws, w_dim]`` and
``G.synthesis(ws, noise_mode=...) -> img [B, C, R, R]`` are callable separately (NVlabs style).
Numerics follow the conventions of ``shared/fixtures/stylegan_interop/README.md`` exactly, so rosinality
and NVlabs checkpoints reproduce their reference images (see :mod:`tedigan.convert.rosinality`).

State-dict names (``r`` = feature resolution; filters and Haar kernels are non-persistent buffers, so they
never appear). They follow NVlabs' layout, so the NVlabs converter is a near-identity rename:

Generator (``arch`` 'stylegan2' and 'swagan')::

    mapping.fc{i}.weight [w_dim, in]  .bias [w_dim]   i = 0..n_mlp-1; lr_mul lr_mlp, lrelu
    mapping.w_avg [w_dim]                             running mean of w (buffer), for truncation
    synthesis.input.weight [C4, 4, 4]                 learned constant
    synthesis.b{r}.conv0.*                            3x3 up-conv into r (absent for r = 4)
    synthesis.b{r}.conv1.*                            3x3 conv at r
        .weight [out, in, 3, 3]  .affine.weight [in, w_dim]  .affine.bias [in] (includes the +1)
        .bias [out]  .noise.strength []  .noise.const [r, r] (buffer)
    synthesis.b{r}.torgb.weight [C_rgb, in, 1, 1]  .bias [C_rgb]  .affine.*   (C_rgb = 3, or 12 for swagan)

Generator (``arch`` 'stylegan1', AdaIN)::

    mapping.*, synthesis.input.weight as above
    synthesis.b{r}.conv0.* / conv1.*: .weight [out, in, 3, 3] (absent on b4.conv0, which styles the const)
        .bias [out]  .noise.strength [out]  .noise.const [r, r]  .affine.weight [2*out, w_dim]  .affine.bias
    synthesis.torgb.weight [C_img, C_R, 1, 1]  .bias [C_img]

Discriminator::

    b{R}.fromrgb.weight [C_R, C_img, 1, 1] .bias          (first block; swagan: b{r}.fromwav [C_r, 4*C_img, 3, 3])
    b{r}.conv0.weight [C_r, C_r, 3, 3] .bias              r = R, R/2, ..., 8 (swagan: R/2, ..., 8)
    b{r}.conv1.weight [C_r/2, C_r, 3, 3] .bias            down-conv
    b{r}.skip.weight [C_r/2, C_r, 1, 1]                   resnet only, no bias
    b4.conv.weight [C4, C4+1, 3, 3] .bias   b4.fc.weight [C4, 16*C4] .bias   b4.out.weight [1, C4] .bias
    (swagan: also b4.fromwav.*)

All weights are stored in equalised-lr form (runtime gain ``lr_mul/sqrt(fan_in)``); use
:func:`tedigan.models.layers.load_effective_state_dict` to load tensors given in effective units.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from tedigan.models.base import PretrainedModule
from tedigan.models.layers import (
    NOISE_MODES,
    ConstantInput,
    EqualConv2d,
    EqualLinear,
    GainMixin,
    MinibatchStdDev,
    ModulatedConv2d,
    NoiseInjection,
    PixelNorm,
    Upsample,
    bias_act,
    effective_state_dict,
    load_effective_state_dict,
    log2_resolution,
)
from tedigan.models.style import StyleGenerator, StyleMapping
from tedigan.models.style import check_ws as _check_ws

Arch = Literal["stylegan2", "stylegan1", "swagan"]
ARCHS = ("stylegan2", "stylegan1", "swagan")


def _normalise_channels(channels: dict | None) -> dict[str, int] | None:
    if channels is None:
        return None
    return {str(int(k)): int(v) for k, v in channels.items()}


def channel_table(
    resolutions: list[int],
    channels: dict[str, int] | None,
    channel_base: int,
    channel_max: int,
    channel_multiplier: int | None,
) -> dict[int, int]:
    """Width per feature resolution: an explicit ``channels`` dict, else ``min(base // r, channel_max)``.

    ``channel_multiplier`` m (rosinality's knob) means ``base = 16384 * m``: with m = 2 and channel_max 512
    this is the StyleGAN2 config-f table {4..64: 512, 128: 256, 256: 128, 512: 64, 1024: 32}.
    """
    if channels is not None:
        missing = [r for r in resolutions if str(r) not in channels]
        if missing:
            raise ValueError(f"channels has no width for resolution(s) {missing}")
        return {r: channels[str(r)] for r in resolutions}
    base = 16384 * channel_multiplier if channel_multiplier else channel_base
    return {r: max(1, min(base // r, channel_max)) for r in resolutions}


@dataclass
class _NetworkConfig:
    """Fields and checks shared by :class:`GeneratorConfig` and :class:`DiscriminatorConfig`."""

    resolution: int = 1024
    img_channels: int = 3
    arch: Arch = "stylegan2"
    channel_base: int = 32768
    channel_max: int = 512
    channel_multiplier: int | None = None
    channels: dict[str, int] | None = None
    blur_kernel: list[float] = field(default_factory=lambda: [1.0, 3.0, 3.0, 1.0])

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {self.arch!r}")
        log2_resolution(self.resolution, "resolution")
        if self.arch == "swagan" and self.resolution < 8:
            raise ValueError("swagan needs resolution >= 8")
        self.channels = _normalise_channels(self.channels)
        self.blur_kernel = [float(k) for k in self.blur_kernel]
        self.channels_per_resolution()  # validates the table

    @property
    def top_resolution(self) -> int:
        """Highest feature-map resolution (``resolution``, or ``resolution/2`` for swagan)."""
        return self.resolution // 2 if self.arch == "swagan" else self.resolution

    @property
    def feature_resolutions(self) -> list[int]:
        """Feature resolutions from 4 up to :attr:`top_resolution`."""
        return [2**k for k in range(2, log2_resolution(self.top_resolution, "resolution") + 1)]

    def channels_per_resolution(self) -> dict[int, int]:
        return channel_table(
            self.feature_resolutions,
            self.channels,
            self.channel_base,
            self.channel_max,
            self.channel_multiplier,
        )


@dataclass
class GeneratorConfig(_NetworkConfig):
    """Everything needed to rebuild a :class:`Generator` (saved as ``config.json``).

    ``channels`` maps a feature resolution (as a string key, "4", "8", ...) to its width; without it the
    widths come from ``channel_base``/``channel_max`` (NVlabs rule) or ``channel_multiplier`` (rosinality).
    For ``swagan`` the features stop at ``resolution / 2`` (the last block predicts Haar sub-bands).
    Examples: ``GeneratorConfig(resolution=32, z_dim=64, w_dim=64, n_mlp=2, channels={r: 16 ...})`` or
    ``GeneratorConfig(resolution=32, channel_base=512, channel_max=16)`` (16 channels everywhere) and the
    default ``GeneratorConfig()`` = FFHQ config-f at 1024 px (512 channels up to 64 px, 18 ws).
    """

    z_dim: int = 512
    w_dim: int = 512
    n_mlp: int = 8
    lr_mlp: float = 0.01
    w_avg_beta: float = 0.995

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_mlp < 1:
            raise ValueError("n_mlp must be >= 1")

    @property
    def num_ws(self) -> int:
        return 2 * log2_resolution(self.top_resolution, "resolution") - 2


@dataclass
class DiscriminatorConfig(_NetworkConfig):
    """Everything needed to rebuild a :class:`Discriminator`.

    'stylegan2' and 'stylegan1' use the residual discriminator (feature resolutions R..4); 'swagan' uses
    the wavelet discriminator, whose features run at R/2..4 on Haar sub-bands. ``channels`` maps the
    feature resolution (string key) to the width there.
    """

    mbstd_group_size: int = 4
    mbstd_num_channels: int = 1

    @property
    def feature_resolutions(self) -> list[int]:
        """Feature resolutions from :attr:`top_resolution` down to 4 (the order the blocks run in)."""
        return super().feature_resolutions[::-1]


# ------------------------------------------------------------------------------------------------
# Mapping network
# ------------------------------------------------------------------------------------------------


class MappingNetwork(StyleMapping):
    """z -> pixel norm -> ``n_mlp`` dense lrelu layers (lr_mul 0.01) -> w, broadcast to ``num_ws``.

    ``w_avg`` tracks the mean w in training mode (``w_avg <- lerp(mean_batch(w), w_avg, beta)``) and is the
    centre of the truncation trick ``w' = w_avg + psi * (w - w_avg)``.
    """

    def __init__(
        self,
        z_dim: int,
        w_dim: int,
        num_ws: int,
        n_mlp: int = 8,
        lr_mul: float = 0.01,
        w_avg_beta: float = 0.995,
    ) -> None:
        super().__init__()
        self.z_dim, self.w_dim, self.num_ws, self.n_mlp = z_dim, w_dim, num_ws, n_mlp
        self.w_avg_beta = w_avg_beta
        self.norm = PixelNorm()
        for i in range(n_mlp):
            layer = EqualLinear(z_dim if i == 0 else w_dim, w_dim, lr_mul=lr_mul, activation="lrelu")
            self.add_module(f"fc{i}", layer)
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def embed(self, z: torch.Tensor) -> torch.Tensor:
        """z ``[B, z_dim]`` -> w ``[B, w_dim]`` (no broadcast, no truncation, no w_avg update)."""
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"mapping expects z of shape [B, {self.z_dim}], got {tuple(z.shape)}")
        x = self.norm(z)
        for i in range(self.n_mlp):
            x = getattr(self, f"fc{i}")(x)
        return x


# ------------------------------------------------------------------------------------------------
# StyleGAN2 synthesis
# ------------------------------------------------------------------------------------------------


class StyledConv(ModulatedConv2d):
    """Modulated, demodulated 3x3 conv + noise + bias + lrelu (one StyleGAN2 synthesis layer)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        kernel_size: int = 3,
        up: int = 1,
        blur_kernel: list[float] = (1, 3, 3, 1),
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, w_dim, demodulate=True, up=up, blur_kernel=blur_kernel
        )
        self.resolution = resolution
        self.noise = NoiseInjection(resolution)
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(
        self,
        x: torch.Tensor,
        w: torch.Tensor,
        noise_mode: str = "random",
        noise: torch.Tensor | None = None,
        fused: bool = True,
    ) -> torch.Tensor:
        x = self.modulated(x, w, fused=fused)
        x = self.noise(x, noise_mode, noise)  # before bias and activation (both upstreams)
        return bias_act(x, self.bias, act="lrelu")


class ToRGB(ModulatedConv2d):
    """Modulated 1x1 conv without demodulation, plus bias, linear output."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int) -> None:
        super().__init__(in_channels, out_channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused: bool = True) -> torch.Tensor:
        return bias_act(self.modulated(x, w, fused=fused), self.bias)


class SynthesisBlock(nn.Module):
    """One resolution of the skip generator: [up-conv] + conv + toRGB."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        rgb_channels: int,
        blur_kernel: list[float],
    ) -> None:
        super().__init__()
        self.resolution = resolution
        if resolution > 4:
            self.conv0 = StyledConv(
                in_channels, out_channels, w_dim, resolution, up=2, blur_kernel=blur_kernel
            )
        else:
            self.conv0 = None
        self.conv1 = StyledConv(out_channels, out_channels, w_dim, resolution, blur_kernel=blur_kernel)
        self.torgb = ToRGB(out_channels, rgb_channels, w_dim)

    @property
    def num_conv(self) -> int:
        return 1 if self.conv0 is None else 2


def fused_modconv_for(device: torch.device | str, fused: bool | None = None) -> bool:
    """``fused``, or (None) the faster form of the modulated conv on ``device``: one grouped conv on CUDA,
    per-sample scaling around a shared conv elsewhere (same maths; on CPU 1.5-1.8x faster G forward at
    batch 16 and 1.1x faster whole training runs of the avatars64 preset, measured side by side)."""
    return torch.device(device).type == "cuda" if fused is None else fused


def _check_noise(noise: list | None, n: int) -> list:
    if noise is None:
        return [None] * n
    noise = list(noise)
    if len(noise) != n:
        raise ValueError(f"expected {n} noise tensors, got {len(noise)}")
    return noise


class _StyledSynthesis(nn.Module):
    """What both synthesis families share: a learned 4x4 constant, one block ``b{R}`` per feature resolution
    (from :meth:`make_block`), and the checks of ``ws``, ``noise_mode`` and ``noise`` before a forward pass."""

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.w_dim, self.img_channels = config.w_dim, config.img_channels
        self.resolution = config.resolution
        self.num_ws = config.num_ws
        ch = config.channels_per_resolution()
        self.block_resolutions = config.feature_resolutions
        self.input = ConstantInput(ch[4])
        prev = ch[4]
        for r in self.block_resolutions:
            self.add_module(f"b{r}", self.make_block(config, prev, ch[r], r))
            prev = ch[r]
        self.out_channels = prev

    def make_block(self, config: GeneratorConfig, in_ch: int, out_ch: int, resolution: int) -> nn.Module:
        raise NotImplementedError

    def blocks(self) -> list[nn.Module]:
        return [getattr(self, f"b{r}") for r in self.block_resolutions]

    def noise_layers(self) -> list[NoiseInjection]:
        raise NotImplementedError

    def _begin(self, ws: torch.Tensor, noise_mode: str, noise: list | None) -> tuple[torch.Tensor, Iterator]:
        """The constant input for ``ws``'s batch and an iterator over the checked noise inputs."""
        _check_ws(ws, self.num_ws, self.w_dim)
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        return self.input(ws.shape[0]), iter(_check_noise(noise, len(self.noise_layers())))


class SynthesisNetwork(_StyledSynthesis):
    """StyleGAN2 skip-architecture synthesis: const 4x4, two 3x3 modulated convs per resolution, toRGB skips.

    W indexing: b4.conv1 uses w[0] and b4.torgb w[1]; block k (k = 0 for 8x8) uses w[2k+1] (conv0),
    w[2k+2] (conv1) and w[2k+3] (torgb), i.e. each toRGB shares its w with the next up-conv.
    Subclasses (SWAGAN) override :meth:`skip_upsample` and :meth:`finalize` and the toRGB width.
    """

    rgb_factor = 1  # toRGB outputs img_channels * rgb_factor channels

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__(config)
        self.upsample = Upsample(config.blur_kernel)

    def make_block(self, config: GeneratorConfig, in_ch: int, out_ch: int, resolution: int) -> SynthesisBlock:
        rgb = config.img_channels * self.rgb_factor
        return SynthesisBlock(in_ch, out_ch, config.w_dim, resolution, rgb, config.blur_kernel)

    def noise_layers(self) -> list[NoiseInjection]:
        """Noise inputs in upstream order (b4.conv1, b8.conv0, b8.conv1, ...)."""
        layers = []
        for block in self.blocks():
            for conv in (block.conv0, block.conv1):
                if conv is not None:
                    layers.append(conv.noise)
        return layers

    def skip_upsample(self, img: torch.Tensor) -> torch.Tensor:
        return self.upsample(img)

    def finalize(self, img: torch.Tensor) -> torch.Tensor:
        return img

    def forward(
        self,
        ws: torch.Tensor,
        noise_mode: str = "random",
        noise: list[torch.Tensor] | None = None,
        fused_modconv: bool | None = None,
    ) -> torch.Tensor:
        x, noises = self._begin(ws, noise_mode, noise)
        fused_modconv = fused_modconv_for(ws.device, fused_modconv)
        img = None
        wi = 0
        for block in self.blocks():
            if block.conv0 is not None:
                x = block.conv0(x, ws[:, wi], noise_mode, next(noises), fused=fused_modconv)
                wi += 1
            x = block.conv1(x, ws[:, wi], noise_mode, next(noises), fused=fused_modconv)
            wi += 1
            y = block.torgb(x, ws[:, wi], fused=fused_modconv)
            img = y if img is None else self.skip_upsample(img) + y
        out = self.finalize(img)
        expected = (ws.shape[0], self.img_channels, self.resolution, self.resolution)
        assert tuple(out.shape) == expected, f"synthesis produced {tuple(out.shape)}, expected {expected}"
        return out


# ------------------------------------------------------------------------------------------------
# StyleGAN1 (AdaIN) synthesis
# ------------------------------------------------------------------------------------------------


class AdaINLayer(GainMixin, nn.Module):
    """StyleGAN1 layer: [FIR upsample] -> [3x3 conv] -> + noise -> bias + lrelu -> instance norm -> style.

    The style ``A(w) = (scale, shift)`` is one dense layer ``w_dim -> 2*out`` with scale bias initialised
    to 1 and shift bias to 0. ``conv=False`` (the first 4x4 layer) styles its input directly. Noise has a
    learned per-channel strength, as in the StyleGAN paper.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        kernel_size: int = 3,
        up: int = 1,
        conv: bool = True,
        blur_kernel: list[float] = (1, 3, 3, 1),
    ) -> None:
        super().__init__()
        self.out_channels = out_channels
        if conv:
            self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
            self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        else:
            if in_channels != out_channels or up != 1:
                raise ValueError("an AdaIN layer without conv needs in == out channels and up == 1")
            self.register_parameter("weight", None)
            self.weight_gain = 1.0
        self.padding = kernel_size // 2
        self.upsample = Upsample(blur_kernel, up) if up > 1 else None
        self.noise = NoiseInjection(resolution, channels=out_channels)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.affine = EqualLinear(w_dim, 2 * out_channels)
        with torch.no_grad():
            self.affine.bias[:out_channels].fill_(1.0)

    def param_gains(self) -> dict[str, float]:
        return {"weight": self.weight_gain}

    def forward(
        self,
        x: torch.Tensor,
        w: torch.Tensor,
        noise_mode: str = "random",
        noise: torch.Tensor | None = None,
        fused: bool = True,  # accepted for interface parity; AdaIN has no fused form
    ) -> torch.Tensor:
        if self.upsample is not None:
            x = self.upsample(x)
        if self.weight is not None:
            x = F.conv2d(x, self.weight * self.weight_gain, padding=self.padding)
        x = self.noise(x, noise_mode, noise)
        x = bias_act(x, self.bias, act="lrelu")
        x = x - x.mean(dim=[2, 3], keepdim=True)
        x = x * torch.rsqrt(x.square().mean(dim=[2, 3], keepdim=True) + 1e-8)
        scale, shift = self.affine(w).chunk(2, dim=1)
        return x * scale[:, :, None, None] + shift[:, :, None, None]


class AdaINBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, blur_kernel) -> None:
        super().__init__()
        first = resolution == 4
        self.conv0 = AdaINLayer(
            in_channels,
            out_channels,
            w_dim,
            resolution,
            up=1 if first else 2,
            conv=not first,
            blur_kernel=blur_kernel,
        )
        self.conv1 = AdaINLayer(out_channels, out_channels, w_dim, resolution, blur_kernel=blur_kernel)


class AdaINSynthesisNetwork(_StyledSynthesis):
    """StyleGAN1 synthesis: const -> (style, conv) at 4x4, then (up-conv, conv) per resolution, 1x1 toRGB.

    Layer i uses w[i] (num_ws = 2*log2(R) - 2 layers); the final toRGB is an unstyled 1x1 conv.
    """

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__(config)
        self.torgb = EqualConv2d(self.out_channels, config.img_channels, 1)

    def make_block(self, config: GeneratorConfig, in_ch: int, out_ch: int, resolution: int) -> AdaINBlock:
        return AdaINBlock(in_ch, out_ch, config.w_dim, resolution, config.blur_kernel)

    def noise_layers(self) -> list[NoiseInjection]:
        return [layer.noise for block in self.blocks() for layer in (block.conv0, block.conv1)]

    def forward(
        self,
        ws: torch.Tensor,
        noise_mode: str = "random",
        noise: list[torch.Tensor] | None = None,
        fused_modconv: bool | None = None,
    ) -> torch.Tensor:
        x, noises = self._begin(ws, noise_mode, noise)
        wi = 0
        for block in self.blocks():
            for layer in (block.conv0, block.conv1):
                x = layer(x, ws[:, wi], noise_mode, next(noises))
                wi += 1
        return self.torgb(x)


# ------------------------------------------------------------------------------------------------
# Generator
# ------------------------------------------------------------------------------------------------


class Generator(StyleGenerator, PretrainedModule):
    """Style-based generator: ``mapping`` (z -> ws) + ``synthesis`` (ws -> image, no tanh/clamp)."""

    config_class = GeneratorConfig

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__(config)
        self.mapping = MappingNetwork(
            config.z_dim, config.w_dim, config.num_ws, config.n_mlp, config.lr_mlp, config.w_avg_beta
        )
        if config.arch == "stylegan2":
            self.synthesis = SynthesisNetwork(config)
        elif config.arch == "stylegan1":
            self.synthesis = AdaINSynthesisNetwork(config)
        else:
            self.synthesis = _registered(config.arch).synthesis(config)

    @property
    def noise_shapes(self) -> list[tuple[int, int, int, int]]:
        return [(1, 1, n.resolution, n.resolution) for n in self.synthesis.noise_layers()]

    def make_noise(
        self,
        batch: int = 1,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> list[torch.Tensor]:
        """Fresh noise ``[batch, 1, r, r]`` for every noise input, in synthesis order."""
        device = device if device is not None else self.mapping.w_avg.device
        return [torch.randn(batch, 1, s[2], s[3], generator=generator).to(device) for s in self.noise_shapes]

    def forward(
        self,
        z: torch.Tensor,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str = "random",
        noise: list[torch.Tensor] | None = None,
        fused_modconv: bool | None = None,
        return_ws: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        ws = self.mapping(z, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        img = self.synthesis(ws, noise_mode=noise_mode, noise=noise, fused_modconv=fused_modconv)
        return (img, ws) if return_ws else img

    def effective_state_dict(self) -> dict[str, torch.Tensor]:
        return effective_state_dict(self)

    def load_effective_state_dict(self, state: dict[str, torch.Tensor], strict: bool = True):
        return load_effective_state_dict(self, state, strict=strict)


# ------------------------------------------------------------------------------------------------
# Discriminator
# ------------------------------------------------------------------------------------------------


class DiscriminatorBlock(nn.Module):
    """Residual block: ``(conv1(conv0(x)) + skip(x)) / sqrt(2)``, halving the resolution."""

    def __init__(
        self, in_channels: int, out_channels: int, img_channels: int, first: bool, blur_kernel: list[float]
    ) -> None:
        super().__init__()
        self.fromrgb = EqualConv2d(img_channels, in_channels, 1, activation="lrelu") if first else None
        self.conv0 = EqualConv2d(in_channels, in_channels, 3, activation="lrelu")
        self.conv1 = EqualConv2d(
            in_channels, out_channels, 3, activation="lrelu", down=2, blur_kernel=blur_kernel
        )
        self.skip = EqualConv2d(in_channels, out_channels, 1, bias=False, down=2, blur_kernel=blur_kernel)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.fromrgb is not None:
            x = self.fromrgb(img)
        y = self.skip(x)
        x = self.conv1(self.conv0(x))
        return (x + y) / math.sqrt(2), img


class DiscriminatorEpilogue(nn.Module):
    """4x4: minibatch stddev -> 3x3 conv (lrelu) -> flatten -> dense (lrelu) -> dense to 1 logit."""

    def __init__(self, channels: int, mbstd_group_size: int = 4, mbstd_num_channels: int = 1) -> None:
        super().__init__()
        self.mbstd = MinibatchStdDev(mbstd_group_size, mbstd_num_channels)
        self.conv = EqualConv2d(channels + mbstd_num_channels, channels, 3, activation="lrelu")
        self.fc = EqualLinear(channels * 16, channels, activation="lrelu")
        self.out = EqualLinear(channels, 1)

    def forward(self, x: torch.Tensor, img: torch.Tensor | None = None) -> torch.Tensor:
        x = self.conv(self.mbstd(x))
        return self.out(self.fc(x.flatten(1)))


@dataclass
class ArchParts:
    """What an architecture family outside this file (e.g. :mod:`tedigan.models.swagan`) supplies:
    ``synthesis(config) -> nn.Module`` and ``discriminator(D, config, channels)``, which adds D's blocks
    ``b{r}``, its epilogue ``b4`` and sets ``D.dwt`` (the input transform, or None)."""

    synthesis: Any
    discriminator: Any


#: arch -> its parts; families register themselves (``tedigan.models`` imports them), so this file never
#: imports them back
_ARCH_PARTS: dict[str, ArchParts] = {}


def register_arch(name: str, parts: ArchParts) -> None:
    if name not in ARCHS:
        raise ValueError(f"unknown architecture {name!r}: add it to ARCHS first")
    _ARCH_PARTS[name] = parts


def _registered(name: str) -> ArchParts:
    if name not in _ARCH_PARTS:
        import tedigan.models  # noqa: F401  (the package imports every family, which registers it)
    try:
        return _ARCH_PARTS[name]
    except KeyError:
        raise ValueError(f"architecture {name!r} is not available (its module did not register)") from None


def check_discriminator_input(img: torch.Tensor, channels: int, resolution: int) -> None:
    """Raise a one-line ``ValueError`` unless ``img`` is ``[B, channels, resolution, resolution]``."""
    expected = (channels, resolution, resolution)
    if img.ndim != 4 or tuple(img.shape[1:]) != expected:
        raise ValueError(
            f"discriminator expects [B, {', '.join(map(str, expected))}], got {tuple(img.shape)}"
        )


class Discriminator(PretrainedModule):
    """Residual StyleGAN2 discriminator (or SWAGAN's wavelet discriminator); returns logits ``[B, 1]``."""

    config_class = DiscriminatorConfig

    def __init__(self, config: DiscriminatorConfig) -> None:
        super().__init__(config)
        ch = config.channels_per_resolution()
        self.block_resolutions = [r for r in config.feature_resolutions if r > 4]
        if config.arch in _ARCH_PARTS:
            # another family's discriminator body: its blocks b{r}, epilogue b4 and input transform (dwt)
            _registered(config.arch).discriminator(self, config, ch)
        else:
            self.dwt = None
            for i, r in enumerate(self.block_resolutions):
                block = DiscriminatorBlock(ch[r], ch[r // 2], config.img_channels, i == 0, config.blur_kernel)
                self.add_module(f"b{r}", block)
            self.b4 = DiscriminatorEpilogue(ch[4], config.mbstd_group_size, config.mbstd_num_channels)
            if not self.block_resolutions:  # 4x4 discriminator: from-RGB straight into the epilogue
                self.fromrgb = EqualConv2d(config.img_channels, ch[4], 1, activation="lrelu")

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        check_discriminator_input(img, self.config.img_channels, self.config.resolution)
        x = None
        if self.dwt is not None:
            img = self.dwt(img)
        elif not self.block_resolutions:
            x = self.fromrgb(img)
        for r in self.block_resolutions:
            x, img = getattr(self, f"b{r}")(x, img)
        out = self.b4(x, img)
        assert out.shape == (img.shape[0], 1)
        return out

    def effective_state_dict(self) -> dict[str, torch.Tensor]:
        return effective_state_dict(self)

    def load_effective_state_dict(self, state: dict[str, torch.Tensor], strict: bool = True):
        return load_effective_state_dict(self, state, strict=strict)


__all__ = [
    "AdaINLayer",
    "AdaINSynthesisNetwork",
    "Discriminator",
    "DiscriminatorBlock",
    "DiscriminatorConfig",
    "DiscriminatorEpilogue",
    "Generator",
    "GeneratorConfig",
    "MappingNetwork",
    "StyledConv",
    "SynthesisBlock",
    "SynthesisNetwork",
    "fused_modconv_for",
    "ToRGB",
    "channel_table",
]
