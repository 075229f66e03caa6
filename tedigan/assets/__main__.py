"""``python -m tedigan.assets``: the same as ``tedigan assets`` (:mod:`tedigan.commands.assets`)."""

from tedigan.commands import shim

if __name__ == "__main__":
    shim("assets")
