"""Perceptual path length (Karras et al., "A Style-Based Generator Architecture for GANs", CVPR 2019).

``l = E[ d(G(interp(a, b; t)), G(interp(a, b; t + eps))) / eps^2 ]`` with ``d`` = LPIPS (VGG16) and
``eps = 1e-4``. In Z the interpolation is spherical (slerp, as z is Gaussian), in W linear (lerp). A lower
value means the image changes more evenly along latent paths, i.e. a smoother, less entangled space.

- ``sampling="full"`` draws ``t ~ U[0, 1)`` (StyleGAN's "full" paths); ``"end"`` uses ``t = 0`` (path end
  points only), the variant StyleGAN2 reports for W. Defaults: ``ppl_z`` full, ``ppl_w`` end.
- As in the StyleGAN code, per-layer noise is held constant (``noise_mode="const"``) so only the latent
  moves, images above 256 px are box-downsampled to 256 before LPIPS, and samples outside the 1st-99th
  percentile are dropped before averaging (LPIPS has heavy-tailed outliers).
- ``crop=True`` applies StyleGAN's FFHQ face crop (rows 3/8-7/8, columns 2/8-6/8 of the image); leave it off
  for data that are already aligned face crops.

LPIPS is :class:`tedigan.losses.perceptual.LPIPS` (real VGG16 weights); images below 64 px are upsampled to
64 px before it (its ``min_size``), so tiny generators give finite values.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tedigan.metrics import MetricContext, batch_sizes, eval_mode, progress, register, seeded

SAMPLINGS = ("full", "end")
SPACES = ("z", "w")


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between the directions of ``a`` and ``b`` ``[B, D]`` at ``t`` ``[B]``.

    The result has unit norm (the mapping network pixel-normalises z, so only the direction matters).
    """
    a = a / a.norm(dim=-1, keepdim=True)
    b = b / b.norm(dim=-1, keepdim=True)
    cos = (a * b).sum(dim=-1, keepdim=True).clamp(-1.0, 1.0)
    angle = t.reshape(-1, 1) * torch.acos(cos)
    ortho = b - cos * a
    ortho = ortho / ortho.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    out = a * torch.cos(angle) + ortho * torch.sin(angle)
    return out / out.norm(dim=-1, keepdim=True)


def face_crop(images: torch.Tensor) -> torch.Tensor:
    """StyleGAN's PPL crop of an FFHQ-aligned face: rows ``[3c, 7c)``, columns ``[2c, 6c)`` with c = H // 8."""
    c = images.shape[-2] // 8
    return images[..., c * 3 : c * 7, c * 2 : c * 6]


def _prepare(images: torch.Tensor, crop: bool) -> torch.Tensor:
    if crop:
        images = face_crop(images)
    h = images.shape[-2]
    if h > 256:  # the LPIPS backbone was trained on small images; StyleGAN measures at 256 px
        factor = h // 256
        images = F.avg_pool2d(images, kernel_size=factor, stride=factor)
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    return images


def path_lengths(
    G: Any,
    lpips: Any,
    num: int,
    *,
    space: str = "w",
    sampling: str = "end",
    epsilon: float = 1e-4,
    batch_size: int = 16,
    seed: int = 0,
    crop: bool = False,
    truncation_psi: float = 1.0,
    device: str | torch.device = "cpu",
    ctx: MetricContext | None = None,
) -> np.ndarray:
    """``num`` unfiltered path-length samples ``d / eps^2`` (float64 array)."""
    if space not in SPACES:
        raise ValueError(f"space must be one of {SPACES}, got {space!r}")
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
    if not epsilon > 0:
        raise ValueError(f"epsilon must be positive, got {epsilon}")
    device = torch.device(device)
    out = []
    chunks = batch_sizes(num, batch_size)
    with eval_mode(G, lpips), torch.no_grad(), seeded(seed, device) as gen:
        for b in progress(chunks, ctx, f"ppl_{space}") if ctx is not None else chunks:
            z = torch.randn(2 * b, G.z_dim, generator=gen, dtype=torch.float64)
            t = torch.rand(b, generator=gen, dtype=torch.float64) * (1.0 if sampling == "full" else 0.0)
            z0, z1 = z[:b], z[b:]
            if space == "z":
                zt = torch.cat([slerp(z0, z1, t), slerp(z0, z1, t + epsilon)])
                ws = G.mapping(zt.float().to(device), truncation_psi=truncation_psi)
            else:
                ws = G.mapping(z.float().to(device), truncation_psi=truncation_psi).double()
                w0, w1 = ws[:b], ws[b:]
                tt = t.to(device).reshape(-1, 1, 1)
                # interpolate in float64 so that the eps step survives the cast back to float32
                ws = torch.cat([torch.lerp(w0, w1, tt), torch.lerp(w0, w1, tt + epsilon)]).float()
            img = _prepare(G.synthesis(ws, noise_mode="const").float(), crop)
            d = lpips(img[:b], img[b:]).double().reshape(b) / epsilon**2
            out.append(d.cpu())
    return torch.cat(out).numpy()


def filtered_mean(dist: np.ndarray, lo: float = 1.0, hi: float = 99.0) -> float:
    """Mean of the samples between the ``lo``-th and ``hi``-th percentiles (inclusive), as in StyleGAN."""
    dist = np.asarray(dist, dtype=np.float64)
    a = np.percentile(dist, lo, method="lower")
    b = np.percentile(dist, hi, method="higher")
    return float(dist[(dist >= a) & (dist <= b)].mean())


def get_lpips(ctx: MetricContext) -> Any:
    if ctx.lpips is not None:
        return ctx.lpips
    net = ctx.memo.get("lpips")
    if net is None:
        from tedigan.losses.perceptual import LPIPS

        net = LPIPS(net="vgg").to(ctx.torch_device)
        ctx.memo["lpips"] = net
    return net


def _ppl(ctx: MetricContext, space: str, default_sampling: str) -> dict[str, Any]:
    sampling = ctx.ppl_sampling or default_sampling
    num = ctx.ppl_num or ctx.num
    dist = path_lengths(
        ctx.generator,
        get_lpips(ctx),
        num,
        space=space,
        sampling=sampling,
        epsilon=ctx.ppl_epsilon,
        batch_size=ctx.batch_size,
        seed=ctx.seed,
        crop=ctx.ppl_crop,
        truncation_psi=ctx.truncation_psi,
        device=ctx.device,
        ctx=ctx,
    )
    return {
        "value": filtered_mean(dist),
        "median": float(np.median(dist)),
        "num": num,
        "sampling": sampling,
        "epsilon": ctx.ppl_epsilon,
        "crop": ctx.ppl_crop,
    }


@register("ppl_z", needs=("generator",))
def ppl_z(ctx: MetricContext) -> dict[str, Any]:
    return _ppl(ctx, "z", "full")


@register("ppl_w", needs=("generator",))
def ppl_w(ctx: MetricContext) -> dict[str, Any]:
    return _ppl(ctx, "w", "end")
