"""The one training loop of every stage, on top of accelerate, and the pieces it is made of.

- ``Trainer`` + ``Stage``: the loop (accelerator, seed, data, config, trackers, resume, progress, metric
  tracking without per-step device syncs, divergence checks, held-out evaluation, sample grids, checkpoints,
  the final save with ``complete.json`` last). A stage is a small object that says what one step is, what its
  checkpoint holds and what it writes at the end; ``tedigan/training/{generator,inversion,text,classifier,domain}.py``.
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
import itertools
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.tracking import GeneralTracker, on_main_process
from accelerate.utils import ProjectConfiguration, set_seed
from torch.utils.data import DataLoader, Sampler
from torchvision.utils import make_grid, save_image
from tqdm.auto import tqdm

from tedigan.config import TrainConfig, save_config
from tedigan.fs import atomic_write_text
from tedigan.metrics import append_results
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
    "Batches",
    "ResumableSampler",
    "Stage",
    "Trainer",
    "ensure_data",
    "finish_stage",
    "lazy_adam",
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


def no_sync(accelerator: Accelerator | None, model: torch.nn.Module, last: bool):
    """Skip the gradient all-reduce on all but the ``last`` micro-batch of an accumulation (per network,
    unlike ``accelerator.accumulate`` whose counter is shared by every model)."""
    return contextlib.nullcontext() if last or accelerator is None else accelerator.no_sync(model)


def lazy_adam(
    params, lr: float, interval: int | None, betas: tuple[float, float] = (0.0, 0.99), eps: float = 1e-8
) -> torch.optim.Adam:
    """Adam for a network regularised every ``interval`` steps: lr·c and β^c with ``c = k/(k+1)``.

    The regularisation step is an extra optimiser step, so the effective momentum/lr per main step would
    otherwise grow by (k+1)/k (StyleGAN2, appendix B).
    """
    c = interval / (interval + 1) if interval else 1.0
    return torch.optim.Adam(params, lr=lr * c, betas=(betas[0] ** c, betas[1] ** c), eps=eps)


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
            f"no avatar data set in {root}: run `tedigan avatars --num 10000 "
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


# ------------------------------------------------------------------------------------------- the loop


class Batches:
    """Training batches from :meth:`Trainer.loader`: ``next(batches)`` gives the next micro-batch."""

    def __init__(self, loader: Any, sampler: ResumableSampler, per_step: int) -> None:
        self.loader, self.sampler, self.per_step = loader, sampler, per_step
        self._it: Iterator | None = None

    def start(self, step: int) -> None:
        """Position the order at ``step`` and start the loader now: it draws its seed from the global RNG at
        its first batch, which must not happen inside a training step."""
        self.sampler.start = step * self.per_step
        it = iter(self.loader)
        self._it = itertools.chain([next(it)], it)

    def __iter__(self) -> Batches:
        return self

    def __next__(self) -> Any:
        return next(self._it)


class Stage:
    """What one training stage is to the :class:`Trainer`; subclasses override what they need.

    Called in this order: ``setup`` (build data, models, optimisers; may replace ``trainer.cfg`` by the
    resolved config that is saved as ``config.yaml``; returns the checkpointed objects), ``check_resume``
    (the ``state.json`` of the checkpoint about to be loaded), ``start`` (after the restore and the positioning
    of every :meth:`Trainer.loader`),
    then per step ``train_step`` and, on their steps, ``log_row`` / ``evaluate`` / ``save_samples`` /
    ``checkpoint_extra``. At the end the trainer saves ``components`` (checked finite first) into
    ``<output_dir>/<name>`` with ``saved_extra`` in their config.json, writes ``report`` (the held-out
    evaluation, on every process; None: none) to ``eval.json`` and ``metrics.jsonl``, calls ``finish`` (extras
    such as grids, summary keys; write only on the main process), prints ``describe(summary)`` and writes
    ``complete.json`` (the summary) last.
    """

    name = "stage"  #: progress bar and divergence messages
    kind = "stage"  #: the stage's name in config.yaml, the trackers and complete.json
    #: True: the stage accumulates gradients per phase itself (``no_sync``); accelerate runs with 1
    per_phase_accumulation = False
    rate_key = "img_per_sec"  #: name of the throughput figure in the log and the summary
    #: samples one step consumes on all processes; 0: ``batch_size × grad_accum × processes``
    samples_per_step = 0

    def setup(self, t: Trainer) -> dict[str, Any]:
        raise NotImplementedError

    def check_resume(self, t: Trainer, saved: dict) -> None:
        pass

    def start(self, t: Trainer, step: int) -> None:
        pass

    def train_step(self, t: Trainer, step: int) -> None:
        raise NotImplementedError

    def log_row(self, t: Trainer, step: int) -> dict[str, Any]:
        return {}

    def postfix(self, row: dict[str, Any]) -> dict[str, str]:
        return {}

    def evaluate(self, t: Trainer, step: int) -> dict[str, float]:
        return {}

    def save_samples(self, t: Trainer, step: int) -> None:
        pass

    def checkpoint_extra(self, step: int) -> dict[str, Any]:
        return {}

    def components(self, t: Trainer) -> dict[str, torch.nn.Module]:
        raise NotImplementedError

    def report(self, t: Trainer, step: int) -> dict[str, Any] | None:
        return None

    def saved_extra(self, step: int, report: dict[str, Any] | None) -> dict[str, Any]:
        return {}

    def finish(self, t: Trainer, step: int, report: dict[str, Any] | None, summary: dict[str, Any]) -> None:
        pass

    def describe(self, summary: dict[str, Any]) -> str:
        return f"{summary['step']} steps"


class Trainer:
    """Runs a :class:`Stage` for ``cfg.train.max_steps`` steps (resuming from ``resume``: ``"latest"`` or a
    ``checkpoint-N`` folder) and returns its summary.

    Losses reach the log through :meth:`track`: summed on the device and read back only on log steps, every
    value checked by a :class:`DivergenceGuard`. Every ``log_every`` steps one row (means since the last row,
    ``stage.log_row``, throughput) is logged; every ``eval_every`` steps ``stage.evaluate`` adds its held-out
    numbers; every ``sample_every`` steps ``stage.save_samples``; every ``checkpoint_every`` steps a checkpoint
    of the stage's objects. The last step does all four.
    """

    def __init__(self, cfg: Any, stage: Stage, resume: str | None = None) -> None:
        tc = cfg.train
        self.cfg, self.stage, self.resume = cfg, stage, resume
        self.out = Path(tc.output_dir)
        self.ckpt = CheckpointManager(self.out, tc.checkpoints_total_limit)
        # a checkpoint that cannot be resumed is refused before anything is written
        self.ckpt.resolve(resume, report=False)
        self.accelerator = make_accelerator(replace(tc, grad_accum=1) if stage.per_phase_accumulation else tc)
        self.device = self.accelerator.device
        self.is_main = self.accelerator.is_main_process
        self.guard = DivergenceGuard(stage.name, self.device)
        self.step = 0
        self._sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, int] = {}
        self._batches: list[Batches] = []

    def track(self, name: str, value: torch.Tensor | float) -> None:
        """Add one value of a logged quantity (its mean since the last log row is logged)."""
        value = torch.as_tensor(value).detach().float()
        self.guard(self.step, name, value)
        self._sums[name] = self._sums[name] + value if name in self._sums else value
        self._counts[name] = self._counts.get(name, 0) + 1

    def aside(self):
        """Run what is not a training step (data iterators, evaluation, samples) without moving the global
        torch RNG: only training steps draw from it (dropout), so a resumed run draws what an uninterrupted
        one draws."""
        devices = [self.device] if self.device.type == "cuda" else []
        return torch.random.fork_rng(devices=devices)

    def loader(self, dataset: Any, batch_size: int, **kwargs: Any) -> Batches:
        """Endless training batches of ``dataset`` (``batch_size`` per micro-batch) in a seeded order that the
        trainer positions on resume; ``kwargs`` go to the ``DataLoader`` (``num_workers``, ``collate_fn``)."""
        sampler = ResumableSampler(len(dataset), seed=self.cfg.train.seed)
        loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=True, **kwargs)
        per_step = batch_size * self.cfg.train.grad_accum * self.accelerator.num_processes
        batches = Batches(self.accelerator.prepare(loader), sampler, per_step)
        self._batches.append(batches)
        return batches

    def _past(self, deadline: float | None) -> bool:
        """Whether the run is past its time limit: the same answer on every process (any one's clock)."""
        if deadline is None:
            return False
        late = torch.tensor([float(time.perf_counter() > deadline)], device=self.device)
        return self.accelerator.reduce(late, reduction="sum").item() > 0

    def _means(self) -> dict[str, float]:
        row = {k: (self._sums[k] / self._counts[k]).item() for k in self._sums}
        self._sums.clear()
        self._counts.clear()
        return row

    def run(self) -> dict[str, Any]:
        st, acc, tc = self.stage, self.accelerator, self.cfg.train
        set_seed(tc.seed)
        if hasattr(self.cfg, "data"):
            ensure_data(self.cfg.data, acc)
        objects = st.setup(self)
        if self.is_main:
            save_config(self.cfg, self.out / "config.yaml", stage=st.kind)
        acc.init_trackers(st.kind)
        path = self.ckpt.resolve(self.resume)
        if path is not None:
            st.check_resume(self, self.ckpt.read_state(path))
        step = self.ckpt.restore(acc, str(path) if path else None, objects)
        per_step = st.samples_per_step or tc.batch_size * tc.grad_accum * acc.num_processes
        with self.aside():
            for batches in self._batches:
                batches.start(step)
            st.start(self, step)
            if step == 0:
                st.save_samples(self, 0)

        bar = tqdm(total=tc.max_steps, initial=step, desc=st.name, disable=not self.is_main)
        t_start = window_t = time.perf_counter()
        deadline = None if tc.max_minutes is None else t_start + 60 * tc.max_minutes
        start_step, window_steps, last_row, last = step, 0, {}, False
        while not last and step < tc.max_steps:
            self.step = step
            st.train_step(self, step)
            step += 1
            self.step = step
            window_steps += 1
            bar.update(1)
            last = step == tc.max_steps or (step % tc.log_every == 0 and self._past(deadline))
            log_now, eval_now = last or step % tc.log_every == 0, last or step % tc.eval_every == 0
            ckpt_now = last or step % tc.checkpoint_every == 0
            if log_now or ckpt_now:
                self.guard.flush(step)
            if log_now:
                row = self._means()
                row.update(st.log_row(self, step))
                elapsed = max(time.perf_counter() - window_t, 1e-9)
                row[st.rate_key] = window_steps * per_step / elapsed
                if eval_now:
                    with self.aside():
                        row.update(st.evaluate(self, step))
                acc.log(row, step=step)
                last_row = row
                bar.set_postfix(st.postfix(row))
                window_t, window_steps = time.perf_counter(), 0
            elif eval_now:
                with self.aside():
                    acc.log(st.evaluate(self, step), step=step)
            if last or step % tc.sample_every == 0:
                with self.aside():
                    st.save_samples(self, step)
            if ckpt_now:
                self.ckpt.save(acc, step, objects, extra=st.checkpoint_extra(step))
        bar.close()

        wall = time.perf_counter() - t_start
        trained = step - start_step
        summary: dict[str, Any] = {
            "step": step,
            "time_limited": step < tc.max_steps,
            st.rate_key: trained * per_step / wall if trained else None,
            "last": last_row,
        }
        components = st.components(self)
        start_final_save(self.out, st.kind, components, acc)
        dirs = {name: str(self.out / name) for name in components}
        summary.update(dirs)

        def save(report: dict | None) -> None:
            extra = {"stage": st.kind, "step": step, **st.saved_extra(step, report)}
            for name, module in components.items():
                module.save_pretrained(self.out / name, extra=extra)

        if self.is_main:
            save(None)  # before the evaluation, which may fail (a missing judge) and is cheap to run again
        report = st.report(self, step)
        report = None if report is None else {"step": step, **report}
        if self.is_main:
            if report is not None and st.saved_extra(step, report) != st.saved_extra(step, None):
                save(report)
            if report is not None:
                row = append_results(self.out / "metrics.jsonl", {"stage": st.kind, **report})
                (self.out / "eval.json").write_text(json.dumps(row, indent=2) + "\n")
        if report is not None:
            summary["eval"] = report
        st.finish(self, step, report, summary)
        if self.is_main:
            acc.print(f"{st.name}: {st.describe(summary)} -> {', '.join(dirs.values())}")
        finish_stage(self.out, st.kind, {k: v for k, v in summary.items() if k not in ("last", "eval")}, acc)
        acc.wait_for_everyone()
        acc.end_training()
        return summary
