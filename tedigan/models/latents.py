"""W+ codes of seeds, for any generator with ``z_dim`` and ``mapping(z, truncation_psi=...)``.

Here, below training and editing, because the face data stage (training), the commands and the evaluation all
draw codes the same way.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["mapping_kwargs", "seed_latents"]


def mapping_kwargs(G: Any) -> dict[str, Any]:
    """``{"update_w_avg": False}`` for a mapping that tracks ``w_avg`` (sampling must not move it), else ``{}``."""
    try:
        tracks = "update_w_avg" in inspect.signature(G.mapping.forward).parameters
    except (AttributeError, TypeError, ValueError):
        tracks = False
    return {"update_w_avg": False} if tracks else {}


def seed_latents(G: Any, seeds: Sequence[int], truncation_psi: float = 1.0) -> torch.Tensor:
    """W+ codes ``[len(seeds), num_ws, w_dim]`` of ``z = RandomState(seed).randn(z_dim)``, the seed convention
    of NVlabs' ``generate.py`` (so a converted NVlabs network, or MobileStyleGAN's FFHQ mapping, gives the faces
    those seeds give there), truncated towards ``w_avg`` by ``truncation_psi``."""
    if not seeds:
        raise ValueError("no seeds given")
    z = np.stack([np.random.RandomState(int(s)).randn(int(G.z_dim)) for s in seeds]).astype(np.float32)
    device = next(iter(G.parameters())).device
    with torch.no_grad():
        return G.mapping(torch.from_numpy(z).to(device), truncation_psi=truncation_psi, **mapping_kwargs(G))
