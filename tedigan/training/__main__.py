"""Train one tedigan stage (``pipelines/train_stage.py``, ``python -m tedigan.training`` and ``tedigan train``).

    accelerate launch pipelines/train_stage.py --stage classifier --config configs/classifier_avatars64.yaml
    python pipelines/train_stage.py --stage classifier --config configs/classifier_tiny.yaml --train.max_steps=50
    python pipelines/train_stage.py --stage classifier --config configs/classifier_avatars64.yaml --dry-run

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
import os
import sys

from tedigan.config import STAGE_CONFIGS, ConfigError, dump_config, load_config


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tedigan train",
        description="Train one tedigan stage (each stage's output feeds the next; see train_all.sh).",
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--stage", required=True, choices=sorted(STAGE_CONFIGS), help="which stage to train")
    parser.add_argument("--config", help="YAML config (configs/*.yaml); defaults are used for missing keys")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    parser.add_argument(
        "--resume_from_checkpoint", default=None, help="'latest' or a checkpoint-N folder to continue from"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args, overrides = build_parser().parse_known_args(argv)
    try:
        cfg = load_config(STAGE_CONFIGS[args.stage], args.config, overrides)
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(f"stage: {args.stage}\n" + dump_config(cfg), end="")
        return 0
    from tedigan.models.base import ComponentLoadError
    from tedigan.training.checkpoint import CheckpointError, DivergenceError

    stage = importlib.import_module(f"tedigan.training.{args.stage}")
    try:
        stage.train(cfg, resume=args.resume_from_checkpoint)
    except (ConfigError, FileNotFoundError, CheckpointError, ComponentLoadError, DivergenceError) as err:
        if os.environ.get("TEDIGAN_DEBUG"):
            raise
        _close_progress_bars()
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    return 0


def _close_progress_bars() -> None:
    """End a stage's open tqdm bar so the error starts a line of its own (the stages raise from inside
    their loops; tqdm keeps its live bars in a class-level set)."""
    from tqdm.auto import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


if __name__ == "__main__":
    sys.exit(main())
