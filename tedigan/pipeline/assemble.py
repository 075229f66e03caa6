"""Assemble a pipeline folder from the stage outputs of ``train_all.sh``.

The training folder layout is a contract between the stages and this module only: ``OUT/generator/generator``,
``OUT/inversion/encoder``, ``OUT/text/text_encoder``, ``OUT/inversion_sketch/sketch_encoder``,
``OUT/inversion_label/label_encoder``, ``OUT/classifier/model``, ``OUT/domain/model`` and
``OUT/layer_analysis/layer_map.json`` (and the text stage's value prototypes, ``OUT/text/prototypes.safetensors``).
The pipeline itself (:mod:`tedigan.pipeline.pipeline`) only reads pipeline folders; this module, beside it, is
the one place that knows both layouts.

    python -m tedigan.pipeline.assemble --stages outputs/avatars64 --out my_model --fp16 --vocabulary avatars
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from tedigan.data.vocabulary import Vocabulary
from tedigan.models.base import ComponentLoadError
from tedigan.models.prototypes import PROTOTYPES_NAME
from tedigan.pipeline.folder import LAYER_MAP_NAME, PARTS, PipelineDefaults
from tedigan.pipeline.inputs import EDIT_MODES, PSI_RANGE, PipelineError
from tedigan.pipeline.pipeline import TediGANPipeline

__all__ = ["STAGE_PATHS", "from_stages", "main"]

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
    domain's ``vocabulary``. ``generator="faces"`` takes the packaged FFHQ generator (rendering at the image
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tedigan.pipeline.assemble",
        description="Assemble a pipeline folder from the stage outputs of train_all.sh.",
        epilog="example: python -m tedigan.pipeline.assemble --stages outputs/avatars64 --out my_model --fp16",
    )
    parser.add_argument("--stages", required=True, help="train_all.sh output folder (OUT)")
    parser.add_argument("--out", required=True, help="pipeline folder to write")
    parser.add_argument("--fp16", action="store_true", help="store weights as float16 (half the size)")
    parser.add_argument("--truncation-psi", type=float, default=0.7, help="default truncation of generate()")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    parser.add_argument(
        "--vocabulary",
        default=None,
        help="the domain's vocabulary: a built-in name (avatars, faces) or a vocabulary.json (default: none; "
        "prompts are then not checked and take the W+ layers their text code moves most)",
    )
    parser.add_argument(
        "--generator", default=None, choices=("faces",), help="a packaged generator instead of OUT/generator"
    )
    parser.add_argument(
        "--edit-mode",
        default=None,
        choices=EDIT_MODES,
        help="the model's default edit mode (the one its benchmark measured best; default: mix)",
    )
    args = parser.parse_args(argv)
    prog = parser.prog
    out_dir = Path(args.out)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())) and not args.overwrite:
        parser.exit(2, f"{prog}: error: {out_dir} exists: pass --overwrite to replace it\n")
    if not (math.isfinite(args.truncation_psi) and PSI_RANGE[0] <= args.truncation_psi <= PSI_RANGE[1]):
        parser.exit(2, f"{prog}: error: --truncation-psi must be in {PSI_RANGE}\n")
    try:
        from tedigan.data import builtin_vocabulary

        vocabulary = builtin_vocabulary(args.vocabulary) if args.vocabulary else None
        pipe = from_stages(args.stages, vocabulary=vocabulary, generator=args.generator)
    except (PipelineError, ComponentLoadError, FileNotFoundError, ValueError) as err:
        parser.exit(2, f"{prog}: error: {' '.join(str(err).split())}\n")
    pipe.truncation_psi = args.truncation_psi
    pipe.info = {"trained_by": "train_all.sh", "stages": str(args.stages)}
    if args.edit_mode:
        pipe.defaults = PipelineDefaults(edit_mode=args.edit_mode)
    out = pipe.save_pretrained(args.out, dtype=torch.float16 if args.fp16 else None)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"pipeline ({', '.join(pipe.components())}) -> {out} ({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
