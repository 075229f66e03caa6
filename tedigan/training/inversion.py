"""Stage ``inversion``: train an image (or sketch / label-map) → W+ encoder for a frozen generator.

TediGAN's inversion module (Xia et al., CVPR 2021) trained *in-domain* (Zhu et al., "In-Domain GAN Inversion
for Real Image Editing", ECCV 2020): the codes must not only reconstruct the image but also be codes the
generator "knows", so edits in W behave. Losses (weights in ``loss``; 0 switches a term off):

- ``pixel``: MSE between ``G(E(x))`` and the target image;
- ``lpips``: LPIPS with the real VGG16 trunk (:class:`tedigan.losses.perceptual.LPIPS`, never random);
- ``latent``: ``‖E(G(w)) − w‖²`` (mean over elements) on generated pairs, ``w`` from the mapping network with
  style mixing (probability ``loss.style_mixing_prob``), so the encoder also learns W+ codes of mixed
  styles. A share ``generated_ratio`` of every batch is such generated images (the rest are real images);
- ``adversarial``: non-saturating loss of a discriminator on ``G(E(x))`` (initialised from the generator
  stage's ``discriminator/`` when present), which is trained against the real images with lazy R1;
- ``identity``: the distance of face-recognition embeddings (:mod:`tedigan.losses.identity`: dlib's
  descriptor from face-api by default, offline; ``identity_net: facenet`` takes InceptionResnetV1 with
  ``identity_weights``); off by default (cartoon avatars have no identity to keep).

Sketch and label encoders (``modality``) read the sample's ``sketch`` / ``label`` and reconstruct the paired
RGB image. They train on real pairs only: the generator makes images, not sketches or label maps, so there
are no generated (sketch, w) pairs and the latent loss and ``generated_ratio`` do not apply (both are
logged as off). Rendering sketches of generated faces would give such pairs; not done here.

The generator runs with its stored constant noise (``noise_mode="const"``): a code alone determines the
image, which the latent loss and every later editing stage assume.

``image_route`` (a ``proxy_head`` folder) moves the image terms onto the fast route: the generator's own blocks up
to the head's, then the distilled head (:mod:`tedigan.models.proxy_head`), against the target average-pooled to the
head's size — on a CPU several times cheaper than the full synthesis, which the evaluation still renders.

Outputs in ``<output_dir>``: ``encoder/`` (``sketch_encoder/``, ``label_encoder/``; safetensors +
config.json), ``config.yaml``, ``metrics.jsonl`` (losses; the final evaluation row is appended there too),
``eval.json`` (held-out MSE, LPIPS, identity, attribute preservation; :mod:`tedigan.metrics.reconstruction`),
``samples/step-N.png`` (fixed validation inputs | target | reconstruction), ``checkpoints/checkpoint-N``.
"""

from __future__ import annotations

import colorsys
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from tedigan import metrics
from tedigan.config import ConfigError, InversionStageConfig
from tedigan.data import make_dataset
from tedigan.domains import FACE_JUDGES
from tedigan.losses.gan import d_logistic_loss, g_nonsaturating_loss, r1_loss, r1_penalty
from tedigan.losses.perceptual import LPIPS
from tedigan.models.encoder import Encoder
from tedigan.models.named import load_generator, load_judge
from tedigan.models.projected import ProjectedDiscriminator, load_discriminator
from tedigan.models.proxy_head import ProxyHead, route_image
from tedigan.models.stylegan2 import Discriminator, DiscriminatorConfig, Generator
from tedigan.training.loop import (
    GeneratorState,
    Stage,
    Trainer,
    lazy_adam,
    no_sync,
    save_image_grid,
    warmup_cosine,
)

__all__ = ["ENCODER_DIRS", "InversionLoss", "InversionStage", "sample_codes", "train"]

ENCODER_DIRS = {"image": "encoder", "sketch": "sketch_encoder", "label": "label_encoder"}
CACHE_BUDGET_BYTES = 4 << 30
RECON_METRICS = ("recon_mse", "recon_lpips", "recon_identity")


# ------------------------------------------------------------------------------------------------ data


class PairedSamples(Dataset):
    """``{"input": x, "image": target}`` from any tedigan data set for one modality (optionally cached).

    ``input`` is the image itself, the sketch ``[1, H, W]`` or the integer label map ``[H, W]`` (one-hot
    encoding happens in the encoder, so the cache stays small).
    """

    def __init__(self, dataset: Dataset, modality: str, cache: bool = False) -> None:
        self.dataset, self.modality = dataset, modality
        self.key = {"image": "image", "sketch": "sketch", "label": "label"}[modality]
        self.cache: dict[int, dict] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if self.cache is not None and index in self.cache:
            item = self.cache[index]
        else:
            sample = self.dataset[index]
            if self.key not in sample:
                raise ConfigError(
                    f"modality={self.modality} needs samples with a {self.key!r} (the avatar or Multi-Modal-"
                    f"CelebA-HQ data sets have them); this data set gives {sorted(sample)}"
                )
            item = {"image": sample["image"]}
            if "w" in sample:  # the true code of a generated image (the faces data set stores them)
                item["w"] = sample["w"]
            if self.modality == "label":
                item["input"] = sample["label"].to(torch.uint8 if sample["label"].max() < 256 else torch.long)
            elif self.modality == "sketch":
                item["input"] = sample["sketch"]
            if self.cache is not None:
                self.cache[index] = item
        out = dict(item)
        if self.modality == "image":
            out["input"] = out["image"]
        elif self.modality == "label":
            out["input"] = out["input"].long()
        return out


def _dataset(cfg: InversionStageConfig, split: str, resolution: int) -> Dataset:
    kwargs: dict[str, Any] = {}
    if cfg.data.kind == "mmceleba":
        kwargs = {"with_sketches": cfg.modality == "sketch", "with_masks": cfg.modality == "label"}
    elif cfg.modality != "image" and cfg.data.kind != "avatars":
        raise ConfigError(
            f"modality={cfg.modality} needs paired {cfg.modality}es/images: use data.kind=avatars or mmceleba"
        )
    return make_dataset(cfg.data.kind, cfg.data.root, split=split, resolution=resolution, **kwargs)


def _label_classes(cfg: InversionStageConfig, dataset: Dataset) -> int:
    if cfg.label_classes:
        return cfg.label_classes
    n = getattr(dataset, "num_classes", None)
    if n:
        return int(n)
    if cfg.data.kind == "avatars":
        from tedigan.data.avatars import PART_CLASSES

        return len(PART_CLASSES)
    raise ConfigError("modality=label: set label_classes (the number of segmentation classes)")


# ---------------------------------------------------------------------------------------------- models


def _discriminator(
    cfg: InversionStageConfig, G: Generator
) -> tuple[Discriminator | ProjectedDiscriminator, str]:
    path = cfg.discriminator_path
    if path is None and cfg.loss.adversarial > 0:
        sibling = Path(cfg.generator_path).parent / "discriminator"
        if not (sibling / "model.safetensors").is_file():
            # never a silent fresh D: an adversarial loss from an untrained D is a different experiment
            raise ConfigError(
                f"no trained discriminator next to the generator ({sibling} is missing; was the generator "
                "stage interrupted?): pass --discriminator_path=DIR, or --discriminator_path='' to train "
                "against a fresh one, or --loss.adversarial=0"
            )
        path = str(sibling)
    if path:
        D = load_discriminator(path)
        if D.config.resolution != G.resolution:
            raise ConfigError(
                f"discriminator {path} is {D.config.resolution} px, the generator {G.resolution} px"
            )
        return D, str(path)
    g = G.config
    arch = "swagan" if g.arch == "swagan" else "stylegan2"
    dcfg = DiscriminatorConfig(
        resolution=g.resolution,
        img_channels=g.img_channels,
        arch=arch,
        channel_base=g.channel_base,
        channel_max=g.channel_max,
        channel_multiplier=g.channel_multiplier,
    )
    return Discriminator(dcfg), "fresh"


def sample_codes(G: Generator, n: int, generator: torch.Generator, mixing_prob: float) -> torch.Tensor:
    """``n`` W+ codes from the mapping network (truncation 1); a share ``mixing_prob`` style-mixed at a random
    layer. Drawn from ``generator`` (CPU), returned on G's device."""
    device = G.mapping.w_avg.device
    z = torch.randn(2 * n, G.z_dim, generator=generator).to(device)
    mixed = torch.rand(n, generator=generator) < mixing_prob
    cut = torch.randint(1, max(2, G.num_ws), (n,), generator=generator)
    cut = torch.where(mixed, cut, torch.full_like(cut, G.num_ws)).to(device)
    with torch.no_grad():
        ws = G.mapping(z, update_w_avg=False)
    return G.mix(ws[:n], ws[n:], cut)


class InversionLoss(nn.Module):
    """Weighted encoder loss on one batch; returns ``(total, {name: value}, reconstructions)``.

    ``x``: encoder inputs ``[B, ...]``; ``target``: RGB images ``[B, 3, R, R]``; ``w_true``: codes of the last
    ``len(w_true)`` samples (generated pairs, or the whole batch when the data set stores codes) or None. ``D``
    is used for the adversarial term only. With only the latent term on, G is never run (reconstructions
    None): the encoder then trains on stored pairs at the cost of the encoder alone. ``route``: a
    :class:`~tedigan.models.proxy_head.ProxyHead`; the image terms then compare its fast route's image with the
    target pooled to its size (the reconstructions returned are the route's).
    """

    def __init__(
        self,
        G: Generator,
        lpips: LPIPS | None,
        weights: Any,
        identity: nn.Module | None = None,
        fused_modconv: bool | None = None,
        route: nn.Module | None = None,
    ):
        super().__init__()
        self.G, self.lpips, self.identity, self.w = G, lpips, identity, weights
        self.fused_modconv, self.route = fused_modconv, route
        if weights.lpips > 0 and lpips is None:
            raise ValueError("loss.lpips > 0 needs the LPIPS network")
        if weights.identity > 0 and identity is None:
            raise ValueError("loss.identity > 0 needs the identity network")

    def forward(
        self,
        E: nn.Module,
        x: torch.Tensor,
        target: torch.Tensor,
        w_true: torch.Tensor | None = None,
        D: nn.Module | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        w = self.w
        ws = E(x)
        parts: dict[str, torch.Tensor] = {}
        total = ws.new_zeros(())
        needs_image = w.pixel > 0 or w.lpips > 0 or w.identity > 0 or (w.adversarial > 0 and D is not None)
        rec = None
        if needs_image and self.route is not None:
            rec = route_image(self.G.synthesis, self.route, ws)
            target = F.adaptive_avg_pool2d(target, rec.shape[-1])
        elif needs_image:
            rec = self.G.synthesis(ws, noise_mode="const", fused_modconv=self.fused_modconv)
        if w.pixel > 0:
            parts["pixel"] = F.mse_loss(rec, target)
            total = total + w.pixel * parts["pixel"]
        if w.lpips > 0:
            parts["lpips"] = self.lpips(rec, target).mean()
            total = total + w.lpips * parts["lpips"]
        if w.latent > 0 and w_true is not None and len(w_true):
            parts["latent"] = F.mse_loss(ws[-len(w_true) :], w_true)
            total = total + w.latent * parts["latent"]
        if w.adversarial > 0 and D is not None:
            parts["adversarial"] = g_nonsaturating_loss(D(rec))
            total = total + w.adversarial * parts["adversarial"]
        if w.identity > 0:
            parts["identity"] = self.identity.distance(rec, target).mean()
            total = total + w.identity * parts["identity"]
        return total, parts, rec


# ---------------------------------------------------------------------------------------------- grids


def colorize_labels(label: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Integer maps ``[B, H, W]`` → RGB ``[B, 3, H, W]`` in [-1, 1] (class 0 dark grey, others spaced hues)."""
    colors = [(0.15, 0.15, 0.15)]
    colors += [colorsys.hsv_to_rgb((k * 0.618034) % 1.0, 0.75, 0.95) for k in range(1, num_classes)]
    palette = torch.tensor(colors, dtype=torch.float32, device=label.device) * 2 - 1
    return palette[label.long()].permute(0, 3, 1, 2)


def _visible(x: torch.Tensor, modality: str, num_classes: int) -> torch.Tensor:
    if modality == "label":
        return colorize_labels(x, num_classes)
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


# ------------------------------------------------------------------------------------------------ train


def _init_from(E: Encoder, path: str) -> None:
    """Copy a trained encoder's weights into ``E`` (fine-tuning); a mismatched architecture is a ConfigError."""
    if not (Path(path) / "config.json").is_file():
        raise ConfigError(f"init_encoder={path} holds no config.json: point it at a trained encoder/ folder")
    trained = Encoder.from_pretrained(path)
    mine, theirs = E.config, trained.config
    if mine != theirs:
        diff = {
            k: (getattr(theirs, k), getattr(mine, k))
            for k in vars(mine)
            if getattr(mine, k) != getattr(theirs, k)
        }
        raise ConfigError(f"init_encoder={path} does not fit this run (field: (theirs, this run's)): {diff}")
    E.load_state_dict({k: v.float() for k, v in trained.state_dict().items()})


class InversionStage(Stage):
    kind = "inversion"
    per_phase_accumulation = True  # the encoder and D alternate, as in the GAN stage

    def __init__(self, cfg: InversionStageConfig) -> None:
        self.cfg = cfg
        self.name = f"inversion-{cfg.modality}"

    def setup(self, t: Trainer) -> dict:
        cfg, acc, device = self.cfg, t.accelerator, t.device
        tc, lc, modality = cfg.train, cfg.loss, cfg.modality
        G = self.G = load_generator(cfg.generator_path, device, cfg.data.resolution)
        res = G.resolution
        if cfg.data.resolution != res:
            acc.print(f"data.resolution {cfg.data.resolution} -> {res} (the generator's resolution)")
            cfg = replace(cfg, data=replace(cfg.data, resolution=res))
        in_res = cfg.input_resolution or res
        if in_res > res or (in_res != res and modality == "label"):
            raise ConfigError(
                f"input_resolution {in_res} must be at most the generator's {res} (images only)"
            )
        # with the latent loss alone no target image is compared: the training images load at the input size
        latent_only = not (lc.pixel or lc.lpips or lc.identity or lc.adversarial)
        train_res = in_res if latent_only else res
        train_base = _dataset(cfg, cfg.data.train_split, train_res)
        self.val_ds = _dataset(cfg, cfg.data.val_split, res)
        self.num_classes = _label_classes(cfg, train_base) if modality == "label" else 0
        in_ch = {"image": G.img_channels, "sketch": 1, "label": self.num_classes}[modality]
        enc_cfg = replace(
            cfg.encoder,
            resolution=in_res,
            num_ws=G.num_ws,
            w_dim=G.w_dim,
            modality=modality,
            in_channels=in_ch,
        )
        self.cfg = t.cfg = cfg = replace(cfg, encoder=enc_cfg)

        # generated pairs exist for images only (see the module docstring)
        gen_ratio = cfg.generated_ratio if modality == "image" else 0.0
        self.n_gen = n_gen = round(tc.batch_size * gen_ratio)
        self.n_real = n_real = tc.batch_size - n_gen
        notes = self.notes = []
        if modality != "image":
            notes.append(f"latent loss and generated images off: no generated ({modality}, w) pairs")
        self.stored_codes = modality == "image" and "w" in train_base[0]
        if self.stored_codes:
            notes.append("latent loss on the codes the data set stores for its images")
        self.use_latent = lc.latent > 0 and (n_gen > 0 or self.stored_codes)
        self.use_adv = lc.adversarial > 0 and n_real > 0
        if lc.adversarial > 0 and not self.use_adv:
            notes.append("adversarial loss off: no real images in a batch (generated_ratio = 1)")
        notes.append(
            "identity loss " + (f"on (weight {lc.identity})" if lc.identity > 0 else "off (weight 0)")
        )

        nbytes = len(train_base) * (3 + 1) * train_res * train_res * 4
        cache = cfg.cache_images and cfg.data.num_workers == 0 and nbytes <= CACHE_BUDGET_BYTES
        train_ds = PairedSamples(train_base, modality, cache=cache)
        if len(train_ds) == 0 or len(self.val_ds) == 0:
            raise ConfigError(
                f"empty split in {cfg.data.root}: train {len(train_ds)}, val {len(self.val_ds)} images"
            )
        E = Encoder(enc_cfg)
        if cfg.init_encoder:
            _init_from(E, cfg.init_encoder)
            notes.append(f"encoder initialised from {cfg.init_encoder}")
        E.set_w_avg(G.mapping.w_avg)  # offsets from this generator's average code, also for a loaded encoder
        D, d_source = _discriminator(cfg, G) if self.use_adv else (None, "none (adversarial loss off)")
        self.lpips = LPIPS("vgg").to(device)  # always built: the final evaluation measures LPIPS too
        self.identity = None
        if lc.identity > 0:
            from tedigan.losses.identity import FaceIdentity

            self.identity = FaceIdentity(cfg.identity_weights, kind=cfg.identity_net).to(device)
        route = None
        if cfg.image_route:
            if self.use_adv:
                raise ConfigError("image_route renders the route's small image: set loss.adversarial to 0")
            route = ProxyHead.from_pretrained(cfg.image_route, map_location=device).requires_grad_(False)
            notes.append(
                f"image losses through the fast route {cfg.image_route} ({route.config.resolution} px)"
            )
        self.loss_fn = InversionLoss(
            G, self.lpips if lc.lpips > 0 else None, lc, self.identity, cfg.fused_modconv, route
        )
        acc.print(
            f"inversion ({modality}): encoder {sum(p.numel() for p in E.parameters()) / 1e6:.2f} M params, "
            f"D {d_source}; batch {n_real} real + {n_gen} generated; " + "; ".join(notes)
        )
        E_opt = torch.optim.Adam(E.parameters(), lr=tc.lr, betas=(0.9, 0.99), weight_decay=tc.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            E_opt, warmup_cosine(cfg.lr_warmup_steps, tc.max_steps, cfg.lr_min_ratio)
        )
        self.data = t.loader(train_ds, n_real, num_workers=cfg.data.num_workers) if n_real > 0 else None
        self.E, self.E_opt, self.scheduler = acc.prepare(E, E_opt, scheduler)
        self.D = self.D_opt = None
        if D is not None:
            D_opt = lazy_adam(D.parameters(), cfg.d_lr or tc.lr, lc.r1_interval if lc.r1_gamma > 0 else None)
            self.D, self.D_opt = acc.prepare(D, D_opt)
        self.E_raw: Encoder = acc.unwrap_model(self.E)
        self.rng = torch.Generator().manual_seed(tc.seed * 7919 + 3)  # generated codes: checkpointed

        # fixed validation samples for grids and the quick held-out numbers in the log
        items = [PairedSamples(self.val_ds, modality)[i] for i in range(min(cfg.num_grid, len(self.val_ds)))]
        self.grid_x = torch.stack([it["input"] for it in items])
        self.grid_y = torch.stack([it["image"] for it in items])
        self.grid_w = sample_codes(
            G, cfg.num_grid, torch.Generator().manual_seed(tc.seed + 99), lc.style_mixing_prob
        )
        state = {
            "E": self.E,
            "E_opt": self.E_opt,
            "scheduler": self.scheduler,
            "rng": GeneratorState(self.rng),
        }
        if self.D is not None:
            state.update(D=self.D, D_opt=self.D_opt)
        return state

    def check_resume(self, t: Trainer, saved: dict) -> None:
        modality = self.cfg.modality
        if saved.get("modality", modality) != modality:  # before loading: the weights would not fit
            raise ConfigError(
                f"{t.ckpt.resolve(t.resume, report=False)} is a {saved['modality']} encoder run, not {modality}: "
                "use another train.output_dir per modality"
            )

    def start(self, t: Trainer, step: int) -> None:
        self.E.train()
        if self.D is not None:
            self.D.train()

    def train_step(self, t: Trainer, step: int) -> None:
        cfg, lc, acc, device = self.cfg, self.cfg.loss, t.accelerator, t.device
        accum, E, D, G = cfg.train.grad_accum, self.E, self.D, self.G
        # ---- encoder: reconstruction (+ latent, adversarial, identity) losses through the frozen G
        if D is not None:
            D.requires_grad_(False)
        reals, fakes = [], []
        for i in range(accum):
            xs, ys, codes = [], [], []
            if self.data is not None:
                batch = next(self.data)
                xs.append(batch["input"].to(device))
                ys.append(batch["image"].to(device))
                reals.append(ys[-1])
                if self.stored_codes:
                    codes.append(batch["w"].to(device))
            if self.n_gen > 0:
                w_gen = sample_codes(G, self.n_gen, self.rng, lc.style_mixing_prob)
                with torch.no_grad():
                    gen = G.synthesis(w_gen, noise_mode="const", fused_modconv=cfg.fused_modconv)
                xs.append(gen)
                ys.append(gen)
                codes = [*codes, w_gen] if self.stored_codes else [w_gen]
            x, y = torch.cat(xs), torch.cat(ys)
            w_true = torch.cat(codes) if codes else None
            with no_sync(acc, E, i == accum - 1), acc.autocast():
                total, parts, rec = self.loss_fn(
                    E, x, y, w_true if self.use_latent else None, D if self.use_adv else None
                )
                acc.backward(total / accum)
            if rec is not None:
                fakes.append(rec[: self.n_real].detach())
            t.track("loss/total", total)
            for k, v in parts.items():
                t.track(f"loss/{k}", v)
        self.E_opt.step()
        self.scheduler.step()
        self.E_opt.zero_grad(set_to_none=True)

        # ---- discriminator: real images vs reconstructions of real images, lazy R1
        if not self.use_adv:
            return
        D.requires_grad_(True)
        for i, (real, fake) in enumerate(zip(reals, fakes)):
            with no_sync(acc, D, i == accum - 1), acc.autocast():
                loss_d = d_logistic_loss(D(real), D(fake))
                acc.backward(loss_d / accum)
            t.track("loss/D", loss_d)
        self.D_opt.step()
        self.D_opt.zero_grad(set_to_none=True)
        if lc.r1_gamma > 0 and step % lc.r1_interval == 0:
            for i, real in enumerate(reals):
                leaf = real.detach().requires_grad_(True)
                with no_sync(acc, D, i == accum - 1):
                    penalty = r1_penalty(D(leaf), leaf)
                    acc.backward(r1_loss(penalty, lc.r1_gamma) * lc.r1_interval / accum)
                t.track("loss/r1", penalty.mean())
            self.D_opt.step()
            self.D_opt.zero_grad(set_to_none=True)

    def log_row(self, t: Trainer, step: int) -> dict:
        return {"lr": self.scheduler.get_last_lr()[0]}

    def postfix(self, row: dict) -> dict:
        shown = {"loss": f"{row['loss/total']:.3f}"}
        for part in ("lpips", "latent"):
            if f"loss/{part}" in row:
                shown[part] = f"{row[f'loss/{part}']:.3f}"
        return shown

    @torch.no_grad()
    def _reconstruct(self, device) -> torch.Tensor:
        self.E_raw.eval()
        rec = self.G.synthesis(self.E_raw(self.grid_x.to(device)), noise_mode="const").clamp(-1, 1).cpu()
        self.E_raw.train()
        return rec

    @torch.no_grad()
    def evaluate(self, t: Trainer, step: int) -> dict:
        rec = self._reconstruct(t.device)
        row = {
            "val/mse": F.mse_loss(rec, self.grid_y).item(),
            "val/lpips": self.lpips(rec.to(t.device), self.grid_y.to(t.device)).mean().item(),
        }
        if self.cfg.modality == "image":
            self.E_raw.eval()
            codes = self.E_raw(self.G.synthesis(self.grid_w, noise_mode="const"))
            row["val/latent_mse"] = F.mse_loss(codes, self.grid_w).item()
            self.E_raw.train()
        return row

    def save_samples(self, t: Trainer, step: int) -> None:
        if not t.is_main:
            return
        rec, modality = self._reconstruct(t.device), self.cfg.modality
        cols = [self.grid_y, rec]
        if modality != "image":
            cols.insert(0, _visible(self.grid_x, modality, self.num_classes))
        tiles = torch.stack(cols, dim=1).flatten(0, 1)
        save_image_grid(tiles, t.out / "samples" / f"step-{step}.png", nrow=len(cols) * 4)

    def checkpoint_extra(self, step: int) -> dict:
        return {"modality": self.cfg.modality}

    def components(self, t: Trainer) -> dict:
        return {ENCODER_DIRS[self.cfg.modality]: self.E_raw}

    def report(self, t: Trainer, step: int) -> dict | None:
        """Reconstruction metrics on the validation split (:mod:`tedigan.metrics.reconstruction`)."""
        if not t.is_main:
            return None
        cfg, names, classifier = self.cfg, list(RECON_METRICS), None
        note = "no classifier_path: attribute preservation skipped"
        if cfg.classifier_path in FACE_JUDGES or (
            cfg.classifier_path and (Path(cfg.classifier_path) / "config.json").is_file()
        ):
            classifier, note = load_judge(cfg.classifier_path, t.device), str(cfg.classifier_path)
            names.append("recon_attributes")
        elif cfg.classifier_path:
            note = (
                f"classifier_path {cfg.classifier_path} holds no classifier: attribute preservation skipped"
            )
        identity = self.identity
        if identity is None and (cfg.identity_weights or cfg.eval_identity):
            from tedigan.losses.identity import FaceIdentity

            identity = FaceIdentity(cfg.identity_weights, kind=cfg.identity_net).to(t.device)
        n = min(cfg.eval_num or len(self.val_ds), len(self.val_ds))
        results = metrics.compute(
            names,
            generator=self.G,
            dataset=self.val_ds,
            classifier=classifier,
            encoder=self.E_raw,
            lpips=self.lpips,
            num=n,
            batch_size=cfg.eval_batch_size,
            device=t.device,
            identity=identity,
        )
        return {
            "num_images": n,
            "classifier": note,
            "metrics": results,
            "split": cfg.data.val_split,
            "data_root": str(cfg.data.root),
        }

    def saved_extra(self, step: int, report: dict | None) -> dict:
        return {"generator": str(self.cfg.generator_path)}

    def finish(self, t: Trainer, step: int, report: dict | None, summary: dict) -> None:
        summary.update(
            modality=self.cfg.modality, notes=self.notes, samples=str(t.out / "samples" / f"step-{step}.png")
        )

    def describe(self, summary: dict) -> str:
        m = summary["eval"]["metrics"]
        line = f"({summary['modality']}) held-out MSE {m['recon_mse']['value']:.4f}, LPIPS {m['recon_lpips']['value']:.4f}"
        return line + (
            f", attributes {m['recon_attributes']['value']:.3f}" if "recon_attributes" in m else ""
        )


def train(cfg: InversionStageConfig, resume: str | None = None) -> dict:
    """Train the encoder; save it to ``<output_dir>/<encoder|sketch_encoder|label_encoder>``, evaluate it on
    the validation split (``eval.json``). ``resume``: ``"latest"`` or a ``checkpoint-N`` folder."""
    return Trainer(cfg, InversionStage(cfg), resume).run()
