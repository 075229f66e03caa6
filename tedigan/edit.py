"""``python -m tedigan.edit``: the same as ``tedigan edit`` (:mod:`tedigan.commands.edit`)."""

from tedigan.commands import shim

if __name__ == "__main__":
    shim("edit")
