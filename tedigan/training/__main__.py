"""``python -m tedigan.training``: the same as ``tedigan train`` (:mod:`tedigan.commands.train`)."""

from tedigan.commands import shim

if __name__ == "__main__":
    shim("train")
