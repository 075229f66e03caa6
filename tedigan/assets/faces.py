"""Weights for real faces: facenet-pytorch's MTCNN detector, the InceptionResnetV1 identity network, and the
MobileStyleGAN face generator's OpenVINO IR in ``random-face``.

MobileStyleGAN's weights derive from NVIDIA's FFHQ StyleGAN2: research / non-commercial use only.
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
    package_dir,
    user_path,
)

__all__ = ["facenet_weights_path", "mobilestylegan_ir_dir", "mtcnn_weights_dir"]

_FACENET = "pip install --no-deps facenet-pytorch==2.6.0"
_FACENET_URL = (
    "https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/20180402-114759-vggface2.pt"
)
_RANDOM_FACE = "pip install --no-deps random-face==2021.7.21.1"
_MTCNN_FILES = ("pnet.pt", "rnet.pt", "onet.pt")


def mtcnn_weights_dir(path: str | os.PathLike | None = None) -> Path:
    """Directory with facenet-pytorch's MTCNN weights ``pnet.pt``, ``rnet.pt``, ``onet.pt``."""
    what = "MTCNN face-detector weights (facenet_pytorch/data/{pnet,rnet,onet}.pt)"
    hint = f"install them with `{_FACENET}` (or `{INSTALL_SCRIPT}`), or set TEDIGAN_MTCNN_DIR"

    def complete(d: Path) -> bool:
        return all((d / f).is_file() for f in _MTCNN_FILES)

    p, where = user_path(path, "TEDIGAN_MTCNN_DIR")
    if p is not None:
        if not (p.is_dir() and complete(p)):
            raise bad_user_path(what, where, p, "directory holding pnet.pt, rnet.pt and onet.pt")
        return p
    root = package_dir("facenet_pytorch")
    if root is not None and complete(root / "data"):
        return root / "data"
    raise missing(what, hint)


def facenet_weights_path(path: str | os.PathLike | None = None, *, download: bool | None = None) -> Path:
    """InceptionResnetV1 (VGGFace2) weights for the identity loss: ``20180402-114759-vggface2.pt``.

    No offline package carries them: pass a path or set ``TEDIGAN_FACENET_PATH``; a copy in the torch cache
    (where facenet-pytorch puts its download) is used; online users get the official download.
    """
    filename = _FACENET_URL.rsplit("/", 1)[1]
    what = f"InceptionResnetV1 face-recognition weights ({filename})"
    hint = (
        f"no offline package ships them: download {_FACENET_URL} on a connected machine and pass its path "
        "or set TEDIGAN_FACENET_PATH (the identity loss stays off without them)"
    )
    p, where = user_path(path, "TEDIGAN_FACENET_PATH")
    if p is not None:
        if not p.is_file():
            raise bad_user_path(what, where, p)
        return p
    found = cached(filename)
    if found is not None:
        return found
    if download_allowed(download):
        return download_to_cache(_FACENET_URL, filename, what, hint)
    raise missing(what, hint)


def mobilestylegan_ir_dir(path: str | os.PathLike | None = None) -> Path:
    """Folder with MobileStyleGAN's OpenVINO IR (``MappingNetwork.{xml,bin}``, ``SynthesisNetwork.{xml,bin}``):
    ``path`` → ``$TEDIGAN_MOBILESTYLEGAN_DIR`` → the installed ``random-face`` package's ``data/``."""
    what = "MobileStyleGAN IR (FFHQ face generator; research / non-commercial weights)"
    names = [f"{n}Network.{e}" for n in ("Mapping", "Synthesis") for e in ("xml", "bin")]
    p, where = user_path(path, "TEDIGAN_MOBILESTYLEGAN_DIR")
    if p is not None:
        if not all((p / n).is_file() for n in names):
            raise bad_user_path(what, where, p, "folder with " + ", ".join(names))
        return p
    root = package_dir("random_face")
    if root is not None and all((root / "data" / n).is_file() for n in names):
        return root / "data"
    raise missing(what, f"install it: {_RANDOM_FACE} (or run {INSTALL_SCRIPT})")
