"""``python -m tedigan.data.avatars``: the same as ``tedigan avatars`` (render a data set, previews or the
attribute sheet)."""

from tedigan.commands import shim

if __name__ == "__main__":
    shim("avatars")
