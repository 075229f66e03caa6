"""Load rosinality/stylegan2-pytorch checkpoints (``model.py`` StyleGAN2 and ``swagan.py`` SWAGAN).

A checkpoint is a ``torch.save``d dict with ``g_ema`` (generator state dict), optionally ``g``, ``d`` and
``latent_avg``. It is read with ``torch.load(weights_only=True)`` (``argparse.Namespace``, which training
checkpoints carry under ``args``, is the only extra class allowed). The architecture - resolution, mapping
depth, latent widths, per-resolution channel widths, image channels, FIR kernel, plain or wavelet - is read
from tensor names and shapes; nothing is hard-coded. Only ``lr_mlp`` (0.01 upstream) cannot be derived from
the tensors.

Both formats store parameters in the same equalised-lr convention as :mod:`tedigan.models.stylegan2`
(unscaled weights, modulation biases including their +1), so conversion is a rename plus dropping singleton
dims; fixed filter buffers (``*.kernel``, Haar ``*.ll`` ...) are checked and dropped. Name table (``r`` =
feature resolution ``2**(k+3)``)::

    style.{i+1}.*                    -> mapping.fc{i}.*            latent_avg -> mapping.w_avg
    input.input [1,C,4,4]            -> synthesis.input.weight [C,4,4]
    conv1 / convs.{2k} / convs.{2k+1} -> synthesis.b4.conv1 / b{r}.conv0 / b{r}.conv1, each:
        conv.weight [1,O,I,3,3] -> weight [O,I,3,3]; conv.modulation.* -> affine.*;
        noise.weight [1] -> noise.strength []; activate.bias -> bias
    noises.noise_{j} [1,1,r,r]       -> noise.const [r,r] of noise layer j (b4.conv1, b8.conv0, b8.conv1, ...)
    to_rgb1 / to_rgbs.{k}            -> synthesis.b4.torgb / b{r}.torgb (weight [O,I,1,1], bias [O])
    D convs.0.{0.weight,1.bias}      -> b{R}.fromrgb.*
    D convs.{k}.conv1.{0,1} / conv2.{1,2} / skip.1 -> b{R/2**(k-1)}.conv0 / conv1 / skip
    D (swagan) from_rgbs.{k}.conv.{0,1} -> b{R/2**(k+1)}.fromwav (k = last: b4.fromwav)
    D final_conv.{0,1} / final_linear.0 / final_linear.1 -> b4.conv / b4.fc / b4.out

Command: ``tedigan convert rosinality ckpt.pt --out DIR`` writes ``DIR/generator`` and
``DIR/discriminator`` (``model.safetensors`` + ``config.json``).
"""

from __future__ import annotations

import argparse
import re
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch

from tedigan.models.stylegan2 import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig
from tedigan.models.swagan import haar_kernels

StateDict = Mapping[str, torch.Tensor]

_FIXED_BUFFER = re.compile(r"(^|\.)(kernel|ll|lh|hl|hh)$")


# ------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------


def _count(sd: StateDict, pattern: str, start: int = 0) -> int:
    """Number of consecutive indices i >= start for which ``pattern.format(i)`` is a key."""
    i = start
    while pattern.format(i) in sd:
        i += 1
    return i - start


def kernel_1d_from_2d(k2d: torch.Tensor) -> list[float]:
    """Recover the 1-D FIR taps of a separable 2-D kernel ``c * outer(a, a)`` (up to scale).

    Returned in the simplest form: integers when the taps are integer multiples of the smallest one
    (``[1, 3, 3, 1]``), else normalised to sum 1.
    """
    k2d = k2d.detach().double().cpu()
    a = k2d.sum(dim=1)
    a = a / a.sum()
    if not torch.allclose(torch.outer(a, a) * k2d.sum(), k2d, atol=1e-6):
        raise ValueError(f"FIR kernel is not separable: {k2d.tolist()}")
    if (a > 0).all():
        ints = a / a.min()
        if torch.allclose(ints, ints.round(), atol=1e-4):
            return [float(v) for v in ints.round()]
    return [float(v) for v in a]


def _expected_fir(blur_kernel: list[float], gain: float) -> torch.Tensor:
    a = torch.tensor(blur_kernel, dtype=torch.float64)
    k = torch.outer(a, a)
    return (k / k.sum() * gain).float()


def _check_fixed_buffers(sd: StateDict, blur_kernel: list[float], up_gain: float, where: str) -> None:
    """Fixed filters are dropped on load; make sure they are the ones our config rebuilds."""
    haar = dict(zip(("ll", "lh", "hl", "hh"), haar_kernels()))
    for key, value in sd.items():
        m = _FIXED_BUFFER.search(key)
        if not m:
            continue
        name = m.group(2)
        if name == "kernel":
            gain = up_gain if (".blur." in key or ".upsample." in key) else 1.0
            expected = _expected_fir(blur_kernel, gain)
        else:
            expected = haar[name]
            is_iwt = ".iwt." in key or key.startswith("iwt.")
            if is_iwt and name in ("lh", "hl"):  # upstream stores the IWT kernels as ll, -lh, -hl, hh
                expected = -expected
        if value.shape != expected.shape or not torch.allclose(value.float(), expected, atol=1e-6):
            raise ValueError(
                f"{where}: fixed buffer {key} = {value.tolist()} differs from the expected filter"
            )


def _take(sd: StateDict, used: set[str], key: str) -> torch.Tensor:
    if key not in sd:
        raise KeyError(f"checkpoint is missing {key!r}")
    used.add(key)
    return sd[key]


def _check_all_used(sd: StateDict, used: set[str], where: str) -> None:
    extra = [k for k in sd if k not in used and not _FIXED_BUFFER.search(k)]
    if extra:
        raise ValueError(f"{where}: unrecognised tensors {extra[:8]}{' ...' if len(extra) > 8 else ''}")


# ------------------------------------------------------------------------------------------------
# Generator
# ------------------------------------------------------------------------------------------------


def generator_config_from_state_dict(sd: StateDict, lr_mlp: float = 0.01) -> GeneratorConfig:
    """Derive a :class:`GeneratorConfig` from a rosinality generator state dict."""
    if "style.1.weight" not in sd or "input.input" not in sd:
        raise ValueError("not a rosinality generator state dict (no style.1.weight / input.input)")
    n_mlp = _count(sd, "style.{}.weight", start=1)
    w_dim, z_dim = sd["style.1.weight"].shape
    swagan = "iwt.ll" in sd
    n_up = _count(sd, "to_rgbs.{}.conv.weight")
    if _count(sd, "convs.{}.conv.weight") != 2 * n_up:
        raise ValueError(f"expected {2 * n_up} styled convs for {n_up} toRGB layers")
    top = 2 ** (2 + n_up)
    rgb = sd["to_rgb1.conv.weight"].shape[1]
    img_channels = rgb // 4 if swagan else rgb
    channels = {"4": int(sd["input.input"].shape[1])}
    for k in range(n_up):
        channels[str(2 ** (k + 3))] = int(sd[f"convs.{2 * k}.conv.weight"].shape[1])
    kernel_key = next((k for k in ("convs.0.conv.blur.kernel", "to_rgbs.0.upsample.kernel") if k in sd), None)
    blur_kernel = kernel_1d_from_2d(sd[kernel_key]) if kernel_key else [1.0, 3.0, 3.0, 1.0]
    return GeneratorConfig(
        resolution=top * 2 if swagan else top,
        z_dim=int(z_dim),
        w_dim=int(w_dim),
        n_mlp=n_mlp,
        lr_mlp=lr_mlp,
        img_channels=int(img_channels),
        arch="swagan" if swagan else "stylegan2",
        channels=channels,
        blur_kernel=blur_kernel,
    )


def _styled_conv(sd: StateDict, used: set[str], src: str, dst: str, out: dict[str, torch.Tensor]) -> None:
    out[f"{dst}.weight"] = _take(sd, used, f"{src}.conv.weight").squeeze(0)
    out[f"{dst}.affine.weight"] = _take(sd, used, f"{src}.conv.modulation.weight")
    out[f"{dst}.affine.bias"] = _take(sd, used, f"{src}.conv.modulation.bias")
    out[f"{dst}.noise.strength"] = _take(sd, used, f"{src}.noise.weight").reshape([])
    out[f"{dst}.bias"] = _take(sd, used, f"{src}.activate.bias")


def _to_rgb(sd: StateDict, used: set[str], src: str, dst: str, out: dict[str, torch.Tensor]) -> None:
    out[f"{dst}.weight"] = _take(sd, used, f"{src}.conv.weight").squeeze(0)
    out[f"{dst}.affine.weight"] = _take(sd, used, f"{src}.conv.modulation.weight")
    out[f"{dst}.affine.bias"] = _take(sd, used, f"{src}.conv.modulation.bias")
    out[f"{dst}.bias"] = _take(sd, used, f"{src}.bias").reshape(-1)


def convert_generator_state_dict(
    sd: StateDict, config: GeneratorConfig, latent_avg: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """Rename a rosinality generator state dict to :class:`Generator` names (see the module docstring)."""
    used: set[str] = set()
    out: dict[str, torch.Tensor] = {}
    for i in range(config.n_mlp):
        out[f"mapping.fc{i}.weight"] = _take(sd, used, f"style.{i + 1}.weight")
        out[f"mapping.fc{i}.bias"] = _take(sd, used, f"style.{i + 1}.bias")
    out["mapping.w_avg"] = latent_avg if latent_avg is not None else torch.zeros(config.w_dim)
    out["synthesis.input.weight"] = _take(sd, used, "input.input").squeeze(0)
    _styled_conv(sd, used, "conv1", "synthesis.b4.conv1", out)
    _to_rgb(sd, used, "to_rgb1", "synthesis.b4.torgb", out)
    noise_dst = ["synthesis.b4.conv1"]
    for k, r in enumerate(config.feature_resolutions[1:]):
        _styled_conv(sd, used, f"convs.{2 * k}", f"synthesis.b{r}.conv0", out)
        _styled_conv(sd, used, f"convs.{2 * k + 1}", f"synthesis.b{r}.conv1", out)
        _to_rgb(sd, used, f"to_rgbs.{k}", f"synthesis.b{r}.torgb", out)
        noise_dst += [f"synthesis.b{r}.conv0", f"synthesis.b{r}.conv1"]
    for j, dst in enumerate(noise_dst):
        key = f"noises.noise_{j}"
        if key in sd:
            out[f"{dst}.noise.const"] = _take(sd, used, key).reshape(sd[key].shape[-2:])
    _check_all_used(sd, used, "generator")
    _check_fixed_buffers(sd, config.blur_kernel, up_gain=4.0, where="generator")
    return out


# ------------------------------------------------------------------------------------------------
# Discriminator
# ------------------------------------------------------------------------------------------------


def discriminator_config_from_state_dict(sd: StateDict) -> DiscriminatorConfig:
    """Derive a :class:`DiscriminatorConfig` from a rosinality (StyleGAN2 or SWAGAN) discriminator."""
    c4 = int(sd["final_conv.0.weight"].shape[0])
    mbstd_channels = int(sd["final_conv.0.weight"].shape[1]) - c4
    kernel_key = next((k for k in sd if k.endswith(".kernel")), None)
    blur_kernel = kernel_1d_from_2d(sd[kernel_key]) if kernel_key else [1.0, 3.0, 3.0, 1.0]
    if "from_rgbs.0.conv.0.weight" in sd:  # SWAGAN: features at R/2 .. 4
        n_blocks = _count(sd, "convs.{}.conv1.0.weight")
        if _count(sd, "from_rgbs.{}.conv.0.weight") != n_blocks + 1:
            raise ValueError("swagan discriminator: expected one more from_rgbs than convs")
        top = 2 ** (n_blocks + 2)
        channels = {}
        for k in range(n_blocks + 1):
            channels[str(top >> k)] = int(sd[f"from_rgbs.{k}.conv.0.weight"].shape[0])
        img_channels = int(sd["from_rgbs.0.conv.0.weight"].shape[1]) // 4
        return DiscriminatorConfig(
            resolution=top * 2,
            img_channels=img_channels,
            arch="swagan",
            channels=channels,
            blur_kernel=blur_kernel,
            mbstd_num_channels=mbstd_channels,
        )
    if "convs.0.0.weight" not in sd:
        raise ValueError("not a rosinality discriminator state dict (no convs.0.0.weight / from_rgbs.0)")
    n_blocks = _count(sd, "convs.{}.conv1.0.weight", start=1)
    top = 2 ** (n_blocks + 2)
    channels = {str(top): int(sd["convs.0.0.weight"].shape[0])}
    for k in range(1, n_blocks + 1):
        channels[str(top >> k)] = int(sd[f"convs.{k}.conv2.1.weight"].shape[0])
    return DiscriminatorConfig(
        resolution=top,
        img_channels=int(sd["convs.0.0.weight"].shape[1]),
        arch="stylegan2",
        channels=channels,
        blur_kernel=blur_kernel,
        mbstd_num_channels=mbstd_channels,
    )


def convert_discriminator_state_dict(sd: StateDict, config: DiscriminatorConfig) -> dict[str, torch.Tensor]:
    """Rename a rosinality discriminator state dict to :class:`Discriminator` names."""
    used: set[str] = set()
    out: dict[str, torch.Tensor] = {}
    blocks = [r for r in config.feature_resolutions if r > 4]
    if config.arch == "swagan":
        for k, r in enumerate([*blocks, 4]):
            out[f"b{r}.fromwav.weight"] = _take(sd, used, f"from_rgbs.{k}.conv.0.weight")
            out[f"b{r}.fromwav.bias"] = _take(sd, used, f"from_rgbs.{k}.conv.1.bias")
        offset = 0
    else:
        out[f"b{blocks[0]}.fromrgb.weight"] = _take(sd, used, "convs.0.0.weight")
        out[f"b{blocks[0]}.fromrgb.bias"] = _take(sd, used, "convs.0.1.bias")
        offset = 1
    for k, r in enumerate(blocks):
        src = f"convs.{k + offset}"
        out[f"b{r}.conv0.weight"] = _take(sd, used, f"{src}.conv1.0.weight")
        out[f"b{r}.conv0.bias"] = _take(sd, used, f"{src}.conv1.1.bias")
        out[f"b{r}.conv1.weight"] = _take(sd, used, f"{src}.conv2.1.weight")
        out[f"b{r}.conv1.bias"] = _take(sd, used, f"{src}.conv2.2.bias")
        if config.arch != "swagan":
            out[f"b{r}.skip.weight"] = _take(sd, used, f"{src}.skip.1.weight")
    out["b4.conv.weight"] = _take(sd, used, "final_conv.0.weight")
    out["b4.conv.bias"] = _take(sd, used, "final_conv.1.bias")
    for dst, i in (("fc", 0), ("out", 1)):
        out[f"b4.{dst}.weight"] = _take(sd, used, f"final_linear.{i}.weight")
        out[f"b4.{dst}.bias"] = _take(sd, used, f"final_linear.{i}.bias")
    _check_all_used(sd, used, "discriminator")
    _check_fixed_buffers(sd, config.blur_kernel, up_gain=4.0, where="discriminator")
    return out


# ------------------------------------------------------------------------------------------------
# Entry points
# ------------------------------------------------------------------------------------------------


def load_checkpoint(path: str | Path) -> dict:
    """``torch.load(path, weights_only=True)``, also accepting the ``args`` Namespace of training checkpoints."""
    with torch.serialization.safe_globals([argparse.Namespace]):
        ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    if not isinstance(ckpt, Mapping):
        raise ValueError(f"{path}: expected a dict checkpoint, got {type(ckpt).__name__}")
    return dict(ckpt)


def load_rosinality(
    path: str | Path | Mapping,
    lr_mlp: float = 0.01,
    generator_key: str = "g_ema",
    mean_latent_samples: int = 10000,
) -> tuple[Generator, Discriminator | None, torch.Tensor | None]:
    """Build ``(G, D or None, latent_avg or None)`` from a rosinality checkpoint (path or loaded dict).

    ``G.mapping.w_avg`` is set to the checkpoint's ``latent_avg``; when the checkpoint has none it is
    estimated from ``mean_latent_samples`` mapped samples (seed 0) and ``None`` is returned. A bare
    generator state dict (``style.1.weight`` at top level) is accepted too. Models are returned in eval mode.
    """
    ckpt = dict(path) if isinstance(path, Mapping) else load_checkpoint(path)
    if "style.1.weight" in ckpt:
        ckpt = {"g_ema": ckpt}
    key = generator_key if generator_key in ckpt else ("g" if "g" in ckpt else None)
    if key is None:
        raise KeyError(f"checkpoint has no generator ('{generator_key}' or 'g'); keys: {sorted(ckpt)}")
    if key != generator_key:
        warnings.warn(f"checkpoint has no '{generator_key}'; using '{key}'", stacklevel=2)
    g_sd = ckpt[key]
    g_cfg = generator_config_from_state_dict(g_sd, lr_mlp=lr_mlp)
    latent_avg = ckpt.get("latent_avg")
    if latent_avg is not None:
        latent_avg = latent_avg.detach().float().reshape(-1)
        if latent_avg.numel() != g_cfg.w_dim:
            raise ValueError(f"latent_avg has {latent_avg.numel()} values, expected w_dim = {g_cfg.w_dim}")
    G = Generator(g_cfg)
    G.load_state_dict(convert_generator_state_dict(g_sd, g_cfg, latent_avg), strict=True)
    G.eval()
    if latent_avg is None:
        G.mapping.w_avg.copy_(G.mean_latent(mean_latent_samples, generator=torch.Generator().manual_seed(0)))
    D = None
    if ckpt.get("d") is not None:
        d_cfg = discriminator_config_from_state_dict(ckpt["d"])
        D = Discriminator(d_cfg)
        D.load_state_dict(convert_discriminator_state_dict(ckpt["d"], d_cfg), strict=True)
        D.eval()
        if d_cfg.resolution != g_cfg.resolution:
            warnings.warn(f"D resolution {d_cfg.resolution} != G resolution {g_cfg.resolution}", stacklevel=2)
    return G, D, latent_avg


__all__ = [
    "convert_discriminator_state_dict",
    "convert_generator_state_dict",
    "discriminator_config_from_state_dict",
    "generator_config_from_state_dict",
    "kernel_1d_from_2d",
    "load_checkpoint",
    "load_rosinality",
]
