"""Distil a :class:`~tedigan.models.proxy_head.ProxyHead`: the synthesis up to ``block`` plus the head must match
the full MobileStyleGAN's output average-pooled to the head's resolution, on generated faces.

Data (:func:`sample_codes`): W codes at truncation psi in [0.5, 1] and, for half of them, W+ codes near their
shared w (per-site Gaussian offsets of up to ``0.3`` of W's per-dimension spread): the codes faithful inversion
visits (it penalises the spread of the sites). Targets are rendered once by the full generator.

Training (:func:`train_proxy_head`): the skip path starts at the least-squares fit of the Haar bands of the
target on the (unstyled) features (:func:`fit_skip`), then Adam on L1 + L1 of the Haar detail bands (sharpness),
features computed on the fly from the codes (the low blocks are cheap; nothing large is cached).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tedigan.models.proxy_head import ProxyHead, route_features

__all__ = [
    "ProxyTrainConfig",
    "haar_dwt",
    "sample_codes",
    "render_targets",
    "fit_skip",
    "train_proxy_head",
    "evaluate_head",
]


@dataclass
class ProxyTrainConfig:
    steps: int = 600
    batch: int = 4
    lr: float = 2e-3
    detail_weight: float = 1.0  # L1 on the Haar detail bands (x2 weight on edges)
    affine_lr_scale: float = 0.05
    lstsq_samples: int = 32
    seed: int = 0


def haar_dwt(img: torch.Tensor) -> torch.Tensor:
    """Forward Haar transform, the inverse of ``haar_idwt(., band_major=True)``: ``[B, C, 2H, 2W] -> [B, 4C, H, W]``
    (band-major ``LL | H0 | H1 | H2``)."""
    a, b = img[..., 0::2, 0::2], img[..., 0::2, 1::2]
    c, d = img[..., 1::2, 0::2], img[..., 1::2, 1::2]
    ll = (a + b + c + d) / 2
    h0 = (a + b - c - d) / 2  # sign by row
    h1 = (a - b + c - d) / 2  # sign by column
    h2 = (a - b - c + d) / 2
    return torch.cat([ll, h0, h1, h2], 1)


@torch.no_grad()
def sample_codes(G, n: int, seed: int = 0, wplus_share: float = 0.5, max_spread: float = 0.3) -> torch.Tensor:
    """``[n, num_ws, w_dim]`` codes: W at psi in [0.5, 1]; a ``wplus_share`` of them moved per site by Gaussian
    offsets of ``U(0, max_spread)`` x W's per-dimension spread."""
    g = torch.Generator().manual_seed(seed)
    w = G.mapping.embed(torch.randn(n, G.z_dim, generator=g))
    std = w.std(0)
    psi = 0.5 + 0.5 * torch.rand(n, 1, generator=g)
    w = G.mapping.w_avg.lerp(w, psi)
    ws = w[:, None].repeat(1, G.num_ws, 1)
    plus = torch.rand(n, generator=g) < wplus_share
    sigma = max_spread * torch.rand(n, 1, 1, generator=g)
    ws[plus] += (sigma * torch.randn(n, G.num_ws, w.shape[-1], generator=g) * std)[plus]
    return ws


@torch.no_grad()
def render_targets(G, ws: torch.Tensor, resolution: int, batch: int = 8) -> torch.Tensor:
    return torch.cat(
        [G.synthesis(ws[i : i + batch], resolution=resolution) for i in range(0, len(ws), batch)]
    )


@torch.no_grad()
def fit_skip(
    head: ProxyHead, synthesis, ws: torch.Tensor, targets: torch.Tensor, ridge: float = 1e-3
) -> None:
    """Least-squares fit of the head's linear skip (features -> Haar bands of the target), the rest left as is."""
    c = head.config.in_channels
    xtx = torch.zeros(c + 1, c + 1, dtype=torch.float64)
    xty = torch.zeros(c + 1, 12, dtype=torch.float64)
    for i in range(len(ws)):
        f = route_features(synthesis, ws[i : i + 1], head.config.block).reshape(-1, c)
        f = torch.cat([f, torch.ones(len(f), 1, dtype=f.dtype)], 1)
        y = haar_dwt(targets[i : i + 1].float()).permute(0, 2, 3, 1).reshape(-1, 12)
        xtx += (f.T @ f).double()
        xty += (f.T @ y).double()
    xtx += ridge * torch.eye(c + 1, dtype=xtx.dtype) * xtx.diagonal().mean()
    sol = torch.linalg.solve(xtx, xty)  # [c + 1, 12]
    head.skip.weight.copy_(sol[:c].T.float()[:, :, None, None])
    head.skip.bias.copy_(sol[c].float())


def _loss(pred: torch.Tensor, target: torch.Tensor, detail_weight: float) -> torch.Tensor:
    loss = (pred - target).abs().mean()
    if detail_weight > 0:
        dp, dt = haar_dwt(pred), haar_dwt(target)
        loss = loss + detail_weight * (dp[:, 3:] - dt[:, 3:]).abs().mean()
    return loss


def train_proxy_head(
    head: ProxyHead,
    synthesis,
    ws: torch.Tensor,
    targets: torch.Tensor,
    config: ProxyTrainConfig | None = None,
    log: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Train ``head`` (in place) on codes ``ws [N, 23, 512]`` and ``targets [N, 3, R, R]`` at the head's resolution
    (or larger: they are average-pooled). Returns the loss history."""
    cfg = config or ProxyTrainConfig()
    r = head.config.resolution
    if targets.shape[-1] != r:
        targets = F.avg_pool2d(targets.float(), targets.shape[-1] // r)
    targets = targets.float()
    g = torch.Generator().manual_seed(cfg.seed)
    if cfg.lstsq_samples > 0:
        idx = torch.randperm(len(ws), generator=g)[: cfg.lstsq_samples]
        fit_skip(head, synthesis, ws[idx], targets[idx])
    head.train()
    # the style affines read w (512 numbers of order 1): a step on all their weights at once moves a style by
    # ~sqrt(512) times more than a step on a conv weight moves its output, so they learn slower
    affine = [p for n, p in head.named_parameters() if n.startswith("style")]
    rest = [p for n, p in head.named_parameters() if not n.startswith("style")]
    groups = [{"params": rest, "scale": 1.0}, {"params": affine, "scale": cfg.affine_lr_scale}]
    opt = torch.optim.Adam(groups, lr=cfg.lr, betas=(0.9, 0.99))
    history = []
    start = time.perf_counter()
    for step in range(cfg.steps):
        lr = cfg.lr * 0.5 * (1 + torch.cos(torch.tensor(step / max(cfg.steps, 1) * torch.pi)).item())
        for group in opt.param_groups:
            group["lr"] = lr * group["scale"]
        idx = torch.randint(0, len(ws), (cfg.batch,), generator=g)
        with torch.no_grad():
            feat = route_features(synthesis, ws[idx], head.config.block)
        loss = _loss(head(feat, ws[idx]), targets[idx], cfg.detail_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        rec = {"step": step, "loss": float(loss.detach()), "lr": lr, "seconds": time.perf_counter() - start}
        history.append(rec)
        if log is not None:
            log(rec)
    head.eval()
    return history


@torch.no_grad()
def evaluate_head(head: ProxyHead, synthesis, ws: torch.Tensor, targets: torch.Tensor, lpips=None) -> dict:
    """Held-out PSNR (images in [-1, 1], peak-to-peak 2) and LPIPS of the route against the pooled targets."""
    r = head.config.resolution
    if targets.shape[-1] != r:
        targets = F.avg_pool2d(targets.float(), targets.shape[-1] // r)
    psnr, lp = [], []
    for i in range(len(ws)):
        pred = head(route_features(synthesis, ws[i : i + 1], head.config.block), ws[i : i + 1])
        t = targets[i : i + 1].float()
        mse = (pred - t).square().mean()
        psnr.append(float(10 * torch.log10(4 / mse)))
        if lpips is not None:
            lp.append(float(lpips(pred.clamp(-1, 1), t.clamp(-1, 1)).mean()))
    out = {"num": len(ws), "psnr": sum(psnr) / len(psnr)}
    if lp:
        out["lpips"] = sum(lp) / len(lp)
    return out
