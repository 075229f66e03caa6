"""Save/load for every trained component: ``model.safetensors`` + ``config.json`` (never pickles).

A component is an ``nn.Module`` built from one typed dataclass config. ``config.json`` stores that config
and the class name, which is enough to rebuild the module and load its weights with no code in the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from tedigan.typed import from_dict, to_dict

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"

M = TypeVar("M", bound="PretrainedModule")


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
        path.mkdir(parents=True, exist_ok=True)
        state = {}
        for k, v in self.state_dict().items():
            v = v.detach().cpu()
            if dtype is not None and v.is_floating_point():
                v = v.to(dtype)
            state[k] = v.contiguous()
        save_file(state, str(path / WEIGHTS_NAME), metadata={"format": "pt", "class": type(self).__name__})
        meta = {"_class_name": type(self).__name__, **to_dict(self.config)}
        if extra:
            meta["_extra"] = extra
        (path / CONFIG_NAME).write_text(json.dumps(meta, indent=2) + "\n")
        return path

    @classmethod
    def load_config(cls, path: str | Path) -> Any:
        path = Path(path)
        cfg_file = path / CONFIG_NAME
        if not cfg_file.is_file():
            raise FileNotFoundError(
                f"no {CONFIG_NAME} in {path}: expected a folder written by {cls.__name__}.save_pretrained()"
            )
        meta = json.loads(cfg_file.read_text())
        name = meta.pop("_class_name", cls.__name__)
        meta.pop("_extra", None)
        if name != cls.__name__:
            raise ValueError(f"{path} holds a {name}, not a {cls.__name__}")
        return from_dict(cls.config_class, meta)

    @classmethod
    def from_pretrained(cls: type[M], path: str | Path, map_location: str | torch.device = "cpu") -> M:
        """Rebuild the module from ``config.json`` and load ``model.safetensors`` (strict)."""
        path = Path(path)
        model = cls(cls.load_config(path))
        weights = path / WEIGHTS_NAME
        if not weights.is_file():
            raise FileNotFoundError(f"no {WEIGHTS_NAME} in {path}")
        state = load_file(str(weights), device=str(map_location))
        ref = model.state_dict()
        state = {k: v.to(ref[k].dtype) if k in ref else v for k, v in state.items()}
        model.load_state_dict(state, strict=True)
        return model.to(map_location)


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
