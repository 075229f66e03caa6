"""Save/load for every trained component: ``model.safetensors`` + ``config.json`` (never pickles).

A component is an ``nn.Module`` built from one typed dataclass config. ``config.json`` stores that config
and the class name, which is enough to rebuild the module and load its weights with no code in the file.
A folder is written next to its final place and renamed into it, so an interrupted save never leaves a
half-written component; a damaged one (bad JSON, unknown keys, truncated or mismatched weights, NaN/inf
values) is refused with one :class:`ComponentLoadError` line that names the folder.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from tedigan.fs import replace_dir, temp_dir_for
from tedigan.typed import ConfigError, from_dict, to_dict

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
#: version of the component folder format, written into every config.json as ``_format_version``.
#: 0 = folders written before versioning (the loader reads them as 1). Bump it when a change needs a
#: conversion, and teach :meth:`PretrainedModule.load_config` the step from the previous version.
FORMAT_VERSION = 1

M = TypeVar("M", bound="PretrainedModule")


class ComponentLoadError(ValueError):
    """A component folder cannot be loaded; the message names the folder, the problem and what to do."""


class PretrainedModule(nn.Module):
    """Base for components that round-trip through a folder.

    Subclasses set ``config_class`` and take the config as the first ``__init__`` argument.
    """

    config_class: ClassVar[type]

    def __init__(self, config: Any) -> None:
        super().__init__()
        if not isinstance(config, self.config_class):
            raise TypeError(
                f"{type(self).__name__} expects a {self.config_class.__name__}, got {type(config)}"
            )
        self.config = config

    def save_pretrained(
        self, path: str | Path, dtype: torch.dtype | None = None, extra: dict | None = None
    ) -> Path:
        """Write ``model.safetensors`` (parameters and persistent buffers) and ``config.json``."""
        path = Path(path)
        tmp = temp_dir_for(path)
        state = {}
        for k, v in self.state_dict().items():
            v = v.detach().cpu()
            if dtype is not None and v.is_floating_point():
                v = v.to(dtype)
            state[k] = v.contiguous()
        save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": "pt", "class": type(self).__name__})
        saved_dtype = next((v.dtype for v in state.values() if v.is_floating_point()), torch.float32)
        meta = {
            "_class_name": type(self).__name__,
            "_format_version": FORMAT_VERSION,
            "_dtype": str(saved_dtype).replace("torch.", ""),
            **to_dict(self.config),
        }
        if extra:
            meta["_extra"] = extra
        (tmp / CONFIG_NAME).write_text(json.dumps(meta, indent=2) + "\n")
        # replace the old folder only once the new one is whole (files beside ours are kept)
        if path.is_dir():
            for f in path.iterdir():
                if f.name not in (WEIGHTS_NAME, CONFIG_NAME) and not (tmp / f.name).exists():
                    os.replace(f, tmp / f.name)
        return replace_dir(tmp, path)

    @classmethod
    def load_config(cls, path: str | Path) -> Any:
        path = Path(path)
        cfg_file = path / CONFIG_NAME
        if not cfg_file.is_file():
            raise FileNotFoundError(
                f"no {CONFIG_NAME} in {path}: expected a folder written by {cls.__name__}.save_pretrained()"
            )
        try:
            meta = json.loads(cfg_file.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ComponentLoadError(
                f"{cfg_file} is not valid JSON ({err}): re-save or re-train it"
            ) from None
        if not isinstance(meta, dict):
            raise ComponentLoadError(f"{cfg_file} must hold a JSON object: re-save or re-train it")
        name = meta.pop("_class_name", cls.__name__)
        version = meta.pop("_format_version", 0)
        for key in [k for k in meta if k.startswith("_")]:  # _extra, _dtype and future bookkeeping
            meta.pop(key)
        if name != cls.__name__:
            raise ComponentLoadError(f"{path} holds a {name}, not a {cls.__name__}")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ComponentLoadError(
                f"{cfg_file} has format version {version!r}; this tedigan reads up to {FORMAT_VERSION}: "
                "upgrade tedigan to load it"
            )
        unknown: list[str] = []
        try:
            config = from_dict(cls.config_class, meta, on_unknown=unknown.append)
        except ConfigError as err:
            raise ComponentLoadError(f"{cfg_file}: {err}") from None
        if unknown:  # e.g. a field a newer tedigan added: keep loading, but say what was dropped
            warnings.warn(f"{cfg_file}: ignoring unknown config keys {unknown}", stacklevel=3)
        return config

    @classmethod
    def from_pretrained(
        cls: type[M],
        path: str | Path,
        map_location: str | torch.device = "cpu",
        torch_dtype: torch.dtype | str | None = None,
    ) -> M:
        """Rebuild the module from ``config.json`` and load ``model.safetensors`` (strict).

        ``torch_dtype``: ``None`` loads float32 (whatever was saved), ``"auto"`` keeps the saved dtype
        (e.g. float16), a ``torch.dtype`` casts to it."""
        path = Path(path)
        config = cls.load_config(path)
        state = cls.read_weights(path)
        try:
            model = cls(config)
        except (ValueError, TypeError, RuntimeError) as err:
            raise ComponentLoadError(
                f"{path / CONFIG_NAME} does not describe a valid {cls.__name__} ({err})"
            ) from None
        ref = model.state_dict()
        try:
            model.load_state_dict({k: v.to(ref[k].dtype) if k in ref else v for k, v in state.items()})
        except RuntimeError as err:
            raise cls.mismatch(path, err) from None
        return cls.place(model, state, map_location, torch_dtype)

    @staticmethod
    def read_weights(path: Path) -> dict[str, torch.Tensor]:
        """``model.safetensors`` of a component folder, refused in one line when damaged or non-finite."""
        weights = path / WEIGHTS_NAME
        if not weights.is_file():
            raise FileNotFoundError(f"no {WEIGHTS_NAME} in {path}")
        try:
            state = load_file(str(weights), device="cpu")
        except Exception as err:  # noqa: BLE001 - safetensors raises its own error types for damaged files
            raise ComponentLoadError(
                f"{weights} is damaged or truncated ({type(err).__name__}: {err}): re-save or re-train it"
            ) from None
        for key, value in state.items():
            if value.is_floating_point() and not torch.isfinite(value).all():
                raise ComponentLoadError(
                    f"{weights}: {key} holds NaN/inf values (a diverged run?): retrain or use another model"
                )
        return state

    @staticmethod
    def mismatch(path: Path, err: Exception) -> ComponentLoadError:
        first = " ".join(str(err).split())[:300]
        return ComponentLoadError(
            f"the weights in {path / WEIGHTS_NAME} do not fit its {CONFIG_NAME} ({first}): the two files "
            "come from different models"
        )

    @staticmethod
    def place(
        model: M,
        state: dict[str, torch.Tensor],
        device: str | torch.device,
        torch_dtype: torch.dtype | str | None,
    ) -> M:
        """Move a loaded model to ``device`` in the dtype ``from_pretrained`` was asked for."""
        if torch_dtype == "auto":
            torch_dtype = next((v.dtype for v in state.values() if v.is_floating_point()), torch.float32)
        if torch_dtype is not None and not isinstance(torch_dtype, torch.dtype):
            raise ValueError(f"torch_dtype must be None, 'auto' or a torch.dtype, got {torch_dtype!r}")
        return model.to(device, torch_dtype) if torch_dtype is not None else model.to(device)


@contextmanager
def eval_mode(*modules: Any) -> Iterator[None]:
    """Put ``torch.nn.Module`` arguments in eval mode for the block and restore their flags afterwards
    (other arguments, e.g. ``None`` or plain callables, are ignored)."""
    mods = [m for m in modules if isinstance(m, nn.Module)]
    flags = [m.training for m in mods]
    try:
        for m in mods:
            m.eval()
        yield
    finally:
        for m, flag in zip(mods, flags):
            m.train(flag)
