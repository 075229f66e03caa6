"""Attribute-specific layer mixing: TediGAN's control mechanism, built on StyleGAN's style mixing.

Xia et al., "TediGAN: Text-Guided Diverse Face Image Generation and Manipulation" (CVPR 2021), §3.3: W+ holds
one code per synthesis layer, and layer groups carry different attributes (coarse: pose, shape, eyewear;
middle: hair style, expression; fine: colours). Mixing copies *selected layers* from one code into another:

* text-to-image — the text code is the *content* mixed into the selected layers of randomly sampled *style*
  codes, so one prompt gives diverse faces that share what the prompt names (:func:`text_to_image_codes`);
* manipulation — the image's inverted code is kept and only the text-related layers come from the text code,
  so unrelated attributes stay (:func:`edit_codes`); or, not in TediGAN, the selected layers move along a
  text direction (the code of the asked value minus that of the others) and keep the rest of what they hold
  (:func:`shift_codes`).

Which layers belong to which attribute is measured by :mod:`tedigan.editing.layer_analysis`.

Everything here is explicit and deterministic: unselected layers of the result are bit-identical copies of the
code they come from (``torch.where``, no arithmetic), and randomness only enters through a seed.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from tedigan.models.latents import mapping_kwargs

__all__ = ["LayerSpec", "layer_mask", "mix", "edit_codes", "shift_codes", "text_to_image_codes", "as_wplus"]

#: Selected W+ layers: indices (list/tuple/set/range/int tensor) or a boolean mask of length ``num_ws``.
LayerSpec = Iterable[int] | Sequence[bool] | torch.Tensor


def layer_mask(layers: LayerSpec, num_ws: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Selected layers → boolean mask ``[num_ws]``.

    ``layers`` is a collection of indices in ``[0, num_ws)`` (negative indices are refused: an explicit
    layer list should not silently wrap) or a boolean mask with exactly ``num_ws`` entries. An empty
    collection selects nothing. Anything else raises ``ValueError``.
    """
    if num_ws < 1:
        raise ValueError(f"num_ws must be >= 1, got {num_ws}")
    if isinstance(layers, torch.Tensor):
        if layers.dtype == torch.bool:
            if layers.ndim != 1 or layers.numel() != num_ws:
                raise ValueError(
                    f"a boolean layer mask needs exactly {num_ws} entries, got shape {tuple(layers.shape)}"
                )
            return layers.to(device=device)
        if layers.dtype.is_floating_point or layers.dtype.is_complex or layers.ndim > 1:
            raise ValueError(
                f"layer indices must be a 1-d integer tensor, got {layers.dtype} {tuple(layers.shape)}"
            )
        items: list[Any] = layers.tolist() if layers.ndim == 1 else [layers.item()]
    elif isinstance(layers, (str, bytes)) or not isinstance(layers, Iterable):
        raise ValueError(f"layers must be a collection of W+ indices or a boolean mask, got {layers!r}")
    else:
        items = list(layers)
    if items and all(isinstance(i, bool) for i in items):
        if len(items) != num_ws:
            raise ValueError(f"a boolean layer mask needs exactly {num_ws} entries, got {len(items)}")
        return torch.tensor(items, dtype=torch.bool, device=device)
    mask = torch.zeros(num_ws, dtype=torch.bool)
    for item in items:
        try:
            if isinstance(item, bool):  # a bool among integers is a mistake, not index 0/1
                raise TypeError
            i = operator.index(item)  # ints, numpy integers, 0-d integer tensors; not floats
        except TypeError:
            raise ValueError(f"layer indices must be integers, got {item!r} in {layers!r}") from None
        if not 0 <= i < num_ws:
            raise ValueError(f"layer index {i} is out of range: this W+ has layers 0..{num_ws - 1}")
        mask[i] = True
    return mask.to(device=device)


def as_wplus(w: torch.Tensor, what: str = "code") -> torch.Tensor:
    """``[B, num_ws, w_dim]`` as is; one code ``[num_ws, w_dim]`` becomes a batch of one."""
    if not isinstance(w, torch.Tensor):
        raise ValueError(f"{what} must be a torch.Tensor, got {type(w).__name__}")
    if w.ndim == 3:
        return w
    if w.ndim == 2:
        return w.unsqueeze(0)
    raise ValueError(f"{what} must be W+ codes [B, num_ws, w_dim] (or [num_ws, w_dim]), got {tuple(w.shape)}")


def _broadcast(a: torch.Tensor, b: torch.Tensor, names: tuple[str, str]) -> tuple[torch.Tensor, torch.Tensor]:
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(
            f"{names[0]} {tuple(a.shape)} and {names[1]} {tuple(b.shape)} must share [num_ws, w_dim]"
        )
    if a.shape[0] != b.shape[0]:
        if a.shape[0] == 1:
            a = a.expand(b.shape[0], -1, -1)
        elif b.shape[0] == 1:
            b = b.expand(a.shape[0], -1, -1)
        else:
            raise ValueError(
                f"batch sizes of {names[0]} ({a.shape[0]}) and {names[1]} ({b.shape[0]}) differ; "
                "one of them must be 1 to broadcast"
            )
    return a, b


def mix(w_content: torch.Tensor, w_style: torch.Tensor, layers: LayerSpec) -> torch.Tensor:
    """W+ codes whose ``layers`` come from ``w_content`` and all other layers from ``w_style``.

    Shapes ``[B, num_ws, w_dim]`` (a ``[num_ws, w_dim]`` code counts as a batch of one); a batch of one
    broadcasts over the other input's batch, so one text code can be mixed into ``B`` random style codes.
    The result is a new tensor; each of its layers is an exact copy of the corresponding input layer.
    """
    w_content, w_style = as_wplus(w_content, what="w_content"), as_wplus(w_style, what="w_style")
    w_content, w_style = _broadcast(w_content, w_style, ("w_content", "w_style"))
    mask = layer_mask(layers, w_style.shape[1], device=w_style.device)
    if w_content.dtype != w_style.dtype:
        w_content = w_content.to(w_style.dtype)
    return torch.where(mask[None, :, None], w_content.to(w_style.device), w_style)


def edit_codes(
    w_image: torch.Tensor, w_text: torch.Tensor, layers: LayerSpec, strength: float = 1.0
) -> torch.Tensor:
    """Manipulation: keep the image code, take the selected layers from the text code.

    ``strength`` interpolates the selected layers, ``w_image + strength * (w_text - w_image)``: 0 leaves the
    image code, 1 (default) copies the text code's layers exactly, values above 1 extrapolate. The other
    layers are bit-identical to ``w_image``. A single text code broadcasts over a batch of images.
    """
    strength = float(strength)
    if not torch.isfinite(torch.tensor(strength)):
        raise ValueError(f"strength must be finite, got {strength}")
    w_image, w_text = as_wplus(w_image, what="w_image"), as_wplus(w_text, what="w_text")
    w_text, w_image = _broadcast(w_text, w_image, ("w_text", "w_image"))
    w_text = w_text.to(device=w_image.device, dtype=w_image.dtype)
    target = w_text if strength == 1.0 else torch.lerp(w_image, w_text, strength)
    return mix(target, w_image, layers)


def shift_codes(
    w_image: torch.Tensor, direction: torch.Tensor, layers: LayerSpec, strength: float = 1.0
) -> torch.Tensor:
    """Manipulation along a direction: ``w_image + strength * direction`` on the selected layers (the others
    bit-identical). ``direction`` ``[1 or B, num_ws, w_dim]`` is e.g. a text-code difference: the code of the
    asked value minus that of the other values (:meth:`tedigan.pipeline.TediGANPipeline.text_direction`)."""
    strength = float(strength)
    if not torch.isfinite(torch.tensor(strength)):
        raise ValueError(f"strength must be finite, got {strength}")
    w_image, direction = as_wplus(w_image, what="w_image"), as_wplus(direction, what="direction")
    direction, w_image = _broadcast(direction, w_image, ("direction", "w_image"))
    moved = w_image + strength * direction.to(device=w_image.device, dtype=w_image.dtype)
    return mix(moved, w_image, layers)


def text_to_image_codes(
    w_text: torch.Tensor,
    G: Any,
    layers: LayerSpec,
    num: int,
    seed: int = 0,
    truncation_psi: float = 0.7,
    z: torch.Tensor | None = None,
) -> torch.Tensor:
    """Text-to-image: ``num`` codes = the text code (content) in ``layers`` of seeded random codes (style).

    The style codes are ``G.mapping(z, truncation_psi)`` of ``z ~ N(0, I)`` drawn from a CPU generator seeded
    with ``seed`` (the same seed gives the same codes on any device); the mapping's running ``w_avg`` is not
    updated. ``w_text`` is one code (``[1, num_ws, w_dim]`` or ``[num_ws, w_dim]``, broadcast) or ``num``
    codes. Gradients flow to ``w_text`` (the random codes carry none). Returns ``[num, num_ws, w_dim]``.
    ``z`` (``[num, z_dim]``) replaces the seeded draw, e.g. one chunk of a longer seeded sequence.
    """
    if int(num) < 1:
        raise ValueError(f"num must be >= 1, got {num}")
    num = int(num)
    num_ws, z_dim = int(G.num_ws), int(G.z_dim)
    w_text = as_wplus(w_text, what="w_text")
    if w_text.shape[0] not in (1, num):
        raise ValueError(f"w_text must hold 1 or num={num} codes, got {w_text.shape[0]}")
    if w_text.shape[1] != num_ws:
        raise ValueError(f"w_text has {w_text.shape[1]} layers, the generator has {num_ws}")
    mask = layer_mask(layers, num_ws)  # validate before sampling
    params = next(iter(G.parameters()), None) if hasattr(G, "parameters") else None
    device = params.device if params is not None else w_text.device
    if z is None:
        z = torch.randn(num, z_dim, generator=torch.Generator().manual_seed(int(seed)))
    elif tuple(z.shape) != (num, z_dim):
        raise ValueError(f"z must be [{num}, {z_dim}], got {tuple(z.shape)}")
    with torch.no_grad():
        w_style = G.mapping(z.to(device), truncation_psi=truncation_psi, **mapping_kwargs(G))
    return mix(w_text, w_style.to(device=w_text.device, dtype=w_text.dtype), mask)
