"""Typed stage configs: YAML files in ``configs/`` + ``--key=value`` overrides + a resolved dump per run.

Every stage config is a dataclass tree (``data``, ``model``, ``train``). ``load_config`` reads a YAML file,
applies dotted overrides such as ``--train.lr=2e-3`` or ``--data.root=/data/ffhq`` with type checking, and
returns the typed object; ``save_config`` writes the resolved YAML next to a run's outputs so every result
can be reproduced from its folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from tedigan.models.classifier import ClassifierConfig
from tedigan.typed import ConfigError, from_dict, to_dict

__all__ = [
    "ClassifierStageConfig",
    "ConfigError",
    "DataConfig",
    "STAGE_CONFIGS",
    "TrainConfig",
    "apply_overrides",
    "dump_config",
    "load_config",
    "parse_overrides",
    "save_config",
]


@dataclass
class DataConfig:
    """Where training images come from (see ``tedigan.data.make_dataset``)."""

    kind: Literal["avatars", "folder", "hf", "mmceleba"] = "avatars"
    root: str = "data/avatars64"
    resolution: int = 64
    train_split: str = "train"
    val_split: str = "val"
    num_workers: int = 0
    # avatars only: render this many faces into ``root`` first when it holds no data set yet (0 = never).
    render_if_missing: int = 0
    render_seed: int = 0


@dataclass
class TrainConfig:
    """The shared training-loop knobs (accelerate, checkpoints, logging)."""

    output_dir: str = "outputs/run"
    seed: int = 0
    max_steps: int = 1000
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_accum: int = 1
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    log_every: int = 50
    eval_every: int = 500
    sample_every: int = 500
    checkpoint_every: int = 500
    checkpoints_total_limit: int = 2
    log_with: list[str] = field(default_factory=lambda: ["jsonl"])

    def __post_init__(self) -> None:
        for name in ("max_steps", "batch_size", "grad_accum", "log_every", "eval_every", "checkpoint_every"):
            if getattr(self, name) <= 0:
                raise ValueError(f"train.{name} must be > 0, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"train.lr must be > 0, got {self.lr}")


@dataclass
class ClassifierStageConfig:
    """Stage ``classifier``: the attribute judge used by every later metric."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ClassifierConfig = field(default_factory=ClassifierConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(output_dir="outputs/classifier"))
    # random translation (pixels at the data resolution) and horizontal-flip-free jitter for robustness
    augment_shift: int = 4


STAGE_CONFIGS: dict[str, type] = {
    "classifier": ClassifierStageConfig,
}


def _parse_value(text: str) -> Any:
    """YAML scalar parsing for overrides (``true``, ``3``, ``[1, 2]``); anything else stays a string."""
    try:
        return yaml.safe_load(text) if text != "" else ""
    except yaml.YAMLError:
        return text


def parse_overrides(args: list[str]) -> dict[str, Any]:
    """``["--train.lr=0.01", "--data.root", "x", "model.width=8"]`` → ``{"train.lr": 0.01, ...}``."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        key = arg[2:] if arg.startswith("--") else arg
        if "=" in key:
            key, text = key.split("=", 1)
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            i += 1
            text = args[i]
        else:
            raise ConfigError(f"override '{arg}' needs a value: use --{key}=VALUE")
        if not key:
            raise ConfigError(f"override '{arg}' has no key")
        out[key.replace("-", "_")] = _parse_value(text)
        i += 1
    return out


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Set dotted keys inside a nested dict (creating levels); types are checked later by ``from_dict``."""
    for dotted, value in overrides.items():
        node = data
        parts = dotted.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override '{dotted}': '{part}' is a value, not a section")
            node = child
        node[parts[-1]] = value
    return data


def load_config(cls: type, path: str | Path | None = None, overrides: list[str] | dict | None = None):
    """Load ``cls`` from a YAML file (optional) and overrides; unknown keys and wrong types raise ConfigError."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({err})") from err
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: top level must be a mapping")
        data.pop("stage", None)
    if overrides:
        if isinstance(overrides, list):
            overrides = parse_overrides(overrides)
        apply_overrides(data, overrides)
    return from_dict(cls, data)


def dump_config(cfg: Any) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def save_config(cfg: Any, path: str | Path, stage: str | None = None) -> Path:
    """Write the resolved config as YAML (loadable again with ``load_config``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    head = f"stage: {stage}\n" if stage else ""
    path.write_text(head + dump_config(cfg))
    return path
