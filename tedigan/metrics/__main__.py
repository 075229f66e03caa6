"""``python -m tedigan.metrics``: the same as ``tedigan metrics`` (:mod:`tedigan.commands.metrics`)."""

from tedigan.commands import shim

if __name__ == "__main__":
    shim("metrics")
