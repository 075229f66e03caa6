"""``tedigan launch [accelerate launch options] pipelines/train_stage.py --stage ... --config ...``.

``accelerate launch`` with tedigan's exit contract. accelerate starts the script as a child process, passes
its stderr through, and reports any failure its own way: a child's exit status 2 (a bad config, a missing
input: one line already printed) becomes accelerate's ``CalledProcessError`` traceback and exit status 1
(with ``-q``: status 1 and no traceback; a multi-process run raises torchrun's ``ChildFailedError``). This
command runs accelerate's own launcher in-process and returns the child's status instead, so the child's
one-line error is all the user sees and scripts can tell a user error (2) from a crash. A multi-process run
returns the status of the first failed rank; each failed rank prints its own line, and torchrun adds its
notes on the processes it stopped. Option errors of accelerate's own are one line too.
"""

from __future__ import annotations

import argparse
import subprocess

from tedigan import cli

HELP = "accelerate launch with tedigan's exit contract (a stage's one-line error and its status survive)"

#: every option is accelerate's (or the launched script's): they arrive as ``args.extra``
TAKES_EXTRA = True


def add_parser(subparsers) -> argparse.ArgumentParser:
    return subparsers.add_parser(
        "launch",
        help=HELP,
        add_help=False,  # --help shows accelerate's options, in run()
        description=__doc__.split("\n\n", 1)[1],
    )


def run(args: argparse.Namespace) -> int:
    from accelerate.commands.launch import launch_command, launch_command_parser

    parser = launch_command_parser()
    parser.prog = "tedigan launch"
    if not args.extra or args.extra[0] in ("-h", "--help"):
        print(__doc__.split("\n\n", 1)[1].strip() + "\n\naccelerate launch's options:\n")
        parser.print_help()
        return 0

    def error(message: str):  # argparse's usage block would bury the one line
        raise cli.UsageError(f"{message} (see tedigan launch --help)")

    parser.error = error
    launch_args = parser.parse_args(args.extra)
    try:
        launch_command(launch_args)
    except subprocess.CalledProcessError as err:  # the single-process launcher
        return _status(err.returncode)
    except ValueError as err:  # accelerate's checks of its options, before any process starts
        raise cli.UsageError(f"{err} (accelerate launch's options; see tedigan launch --help)") from None
    except Exception as err:  # torchrun's ChildFailedError (multi-process): the first failed rank's status
        from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

        if not isinstance(err, ChildFailedError):
            raise
        return _status(err.failures[min(err.failures)].exitcode)
    return 0


def _status(returncode: int) -> int:
    """A child's exit status as a shell reports it (killed by signal N: 128 + N)."""
    return 128 - returncode if returncode < 0 else returncode
