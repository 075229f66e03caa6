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
import json
import math
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from tedigan.config import ConfigError, GeneratorStageConfig
from tedigan.data import make_dataset
from tedigan.losses.gan import (
    PathLengthRegularizer,
    d_logistic_loss,
    g_nonsaturating_loss,
    path_lengths,
    r1_loss,
    r1_penalty,
)
from tedigan.models.projected import ProjectedDiscriminator
from tedigan.models.stylegan2 import Discriminator, Generator
from tedigan.training.augment import DiffAugment
from tedigan.training.loop import (
    GeneratorState,
    Stage,
    Trainer,
    lazy_adam,
    no_sync,
    save_image_grid,
)

__all__ = [
    "GanStep",
    "GeneratorForward",
    "GeneratorStage",
    "TrainingImages",
    "build_networks",
    "ema_beta",
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

    def __init__(self, G: Generator, fused_modconv: bool | None = None) -> None:
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


def new_discriminator(cfg: GeneratorStageConfig) -> Discriminator | ProjectedDiscriminator:
    """The stage's D: the projected discriminator when ``cfg.projected`` is set, else ``cfg.discriminator``'s."""
    return ProjectedDiscriminator(cfg.projected) if cfg.projected else Discriminator(cfg.discriminator)


def build_networks(cfg: GeneratorStageConfig) -> tuple[Generator, Discriminator | ProjectedDiscriminator]:
    """G and D from the stage config (call after ``set_seed``: initial weights use the global RNG), with the
    weights of ``cfg.init_from`` when it names a finished run."""
    G, D = Generator(cfg.generator), new_discriminator(cfg)
    if cfg.init_from:
        for net, name in ((G, "generator"), (D, "discriminator")):
            folder = Path(cfg.init_from) / name
            saved = type(net).from_pretrained(folder)
            if saved.config != net.config:
                raise ConfigError(
                    f"init_from: {folder} is not this config's {name} ({saved.config} vs {net.config})"
                )
            net.load_state_dict(saved.state_dict())
    return G, D


def memory_format_for(cfg: GeneratorStageConfig, device: torch.device) -> torch.memory_format:
    """G's and D's memory order: ``cfg.channels_last``, or (None) channels-last on CPU."""
    channels_last = cfg.channels_last if cfg.channels_last is not None else device.type == "cpu"
    return torch.channels_last if channels_last else torch.contiguous_format


def init_kimg(cfg: GeneratorStageConfig) -> float:
    """The kimg that ``cfg.init_from``'s generator had been trained for (0 without one)."""
    if not cfg.init_from:
        return 0.0
    extra = json.loads((Path(cfg.init_from) / "generator" / "config.json").read_text()).get("_extra") or {}
    return float(extra.get("kimg_total", extra.get("kimg", 0.0)))


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


def _no_track(name: str, value: torch.Tensor) -> None:
    pass


class GanStep:
    """One training step of the GAN, phase by phase: what the stage runs and ``benchmarks/`` time.

    ``G_fwd``/``D`` may be wrapped by ``accelerator.prepare`` (``accelerator`` None: plain ``backward``, no
    distributed sync). Every random number comes from ``rng``; ``track(name, value)`` receives the losses.
    """

    def __init__(
        self,
        cfg: GeneratorStageConfig,
        G_fwd: nn.Module,
        D: nn.Module,
        G_opt: torch.optim.Optimizer,
        D_opt: torch.optim.Optimizer,
        G_ema: Generator,
        rng: torch.Generator,
        augment: DiffAugment | None = None,
        accelerator=None,
        track: Callable[[str, torch.Tensor], None] = _no_track,
        num_processes: int = 1,
    ) -> None:
        self.cfg, self.lc = cfg, cfg.loss
        self.G_fwd, self.D, self.G_opt, self.D_opt, self.G_ema = G_fwd, D, G_opt, D_opt, G_ema
        self.rng, self.augment, self.accelerator, self.track = rng, augment, accelerator, track
        unwrap = accelerator.unwrap_model if accelerator is not None else (lambda m: m)
        self.G: Generator = unwrap(G_fwd).G
        self.device = self.G.mapping.w_avg.device
        self.pl_reg = PathLengthRegularizer(self.lc.pl_decay).to(self.device)
        self.accum, self.batch = cfg.train.grad_accum, cfg.train.batch_size
        self.pl_batch = max(1, self.batch // self.lc.pl_batch_shrink)
        self.global_batch = self.batch * self.accum * num_processes
        self.r1_on, self.pl_on = self.lc.r1_gamma > 0, self.lc.pl_weight > 0
        self.beta = 0.0

    def _backward(self, loss: torch.Tensor) -> None:
        if self.accelerator is not None:
            self.accelerator.backward(loss)
        else:
            loss.backward()

    def _aug(self, x: torch.Tensor) -> torch.Tensor:
        return self.augment(x, self.rng) if self.augment is not None else x

    def _inputs(self, batch: int) -> dict:
        return sample_inputs(self.G, batch, self.rng, self.device, self.lc.style_mixing_prob)

    @staticmethod
    def _step(opt: torch.optim.Optimizer) -> None:
        opt.step()
        opt.zero_grad(set_to_none=True)

    def d_main(self, reals: list[torch.Tensor]) -> None:
        """D: logistic loss on (augmented) reals and fakes; one micro-batch per entry of ``reals``."""
        self.G_fwd.requires_grad_(False)
        self.D.requires_grad_(True)
        for i, real in enumerate(reals):
            inputs = self._inputs(self.batch)
            with torch.no_grad():
                fake, _ = self.G_fwd(**inputs)
            with no_sync(self.accelerator, self.D, i == len(reals) - 1):
                real_logits, fake_logits = self.D(self._aug(real)), self.D(self._aug(fake))
                loss_d = d_logistic_loss(real_logits, fake_logits)
                self._backward(loss_d / len(reals))
            self.track("loss/D", loss_d)
            self.track("D/real", real_logits.mean())
            self.track("D/fake", fake_logits.mean())
        self._step(self.D_opt)

    def d_r1(self, reals: list[torch.Tensor]) -> None:
        """D, lazy R1: gradient penalty w.r.t. the un-augmented reals, weighted by the interval."""
        self.D.requires_grad_(True)
        for i, real in enumerate(reals):
            leaf = real.detach().requires_grad_(True)
            with no_sync(self.accelerator, self.D, i == len(reals) - 1):
                penalty = r1_penalty(self.D(self._aug(leaf)), leaf)
                self._backward(r1_loss(penalty, self.lc.r1_gamma) * self.lc.r1_interval / len(reals))
            self.track("loss/r1", penalty.mean())
        self._step(self.D_opt)

    def g_main(self) -> None:
        """G: non-saturating loss through the frozen D."""
        self.G_fwd.requires_grad_(True)
        self.D.requires_grad_(False)
        for i in range(self.accum):
            with no_sync(self.accelerator, self.G_fwd, i == self.accum - 1):
                fake, _ = self.G_fwd(**self._inputs(self.batch), update_w_avg=True)
                loss_g = g_nonsaturating_loss(self.D(self._aug(fake)))
                self._backward(loss_g / self.accum)
            self.track("loss/G", loss_g)
        self._step(self.G_opt)

    def g_pl(self) -> None:
        """G, lazy path-length regularisation on a batch shrunk by ``pl_batch_shrink``."""
        self.G_fwd.requires_grad_(True)
        self.D.requires_grad_(False)
        scale = self.lc.pl_weight * self.lc.pl_interval / self.accum
        for i in range(self.accum):
            with no_sync(self.accelerator, self.G_fwd, i == self.accum - 1):
                fake, ws = self.G_fwd(**self._inputs(self.pl_batch))
                penalty = self.pl_reg(path_lengths(fake, ws, self.rng))
                self._backward(penalty * scale)
            self.track("loss/pl", penalty)
        self._step(self.G_opt)

    def ema(self, step: int) -> None:
        """``G_ema`` after ``step`` steps (StyleGAN2-ADA's half-life with ramp-up)."""
        self.beta = ema_beta(
            self.global_batch, step * self.global_batch, self.cfg.ema_kimg, self.cfg.ema_rampup
        )
        update_ema(self.G_ema, self.G, self.beta)

    def __call__(self, reals: list[torch.Tensor], step: int) -> None:
        """Step ``step`` (0-based): D main, R1 (lazy), G main, path length (lazy), EMA."""
        self.G_fwd.train()
        self.D.train()
        self.d_main(reals)
        if self.r1_on and step % self.lc.r1_interval == 0:
            self.d_r1(reals)
        self.g_main()
        if self.pl_on and step % self.lc.pl_interval == 0:
            self.g_pl()
        self.ema(step + 1)


class GeneratorStage(Stage):
    name = kind = "generator"
    per_phase_accumulation = True

    def __init__(self, cfg: GeneratorStageConfig) -> None:
        self.cfg = cfg

    def setup(self, t: Trainer) -> dict:
        cfg, tc, acc = self.cfg, self.cfg.train, t.accelerator
        self.images = _training_images(cfg)
        a = cfg.augment
        use_augment = a.enabled if a.enabled is not None else len(self.images) < a.auto_below
        augment = DiffAugment(a.policy, a.translation_ratio, a.cutout_ratio, a.p) if use_augment else None
        self.data = t.loader(self.images, tc.batch_size, num_workers=cfg.data.num_workers)
        G, D = build_networks(cfg)
        self.memory_format = memory_format_for(cfg, t.device)
        G, D = G.to(memory_format=self.memory_format), D.to(memory_format=self.memory_format)
        G_ema = copy.deepcopy(G).eval().requires_grad_(False).to(t.device)
        lc = cfg.loss
        G_opt = lazy_adam(G.parameters(), tc.lr, lc.pl_interval if lc.pl_weight > 0 else None)
        D_opt = lazy_adam(D.parameters(), cfg.d_lr or tc.lr, lc.r1_interval if lc.r1_gamma > 0 else None)
        G_fwd = GeneratorForward(G, fused_modconv=cfg.fused_modconv)
        G_fwd, D, G_opt, D_opt = acc.prepare(G_fwd, D, G_opt, D_opt)
        rng = torch.Generator().manual_seed(tc.seed * 7919 + 1)  # every training-time random number
        self.gan = GanStep(cfg, G_fwd, D, G_opt, D_opt, G_ema, rng, augment, acc, t.track, acc.num_processes)
        self.samples_per_step = self.gan.global_batch
        self.sample_z = torch.randn(
            cfg.num_samples, self.gan.G.z_dim, generator=torch.Generator().manual_seed(cfg.sample_seed)
        )
        self.nrow = max(1, int(math.sqrt(cfg.num_samples)))
        return {
            "G": G_fwd,
            "D": D,
            "G_opt": G_opt,
            "D_opt": D_opt,
            "G_ema": G_ema,
            "pl": self.gan.pl_reg,
            "rng": GeneratorState(rng),
        }

    def train_step(self, t: Trainer, step: int) -> None:
        reals = [
            next(self.data).to(t.device, memory_format=self.memory_format) for _ in range(self.gan.accum)
        ]
        self.gan(reals, step)

    def log_row(self, t: Trainer, step: int) -> dict:
        return {
            "pl_mean": float(self.gan.pl_reg.pl_mean),
            "ema_beta": self.gan.beta,
            "kimg": step * self.samples_per_step / 1000,
            "augment": float(self.gan.augment is not None),
        }

    def postfix(self, row: dict) -> dict:
        return {"D": f"{row['loss/D']:.3f}", "G": f"{row['loss/G']:.3f}", "ips": f"{row['img_per_sec']:.1f}"}

    def save_samples(self, t: Trainer, step: int) -> None:
        if not t.is_main:
            return
        samples = t.out / "samples"
        grid = _render_samples(self.gan.G_ema, self.sample_z, self.cfg.sample_truncation_psi)
        save_image_grid(grid, samples / f"step-{step}.png", nrow=self.nrow)
        if step == 0:
            n = min(len(self.images), self.cfg.num_samples)
            save_image_grid(
                torch.stack([self.images[i] for i in range(n)]), samples / "reals.png", nrow=self.nrow
            )

    def checkpoint_extra(self, step: int) -> dict:
        return {"kimg": step * self.samples_per_step / 1000}

    def components(self, t: Trainer) -> dict:
        return {"generator": self.gan.G_ema, "discriminator": t.accelerator.unwrap_model(self.gan.D)}

    def saved_extra(self, step: int, report: dict | None) -> dict:
        kimg = step * self.samples_per_step / 1000
        return {"kimg": kimg, "kimg_total": init_kimg(self.cfg) + kimg, "data_root": self.cfg.data.root}

    def finish(self, t: Trainer, step: int, report: dict | None, summary: dict) -> None:
        summary.update(
            kimg=step * self.samples_per_step / 1000,
            augment=self.gan.augment is not None,
            num_train_images=len(self.images),
            samples=str(t.out / "samples" / f"step-{step}.png"),
        )

    def describe(self, summary: dict) -> str:
        return f"{summary['step']} steps ({summary['kimg']:.1f} kimg), samples in {summary['samples']}"


def train(cfg: GeneratorStageConfig, resume: str | None = None) -> dict:
    """Train G/D; save ``G_ema`` to ``<output_dir>/generator`` and D to ``<output_dir>/discriminator``.

    ``resume``: ``"latest"`` or a ``checkpoint-N`` folder. Returns a summary (steps, kimg, img/s, the
    last logged losses and the output paths).
    """
    return Trainer(cfg, GeneratorStage(cfg), resume).run()
