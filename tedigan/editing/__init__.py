"""Control and editing (TediGAN, Xia et al., CVPR 2021): attribute-specific layer mixing, the layer-wise
analysis that decides which W+ layers carry each attribute, and instance-level optimisation of W+.

* :mod:`tedigan.editing.mixing` — :func:`mix`, :func:`edit_codes`, :func:`shift_codes`, :func:`text_to_image_codes`
* :mod:`tedigan.editing.prototypes` — :func:`shift_to_prototypes` (the ``"prototype"`` edit)
* :mod:`tedigan.editing.layer_analysis` — :func:`analyze_layers`, :class:`LayerMap`,
  :func:`layers_for_attributes`, :func:`layers_for_prompt`; command ``tedigan layer-analysis``
* :mod:`tedigan.editing.optimization` — :func:`optimize_latent`, :class:`OptimizationConfig`,
  :class:`CLIPLoss`, :class:`IdentityLoss`

The analysis and optimisation modules load on first use (PEP 562), so ``python -m
tedigan.editing.layer_analysis`` does not import its own module twice and ``import tedigan.editing`` stays
light. This room imports data, models, losses and metrics, never training, the pipeline or CLIs above it.
"""

from __future__ import annotations

import importlib
from typing import Any

from tedigan.editing.mixing import as_wplus, edit_codes, layer_mask, mix, text_to_image_codes

_LAZY = {
    "LayerGroup": "layer_analysis",
    "LayerMap": "layer_analysis",
    "analyze_layers": "layer_analysis",
    "layer_groups": "layer_analysis",
    "layers_for_attributes": "layer_analysis",
    "layers_for_prompt": "layer_analysis",
    "plot_heatmap": "layer_analysis",
    "select_layers": "layer_analysis",
    "top_moved_layers": "layer_analysis",
    "CLIPLoss": "optimization",
    "IdentityLoss": "optimization",
    "OptimizationConfig": "optimization",
    "OptimizationResult": "optimization",
    "clip_preprocess": "optimization",
    "optimize_latent": "optimization",
}

__all__ = ["as_wplus", "edit_codes", "layer_mask", "mix", "text_to_image_codes", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"tedigan.editing.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'tedigan.editing' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
