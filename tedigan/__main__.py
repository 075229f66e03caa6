"""The ``tedigan`` command: ``tedigan edit | generate | invert | mix | train | benchmark | judges | assets | demo``.

Each subcommand is the module of the same job (``tedigan edit ...`` = ``python -m tedigan.edit ...``) and
takes the same options; ``tedigan <command> --help`` explains them.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

#: command -> (module with main(argv), what it does)
COMMANDS: dict[str, tuple[str, str]] = {
    "edit": ("tedigan.edit", "edit a face image (or saved W+ codes) from text"),
    "generate": ("tedigan.generate", "faces from text, a sketch or a label map; --seeds samples"),
    "invert": ("tedigan.invert", "encode images into W+ codes (saved as safetensors)"),
    "mix": ("tedigan.generate", "style-mixing grid: --seeds ROWS --mix-seeds COLUMNS [--mix-layers ...]"),
    "train": ("tedigan.training.__main__", "train one stage (as pipelines/train_stage.py)"),
    "benchmark": ("tedigan.evaluation.edit_benchmark", "the ground-truth edit benchmark of a pipeline"),
    "judges": ("tedigan.evaluation.judges", "what the face judges say about generated faces"),
    "assets": ("tedigan.assets", "where each pretrained weight is found; --fetch-npm"),
    "demo": ("tedigan.app", "the web demo on http://127.0.0.1:7860"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    rows = "\n".join(f"  {name:<{width}}  {what}" for name, (_, what) in COMMANDS.items())
    return f"usage: tedigan <command> [options]   (tedigan <command> --help)\n\ncommands:\n{rows}\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage(), end="")
        return 0
    if args[0] in ("-V", "--version"):
        from tedigan import __version__

        print(f"tedigan {__version__}")
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"tedigan: error: unknown command {name!r}\n\n{_usage()}", end="", file=sys.stderr)
        return 2
    asks_help = "-h" in rest or "--help" in rest
    has_columns = any(a == "--mix-seeds" or a.startswith("--mix-seeds=") for a in rest)
    if name == "mix" and not has_columns and not asks_help:
        print("tedigan mix: error: give --seeds ROWS and --mix-seeds COLUMNS", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    result = module.main(rest)
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    raise SystemExit(main())
