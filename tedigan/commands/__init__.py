"""The command layer: ``tedigan <command> ...`` (also ``python -m tedigan <command> ...``).

One file per command, as in accelerate's ``commands/``: each module has ``HELP`` (one line for
``tedigan --help``), ``add_parser(subparsers)`` (its options, no heavy imports) and ``run(args) -> int``
(the work: torch and the pipeline are imported in there, so ``tedigan edit --help`` starts fast).
:func:`main` builds the parser from :data:`COMMANDS` and calls the command through :func:`call`, the one
error wrapper. Library modules keep no ``main()``; the module paths users type (``python -m tedigan.edit``,
``pipelines/train_stage.py``, ...) are two-line shims that call :func:`shim`.

The contract of every command:

- exit status 0: done;
- exit status 2: an error the user can fix (a bad option, input, config or model folder), printed as one
  line ``tedigan <command>: error: ...`` on stderr (options included: argparse's usage block is not
  printed), quoted text cut to its first 80 characters; checked before any work where it can be, and then
  nothing is written. ``TEDIGAN_DEBUG=1`` shows the traceback instead;
- exit status 130: interrupted (Ctrl-C); finished files stay, nothing half-written passes for finished;
- anything else (a traceback, status 1) is a bug.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from types import ModuleType

__all__ = ["COMMANDS", "CommandParser", "build_parser", "call", "entry", "main", "shim"]

#: command name -> module (in the order ``tedigan --help`` lists them)
COMMANDS: dict[str, str] = {
    name: f"tedigan.commands.{module}"
    for name, module in [
        ("edit", "edit"),
        ("generate", "generate"),
        ("mix", "mix"),
        ("invert", "invert"),
        ("demo", "demo"),
        ("train", "train"),
        ("launch", "launch"),
        ("avatars", "avatars"),
        ("face-data", "face_data"),
        ("face-directions", "face_directions"),
        ("layer-analysis", "layer_analysis"),
        ("assemble", "assemble"),
        ("export", "export"),
        ("convert", "convert"),
        ("metrics", "metrics"),
        ("benchmark", "benchmark"),
        ("face-benchmark", "face_benchmark"),
        ("judges", "judges"),
        ("assets", "assets"),
    ]
}


class CommandParser(argparse.ArgumentParser):
    """argparse with the contract's one-line errors, and help that may end with text computed only when
    help is asked for (``more_help``: e.g. the vocabulary of every shipped model, which needs files read)."""

    def __init__(self, *args, more_help: Callable[[], str] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.more_help = more_help

    def format_help(self) -> str:
        if self.more_help is not None:
            self.epilog = (self.epilog or "") + self.more_help()
            self.more_help = None
        return super().format_help()

    def error(self, message: str):
        from tedigan.cli import error_line

        self.exit(2, f"{self.prog}: error: {error_line(ValueError(message))} (see {self.prog} --help)\n")


def _load(name: str) -> ModuleType:
    return importlib.import_module(COMMANDS[name])


def build_parser() -> tuple[CommandParser, dict[str, argparse.ArgumentParser]]:
    """The ``tedigan`` parser with one subparser per command, and those subparsers by name."""
    parser = CommandParser(
        prog="tedigan",
        description="Text-guided face generation and editing (TediGAN on StyleGAN2), every stage trainable.",
        epilog="tedigan <command> --help explains every option, with examples. Exit status: 0 done, 2 an error "
        "you can fix (one line on stderr; TEDIGAN_DEBUG=1 shows the traceback), 130 interrupted.",
    )
    parser.add_argument("-V", "--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(
        title="commands", dest="command", metavar="<command>", parser_class=CommandParser
    )
    return parser, {name: _load(name).add_parser(sub) for name in COMMANDS}


def main(argv: Sequence[str] | None = None) -> int:
    """``tedigan <command> [options]``: parse, then :func:`call` the command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["help"]:  # tedigan help [command]
        argv = [*argv[1:2], "--help"]
    if argv and not argv[0].startswith("-") and argv[0] not in COMMANDS:
        print(f"tedigan: error: unknown command {argv[0]!r} (tedigan --help lists them)", file=sys.stderr)
        return 2
    parser, parsers = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
    except SystemExit as done:  # --help, or a bad option (one line already printed)
        return done.code if isinstance(done.code, int) else 2
    if args.version:
        from tedigan import __version__

        print(f"tedigan {__version__}")
        return 0
    if args.command is None:
        parser.print_help()
        return 0
    if getattr(_load(args.command), "TAKES_EXTRA", False):
        args.extra = extra  # options the command hands on (config overrides, a wrapped launcher's)
    elif extra:
        try:
            parsers[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
        except SystemExit as done:
            return done.code
    return call(args.command, args)


def call(name: str, args: argparse.Namespace) -> int:
    """Run command ``name`` under the contract: a user error -> one line on stderr and status 2 (the
    traceback with ``TEDIGAN_DEBUG=1``), Ctrl-C -> status 130; an input out of the model's domain -> one
    warning line."""
    from tedigan.cli import error_line, user_errors

    prog = f"tedigan {name}"
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _warning_lines(prog, warnings.showwarning)
            return int(_load(name).run(args) or 0)
    except user_errors() as err:
        if os.environ.get("TEDIGAN_DEBUG"):
            raise
        _close_progress_bars()
        print(f"{prog}: error: {error_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _close_progress_bars()
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except SystemExit as done:  # a wrapped parser's --help or error (assets, assemble)
        if done.code is None or isinstance(done.code, int):
            return done.code or 0
        print(done.code, file=sys.stderr)
        return 1


def entry(*command: str) -> Callable[[Sequence[str]], int]:
    """``tedigan <command...>`` as a function of the remaining arguments, returning the exit status."""
    return lambda argv: main([*command, *argv])


def shim(*command: str) -> None:
    """The body of a ``python -m tedigan.<module>`` shim: ``tedigan <command...>`` with the same arguments."""
    raise SystemExit(entry(*command)(sys.argv[1:]))


def _warning_lines(prog: str, default_show: Callable) -> Callable:
    """``warnings.showwarning`` that prints tedigan's own warnings to the user (an input out of the model's
    domain, a render made another way than asked) as one line and leaves every other warning to
    ``default_show``."""

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001 - warnings' signature
        pipeline = sys.modules.get("tedigan.pipeline")
        if pipeline is not None and issubclass(
            category, (pipeline.OutOfDomainWarning, pipeline.RenderWarning)
        ):
            print(f"{prog}: warning: {message}", file=sys.stderr)
        else:
            default_show(message, category, filename, lineno, file, line)

    return show


def _close_progress_bars() -> None:
    """End any open tqdm bar so the error starts a line of its own (work raises from inside its loops;
    tqdm keeps its live bars in a class-level set)."""
    bars = set()
    for module in ("tqdm.std", "tqdm.auto"):  # the set lives on the first class that made a bar
        bars.update(getattr(getattr(sys.modules.get(module), "tqdm", None), "_instances", ()))
    for bar in bars:
        bar.close()
