"""Text directions in W+: where the ``"delta"`` edit moves a code (:func:`tedigan.editing.mixing.shift_codes`).

For each attribute value a prompt asks, the vocabulary lists phrases for it and for the attribute's other
values. The text encoder maps them into W+; the mean code of the other values' phrases is where the edit comes
*from*, and the prompt's own text code (or, when the prompt cannot stand for the result, the mean code of the
asked value's phrases) is where it goes *to*. In the spirit of StyleCLIP's global directions (Patashnik et al.,
ICCV 2021), with TediGAN's text encoder in place of CLIP.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

__all__ = ["text_direction"]


@torch.no_grad()
def text_direction(
    text_encoder: Any,
    vocabulary: Any,
    asked: Mapping[str, str],
    w_text: torch.Tensor | None = None,
    phrases: int = 4,
) -> torch.Tensor:
    """The W+ direction of ``asked`` (``{attribute: value}``, as the vocabulary read a prompt), ``[1, num_ws,
    w_dim]``: ``w_text`` minus the mean over the asked attributes of the mean text code of their other values'
    phrases (two per value). Without ``w_text``, the asked values' own phrases (up to ``phrases`` each) stand in
    for it: the sum over the asked attributes of (asked value's mean code − other values' mean code)."""
    if not asked:
        raise ValueError("a text direction needs at least one asked attribute value")
    toward: torch.Tensor | float = 0.0
    away: torch.Tensor | float = 0.0
    for attribute, value in asked.items():
        values = vocabulary.attributes[attribute]
        pos = values[value][:phrases] or [value.replace("_", " ")]
        neg = [p for v, ps in values.items() if v != value for p in (ps[:2] or [v.replace("_", " ")])]
        codes = text_encoder.encode_text([*pos, *neg])
        toward = toward + codes[: len(pos)].mean(0, keepdim=True)
        away = away + codes[len(pos) :].mean(0, keepdim=True)
    if w_text is None:
        return toward - away
    return w_text.to(away) - away / len(asked)
