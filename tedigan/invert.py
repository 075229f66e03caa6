"""``python -m tedigan.invert``: the same as ``tedigan invert`` (:mod:`tedigan.commands.invert`)."""

from tedigan.commands import shim

if __name__ == "__main__":
    shim("invert")
