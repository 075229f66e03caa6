"""``tedigan train --stage STAGE --config configs/....yaml`` (also ``pipelines/train_stage.py``, the script
``accelerate launch`` / ``tedigan launch`` start).

    tedigan train --stage classifier --config configs/classifier_tiny.yaml --train.max_steps=50
    tedigan train --stage classifier --config configs/classifier_avatars64.yaml --dry-run
    tedigan launch pipelines/train_stage.py --stage classifier --config configs/classifier_avatars64.yaml

Any ``--section.key=value`` after the named options overrides the YAML (type-checked; unknown keys are
errors). The resolved config is written to ``<train.output_dir>/config.yaml``. ``--resume_from_checkpoint
latest`` continues from the newest complete ``checkpoint-N`` in the output folder (checkpoints are
safetensors + JSON; a folder holding a pickle is refused).

Exit status 0 when the stage finished (its ``complete.json`` written last), 2 with one line on stderr
for a bad config, a missing input, an unusable checkpoint or a diverged run (a NaN/inf loss: nothing
non-finite is ever saved). ``TEDIGAN_DEBUG=1`` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

from tedigan import cli

HELP = "train one stage (as pipelines/train_stage.py); --section.key=value overrides the config"

#: the ``--section.key=value`` overrides arrive as ``args.extra``
TAKES_EXTRA = True

#: the stages (``tedigan.training.<stage>``; their configs are ``tedigan.config.STAGE_CONFIGS``)
STAGES = ("classifier", "domain", "generator", "inversion", "text")


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "train",
        help=HELP,
        description="Train one tedigan stage (each stage's output feeds the next; see train_all.sh).",
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--stage", required=True, choices=STAGES, help="which stage to train")
    parser.add_argument("--config", help="YAML config (configs/*.yaml); defaults are used for missing keys")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    parser.add_argument(
        "--resume_from_checkpoint", default=None, help="'latest' or a checkpoint-N folder to continue from"
    )
    return parser


def run(args: argparse.Namespace) -> int:
    from tedigan.config import STAGE_CONFIGS, dump_config, load_config

    cfg = load_config(STAGE_CONFIGS[args.stage], args.config, args.extra)
    if args.dry_run:
        print(f"stage: {args.stage}\n" + dump_config(cfg), end="")
        return 0
    cli.check_writable(Path(cfg.train.output_dir), "--train.output_dir")
    importlib.import_module(f"tedigan.training.{args.stage}").train(cfg, resume=args.resume_from_checkpoint)
    return 0
