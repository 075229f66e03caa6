"""The ``tedigan`` command (``python -m tedigan``): ``tedigan <command> --help``; the commands are
:mod:`tedigan.commands`, one file each."""

from tedigan.commands import COMMANDS, main

__all__ = ["COMMANDS", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
