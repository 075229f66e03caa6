"""The text stage's losses (TediGAN, Xia et al. CVPR 2021, section 3.2: visual-linguistic similarity).

``text_code_loss``: per-layer MSE between a caption's code and its image's inverted code, with per-layer
weights (:func:`layer_weights`); ``contrastive_loss``: a symmetric multi-positive InfoNCE over the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tedigan.config import ConfigError

__all__ = ["contrastive_loss", "layer_weights", "text_code_loss"]


def layer_weights(weights: list[float] | None, num_ws: int) -> torch.Tensor:
    """``[num_ws]`` weights summing to 1 (``None``: equal)."""
    if weights is None:
        return torch.full((num_ws,), 1.0 / num_ws)
    if len(weights) != num_ws:
        raise ConfigError(
            f"loss.layer_weights has {len(weights)} entries; the generator has {num_ws} W+ layers"
        )
    w = torch.tensor(weights, dtype=torch.float32)
    return w / w.sum()


def text_code_loss(text_ws: torch.Tensor, image_ws: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Visual-linguistic similarity: per-layer MSE between codes ``[B, L, D]``, averaged with ``weights [L]``."""
    if text_ws.shape != image_ws.shape:
        raise ValueError(f"text codes {tuple(text_ws.shape)} and image codes {tuple(image_ws.shape)} differ")
    per_layer = (text_ws - image_ws).square().mean(dim=(0, 2))
    return (per_layer * weights.to(per_layer)).sum()


def contrastive_loss(
    text_ws: torch.Tensor,
    image_ws: torch.Tensor,
    temperature: float,
    center: torch.Tensor | None = None,
    image_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Symmetric InfoNCE over the batch on flattened codes (cosine of offsets from ``center``).

    Every code shares ``w_avg``, so raw codes are all alike; their offsets from it are what differs.
    ``image_ids [B]`` marks pairs of the same image: all of them count as positives (a multi-positive
    InfoNCE), so two captions of one image are not pushed apart.
    """
    if center is not None:
        text_ws, image_ws = text_ws - center, image_ws - center
    t = F.normalize(text_ws.flatten(1).float(), dim=1)
    v = F.normalize(image_ws.flatten(1).float(), dim=1)
    logits = t @ v.T / temperature
    if image_ids is None:
        pos = torch.eye(len(t), dtype=torch.bool, device=t.device)
    else:
        pos = image_ids[:, None] == image_ids[None, :]

    def nce(lg: torch.Tensor) -> torch.Tensor:
        return (torch.logsumexp(lg, 1) - torch.logsumexp(lg.masked_fill(~pos, float("-inf")), 1)).mean()

    return 0.5 * (nce(logits) + nce(logits.T))
