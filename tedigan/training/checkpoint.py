"""Training checkpoints of safetensors + JSON only, written atomically, loaded without running any code.

accelerate's ``save_state`` pickles optimiser, scheduler, RNG and custom-object states and loads them back
with ``weights_only=False``, so a crafted ``custom_checkpoint_0.pkl`` in a checkpoint folder runs code on
``--resume_from_checkpoint``. tedigan writes its own checkpoints instead:

- every ``state_dict`` (models, optimisers, schedulers, RNG wrappers, the sampler position, the global
  python / numpy / torch RNGs) is split into its tensors, stored in one ``state.safetensors``, and a JSON
  skeleton (``objects.json``) that says where each tensor goes; tuples, integer keys and numpy arrays are
  tagged so they come back as they were;
- a checkpoint is written into ``checkpoint-N.partial`` and renamed into place; ``state.json`` (step,
  format version, the files with their sizes) is written last inside it, so a folder without a valid
  ``state.json`` is incomplete and is never loaded;
- ``--resume_from_checkpoint latest`` takes the newest *complete* checkpoint and says which incomplete
  ones it passed over; a pickle-like file in a checkpoint folder (``.pkl``, ``.bin``, ``.pt``, …) is
  refused with one line before anything is read;
- :class:`DivergenceGuard` stops a run at its first non-finite loss, and :func:`check_finite_weights`
  refuses to save non-finite weights, so a diverged run never leaves a broken model behind.
"""

from __future__ import annotations

import json
import math
import random
import re
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from tedigan.fs import atomic_write_text, replace_dir

__all__ = [
    "CheckpointError",
    "CheckpointManager",
    "DivergenceError",
    "DivergenceGuard",
    "FORMAT",
    "FORMAT_VERSION",
    "PICKLE_SUFFIXES",
    "check_finite_weights",
    "flatten_state",
    "unflatten_state",
]

FORMAT = "tedigan-checkpoint"
FORMAT_VERSION = 1
STATE_NAME = "state.json"
TENSORS_NAME = "state.safetensors"
OBJECTS_NAME = "objects.json"
#: files that may hold a pickle (torch.save, accelerate's .bin/.pkl states): never read from a checkpoint
PICKLE_SUFFIXES = (".pkl", ".pickle", ".bin", ".pt", ".pth", ".ckpt", ".npy", ".npz", ".joblib")


class CheckpointError(ValueError):
    """A checkpoint folder cannot be used (incomplete, foreign format, or holding a pickle); says what to do."""


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss or weight; nothing non-finite was saved."""


# ------------------------------------------------------------------------------------- (un)flattening


def flatten_state(obj: Any, tensors: dict[str, torch.Tensor], prefix: str) -> Any:
    """JSON-safe skeleton of a ``state_dict``-like tree; its tensors go into ``tensors`` under fresh keys.

    Tensors are cloned to the CPU (safetensors refuses shared storage). Dict keys may be str, int, float,
    bool or None (optimiser states key by int); tuples and numpy arrays are tagged so that
    :func:`unflatten_state` rebuilds them exactly. Anything else (functions, arbitrary objects) is an error:
    a checkpoint holds data, never code.
    """
    if isinstance(obj, torch.Tensor):
        key = f"{prefix}#{len(tensors)}"
        tensors[key] = obj.detach().cpu().clone().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Mapping):
        items = []
        for k, v in obj.items():
            if not isinstance(k, (str, int, float, bool, type(None))):
                raise TypeError(f"cannot checkpoint a dict key of type {type(k).__name__} at {prefix}")
            items.append([k, flatten_state(v, tensors, f"{prefix}.{k}")])
        return {"__dict__": items}
    if isinstance(obj, tuple):
        return {"__tuple__": [flatten_state(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [flatten_state(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]
    if isinstance(obj, float) and not math.isfinite(obj):
        return {"__float__": repr(obj)}
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    raise TypeError(f"cannot checkpoint a {type(obj).__name__} at {prefix}: only tensors and plain data")


def unflatten_state(node: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    """Inverse of :func:`flatten_state`."""
    if isinstance(node, list):
        return [unflatten_state(v, tensors) for v in node]
    if not isinstance(node, dict):
        return node
    if "__tensor__" in node:
        key = node["__tensor__"]
        if key not in tensors:
            raise CheckpointError(f"the checkpoint's {TENSORS_NAME} lacks tensor {key!r}")
        return tensors[key]
    if "__ndarray__" in node:
        return np.asarray(node["__ndarray__"], dtype=np.dtype(node["dtype"]))
    if "__tuple__" in node:
        return tuple(unflatten_state(v, tensors) for v in node["__tuple__"])
    if "__float__" in node:
        return float(node["__float__"])
    if "__dict__" in node:
        return {k: unflatten_state(v, tensors) for k, v in node["__dict__"]}
    raise CheckpointError(f"malformed {OBJECTS_NAME}: unknown node {sorted(node)!r:.80}")


# ---------------------------------------------------------------------------------------- global RNGs


def _global_rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_global_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np.random.set_state(tuple(state["numpy"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------------------- file helpers


def _state_dict_of(obj: Any, accelerator: Any) -> Any:
    if isinstance(obj, torch.nn.Module) and accelerator is not None:
        obj = accelerator.unwrap_model(obj)
    return obj.state_dict()


def check_finite_weights(objects: Mapping[str, Any], where: str, accelerator: Any = None) -> None:
    """Raise :class:`DivergenceError` if a model in ``objects`` holds a NaN or inf weight or buffer."""
    for name, obj in objects.items():
        if not isinstance(obj, torch.nn.Module):
            continue
        for key, value in _state_dict_of(obj, accelerator).items():
            if value.is_floating_point() and not torch.isfinite(value).all():
                raise DivergenceError(
                    f"{where}: {name}.{key} holds non-finite values (NaN/inf): training diverged, nothing "
                    "was saved; lower train.lr (or the loss weights) and resume from the last checkpoint"
                )


class DivergenceGuard:
    """Stops a run at its first non-finite loss.

    On the CPU each value is checked as it arrives (free). On an accelerator the check is folded into a
    flag on the device and read at ``flush`` (log and checkpoint steps), so no step waits for the device.
    """

    def __init__(self, stage: str, device: torch.device) -> None:
        self.stage = stage
        self.immediate = torch.device(device).type == "cpu"
        self.pending: torch.Tensor | None = None
        self.since: int | None = None

    def __call__(self, step: int, name: str, value: torch.Tensor) -> None:
        value = value.detach()
        if self.immediate:
            if not bool(torch.isfinite(value).all()):
                raise DivergenceError(
                    f"{self.stage}: {name} became {value.float().mean().item()} at step {step + 1}: training "
                    "diverged, nothing was saved after the last checkpoint; lower train.lr (or the loss "
                    "weights) and resume from the last checkpoint"
                )
            return
        bad = ~torch.isfinite(value).all()
        self.pending = bad if self.pending is None else self.pending | bad
        self.since = step if self.since is None else self.since

    def flush(self, step: int) -> None:
        if self.pending is not None and bool(self.pending):
            raise DivergenceError(
                f"{self.stage}: a loss became NaN/inf between steps {self.since + 1} and {step}: training "
                "diverged, nothing was saved after the last checkpoint; lower train.lr and resume"
            )
        self.pending, self.since = None, None


# -------------------------------------------------------------------------------------------- manager


class CheckpointManager:
    """``checkpoint-N`` folders under ``<output_dir>/checkpoints``, at most ``total_limit`` kept.

    ``objects`` maps a name to anything with ``state_dict``/``load_state_dict`` (models — unwrapped from
    their distributed wrappers —, optimisers, schedulers, RNG and sampler wrappers). The global python,
    numpy and torch RNG states are saved with them.
    """

    pattern = re.compile(r"^checkpoint-(\d+)$")

    def __init__(self, output_dir: str | Path, total_limit: int = 2) -> None:
        self.output_dir = Path(output_dir)
        self.root = self.output_dir / "checkpoints"
        self.total_limit = total_limit

    # ---- finding
    def all(self) -> list[tuple[int, Path]]:
        if not self.root.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.root.iterdir() if (m := self.pattern.match(p.name))]
        return sorted(found)

    @staticmethod
    def refuse_pickles(path: Path) -> None:
        for f in sorted(path.rglob("*")):
            if f.suffix.lower() in PICKLE_SUFFIXES:
                raise CheckpointError(
                    f"{f} may hold a pickle, which can run code when loaded: tedigan checkpoints are "
                    f"safetensors + JSON only, so {path} is refused (delete that folder to start afresh)"
                )

    @staticmethod
    def problem(path: Path) -> str | None:
        """Why ``path`` is not a complete tedigan checkpoint (None when it is)."""
        state_file = path / STATE_NAME
        if not state_file.is_file():
            return f"no {STATE_NAME}"
        try:
            state = json.loads(state_file.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return f"{STATE_NAME} is empty or damaged"
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            return f"{STATE_NAME} is not a {FORMAT} file (an accelerate or older checkpoint?)"
        if not isinstance(state.get("step"), int):
            return f"{STATE_NAME} has no step"
        if int(state.get("format_version", 0)) > FORMAT_VERSION:
            return f"written by a newer tedigan (format {state['format_version']}); upgrade tedigan"
        files = state.get("files")
        if not isinstance(files, dict) or set(files) != {TENSORS_NAME, OBJECTS_NAME}:
            return f"{STATE_NAME} does not list the checkpoint's files"
        for name, size in files.items():
            f = path / name
            if not f.is_file() or f.stat().st_size != size:
                return f"{name} is missing or truncated"
        return None

    def latest(self, report: bool = True) -> Path | None:
        """The newest complete checkpoint; incomplete newer ones are passed over (and reported)."""
        skipped = []
        for _, path in reversed(self.all()):
            self.refuse_pickles(path)
            why = self.problem(path)
            if why is None:
                if skipped and report:
                    print(f"resume: passed over incomplete {'; '.join(skipped)}; using {path.name}")
                return path
            skipped.append(f"{path.name} ({why})")
        if skipped and report:
            print(f"resume: no complete checkpoint ({'; '.join(skipped)}); starting from step 0")
        return None

    def resolve(self, resume: str | None, report: bool = True) -> Path | None:
        """``None`` → no resume; ``"latest"`` → newest complete checkpoint (or None); else an explicit path.
        Stages call it once before writing anything, so a refused checkpoint leaves the run folder as it was."""
        if not resume:
            return None
        if resume == "latest":
            return self.latest(report)
        path = Path(resume)
        if not path.is_dir():
            raise CheckpointError(f"--resume_from_checkpoint {resume}: no such checkpoint folder")
        self.refuse_pickles(path)
        why = self.problem(path)
        if why is not None:
            raise CheckpointError(
                f"--resume_from_checkpoint {resume}: not a complete tedigan checkpoint ({why}); "
                "use 'latest' to take the newest complete one"
            )
        return path

    # ---- saving
    def save(
        self, accelerator: Any, step: int, objects: Mapping[str, Any], extra: dict | None = None
    ) -> Path:
        """Write ``checkpoint-<step>`` (main process only), then prune the oldest beyond the limit."""
        path = self.root / f"checkpoint-{step}"
        check_finite_weights(objects, f"checkpoint-{step}", accelerator)
        if accelerator.is_main_process:
            tensors: dict[str, torch.Tensor] = {}
            skeleton = {
                name: flatten_state(_state_dict_of(obj, accelerator), tensors, name)
                for name, obj in objects.items()
            }
            scaler = getattr(accelerator, "scaler", None)
            if scaler is not None:
                skeleton["__scaler__"] = flatten_state(scaler.state_dict(), tensors, "__scaler__")
            skeleton["__rng__"] = flatten_state(_global_rng_state(), tensors, "__rng__")
            tmp = self.root / f"checkpoint-{step}.partial"
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir(parents=True)
            save_file(tensors, str(tmp / TENSORS_NAME), metadata={"format": FORMAT})
            (tmp / OBJECTS_NAME).write_text(json.dumps(skeleton))
            files = {n: (tmp / n).stat().st_size for n in (TENSORS_NAME, OBJECTS_NAME)}
            state = {"format": FORMAT, "format_version": FORMAT_VERSION, "step": step, "files": files}
            atomic_write_text(tmp / STATE_NAME, json.dumps({**state, **(extra or {})}, indent=2))
            replace_dir(tmp, path)
            complete = [p for _, p in self.all() if self.problem(p) is None]
            for old in complete[: max(0, len(complete) - self.total_limit)]:
                shutil.rmtree(old, ignore_errors=True)
        accelerator.wait_for_everyone()
        return path

    # ---- loading
    @staticmethod
    def read_state(path: Path) -> dict:
        return json.loads((path / STATE_NAME).read_text())

    def _read(self, path: Path, names: Iterable[str]) -> tuple[dict, dict[str, torch.Tensor]]:
        self.refuse_pickles(path)
        why = self.problem(path)
        if why is not None:
            raise CheckpointError(f"{path}: not a complete tedigan checkpoint ({why})")
        try:
            tensors = load_file(str(path / TENSORS_NAME))
            skeleton = json.loads((path / OBJECTS_NAME).read_text())
        except Exception as err:  # noqa: BLE001 - any parse failure means a damaged file
            raise CheckpointError(f"{path}: damaged checkpoint ({type(err).__name__}: {err})") from None
        missing = [n for n in names if n not in skeleton]
        if missing:
            raise CheckpointError(
                f"{path} lacks {missing} (saved by another stage or configuration): use another "
                "train.output_dir or start without --resume_from_checkpoint"
            )
        return skeleton, tensors

    def read_objects(self, path: Path, names: Iterable[str]) -> dict[str, Any]:
        """The saved states (state dicts) of ``names`` in the checkpoint at ``path``, loaded into nothing;
        the global RNGs are left alone (for exporting a checkpoint's networks)."""
        names = list(names)
        skeleton, tensors = self._read(path, names)
        return {name: unflatten_state(skeleton[name], tensors) for name in names}

    def load(self, accelerator: Any, path: Path, objects: Mapping[str, Any]) -> dict:
        """Load ``objects`` (and the global RNGs) from the checkpoint at ``path``; returns its state.json."""
        skeleton, tensors = self._read(path, objects)
        for name, obj in objects.items():
            state = unflatten_state(skeleton[name], tensors)
            target = accelerator.unwrap_model(obj) if isinstance(obj, torch.nn.Module) else obj
            try:
                target.load_state_dict(state)
            except (RuntimeError, KeyError, ValueError) as err:
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise CheckpointError(
                    f"{path}: {name} does not fit this run's configuration ({first})"
                ) from None
        scaler = getattr(accelerator, "scaler", None)
        if scaler is not None and "__scaler__" in skeleton:
            scaler.load_state_dict(unflatten_state(skeleton["__scaler__"], tensors))
        if "__rng__" in skeleton:
            _set_global_rng_state(unflatten_state(skeleton["__rng__"], tensors))
        return self.read_state(path)

    def restore(self, accelerator: Any, resume: str | None, objects: Mapping[str, Any]) -> int:
        """Load the checkpoint named by ``--resume_from_checkpoint`` (if any); returns the step to continue
        from. Rows of ``metrics.jsonl`` logged after that step by an interrupted run (all of them when the
        run starts from step 0) are dropped, so the log describes this run and no step appears twice."""
        path = self.resolve(resume)
        if path is None:
            if accelerator.is_main_process:
                trim_jsonl(self.output_dir / "metrics.jsonl", 0)
            return 0
        step = int(self.load(accelerator, path, objects)["step"])
        if accelerator.is_main_process:
            trim_jsonl(self.output_dir / "metrics.jsonl", step)
        accelerator.wait_for_everyone()
        accelerator.print(f"resumed from {path} at step {step}")
        return step


def trim_jsonl(path: Path, max_step: int) -> int:
    """Drop the rows of a JSON-lines log whose ``step`` is after ``max_step`` (and unreadable rows, such as
    a line cut by a kill); returns how many were dropped."""
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            dropped += 1
            continue
        step = row.get("step") if isinstance(row, dict) else None
        if isinstance(step, int) and step > max_step:
            dropped += 1
            continue
        kept.append(line)
    if dropped:
        atomic_write_text(path, "".join(f"{line}\n" for line in kept))
    return dropped
