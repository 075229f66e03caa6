"""What the pipeline's calls take and give besides images and prompts: :class:`TediGANOutput` (every call's
result, decoded and checked by :func:`decoded`) and :class:`EditOptions` (an edit's optimisation and tuning
knobs)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from PIL import Image

from tedigan.data.io import to_pil
from tedigan.editing.optimization import OptimizationConfig
from tedigan.pipeline.inputs import MAX_SEED, MAX_STEPS, PipelineError, check_integer, check_steps

__all__ = ["EditOptions", "TediGANOutput", "decoded", "edit_optimization", "pils"]


@dataclass
class TediGANOutput:
    """What every pipeline call returns.

    ``images``: the results as PIL images (the generator's resolution). ``latents``: their W+ codes
    ``[B, num_ws, w_dim]``. ``layers``: the W+ layers the edit moved (empty when no text was used).
    ``source_images`` / ``source_latents``: the aligned input and its inverted code (edit, invert, and
    sketch/label generation). ``text_latents``: the prompt's code ``[1, num_ws, w_dim]``. ``losses``: the
    optimisation history (one dict per step; empty when ``steps = 0``). ``seconds``: wall time of the call.
    ``tuned_generators``: with ``pti_steps > 0``, each image's pivotally tuned generator copy (render more codes
    of that image with ``pipe.decode(w, generator=g)``); else None. ``alignments``: with ``align=True``, per
    item the :class:`~tedigan.data.align.FaceAlignment` of its face (one item per face), and ``photos``: per
    item the upright photo it was cut from (the same object for the faces of one photo): what
    :func:`tedigan.pipeline.photos.paste_edits` puts the edit back into; both None without alignment.
    """

    images: list[Image.Image]
    latents: torch.Tensor
    layers: list[int] = field(default_factory=list)
    source_images: list[Image.Image] | None = None
    source_latents: torch.Tensor | None = None
    text_latents: torch.Tensor | None = None
    losses: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    tuned_generators: list[Any] | None = None
    alignments: list[Any] | None = None
    photos: list[Image.Image] | None = None


@dataclass
class EditOptions:
    """How an edit is refined after the encoder-only edit (:meth:`TediGANPipeline.edit` takes these as
    ``options=`` or as keywords of the same names).

    ``steps``: Adam steps of instance-level optimisation (0: encoder only; ``None``: ``optimization.steps``
    when a config is given, else 0). ``optimization``: its loss weights and learning rate (``seed`` and
    ``progress`` here win over the config's). ``pti_steps``: pivotal tuning steps (Roich et al. 2022) of a
    generator copy that then renders the edit. ``callback(step, images)`` sees every optimisation step's
    images in [-1, 1] (projection videos)."""

    steps: int | None = None
    seed: int = 0
    optimization: OptimizationConfig | None = None
    pti_steps: int = 0
    progress: bool = True
    callback: Callable[[int, torch.Tensor], Any] | None = None

    def checked(self, has_image: bool) -> EditOptions:
        steps = check_steps(self.steps, self.optimization.steps if self.optimization is not None else 0)
        pti_steps = check_integer("pti_steps", self.pti_steps, 0, MAX_STEPS)
        if pti_steps > 0 and not has_image:
            raise PipelineError("pti_steps needs the image (pivotal tuning fits the generator to it)")
        seed = check_integer("seed", self.seed, 0, MAX_SEED)
        return replace(self, steps=steps, pti_steps=pti_steps, seed=seed)


def edit_optimization() -> OptimizationConfig:
    """The optimisation of an edit when ``EditOptions.optimization`` is None: it starts from the moved code, the
    text term and the change mask keep the edit, pixel and LPIPS losses restore the rest."""
    return OptimizationConfig(steps=0, lr=0.01, pixel_weight=1.0, lpips_weight=1.0, encoder_weight=1.0)


def pils(t: torch.Tensor) -> list[Image.Image]:
    return list(to_pil(t.detach().float().cpu()))


def decoded(images: torch.Tensor, latents: torch.Tensor) -> list[Image.Image]:
    """The images as PIL, but never a black image for a NaN: a non-finite result is an error that says where
    to look."""
    if not (bool(torch.isfinite(latents).all()) and bool(torch.isfinite(images).all())):
        raise PipelineError(
            "the result is not finite (NaN/inf): the model's weights or the inputs are broken, or the "
            "optimisation diverged (fewer steps, a lower learning rate, or float32 weights)"
        )
    return pils(images)
