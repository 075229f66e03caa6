"""Stage ``generator``: train the style-based GAN backbone (StyleGAN2 by default, StyleGAN1-AdaIN or SWAGAN).

Karras et al., "Analyzing and Improving the Image Quality of StyleGAN" (2020) — non-saturating logistic
loss, lazy R1 on reals (every ``r1_interval`` D steps), lazy path-length regularisation (every
``pl_interval`` G steps, batch shrunk by ``pl_batch_shrink``), style-mixing regularisation, an EMA copy of
G with StyleGAN2-ADA's half-life/ramp-up rule; Adam with β = (0, 0.99) whose lr and betas are adjusted for
the lazy regularisation (``c = k / (k + 1)``: lr·c, β^c). Small data sets get differentiable augmentation
(:mod:`tedigan.training.augment`).

One training *step* runs four phases on one global batch of reals (``batch_size × grad_accum ×
processes``): D main, D R1 (every ``r1_interval`` steps, same reals), G main, G path length (every
``pl_interval`` steps), then the EMA update. Gradient accumulation is done per phase (``no_sync`` on all
but the last micro-batch) instead of through ``accelerator.accumulate``, whose counter is shared by
every model: with G and D alternating it would sync at the wrong micro-batches.

Exact resumption: every training-time random number (latents, mixing cut-offs, noise inputs, path-length
projections, augmentation) is drawn from one CPU ``torch.Generator`` whose state is checkpointed with the
models, optimisers, ``G_ema`` and ``pl_mean``; the data order is a :class:`ResumableSampler` position
derived from the step. On CPU with a fixed seed a run resumed from ``checkpoint-N`` therefore ends with
weights identical to an uninterrupted run.

Outputs in ``<output_dir>``: ``generator/`` (``G_ema``, safetensors + config.json), ``discriminator/``,
``config.yaml``, ``metrics.jsonl`` (losses, R1, path length, img/s), ``samples/step-N.png`` (fixed latents
and noise, truncation ``sample_truncation_psi``), ``samples/reals.png``, ``checkpoints/checkpoint-N``.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import replace
from pathlib import Path

import torch
from accelerate.utils import set_seed
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from tedigan.config import GeneratorStageConfig, save_config
from tedigan.data import make_dataset
from tedigan.losses.gan import (
    PathLengthRegularizer,
    d_logistic_loss,
    g_nonsaturating_loss,
    path_lengths,
    r1_loss,
    r1_penalty,
)
from tedigan.models.stylegan2 import Discriminator, Generator
from tedigan.training.augment import DiffAugment
from tedigan.training.loop import (
    CheckpointManager,
    DivergenceGuard,
    GeneratorState,
    ResumableSampler,
    ensure_data,
    finish_stage,
    make_accelerator,
    no_sync,
    save_image_grid,
    start_final_save,
)

__all__ = [
    "GeneratorForward",
    "TrainingImages",
    "build_networks",
    "ema_beta",
    "lazy_adam",
    "sample_inputs",
    "train",
    "update_ema",
]

CACHE_BUDGET_BYTES = 4 << 30


class TrainingImages(Dataset):
    """The ``image`` of each sample of any tedigan data set, optionally cached in RAM after first use."""

    def __init__(self, dataset: Dataset, cache: bool = False) -> None:
        self.dataset = dataset
        self.cache: dict[int, torch.Tensor] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> torch.Tensor:
        if self.cache is not None and index in self.cache:
            return self.cache[index]
        image = self.dataset[index]["image"]
        if self.cache is not None:
            self.cache[index] = image
        return image


class GeneratorForward(nn.Module):
    """mapping -> style mixing -> synthesis as *one* forward call of one module.

    Distributed wrappers (DDP through ``accelerator.prepare``) only see calls to ``forward``, so the
    generator is prepared inside this wrapper rather than calling ``G.mapping``/``G.synthesis`` directly.
    Returns the image and the (mixed) ws it was synthesised from, which path length differentiates by.
    """

    def __init__(self, G: Generator, fused_modconv: bool = True) -> None:
        super().__init__()
        self.G = G
        self.fused_modconv = fused_modconv

    def forward(
        self,
        z: torch.Tensor,
        z2: torch.Tensor | None = None,
        crossover: torch.Tensor | None = None,
        noise: list[torch.Tensor] | None = None,
        update_w_avg: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        ws = self.G.mapping(z, update_w_avg=update_w_avg)
        if z2 is not None:
            ws = self.G.mix(ws, self.G.mapping(z2, update_w_avg=False), crossover)
        img = self.G.synthesis(ws, noise_mode="random", noise=noise, fused_modconv=self.fused_modconv)
        return img, ws


def build_networks(cfg: GeneratorStageConfig) -> tuple[Generator, Discriminator]:
    """G and D from the stage config (call after ``set_seed``: initial weights use the global RNG)."""
    return Generator(cfg.generator), Discriminator(cfg.discriminator)


def lazy_adam(
    params, lr: float, interval: int | None, betas: tuple[float, float] = (0.0, 0.99), eps: float = 1e-8
) -> torch.optim.Adam:
    """Adam for a network regularised every ``interval`` steps: lr·c and β^c with ``c = k/(k+1)``.

    The regularisation step is an extra optimiser step, so the effective momentum/lr per main step would
    otherwise grow by (k+1)/k (StyleGAN2, appendix B).
    """
    c = interval / (interval + 1) if interval else 1.0
    return torch.optim.Adam(params, lr=lr * c, betas=(betas[0] ** c, betas[1] ** c), eps=eps)


def ema_beta(batch: int, cur_nimg: int, ema_kimg: float, rampup: float | None) -> float:
    """Per-step EMA decay for a half-life of ``ema_kimg`` thousand images, ramped up over early training."""
    ema_nimg = ema_kimg * 1000
    if rampup is not None:
        ema_nimg = min(ema_nimg, cur_nimg * rampup)
    return 0.5 ** (batch / max(ema_nimg, 1e-8))


@torch.no_grad()
def update_ema(G_ema: nn.Module, G: nn.Module, beta: float) -> None:
    """``p_ema <- lerp(p, p_ema, beta)`` for parameters; buffers (w_avg, const noise) are copied."""
    for p_ema, p in zip(G_ema.parameters(), G.parameters()):
        p_ema.copy_(p.detach().lerp(p_ema, beta))
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b)


def sample_inputs(
    G: Generator,
    batch: int,
    generator: torch.Generator,
    device: torch.device,
    mixing_prob: float,
) -> dict:
    """Latents, per-sample mixing cut-offs and noise maps for one generator call, all from ``generator``.

    A sample is mixed with probability ``mixing_prob``: layers before a uniform cut-off in
    ``[1, num_ws - 1]`` take w(z), the rest w(z2); unmixed samples get cut-off ``num_ws`` (all from z).
    """
    z = torch.randn(batch, G.z_dim, generator=generator)
    z2 = torch.randn(batch, G.z_dim, generator=generator)
    mixed = torch.rand(batch, generator=generator) < mixing_prob
    cut = torch.randint(1, max(2, G.num_ws), (batch,), generator=generator)
    cut = torch.where(mixed, cut, torch.full_like(cut, G.num_ws))
    noise = [torch.randn(batch, *shape[1:], generator=generator).to(device) for shape in G.noise_shapes]
    inputs = {"z": z.to(device), "noise": noise}
    if mixing_prob > 0:
        inputs.update(z2=z2.to(device), crossover=cut.to(device))
    return inputs


def _set_requires_grad(model: nn.Module, flag: bool) -> None:
    for p in model.parameters():
        p.requires_grad_(flag)


@torch.no_grad()
def _render_samples(G_ema: Generator, z: torch.Tensor, psi: float, chunk: int = 64) -> torch.Tensor:
    G_ema.eval()
    out = [
        G_ema(z[i : i + chunk].to(G_ema.mapping.w_avg.device), truncation_psi=psi, noise_mode="const").cpu()
        for i in range(0, len(z), chunk)
    ]
    return torch.cat(out)


def _training_images(cfg: GeneratorStageConfig) -> TrainingImages:
    data = cfg.data
    dataset = make_dataset(data.kind, data.root, split=data.train_split, resolution=data.resolution)
    nbytes = len(dataset) * cfg.generator.img_channels * data.resolution**2 * 4
    cache = cfg.cache_images and data.num_workers == 0 and nbytes <= CACHE_BUDGET_BYTES
    return TrainingImages(dataset, cache=cache)


def train(cfg: GeneratorStageConfig, resume: str | None = None) -> dict:
    """Train G/D; save ``G_ema`` to ``<output_dir>/generator`` and D to ``<output_dir>/discriminator``.

    ``resume``: ``"latest"`` or a ``checkpoint-N`` folder. Returns a summary (steps, kimg, img/s, the
    last logged losses and the output paths).
    """
    tc, lc = cfg.train, cfg.loss
    out = Path(tc.output_dir)
    # a checkpoint that cannot be resumed is refused before anything is written
    CheckpointManager(out, tc.checkpoints_total_limit).resolve(resume, report=False)
    # gradient accumulation is per phase (see the module docstring): accelerate itself runs with 1
    accelerator = make_accelerator(replace(tc, grad_accum=1))
    device = accelerator.device
    set_seed(tc.seed)
    ensure_data(cfg.data, accelerator)
    if accelerator.is_main_process:
        save_config(cfg, out / "config.yaml", stage="generator")
    accelerator.init_trackers("generator")

    images = _training_images(cfg)
    use_augment = (
        cfg.augment.enabled if cfg.augment.enabled is not None else len(images) < cfg.augment.auto_below
    )
    augment = (
        DiffAugment(
            cfg.augment.policy, cfg.augment.translation_ratio, cfg.augment.cutout_ratio, cfg.augment.p
        )
        if use_augment
        else None
    )
    sampler = ResumableSampler(len(images), seed=tc.seed)
    loader = DataLoader(
        images, batch_size=tc.batch_size, sampler=sampler, num_workers=cfg.data.num_workers, drop_last=True
    )

    G, D = build_networks(cfg)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False).to(device)
    r1_on, pl_on = lc.r1_gamma > 0, lc.pl_weight > 0
    G_opt = lazy_adam(G.parameters(), tc.lr, lc.pl_interval if pl_on else None)
    D_opt = lazy_adam(D.parameters(), cfg.d_lr or tc.lr, lc.r1_interval if r1_on else None)
    G_fwd = GeneratorForward(G, fused_modconv=cfg.fused_modconv)
    G_fwd, D, G_opt, D_opt, loader = accelerator.prepare(G_fwd, D, G_opt, D_opt, loader)
    pl_reg = PathLengthRegularizer(lc.pl_decay).to(device)
    rng = torch.Generator().manual_seed(tc.seed * 7919 + 1)  # every training-time random number
    state = {
        "G": G_fwd,
        "D": D,
        "G_opt": G_opt,
        "D_opt": D_opt,
        "G_ema": G_ema,
        "pl": pl_reg,
        "rng": GeneratorState(rng),
    }

    ckpt = CheckpointManager(out, tc.checkpoints_total_limit)
    step = ckpt.restore(accelerator, resume, state)
    guard = DivergenceGuard("generator", device)
    accum, batch = tc.grad_accum, tc.batch_size
    global_batch = batch * accum * accelerator.num_processes
    sampler.start = step * global_batch
    G_raw: Generator = accelerator.unwrap_model(G_fwd).G

    sample_z = torch.randn(
        cfg.num_samples, G_raw.z_dim, generator=torch.Generator().manual_seed(cfg.sample_seed)
    )
    samples_dir = out / "samples"
    nrow = max(1, int(math.sqrt(cfg.num_samples)))

    def save_samples(at: int) -> None:
        if accelerator.is_main_process:
            grid = _render_samples(G_ema, sample_z, cfg.sample_truncation_psi)
            save_image_grid(grid, samples_dir / f"step-{at}.png", nrow=nrow)

    data = iter(loader)
    if step == 0:
        save_samples(0)
        if accelerator.is_main_process:
            save_image_grid(
                torch.stack([images[i] for i in range(min(len(images), cfg.num_samples))]),
                samples_dir / "reals.png",
                nrow=nrow,
            )

    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}

    def track(name: str, value: torch.Tensor) -> None:
        # summed on the device; read back only when logging (no per-step GPU sync)
        value = value.detach().float()
        guard(step, name, value)
        sums[name] = sums[name] + value if name in sums else value
        counts[name] = counts.get(name, 0) + 1

    bar = tqdm(total=tc.max_steps, initial=step, desc="generator", disable=not accelerator.is_main_process)
    window_t, window_steps, t_start, start_step = time.perf_counter(), 0, time.perf_counter(), step
    last_logged: dict[str, float] = {}
    mixing = lc.style_mixing_prob
    pl_batch = max(1, batch // lc.pl_batch_shrink)

    while step < tc.max_steps:
        G_fwd.train()
        D.train()
        # ---- D main: logistic loss on (augmented) reals and fakes
        _set_requires_grad(G_fwd, False)
        _set_requires_grad(D, True)
        reals = [next(data).to(device) for _ in range(accum)]
        for i, real in enumerate(reals):
            inputs = sample_inputs(G_raw, batch, rng, device, mixing)
            with torch.no_grad():
                fake, _ = G_fwd(**inputs)
            with no_sync(accelerator, D, i == accum - 1):
                real_in = augment(real, rng) if augment else real
                fake_in = augment(fake, rng) if augment else fake
                real_logits, fake_logits = D(real_in), D(fake_in)
                loss_d = d_logistic_loss(real_logits, fake_logits)
                accelerator.backward(loss_d / accum)
            track("loss/D", loss_d)
            track("D/real", real_logits.mean())
            track("D/fake", fake_logits.mean())
        D_opt.step()
        D_opt.zero_grad(set_to_none=True)

        # ---- D R1 (lazy): gradient penalty w.r.t. the un-augmented reals, weighted by the interval
        if r1_on and step % lc.r1_interval == 0:
            for i, real in enumerate(reals):
                real_leaf = real.detach().requires_grad_(True)
                with no_sync(accelerator, D, i == accum - 1):
                    logits = D(augment(real_leaf, rng) if augment else real_leaf)
                    penalty = r1_penalty(logits, real_leaf)
                    accelerator.backward(r1_loss(penalty, lc.r1_gamma) * lc.r1_interval / accum)
                track("loss/r1", penalty.mean())
            D_opt.step()
            D_opt.zero_grad(set_to_none=True)

        # ---- G main: non-saturating loss through the (frozen) D
        _set_requires_grad(G_fwd, True)
        _set_requires_grad(D, False)
        for i in range(accum):
            inputs = sample_inputs(G_raw, batch, rng, device, mixing)
            with no_sync(accelerator, G_fwd, i == accum - 1):
                fake, _ = G_fwd(**inputs, update_w_avg=True)
                fake_logits = D(augment(fake, rng) if augment else fake)
                loss_g = g_nonsaturating_loss(fake_logits)
                accelerator.backward(loss_g / accum)
            track("loss/G", loss_g)
        G_opt.step()
        G_opt.zero_grad(set_to_none=True)

        # ---- G path length (lazy)
        if pl_on and step % lc.pl_interval == 0:
            for i in range(accum):
                inputs = sample_inputs(G_raw, pl_batch, rng, device, mixing)
                with no_sync(accelerator, G_fwd, i == accum - 1):
                    fake, ws = G_fwd(**inputs)
                    lengths = path_lengths(fake, ws, rng)
                    penalty = pl_reg(lengths)
                    accelerator.backward(penalty * (lc.pl_weight * lc.pl_interval / accum))
                track("loss/pl", penalty)
            G_opt.step()
            G_opt.zero_grad(set_to_none=True)

        # ---- EMA generator
        step += 1
        beta = ema_beta(global_batch, step * global_batch, cfg.ema_kimg, cfg.ema_rampup)
        update_ema(G_ema, G_raw, beta)
        window_steps += 1
        bar.update(1)

        if step % tc.log_every == 0 or step == tc.max_steps or step % tc.checkpoint_every == 0:
            guard.flush(step)
        if step % tc.log_every == 0 or step == tc.max_steps:
            elapsed = time.perf_counter() - window_t
            row = {k: (sums[k] / counts[k]).item() for k in sums}
            row.update(
                pl_mean=float(pl_reg.pl_mean),
                ema_beta=beta,
                kimg=step * global_batch / 1000,
                img_per_sec=window_steps * global_batch / max(elapsed, 1e-9),
                augment=float(augment is not None),
            )
            accelerator.log(row, step=step)
            last_logged = row
            bar.set_postfix(
                D=f"{row['loss/D']:.3f}", G=f"{row['loss/G']:.3f}", ips=f"{row['img_per_sec']:.1f}"
            )
            sums.clear()
            counts.clear()
            window_t, window_steps = time.perf_counter(), 0
        if step % tc.sample_every == 0 or step == tc.max_steps:
            save_samples(step)
        if step % tc.checkpoint_every == 0 or step == tc.max_steps:
            ckpt.save(accelerator, step, state, extra={"kimg": step * global_batch / 1000})
    bar.close()

    wall = time.perf_counter() - t_start
    trained = step - start_step
    summary = {
        "step": step,
        "kimg": step * global_batch / 1000,
        "img_per_sec": trained * global_batch / wall if trained else None,
        "augment": augment is not None,
        "num_train_images": len(images),
        "last": last_logged,
        "generator": str(out / "generator"),
        "discriminator": str(out / "discriminator"),
        "samples": str(samples_dir / f"step-{step}.png"),
    }
    D_raw = accelerator.unwrap_model(D)
    start_final_save(out, "generator", {"generator": G_ema, "discriminator": D_raw}, accelerator)
    if accelerator.is_main_process:
        extra = {"stage": "generator", "step": step, "kimg": summary["kimg"], "data_root": cfg.data.root}
        G_ema.save_pretrained(out / "generator", extra=extra)
        D_raw.save_pretrained(out / "discriminator", extra=extra)
        finish_stage(
            out, "generator", {k: summary[k] for k in ("step", "kimg", "generator", "discriminator")}
        )
        accelerator.print(
            f"generator: {step} steps ({summary['kimg']:.1f} kimg) -> {out / 'generator'}, "
            f"samples in {samples_dir}"
        )
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return summary
