"""GAN losses and regularisers of StyleGAN2 (Karras et al., "Analyzing and Improving the Image Quality of
StyleGAN", 2020), as plain functions plus one small stateful module. No training logic lives here.

- :func:`d_logistic_loss` / :func:`g_nonsaturating_loss`: the non-saturating logistic GAN loss
  (Goodfellow et al. 2014), ``softplus(-D(x)) + softplus(D(G(z)))`` for D and ``softplus(-D(G(z)))`` for G.
- :func:`r1_penalty`: ``‖∇_x D(x)‖²`` per real sample (Mescheder et al. 2018); the loss is ``γ/2`` times its
  mean (:func:`r1_loss`). With lazy regularisation the caller multiplies by the interval.
- :func:`path_lengths` + :class:`PathLengthRegularizer`: ``‖J_wᵀ y‖₂`` for random image-space ``y`` with
  ``y ~ N(0, I)/sqrt(H·W)`` (averaged over the ws layers), penalised towards its running mean ``pl_mean``
  (decay 0.01), which makes the mapping w -> image closer to an isometry (smoother W, lower PPL).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "PathLengthRegularizer",
    "d_logistic_loss",
    "g_nonsaturating_loss",
    "path_lengths",
    "r1_loss",
    "r1_penalty",
]


def d_logistic_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator loss ``E[softplus(-D(x))] + E[softplus(D(G(z)))]`` (a scalar)."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_nonsaturating_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss ``E[softplus(-D(G(z)))] = E[-log sigmoid(D(G(z)))]``."""
    return F.softplus(-fake_logits).mean()


def r1_penalty(real_logits: torch.Tensor, real_images: torch.Tensor) -> torch.Tensor:
    """Per-sample squared gradient norm ``‖∇_x D(x)‖²`` (shape ``[B]``), differentiable (create_graph).

    ``real_images`` must be the leaf that ``real_logits`` was computed from (``requires_grad_(True)``);
    augmentation may sit in between, the gradient is taken w.r.t. the un-augmented images (as in ADA).
    """
    if not real_images.requires_grad:
        raise ValueError("r1_penalty needs real_images.requires_grad_(True) before the D forward pass")
    (grad,) = torch.autograd.grad(real_logits.float().sum(), real_images, create_graph=True)
    return grad.float().square().flatten(1).sum(dim=1)


def r1_loss(penalty: torch.Tensor, gamma: float) -> torch.Tensor:
    """``γ/2 · mean(‖∇D‖²)``."""
    return penalty.mean() * (gamma / 2)


def path_lengths(
    images: torch.Tensor, ws: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``sqrt(mean_layers ‖J_wᵀ y‖²)`` per sample (shape ``[B]``) for ``y ~ N(0, I) / sqrt(H·W)``.

    ``ws`` ``[B, num_ws, w_dim]`` must be part of the graph that produced ``images`` ``[B, C, H, W]``.
    ``generator`` (a CPU ``torch.Generator``) makes the projection reproducible without touching the global
    RNG. The result keeps the graph (``create_graph=True``) so the penalty can be back-propagated.
    """
    if ws.ndim != 3 or ws.shape[0] != images.shape[0]:
        raise ValueError(f"ws must be [B, num_ws, w_dim] with B = {images.shape[0]}, got {tuple(ws.shape)}")
    h, w = images.shape[2], images.shape[3]
    y = torch.randn(images.shape, generator=generator).to(images.device, images.dtype) / math.sqrt(h * w)
    (grad,) = torch.autograd.grad((images * y).sum(), ws, create_graph=True)
    return grad.float().square().sum(dim=2).mean(dim=1).sqrt()


class PathLengthRegularizer(nn.Module):
    """Path-length penalty with the running mean ``pl_mean`` as a (checkpointed) buffer.

    ``forward(lengths)`` updates ``pl_mean <- lerp(pl_mean, batch_mean, decay)`` and returns
    ``mean((lengths - pl_mean)²)``. Pass ``batch_mean`` (e.g. averaged over processes) to update the mean
    with a global statistic; it defaults to ``lengths.mean()``.
    """

    def __init__(self, decay: float = 0.01) -> None:
        super().__init__()
        if not 0 < decay <= 1:
            raise ValueError(f"decay must be in (0, 1], got {decay}")
        self.decay = decay
        self.register_buffer("pl_mean", torch.zeros([]))

    def forward(self, lengths: torch.Tensor, batch_mean: torch.Tensor | None = None) -> torch.Tensor:
        batch_mean = lengths.mean() if batch_mean is None else batch_mean
        # like both upstreams: the penalty uses the freshly updated mean; only its value is stored
        mean = self.pl_mean.to(lengths.dtype).lerp(batch_mean.to(lengths.dtype), self.decay)
        self.pl_mean.copy_(mean.detach())
        return (lengths - mean).square().mean()
