"""``tedigan assemble --stages OUT --out DIR``: a pipeline folder from the stage outputs of train_all.sh
(:func:`tedigan.pipeline.assemble.from_stages`)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from tedigan import cli
from tedigan.domains import NAMED_GENERATORS

HELP = "assemble a pipeline folder from the stage outputs of train_all.sh"


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "assemble",
        help=HELP,
        description="Assemble a pipeline folder from the stage outputs of train_all.sh.",
        epilog="example: tedigan assemble --stages outputs/avatars64 --out my_model --fp16",
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
        "--generator",
        default=None,
        choices=tuple(NAMED_GENERATORS),
        help="a packaged generator instead of OUT/generator",
    )
    parser.add_argument(
        "--edit-mode",
        default=None,
        choices=cli.EDIT_MODES,
        help="the model's default edit mode (the one its benchmark measured best; default: mix)",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    from tedigan.pipeline.inputs import PSI_RANGE

    out_dir = Path(args.out)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())) and not args.overwrite:
        raise cli.UsageError(f"{out_dir} exists: pass --overwrite to replace it")
    if not (math.isfinite(args.truncation_psi) and PSI_RANGE[0] <= args.truncation_psi <= PSI_RANGE[1]):
        raise cli.UsageError(f"--truncation-psi must be in {PSI_RANGE}")

    import torch

    from tedigan.data import builtin_vocabulary
    from tedigan.pipeline.assemble import from_stages
    from tedigan.pipeline.folder import PipelineDefaults

    try:
        vocabulary = builtin_vocabulary(args.vocabulary) if args.vocabulary else None
        pipe = from_stages(args.stages, vocabulary=vocabulary, generator=args.generator)
    except (FileNotFoundError, ValueError) as err:  # a missing stage output, an unknown vocabulary
        raise cli.UsageError(" ".join(str(err).split())) from None
    pipe.truncation_psi = args.truncation_psi
    pipe.info = {"trained_by": "train_all.sh", "stages": str(args.stages)}
    if args.edit_mode:
        pipe.defaults = PipelineDefaults(edit_mode=args.edit_mode)
    out = pipe.save_pretrained(args.out, dtype=torch.float16 if args.fp16 else None)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"pipeline ({', '.join(pipe.components())}) -> {out} ({size / 1e6:.1f} MB)")
    return 0
