"""The lookup order every asset follows, and the one-line error when it fails.

1. an explicit ``path`` argument; 2. an environment variable (``TEDIGAN_<NAME>_PATH``); 3. a copy shipped inside
an installed package (found with :func:`importlib.util.find_spec`, which does not import the package); 4. a local
download cache (``torch.hub`` checkpoints); 5. the normal online download, unless ``TEDIGAN_OFFLINE`` or
``HF_HUB_OFFLINE`` is set; 6. otherwise :class:`MissingWeightsError` naming what is missing and the install step.

An explicit path or environment variable that points nowhere is an error, never a silent fall-through. torch is
imported only by the functions that touch its hub cache or download, so importing this module stays cheap.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

__all__ = ["INSTALL_SCRIPT", "MissingWeightsError", "cache_dir", "offline"]

INSTALL_SCRIPT = "bash scripts/install.sh"


class MissingWeightsError(FileNotFoundError):
    """A pretrained asset could not be found; the message names it and the command that installs it."""

    def __init__(self, message: str, asset: str = "", hint: str = "") -> None:
        super().__init__(" ".join(message.split()))  # always one line
        self.asset = asset
        self.hint = hint


def truthy(name: str) -> bool:
    """Whether the environment variable ``name`` is set to 1/on/yes/true (any case)."""
    return os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def offline() -> bool:
    """True when downloads are disabled (``TEDIGAN_OFFLINE`` or ``HF_HUB_OFFLINE`` set)."""
    return truthy("TEDIGAN_OFFLINE") or truthy("HF_HUB_OFFLINE")


def download_allowed(download: bool | None) -> bool:
    return (not offline()) if download is None else download


def cache_dir() -> Path:
    """``$TEDIGAN_CACHE`` or ``~/.cache/tedigan``."""
    return Path(os.environ.get("TEDIGAN_CACHE") or Path.home() / ".cache" / "tedigan").expanduser()


def package_dir(package: str) -> Path | None:
    """Directory of an installed top-level package, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(spec.origin).parent if spec.origin else None


def package_file(package: str, relative: str) -> Path | None:
    root = package_dir(package)
    if root is None:
        return None
    candidate = root / relative
    return candidate if candidate.is_file() else None


def user_path(path: str | os.PathLike | None, env: str | None) -> tuple[Path | None, str]:
    """The explicit path, else the environment variable's; with a description for error messages."""
    if path is not None:
        return Path(path).expanduser(), "path argument"
    if env and os.environ.get(env):
        return Path(os.environ[env]).expanduser(), f"${env}"
    return None, ""


def hub_checkpoint_dirs() -> list[Path]:
    """Where torch/torchvision (``$TORCH_HOME/hub/checkpoints``) and facenet-pytorch cache downloads."""
    import torch.hub

    hub = Path(torch.hub.get_dir()) / "checkpoints"
    return [hub, hub.parent.parent / "checkpoints"]


def cached(filename: str) -> Path | None:
    for d in hub_checkpoint_dirs():
        if (d / filename).is_file():
            return d / filename
    return None


def download_to_cache(url: str, filename: str, what: str, hint: str, sha1: str | None = None) -> Path:
    """Download ``url`` into the torch hub checkpoint cache; failures become :class:`MissingWeightsError`."""
    import torch.hub

    dst = hub_checkpoint_dirs()[0] / filename
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".partial")
    try:
        torch.hub.download_url_to_file(url, str(tmp), progress=False)
        if sha1 is not None:
            digest = hashlib.sha1(tmp.read_bytes()).hexdigest()
            if digest != sha1:
                raise OSError(f"SHA-1 mismatch ({digest} != {sha1})")
        tmp.replace(dst)
    except Exception as e:  # network errors come in many types (URLError, HTTPError, socket.timeout, ...)
        tmp.unlink(missing_ok=True)
        raise MissingWeightsError(
            f"{what} not found offline and the download from {url} failed ({type(e).__name__}: {e}); {hint}",
            asset=what,
            hint=hint,
        ) from e
    return dst


def missing(what: str, hint: str) -> MissingWeightsError:
    return MissingWeightsError(f"{what} not found; {hint}", asset=what, hint=hint)


def bad_user_path(what: str, where: str, p: Path, expected: str = "file") -> MissingWeightsError:
    fix = f"; fix it or unset {where[1:]} to use the default lookup" if where.startswith("$") else ""
    return MissingWeightsError(
        f"{what}: {where} points to {p}, which is not an existing {expected}{fix}", asset=what, hint=str(p)
    )
