"""What the pipeline's calls take and give besides images and prompts: :class:`TediGANOutput` (every call's
result, decoded and checked by :func:`decoded`), :class:`EditOptions` (an edit's fidelity, optimisation and
tuning knobs) and the recipes their defaults come from (:func:`edit_optimization`, :func:`faithful_recipe`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from PIL import Image

from tedigan.data.io import to_pil
from tedigan.editing.faithful import FaithfulConfig
from tedigan.editing.optimization import OptimizationConfig
from tedigan.pipeline.inputs import (
    MAX_SEED,
    MAX_STEPS,
    PipelineError,
    check_fidelity,
    check_integer,
    check_steps,
)
from tedigan.pipeline.quality import check_images

__all__ = ["EditOptions", "TediGANOutput", "decoded", "edit_optimization", "faithful_recipe", "pils"]


@dataclass
class TediGANOutput:
    """What every pipeline call returns.

    ``images``: the results as PIL images (the generator's resolution). ``latents``: their W+ codes
    ``[B, num_ws, w_dim]``. ``layers``: the W+ layers the edit moved (empty when no text was used).
    ``source_images`` / ``source_latents``: the aligned input and its inverted code (edit, invert, and
    sketch/label generation). ``text_latents``: the prompt's code ``[1, num_ws, w_dim]``. ``losses``: the
    optimisation history (one dict per step; empty when ``steps = 0``). ``seconds``: wall time of the call.
    ``tuned_generators``: with ``pti_steps > 0`` or ``fidelity="faithful"``, each image's tuned generator copy
    (it rendered ``images`` and ``reconstructions``; render more codes of that image with
    ``pipe.decode(w, generator=g)``); else None. ``reconstructions``: the source's inverted code
    (``source_latents``) rendered by the generator that rendered the result (the tuned copy, if any): what the
    edit started from (edit and invert; None for generate). ``alignments``: with ``align=True``, per
    item the :class:`~tedigan.data.align.FaceAlignment` of its face (one item per face), and ``photos``: per
    item the upright photo it was cut from (the same object for the faces of one photo): what
    :func:`tedigan.pipeline.photos.paste_edits` puts the edit back into; both None without alignment.
    ``masks``: for an edit confined to one region of the face (hair colour; :mod:`tedigan.pipeline.regions`),
    the soft masks ``[B, 1, H, W]`` it was blended through; renders at other sizes are blended the same way.
    ``chroma``: for a local edit to a value without a hue (gray hair), the share of its chroma the edit kept
    inside the masks (:func:`~tedigan.pipeline.regions.neutralise`); None otherwise.
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
    reconstructions: list[Image.Image] | None = None
    alignments: list[Any] | None = None
    photos: list[Image.Image] | None = None
    masks: torch.Tensor | None = None
    chroma: float | None = None


@dataclass
class EditOptions:
    """How an edit is refined after the encoder-only edit (:meth:`TediGANPipeline.edit` takes these as
    ``options=`` or as keywords of the same names).

    ``fidelity``: how the image is inverted before the edit. ``"fast"``: the encoder alone (then ``steps`` and
    ``pti_steps`` as below); ``"faithful"``: :func:`~tedigan.editing.faithful.faithful_invert` from the encoder's
    code (W, then W+ with a spread penalty, then pivotal tuning of a generator copy, each stage keeping its best
    step), and the edit is rendered by the tuned copy;
    ``None``: the model's ``defaults.fidelity`` (``"fast"`` when the codes are given instead of an image).
    ``faithful``: that recipe's settings (default: :func:`faithful_recipe`; its ``full_resolution`` is always
    the pipeline's, ``pti_steps > 0`` sets its tuning steps, and ``use_head=True`` runs it on the fast route of
    the pipeline's ``proxy_head``).
    ``steps``: Adam steps of instance-level optimisation (0: encoder only; ``None``: ``optimization.steps``
    when a config is given, else 0). ``optimization``: its loss weights and learning rate (``seed`` and
    ``progress`` here win over the config's). ``pti_steps``: pivotal tuning steps (Roich et al. 2022) of a
    generator copy that then renders the edit (at the model's ``defaults.pti_lr``, best step kept).
    ``callback(step, images)`` sees every optimisation step's images in [-1, 1] (projection videos).
    ``progress``: progress bars (optimisation, tuning, and each stage of the faithful inversion)."""

    steps: int | None = None
    seed: int = 0
    optimization: OptimizationConfig | None = None
    pti_steps: int = 0
    progress: bool = True
    callback: Callable[[int, torch.Tensor], Any] | None = None
    fidelity: str | None = None
    faithful: FaithfulConfig | None = None

    def checked(self, has_image: bool) -> EditOptions:
        steps = check_steps(self.steps, self.optimization.steps if self.optimization is not None else 0)
        pti_steps = check_integer("pti_steps", self.pti_steps, 0, MAX_STEPS)
        if pti_steps > 0 and not has_image:
            raise PipelineError("pti_steps needs the image (pivotal tuning fits the generator to it)")
        fidelity = check_fidelity(self.fidelity) if self.fidelity is not None else None
        if fidelity == "faithful" and not has_image:
            raise PipelineError(
                "fidelity='faithful' needs the image (it fits the codes and a generator copy to it): "
                "give image=, or fidelity='fast' with latents="
            )
        if self.faithful is not None and not isinstance(self.faithful, FaithfulConfig):
            raise PipelineError(f"faithful must be a FaithfulConfig, got {type(self.faithful).__name__}")
        seed = check_integer("seed", self.seed, 0, MAX_SEED)
        return replace(self, steps=steps, pti_steps=pti_steps, seed=seed, fidelity=fidelity)


def edit_optimization() -> OptimizationConfig:
    """The optimisation of an edit when ``EditOptions.optimization`` is None: it starts from the moved code, the
    text term and the change mask keep the edit, pixel and LPIPS losses restore the rest."""
    return OptimizationConfig(steps=0, lr=0.01, pixel_weight=1.0, lpips_weight=1.0, encoder_weight=1.0)


def faithful_recipe(pti_lr: float, resolution: int) -> FaithfulConfig:
    """The faithful inversion the pipeline runs when ``EditOptions.faithful`` is None: the research's product
    recipe (:class:`~tedigan.editing.faithful.FaithfulConfig`'s defaults: W, W+ and tuning of every synthesis
    weight at full resolution, best step kept, a time budget as a guard), tuned at the model's ``pti_lr`` and
    rendered at the pipeline's resolution. ``FaithfulConfig(use_head=True, ...)`` runs the fast route through
    the pipeline's ``proxy_head`` instead (faces model; without a head it runs at full resolution)."""
    return FaithfulConfig(pti_lr=pti_lr, full_resolution=resolution)


def pils(t: torch.Tensor) -> list[Image.Image]:
    return list(to_pil(t.detach().float().cpu()))


def decoded(
    images: torch.Tensor,
    latents: torch.Tensor,
    what: str = "the result",
    hint: str = "try --fast (fidelity='fast') or fewer --pti-steps / --steps",
) -> list[Image.Image]:
    """The images as PIL, but never a black image for a NaN nor any other garbage: a non-finite code is an error
    that says where to look, and :func:`~tedigan.pipeline.quality.check_images` refuses a non-finite, flat,
    saturated or checkered image (:class:`~tedigan.pipeline.quality.DegenerateOutputError`)."""
    if not bool(torch.isfinite(latents).all()):
        raise PipelineError(
            "the result is not finite (NaN/inf): the model's weights or the inputs are broken, or the "
            "optimisation diverged (fewer steps, a lower learning rate, or float32 weights)"
        )
    return pils(check_images(images, what, hint))
