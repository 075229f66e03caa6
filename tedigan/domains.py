"""The domains tedigan ships pipelines for (pure data, the bottom of the house: it imports nothing of tedigan)."""

from __future__ import annotations

from pathlib import Path

_WEIGHTS = Path(__file__).resolve().parent / "weights"

#: the pipelines tedigan ships in ``tedigan/weights``, by name (their data domain)
SHIPPED_MODELS = {"avatars": _WEIGHTS / "avatars64", "faces": _WEIGHTS / "faces"}
DEFAULT_MODEL = "avatars"
