"""``python -m tedigan.generate``: the same as ``tedigan generate`` (:mod:`tedigan.commands.generate`)."""

from tedigan.commands import shim

if __name__ == "__main__":
    shim("generate")
