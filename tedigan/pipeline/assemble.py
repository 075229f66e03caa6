"""Assemble a pipeline folder from the stage outputs of ``train_all.sh``.

The training folder layout is a contract between the stages and this module only: ``OUT/generator/generator``,
``OUT/inversion/encoder``, ``OUT/text/text_encoder``, ``OUT/inversion_sketch/sketch_encoder``,
``OUT/inversion_label/label_encoder``, ``OUT/classifier/model``, ``OUT/domain/model`` and
``OUT/layer_analysis/layer_map.json`` (and the text stage's value prototypes, ``OUT/text/prototypes.safetensors``).
The pipeline itself (:mod:`tedigan.pipeline.pipeline`) only reads pipeline folders; this module, beside it, is
the one place that knows both layouts.

    tedigan assemble --stages outputs/avatars64 --out my_model --fp16 --vocabulary avatars
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tedigan.data.vocabulary import Vocabulary
from tedigan.models.prototypes import PROTOTYPES_NAME
from tedigan.pipeline.folder import LAYER_MAP_NAME, PARTS
from tedigan.pipeline.inputs import PipelineError
from tedigan.pipeline.pipeline import TediGANPipeline

__all__ = ["STAGE_PATHS", "from_stages"]

#: where train_all.sh leaves each component under its output folder
STAGE_PATHS = {
    "generator": "generator/generator",
    "encoder": "inversion/encoder",
    "text_encoder": "text/text_encoder",
    "sketch_encoder": "inversion_sketch/sketch_encoder",
    "label_encoder": "inversion_label/label_encoder",
    "classifier": "classifier/model",
    "domain_classifier": "domain/model",  # the stage domain's judge (configs/domain.yaml), trained once for all
}


def from_stages(
    out_dir: str | Path,
    device: str | torch.device = "cpu",
    vocabulary: Vocabulary | None = None,
    generator: str | None = None,
) -> TediGANPipeline:
    """A pipeline from the stage folders under ``out_dir`` (missing optional parts are left out), with the data
    domain's ``vocabulary``. ``generator="mobilestylegan"`` takes the packaged FFHQ generator (rendering at the image
    encoder's training resolution) instead of a generator stage's."""
    out_dir = Path(out_dir)
    parts: dict[str, Any] = {}
    if generator is not None:
        from tedigan.models.named import load_generator

        resolution = _trained_resolution(out_dir / STAGE_PATHS["encoder"])
        parts["generator"] = load_generator(generator, device, resolution)
    for name, rel in STAGE_PATHS.items():
        if name in parts:
            continue
        sub = out_dir / rel
        if (sub / "model.safetensors").is_file():
            parts[name] = PARTS[name].load(sub.parent, sub.name, device, None)
        elif PARTS[name].required:
            raise PipelineError(
                f"{sub} is missing: run the {rel.split('/')[0]} stage first (bash train_all.sh)"
            )
    for name, stage, file_name in (
        ("layer_map", "layer_analysis", LAYER_MAP_NAME),
        ("prototypes", "text", PROTOTYPES_NAME),
    ):
        if (out_dir / stage / file_name).is_file():
            parts[name] = PARTS[name].load(out_dir / stage, file_name, device, None)
    return TediGANPipeline(**parts, vocabulary=vocabulary)


def _trained_resolution(encoder_dir: Path) -> int:
    """The generator resolution the inversion stage trained the encoder at (its config.yaml's data size)."""
    import yaml

    stage_cfg = encoder_dir.parent / "config.yaml"
    if not stage_cfg.is_file():
        raise PipelineError(f"{stage_cfg} is missing: run the inversion stage first")
    return int((yaml.safe_load(stage_cfg.read_text()).get("data") or {}).get("resolution", 256))
