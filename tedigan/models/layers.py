"""Building blocks of the style-based generators (StyleGAN, StyleGAN2, SWAGAN), in pure PyTorch.

Conventions (the ones shared by rosinality/stylegan2-pytorch and NVlabs/stylegan2-ada-pytorch, so that their
checkpoints load without rescaling; see ``shared/fixtures/stylegan_interop/README.md``):

* **Equalised learning rate** (Karras et al., "Progressive Growing of GANs"): parameters are stored
  *unscaled* and multiplied at run time by ``weight_gain = lr_mul / sqrt(fan_in)`` (weights) and
  ``bias_gain = lr_mul`` (biases). Every module that applies such gains lists them in
  :meth:`param_gains`; :func:`effective_state_dict` / :func:`load_effective_state_dict` convert a whole
  model to and from the *effective* convention (the tensors actually used in the maths), which is what a
  converter from a differently scaled format wants.
* **lrelu** means ``leaky_relu(x + b, 0.2) * sqrt(2)`` (:func:`bias_act`).
* **FIR filtering** (:func:`upfirdn2d`) is a true convolution (flipped kernel) after zero-insertion
  upsampling and padding, then keeping every ``down``-th sample; fixed filters are *non-persistent* buffers,
  so they never appear in a state dict (they are rebuilt from the config).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

SQRT2 = math.sqrt(2.0)

# ------------------------------------------------------------------------------------------------
# Functional ops
# ------------------------------------------------------------------------------------------------


def log2_resolution(n: int, what: str = "resolution") -> int:
    """``log2(n)`` for a power of two ``n >= 4``; ``ValueError`` naming ``what`` otherwise."""
    k = int(round(math.log2(n))) if n > 0 else -1
    if k < 2 or 2**k != n:
        raise ValueError(f"{what} must be a power of two >= 4, got {n}")
    return k


def bias_act(
    x: torch.Tensor,
    bias: torch.Tensor | None = None,
    act: str = "linear",
    alpha: float = 0.2,
    gain: float | None = None,
    dim: int = 1,
) -> torch.Tensor:
    """Add ``bias`` along ``dim`` then apply ``act`` ('linear' or 'lrelu') times ``gain``.

    The default gain is sqrt(2) for 'lrelu' (keeps unit variance) and 1 for 'linear'.
    """
    if bias is not None:
        shape = [1] * x.ndim
        shape[dim] = -1
        x = x + bias.reshape(shape)
    if act == "lrelu":
        x = F.leaky_relu(x, alpha)
        gain = SQRT2 if gain is None else gain
    elif act != "linear":
        raise ValueError(f"unknown activation {act!r} (expected 'linear' or 'lrelu')")
    if gain is not None and gain != 1:
        x = x * gain
    return x


def _pad4(pad: int | Sequence[int]) -> tuple[int, int, int, int]:
    """Normalise ``pad`` to ``(x0, x1, y0, y1)``; an int or a pair applies to both axes."""
    if isinstance(pad, int):
        return pad, pad, pad, pad
    pad = tuple(int(p) for p in pad)
    if len(pad) == 2:
        return pad[0], pad[1], pad[0], pad[1]
    if len(pad) == 4:
        return pad  # type: ignore[return-value]
    raise ValueError(f"pad must be an int, (pad0, pad1) or (x0, x1, y0, y1), got {pad}")


def upfirdn2d(
    x: torch.Tensor,
    kernel: torch.Tensor,
    up: int = 1,
    down: int = 1,
    pad: int | Sequence[int] = 0,
) -> torch.Tensor:
    """Upsample, FIR-filter and downsample every channel of ``x [N, C, H, W]``.

    1. insert ``up - 1`` zeros after every sample (``x_up[up*i] = x[i]``);
    2. pad ``pad0`` before and ``pad1`` after (negative values crop);
    3. *convolve* (flipped kernel) in 'valid' mode;
    4. keep every ``down``-th sample starting at 0.

    ``kernel`` is either 2-D ``[kh, kw]`` or 1-D ``[k]``; a 1-D kernel stands for the separable
    ``outer(k, k)`` and runs as two 1-D passes (cheaper on CPU). No gain is applied here.
    Output size per axis: ``(H*up + pad0 + pad1 - kh) // down + 1``.
    """
    if x.ndim != 4:
        raise ValueError(f"upfirdn2d expects [N, C, H, W], got {tuple(x.shape)}")
    n, c, h, w = x.shape
    px0, px1, py0, py1 = _pad4(pad)
    if up > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(n, c, h * up, w * up)
    if any((px0, px1, py0, py1)):
        x = F.pad(x, [px0, px1, py0, py1])
    kernel = kernel.to(device=x.device, dtype=x.dtype)
    # Depthwise (groups=C) rather than a [N*C, 1, H, W] reshape: same maths, and on CPU the grouped
    # form is an order of magnitude faster, forward and backward.
    if kernel.ndim == 1:
        k = kernel.flip(0)
        x = _DepthwiseFIR.apply(x, k.reshape(1, 1, 1, -1).expand(c, 1, 1, -1), (1, down))
        x = _DepthwiseFIR.apply(x, k.reshape(1, 1, -1, 1).expand(c, 1, -1, 1), (down, 1))
    elif kernel.ndim == 2:
        x = _DepthwiseFIR.apply(x, kernel.flip([0, 1])[None, None].expand(c, 1, -1, -1), (down, down))
    else:
        raise ValueError(f"kernel must be 1-D or 2-D, got shape {tuple(kernel.shape)}")
    return x


class _DepthwiseFIR(torch.autograd.Function):
    """``conv2d(x, weight, stride, groups=C)`` with a fixed ``weight [C, 1, kh, kw]``, differentiable any number
    of times: its gradient is :class:`_DepthwiseFIRTranspose`, whose gradient is this again. torch's own double
    backward of a grouped convolution splits it into one convolution per channel (R1's double backward through
    D's blurs ran ~34 convolutions per blur on CPU); with this pair the R1 step is 1.7x and the path-length
    step 1.4x faster on one CPU core (avatars64 preset), the first-order steps within 3 %."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, stride: tuple[int, int]) -> torch.Tensor:
        ctx.weight, ctx.stride, ctx.in_shape, ctx.in_format = weight, stride, x.shape, _memory_format(x)
        return F.conv2d(x, weight, stride=stride, groups=x.shape[1])

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        g = _DepthwiseFIRTranspose.apply(grad, ctx.weight, ctx.stride, ctx.in_shape, ctx.in_format)
        return g, None, None


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return torch.channels_last if channels_last else torch.contiguous_format


class _DepthwiseFIRTranspose(torch.autograd.Function):
    """The adjoint of :class:`_DepthwiseFIR` (its input gradient), back to the input's shape."""

    @staticmethod
    def forward(
        ctx, g: torch.Tensor, weight: torch.Tensor, stride: tuple[int, int], in_shape, in_format
    ) -> torch.Tensor:
        ctx.weight, ctx.stride = weight, stride
        like = torch.empty(
            in_shape, dtype=g.dtype, device=g.device, memory_format=in_format
        )  # its shape only
        return torch.ops.aten.convolution_backward(
            g,
            like,
            weight,
            None,
            list(stride),
            [0, 0],
            [1, 1],
            False,
            [0, 0],
            g.shape[1],
            [True, False, False],
        )[0]

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None, None, None]:
        return _DepthwiseFIR.apply(grad, ctx.weight, ctx.stride), None, None, None, None


def make_kernel(k: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """1-D FIR kernel normalised to sum 1 (its separable 2-D form then also sums to 1)."""
    k = torch.as_tensor(k, dtype=torch.float32)
    if k.ndim != 1:
        raise ValueError(f"expected a 1-D kernel, got shape {tuple(k.shape)}")
    return k / k.sum()


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    demodulate: bool = True,
    up: int = 1,
    padding: int = 0,
    fused: bool = True,
    eps: float = 1e-8,
) -> torch.Tensor:
    """StyleGAN2 weight (de)modulation: ``W'[b,o,i] = W[o,i] * s[b,i]``, optionally ``/ ||W'[b,o]||``.

    ``weight [O, I, k, k]`` must already carry its runtime gain. With ``up > 1`` this runs
    ``conv_transpose2d(stride=up, padding=0)`` with the (unflipped) kernel, giving ``(H-1)*up + k``;
    the caller applies the anti-aliasing blur. ``fused`` runs one grouped convolution over the batch;
    otherwise the input is scaled by the styles, a shared convolution runs and the output is scaled
    by the demodulation coefficients (same maths, different rounding).
    """
    b, i, h, w = x.shape
    o, wi, kh, kw = weight.shape
    if wi != i or styles.shape != (b, i):
        raise ValueError(
            f"modulated_conv2d: x {tuple(x.shape)}, weight {tuple(weight.shape)}, styles {tuple(styles.shape)}"
        )
    if not fused:
        x = x * styles.reshape(b, i, 1, 1)
        if up > 1:
            x = F.conv_transpose2d(x, weight.transpose(0, 1), stride=up, padding=0)
        else:
            x = F.conv2d(x, weight, padding=padding)
        if demodulate:
            # ||W[o] * s[b]||² = sum_i s[b,i]² sum_k W[o,i,k]²: one [B, I] x [I, O] matmul instead of building
            # the [B, O, I, k, k] modulated weights (1.7x faster G forward+backward on CPU, avatars64 preset)
            dcoefs = torch.rsqrt(styles.square() @ weight.square().sum(dim=[2, 3]).T + eps)  # [B, O]
            x = x * dcoefs.reshape(b, o, 1, 1)
        return x
    wmod = weight.unsqueeze(0) * styles.reshape(b, 1, i, 1, 1)  # [B, O, I, k, k]
    if demodulate:
        wmod = wmod * torch.rsqrt(wmod.square().sum(dim=[2, 3, 4]) + eps).reshape(b, o, 1, 1, 1)
    x = x.reshape(1, b * i, h, w)
    if up > 1:
        wt = wmod.transpose(1, 2).reshape(b * i, o, kh, kw)
        x = F.conv_transpose2d(x, wt, stride=up, padding=0, groups=b)
    else:
        x = F.conv2d(x, wmod.reshape(b * o, i, kh, kw), padding=padding, groups=b)
    return x.reshape(b, o, x.shape[2], x.shape[3])


def minibatch_stddev(x: torch.Tensor, group_size: int = 4, num_channels: int = 1) -> torch.Tensor:
    """Append the minibatch standard deviation as ``num_channels`` extra channels.

    ``G = min(group_size, N)``; if N is not divisible by G, the largest divisor of N below G is used
    (upstream code would fail there). Sample n gets the statistic of samples ``{m, m + N/G, ...}``,
    ``m = n mod (N/G)``, as in both upstream implementations.
    """
    n, c, h, w = x.shape
    g = min(group_size, n)
    while n % g:
        g -= 1
    f = num_channels
    if c % f:
        raise ValueError(f"channels {c} not divisible by mbstd num_channels {f}")
    y = x.reshape(g, n // g, f, c // f, h, w)
    y = torch.sqrt(y.var(dim=0, unbiased=False) + 1e-8)  # [N/G, F, C/F, H, W]
    y = y.mean(dim=[2, 3, 4]).reshape(n // g, f, 1, 1)
    y = y.repeat(g, 1, h, w)
    return torch.cat([x, y], dim=1)


# ------------------------------------------------------------------------------------------------
# Equalised-learning-rate layers
# ------------------------------------------------------------------------------------------------


class GainMixin:
    """Modules whose stored parameters are scaled at run time declare the gains here."""

    def param_gains(self) -> dict[str, float]:  # local parameter name -> runtime gain
        return {}


class EqualLinear(GainMixin, nn.Module):
    """Dense layer with equalised learning rate.

    Parameters: ``weight [out, in]`` (init N(0,1)/lr_mul), ``bias [out]`` (init bias_init/lr_mul, so
    the *effective* initial bias is ``bias_init``). Runtime: ``y = x @ (W*lr_mul/sqrt(in)).T + b*lr_mul``,
    then the optional activation ('lrelu').
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        bias_init: float = 0.0,
        lr_mul: float = 1.0,
        activation: str | None = None,
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.lr_mul = lr_mul
        self.activation = activation or "linear"
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init) / lr_mul)) if bias else None
        self.weight_gain = lr_mul / math.sqrt(in_features)
        self.bias_gain = lr_mul

    def param_gains(self) -> dict[str, float]:
        return {"weight": self.weight_gain, "bias": self.bias_gain}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight * self.weight_gain
        b = self.bias * self.bias_gain if self.bias is not None else None
        if self.activation == "linear":
            return F.linear(x, w, b)
        return bias_act(F.linear(x, w), b, act=self.activation)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, lr_mul={self.lr_mul}, activation={self.activation}"


class Blur(nn.Module):
    """FIR filter (separable ``blur_kernel``, normalised, times ``upsample_factor**2``) with padding."""

    def __init__(self, kernel: Sequence[float], pad: int | Sequence[int], upsample_factor: int = 1) -> None:
        super().__init__()
        self.register_buffer("kernel", make_kernel(kernel) * upsample_factor, persistent=False)
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, pad=self.pad)


class Upsample(nn.Module):
    """FIR upsampling by ``factor`` (zero insertion, filter with gain factor**2): ``H -> H*factor``."""

    def __init__(self, kernel: Sequence[float] = (1, 3, 3, 1), factor: int = 2) -> None:
        super().__init__()
        self.factor = factor
        self.register_buffer("kernel", make_kernel(kernel) * factor, persistent=False)
        p = len(kernel) - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


class Downsample(nn.Module):
    """FIR filter then keep every ``factor``-th pixel: ``H -> H/factor``."""

    def __init__(self, kernel: Sequence[float] = (1, 3, 3, 1), factor: int = 2) -> None:
        super().__init__()
        self.factor = factor
        self.register_buffer("kernel", make_kernel(kernel), persistent=False)
        p = len(kernel) - factor
        self.pad = ((p + 1) // 2, p // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, down=self.factor, pad=self.pad)


class EqualConv2d(GainMixin, nn.Module):
    """2-D convolution with equalised learning rate, optional FIR downsampling and fused activation.

    Parameters: ``weight [out, in, k, k]`` (N(0,1)), ``bias [out]`` (optional). Runtime gain
    ``lr_mul/sqrt(in*k*k)``. With ``down=2`` the input is blurred (pad so the output is exactly H/2)
    and the conv runs with stride 2 and no padding, as in both StyleGAN2 discriminators.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        bias: bool = True,
        bias_init: float = 0.0,
        lr_mul: float = 1.0,
        activation: str | None = None,
        down: int = 1,
        blur_kernel: Sequence[float] = (1, 3, 3, 1),
        padding: int | None = None,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.activation = activation or "linear"
        self.down = down
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size) / lr_mul)
        self.bias = nn.Parameter(torch.full([out_channels], float(bias_init) / lr_mul)) if bias else None
        self.weight_gain = lr_mul / math.sqrt(in_channels * kernel_size * kernel_size)
        self.bias_gain = lr_mul
        if down > 1:
            p = (len(blur_kernel) - down) + (kernel_size - 1)
            self.blur = Blur(blur_kernel, pad=((p + 1) // 2, p // 2))
            self.padding = 0
        else:
            self.blur = None
            self.padding = kernel_size // 2 if padding is None else padding

    def param_gains(self) -> dict[str, float]:
        return {"weight": self.weight_gain, "bias": self.bias_gain}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.blur is not None:
            x = self.blur(x)
        x = F.conv2d(x, self.weight * self.weight_gain, stride=self.down, padding=self.padding)
        b = self.bias * self.bias_gain if self.bias is not None else None
        return bias_act(x, b, act=self.activation)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, k={self.kernel_size}, down={self.down}, "
            f"activation={self.activation}"
        )


class ModulatedConv2d(GainMixin, nn.Module):
    """StyleGAN2 modulated convolution (no bias, no noise; see ``StyledConv`` for the full layer).

    Parameters: ``weight [out, in, k, k]`` (N(0,1), runtime gain ``1/sqrt(in*k*k)``) and ``affine``, an
    :class:`EqualLinear` ``w_dim -> in`` with bias initialised to 1 (the style ``s``). ``up=2`` runs
    the transposed conv then a ``[1,3,3,1]`` blur with gain 4 and pad (1, 1) so that ``H -> 2H``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        w_dim: int,
        demodulate: bool = True,
        up: int = 1,
        blur_kernel: Sequence[float] = (1, 3, 3, 1),
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.demodulate, self.up = demodulate, up
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.padding = kernel_size // 2
        if up > 1:
            p = (len(blur_kernel) - up) - (kernel_size - 1)
            self.blur = Blur(blur_kernel, pad=((p + 1) // 2 + up - 1, p // 2 + 1), upsample_factor=up)
        else:
            self.blur = None

    def param_gains(self) -> dict[str, float]:
        return {"weight": self.weight_gain}

    def modulated(self, x: torch.Tensor, w: torch.Tensor, fused: bool = True) -> torch.Tensor:
        styles = self.affine(w)
        x = modulated_conv2d(
            x,
            self.weight * self.weight_gain,
            styles,
            self.demodulate,
            up=self.up,
            padding=self.padding,
            fused=fused,
        )
        if self.blur is not None:
            x = self.blur(x)
        return x

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused: bool = True) -> torch.Tensor:
        return self.modulated(x, w, fused=fused)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, k={self.kernel_size}, up={self.up}, "
            f"demodulate={self.demodulate}"
        )


NOISE_MODES = ("random", "const", "none")


class NoiseInjection(nn.Module):
    """Per-pixel Gaussian noise with a learned strength (StyleGAN "B").

    Parameter ``strength``: a scalar ``[]`` (StyleGAN2) or per-channel ``[C]`` (StyleGAN1), init 0.
    Buffer ``const [r, r]``: the fixed noise image used by ``noise_mode='const'``.
    Noise is single-channel ``[B, 1, H, W]``, broadcast over channels.
    """

    def __init__(self, resolution: int, channels: int | None = None) -> None:
        super().__init__()
        self.resolution = resolution
        self.strength = nn.Parameter(torch.zeros([] if channels is None else [channels]))
        self.register_buffer("const", torch.randn(resolution, resolution))

    def forward(
        self, x: torch.Tensor, noise_mode: str = "random", noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        if noise is None:
            if noise_mode == "none":
                return x
            if noise_mode == "random":
                noise = torch.randn(x.shape[0], 1, x.shape[2], x.shape[3], device=x.device, dtype=x.dtype)
            elif noise_mode == "const":
                noise = self.const.to(x.dtype)[None, None]
            else:
                raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        elif noise.ndim == 2:
            noise = noise[None, None]
        strength = self.strength if self.strength.ndim == 0 else self.strength.reshape(1, -1, 1, 1)
        return x + noise * strength


class ConstantInput(nn.Module):
    """Learned constant ``weight [C, size, size]`` repeated over the batch (synthesis input)."""

    def __init__(self, channels: int, size: int = 4) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(channels, size, size))

    def forward(self, batch: int) -> torch.Tensor:
        return self.weight.unsqueeze(0).expand(batch, -1, -1, -1)


class PixelNorm(nn.Module):
    """Normalise each vector to unit second moment: ``x * rsqrt(mean(x**2) + 1e-8)`` over dim 1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + 1e-8)


class MinibatchStdDev(nn.Module):
    """Module form of :func:`minibatch_stddev` (group size <= 4, 1 statistic channel by default)."""

    def __init__(self, group_size: int = 4, num_channels: int = 1) -> None:
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return minibatch_stddev(x, self.group_size, self.num_channels)


# ------------------------------------------------------------------------------------------------
# Effective-convention state dicts
# ------------------------------------------------------------------------------------------------


def param_gains(model: nn.Module) -> dict[str, float]:
    """Full parameter name -> runtime gain for every parameter stored in equalised-lr form."""
    gains: dict[str, float] = {}
    for prefix, module in model.named_modules():
        if isinstance(module, GainMixin):
            for name, gain in module.param_gains().items():
                if getattr(module, name, None) is not None:
                    gains[f"{prefix}.{name}" if prefix else name] = gain
    return gains


def effective_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """``model.state_dict()`` with every equalised-lr tensor multiplied by its runtime gain."""
    gains = param_gains(model)
    return {k: (v * gains[k] if k in gains else v).detach().clone() for k, v in model.state_dict().items()}


def load_effective_state_dict(model: nn.Module, state: dict[str, torch.Tensor], strict: bool = True):
    """Load tensors given in *effective* units (as used in the maths) by dividing by the runtime gains."""
    gains = param_gains(model)
    stored = {k: (v / gains[k] if k in gains else v) for k, v in state.items()}
    return model.load_state_dict(stored, strict=strict)


__all__ = [
    "ConstantInput",
    "Blur",
    "Downsample",
    "EqualConv2d",
    "EqualLinear",
    "GainMixin",
    "MinibatchStdDev",
    "ModulatedConv2d",
    "NoiseInjection",
    "NOISE_MODES",
    "PixelNorm",
    "Upsample",
    "bias_act",
    "effective_state_dict",
    "load_effective_state_dict",
    "make_kernel",
    "minibatch_stddev",
    "modulated_conv2d",
    "param_gains",
    "upfirdn2d",
]
