"""The ``"prototype"`` edit: move a code between value prototypes (:mod:`tedigan.models.prototypes`).

For each value the prompt asks, :func:`shift_to_prototypes` finds the value whose prototype lies nearest the
image's code (on the edited layers) and moves the code by ``gain * strength * (prototype[asked] -
prototype[nearest])``. An image that already has the asked value (nearest prototype = the asked one) is left
as it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from tedigan.editing.mixing import as_wplus, layer_mask
from tedigan.models.prototypes import PrototypeError, Prototypes

__all__ = ["shift_to_prototypes"]


def shift_to_prototypes(
    w: torch.Tensor,
    prototypes: Prototypes,
    asked: Mapping[str, str],
    layers: Sequence[int],
    strength: float = 1.0,
) -> torch.Tensor:
    """``w`` ``[B, num_ws, w_dim]`` moved, on ``layers`` only, from each asked attribute's nearest prototype
    to the asked value's: ``gain * strength * (prototype[value] - prototype[nearest])`` per image."""
    w = as_wplus(w, what="w")
    mask = layer_mask(layers, w.shape[1], device=w.device)
    out = w.clone()
    for a, v in asked.items():
        values = prototypes.codes.get(a, {})
        if v not in values:
            raise PrototypeError(f"the model has no prototype for {a.replace('_', ' ')} = {v}")
        names = list(values)
        protos = torch.stack([values[n] for n in names]).to(device=w.device, dtype=w.dtype)  # [V, ws, d]
        dist = ((w[:, None] - protos[None]) ** 2 * mask[None, None, :, None]).sum(dim=(2, 3))  # [B, V]
        nearest = protos[dist.argmin(dim=1)]  # [B, ws, d]
        step = prototypes.gain * float(strength) * (protos[names.index(v)][None] - nearest)
        out = out + step * mask[None, :, None]
    return out
