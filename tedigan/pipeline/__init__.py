"""The pipeline: text-guided editing, text-to-image and sketch/label-to-image with trained parts.

::

    from tedigan import TediGANPipeline
    pipe = TediGANPipeline.from_pretrained()            # the default shipped model (or a name, a folder)
    out = pipe.edit("face.png", "blond hair", steps=30)  # out.images[0] is a PIL image
    out = pipe.generate("a smiling man with a beard", num_images=4, seed=0)
    out = pipe.generate("red hair", sketch="sketch.png")
    pipe.save_pretrained("my_model")

* :mod:`tedigan.pipeline.pipeline` — :class:`TediGANPipeline` (``__call__``, ``edit``, ``generate``, ``invert``,
  ``decode``);
* :mod:`tedigan.pipeline.outputs` — :class:`TediGANOutput`, :class:`EditOptions`;
* :mod:`tedigan.pipeline.inputs` — every limit and input check (no model, no torch at import: the commands
  check their arguments with it before loading anything), :class:`PipelineError` and the prompt reading;
* :mod:`tedigan.pipeline.quality` — the output guard: :func:`check_images` refuses a flat, saturated, checkered
  or non-finite image with :class:`DegenerateOutputError` before any call returns it;
* :mod:`tedigan.pipeline.folder` — pipeline folders (``model_index.json``, the part registry, typed
  :class:`PipelineDefaults`), :data:`NAMED_MODELS`, :func:`model_folder`;
* :mod:`tedigan.pipeline.assemble` — a pipeline folder from the stage outputs of ``train_all.sh``
  (``tedigan assemble --stages OUT --out DIR``).

Names load on first use (PEP 562), so importing a limit or an error class costs no torch. ``change_mask`` (the
mask of what an edit changed, which the optimisation keeps) lives in :mod:`tedigan.editing.optimization`.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "EDIT_MODES": "inputs",
    "FIDELITIES": "inputs",
    "DegenerateOutputError": "quality",
    "check_images": "quality",
    "IMAGE_TYPES": "inputs",
    "MAX_IMAGES": "inputs",
    "MAX_SEED": "inputs",
    "MAX_STEPS": "inputs",
    "OUT_OF_DOMAIN_P": "inputs",
    "PSI_RANGE": "inputs",
    "STRENGTH_RANGE": "inputs",
    "OutOfDomainWarning": "inputs",
    "RenderWarning": "inputs",
    "PipelineError": "inputs",
    "PromptNotUnderstood": "inputs",
    "PromptReading": "inputs",
    "DEFAULT_MODEL_DIR": "folder",
    "INDEX_FORMAT_VERSION": "folder",
    "INDEX_NAME": "folder",
    "LAYER_MAP_NAME": "folder",
    "NAMED_MODELS": "folder",
    "PipelineDefaults": "folder",
    "model_folder": "folder",
    "packaged_generator": "folder",
    "GENERATE_CHUNK": "pipeline",
    "EditOptions": "outputs",
    "TediGANOutput": "outputs",
    "TediGANPipeline": "pipeline",
    "change_mask": "editing.optimization",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        where = _LAZY[name]
        module = f"tedigan.{where}" if "." in where else f"tedigan.pipeline.{where}"
        return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module 'tedigan.pipeline' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
