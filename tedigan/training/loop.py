"""Shared training-loop pieces for every stage, on top of accelerate.

- ``make_accelerator``: ``Accelerator`` with mixed precision, gradient accumulation and trackers
  (``jsonl`` is built in: one JSON line per ``accelerator.log`` call in ``<output_dir>/metrics.jsonl``).
- ``ResumableSampler``: an endless, seeded sample order that can restart at any position, so a run resumed
  from ``checkpoint-N`` sees exactly the batches an uninterrupted run would have seen.
- ``CheckpointManager`` (from :mod:`tedigan.training.checkpoint`): safetensors + JSON checkpoints in
  ``checkpoints/checkpoint-N`` with a total limit, ``--resume_from_checkpoint latest``, never a pickle.
- ``finish_stage``: a stage's final components written atomically, ``complete.json`` last.
- ``save_image_grid``: images in [-1, 1] → one PNG grid.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.tracking import GeneralTracker, on_main_process
from accelerate.utils import ProjectConfiguration
from torch.utils.data import Sampler
from torchvision.utils import make_grid, save_image

from tedigan.config import TrainConfig
from tedigan.fs import atomic_write_text
from tedigan.training.checkpoint import (
    CheckpointManager,
    DivergenceError,
    DivergenceGuard,
    check_finite_weights,
)

__all__ = [
    "COMPLETE_NAME",
    "CheckpointManager",
    "DivergenceError",
    "DivergenceGuard",
    "GeneratorState",
    "JSONLTracker",
    "ResumableSampler",
    "ensure_data",
    "finish_stage",
    "make_accelerator",
    "no_sync",
    "save_image_grid",
    "stage_complete",
    "start_final_save",
    "warmup_cosine",
]

#: written last into a stage's output folder once every final component is in place
COMPLETE_NAME = "complete.json"


class JSONLTracker(GeneralTracker):
    """accelerate tracker that appends ``{"step": N, "time": t, **values}`` lines to a file."""

    name = "jsonl"
    requires_logging_directory = True

    @on_main_process
    def __init__(self, run_name: str, logging_dir: str | Path) -> None:
        super().__init__()
        self.run_name = run_name
        self.path = Path(logging_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)

    @property
    def tracker(self) -> Path:
        return self.path

    @on_main_process
    def store_init_configuration(self, values: dict) -> None:
        (self.path.parent / "hparams.json").write_text(json.dumps(values, indent=2, default=str))

    @on_main_process
    def log(self, values: dict, step: int | None = None, **kwargs: Any) -> None:
        row = {"step": step, "time": round(time.time(), 3)}
        row.update({k: (v.item() if torch.is_tensor(v) else v) for k, v in values.items()})
        with self.path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")


def make_accelerator(train: TrainConfig) -> Accelerator:
    out = Path(train.output_dir)
    log_with: list[Any] = []
    for name in train.log_with:
        log_with.append(JSONLTracker("run", out) if name == "jsonl" else name)
    return Accelerator(
        mixed_precision=train.mixed_precision,
        gradient_accumulation_steps=train.grad_accum,
        log_with=log_with or None,
        project_config=ProjectConfiguration(project_dir=str(out), logging_dir=str(out)),
    )


class ResumableSampler(Sampler[int]):
    """Endless seeded order over ``n`` items: epoch ``e`` is ``randperm(n, seed + e)``.

    ``start`` (a sample count) restarts the stream anywhere; ``state_dict`` lets accelerate checkpoint it.
    """

    def __init__(self, n: int, seed: int = 0, shuffle: bool = True) -> None:
        if n <= 0:
            raise ValueError("cannot sample from an empty data set")
        self.n, self.seed, self.shuffle, self.start = n, seed, shuffle, 0

    def _order(self, epoch: int) -> list[int]:
        if not self.shuffle:
            return list(range(self.n))
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.n, generator=gen).tolist()

    def __iter__(self) -> Iterator[int]:
        pos = self.start
        while True:
            epoch, offset = divmod(pos, self.n)
            yield from self._order(epoch)[offset:]
            pos = (epoch + 1) * self.n

    def __len__(self) -> int:  # endless; a large finite value keeps DataLoader length queries happy
        return 2**62

    def state_dict(self) -> dict:
        return {"start": self.start}

    def load_state_dict(self, state: dict) -> None:
        self.start = int(state["start"])


def warmup_cosine(warmup: int, total: int, floor: float) -> Callable[[int], float]:
    """LR multiplier for ``LambdaLR``: linear warm-up over ``warmup`` steps, then cosine from 1 to ``floor``."""
    warmup = max(1, warmup)

    def fn(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))

    return fn


def no_sync(accelerator: Accelerator, model: torch.nn.Module, last: bool):
    """Skip the gradient all-reduce on all but the ``last`` micro-batch of an accumulation (per network,
    unlike ``accelerator.accumulate`` whose counter is shared by every model)."""
    return contextlib.nullcontext() if last else accelerator.no_sync(model)


def save_image_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None) -> Path:
    """Save ``[N, C, H, W]`` images in [-1, 1] as one PNG grid."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = images.detach().float().cpu().clamp(-1, 1) * 0.5 + 0.5
    nrow = nrow or max(1, int(math.sqrt(images.shape[0])))
    save_image(make_grid(images, nrow=nrow, padding=1, pad_value=1.0), str(path))
    return path


class GeneratorState:
    """Checkpointable wrapper of a ``torch.Generator`` (one of the objects a stage hands to its checkpoints).

    Stages that draw every training-time random number from their own generator (latents, noise,
    augmentation) resume bit-exactly, independent of what else touches the global RNG (data loader seeds,
    accelerate's own RNG restore, tests).
    """

    def __init__(self, generator: torch.Generator) -> None:
        self.generator = generator

    def state_dict(self) -> dict:
        return {"rng_state": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["rng_state"])


def ensure_data(data: Any, accelerator: Accelerator | None = None) -> Path:
    """Make sure ``data.root`` holds a data set; render avatars first when ``data.render_if_missing`` > 0.

    Only ``kind == "avatars"`` can be rendered; other kinds are returned unchanged (their loaders report a
    missing folder themselves). With several processes only the main one renders, the rest wait.
    """
    root = Path(data.root)
    if data.kind != "avatars" or (root / "info.json").is_file():  # info.json: written last, when complete
        return root
    if data.render_if_missing <= 0:
        raise FileNotFoundError(
            f"no avatar data set in {root}: run `python -m tedigan.data.avatars --num 10000 "
            f"--resolution {data.resolution} --out {root}` or set data.render_if_missing=N"
        )
    if accelerator is None or accelerator.is_main_process:
        from tedigan.data.avatars import build_dataset

        build_dataset(root, data.render_if_missing, resolution=data.resolution, seed=data.render_seed)
    if accelerator is not None:
        accelerator.wait_for_everyone()
    return root


def stage_complete(output_dir: str | Path) -> bool:
    """Whether a stage finished writing everything into ``output_dir`` (its ``complete.json`` is there)."""
    return (Path(output_dir) / COMPLETE_NAME).is_file()


def start_final_save(
    output_dir: str | Path, stage: str, components: dict[str, Any], accelerator: Accelerator | None = None
) -> None:
    """Call before a stage writes its final components: refuses non-finite weights (nothing is written)
    and removes a stale ``complete.json``, which must not vouch for a mix of old and new files if this
    save is interrupted."""
    check_finite_weights(components, f"{stage} final save", accelerator)
    if accelerator is None or accelerator.is_main_process:
        (Path(output_dir) / COMPLETE_NAME).unlink(missing_ok=True)


def finish_stage(
    output_dir: str | Path, stage: str, summary: dict | None = None, accelerator: Accelerator | None = None
) -> Path:
    """Mark a stage done: write ``complete.json`` (stage, time, ``summary``) atomically, after every other
    output of the stage. ``train_all.sh`` skips a stage only when this file exists."""
    out = Path(output_dir)
    row = {"stage": stage, "finished": round(time.time(), 3), **(summary or {})}
    if accelerator is None or accelerator.is_main_process:
        atomic_write_text(out / COMPLETE_NAME, json.dumps(row, indent=2, default=str) + "\n")
    return out / COMPLETE_NAME
