"""Stage ``text``: train the caption → W+ text encoder by visual-linguistic similarity (TediGAN).

Xia et al., "TediGAN: Text-Guided Diverse Face Image Generation and Manipulation" (CVPR 2021), section 3.2:
the text encoder is trained so that the code of a caption lies close to the inverted code of its image in the
W space of the fixed StyleGAN. Here each training pair is (image ``x``, one of its captions ``t``); the
target is ``E(x)`` from the frozen image encoder of stage ``inversion`` (``encoder_path``). Losses (weights
in ``loss``):

- ``l2``: per-layer MSE ``mean_d (T(t)[l, d] - E(x)[l, d])²`` averaged over W+ layers with the weights
  ``loss.layer_weights`` (normalised; null = equal) — the paper's visual-linguistic similarity. With
  ``loss.normalize_l2`` (default) it is divided by the variance of the training codes, so 1.0 means "no
  better than the mean code" whatever the scale of the generator's W, and the contrastive weight means the
  same for every generator;
- ``contrastive`` (optional): InfoNCE over the batch on flattened codes: cosine similarity of the offsets
  from ``w_avg``, temperature ``loss.temperature``, symmetric (text→image and image→text); pairs that share
  an image are all positives, so two captions of one image are never pushed apart.

Efficiency: with a frozen backbone (the default) nothing upstream of the head changes during training, so
the sentence embedding of every caption and ``E(x)`` of every image are computed once and cached under
``cache_dir`` (default ``<output_dir>/cache``; see :class:`tedigan.training.text_cache.PairCache`: E(x) keyed by the encoder's weights and
the data, the embeddings by the backbone settings and the captions, so either survives a change of the
other, and later runs reuse both); the head then trains on the cached tensors (hundreds of steps per second
on a CPU). With ``text_encoder.freeze_backbone=false`` only ``E(x)`` is cached and the backbone trains too
(at ``backbone_lr``).

Outputs in ``<output_dir>``: ``text_encoder/`` (config.json + model.safetensors: the head; the backbone is
referenced, or stored when fine-tuned), ``config.yaml``, ``metrics.jsonl`` (losses, quick held-out
numbers, the final evaluation row), ``eval.json`` (:mod:`tedigan.metrics.text`: held-out L2, text→image
retrieval top-1/top-5, text→image attribute accuracy), ``text_grid.png`` + ``text_grid.txt`` (held-out
caption | real image | G(E(x)) | G(text code)), ``samples/step-N.png``, ``checkpoints/checkpoint-N``.
"""

from __future__ import annotations

import json
import textwrap
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageDraw, ImageFont

from tedigan import metrics
from tedigan.config import ConfigError, TextStageConfig
from tedigan.data import make_dataset, vocabulary_for
from tedigan.domains import FACE_JUDGES, NAMED_GENERATORS
from tedigan.losses.text import contrastive_loss, layer_weights, text_code_loss
from tedigan.metrics import text as text_metrics  # registers the text metrics
from tedigan.models.encoder import Encoder
from tedigan.models.named import load_generator, load_judge
from tedigan.models.prototypes import PROTOTYPES_NAME, Prototypes, value_prototypes
from tedigan.models.stylegan2 import Generator
from tedigan.models.text_encoder import TextEncoder
from tedigan.training.loop import (
    Stage,
    Trainer,
    warmup_cosine,
)
from tedigan.training.text_cache import CachedPairs, PairCache, file_sha1, prepare_cache

__all__ = ["TextStage", "load_frozen_encoder", "train"]
TEXT_METRICS = ("text_l2", "text_retrieval")


# ---------------------------------------------------------------------------------------------- models


def load_frozen_encoder(path: str | Path, device: torch.device | str = "cpu") -> Encoder:
    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"encoder_path {path} holds no trained image encoder: train one first "
            "(pipelines/train_stage.py --stage inversion) and point encoder_path at its <output_dir>/encoder"
        )
    E = Encoder.from_pretrained(path, map_location=device).eval().requires_grad_(False)
    if E.config.modality != "image":
        raise ConfigError(
            f"encoder_path {path} is a {E.config.modality} encoder; the text stage needs an image one"
        )
    return E


def _generator_path(cfg: TextStageConfig) -> str | None:
    if cfg.generator_path:
        return cfg.generator_path
    meta = json.loads((Path(cfg.encoder_path) / "config.json").read_text())
    return (meta.get("_extra") or {}).get("generator")


def _load_generator(path: str | None, E: Encoder, device, resolution: int) -> tuple[Generator | None, str]:
    if not path:
        return (
            None,
            "no generator_path and none recorded in the encoder: grids and attribute accuracy skipped",
        )
    if path not in NAMED_GENERATORS and not (Path(path) / "config.json").is_file():
        return None, f"generator_path {path} holds no generator: grids and attribute accuracy skipped"
    G = load_generator(path, device, resolution)
    if (G.num_ws, G.w_dim) != (E.config.num_ws, E.config.w_dim) or G.resolution < E.config.resolution:
        raise ConfigError(
            f"generator {path} ({G.num_ws}x{G.w_dim}, {G.resolution} px) does not match the encoder "
            f"({E.config.num_ws}x{E.config.w_dim}, {E.config.resolution} px)"
        )
    return G, str(path)


def _load_classifier(path: str | None, device) -> tuple[Any, str]:
    if not path:
        return None, "no classifier_path: text->image attribute accuracy skipped"
    if path not in FACE_JUDGES and not (Path(path) / "config.json").is_file():
        return None, f"classifier_path {path} holds no classifier: text->image attribute accuracy skipped"
    return load_judge(path, device), f"the {path} face judge" if path in FACE_JUDGES else str(path)


# ----------------------------------------------------------------------------------------------- grids


def render_caption_grid(
    columns: list[torch.Tensor],
    captions: list[str],
    path: str | Path,
    headers: list[str] | None = None,
    scale: int | None = None,
    text_width: int = 300,
) -> Path:
    """One row per caption: the caption (wrapped) then one image per column (``[N, 3, H, W]`` in [-1, 1]).

    ``scale`` (None: rows about 96 px high) enlarges the images (nearest). Also writes the captions,
    numbered, to ``<path>.txt``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    size = columns[0].shape[-1]
    n, h = len(captions), size * (scale or max(1, 96 // size))  # rows about 96 px high
    font = ImageFont.load_default()
    head_h = 14 if headers else 0
    canvas = Image.new("RGB", (text_width + len(columns) * (h + 2), head_h + n * (h + 2)), "white")
    draw = ImageDraw.Draw(canvas)
    chars = max(10, text_width // 6)
    for j, name in enumerate(headers or []):
        draw.text((text_width + j * (h + 2) + 2, 1), name, fill="black", font=font)
    for i, caption in enumerate(captions):
        y = head_h + i * (h + 2)
        lines = textwrap.wrap(f"{i + 1}. {caption}", chars)[: max(1, h // 12)]
        for k, line in enumerate(lines):
            draw.text((4, y + 2 + 12 * k), line, fill="black", font=font)
        for j, col in enumerate(columns):
            img = col[i].detach().float().cpu().clamp(-1, 1).add(1).mul(127.5).round().byte()
            tile = Image.fromarray(img.permute(1, 2, 0).numpy()).resize((h, h), Image.Resampling.NEAREST)
            canvas.paste(tile, (text_width + j * (h + 2), y))
    canvas.save(path)
    path.with_suffix(".txt").write_text("".join(f"{i + 1}. {c}\n" for i, c in enumerate(captions)))
    return path


# ------------------------------------------------------------------------------------------------ train


class TextStage(Stage):
    name = kind = "text"
    rate_key = "pairs_per_sec"

    def __init__(self, cfg: TextStageConfig) -> None:
        self.cfg = cfg

    def setup(self, t: Trainer) -> dict:
        cfg, acc, device = self.cfg, t.accelerator, t.device
        tc, lc = cfg.train, cfg.loss
        E = load_frozen_encoder(cfg.encoder_path, device)
        num_ws = E.config.num_ws
        self.G, self.g_note = _load_generator(_generator_path(cfg), E, device, cfg.data.resolution)
        # images load at G's size when there is one (grids compare them with its renders; the encoder resizes)
        res = self.G.resolution if self.G is not None else E.config.resolution
        self.clf, self.clf_note = _load_classifier(cfg.classifier_path, device)
        self.frozen = frozen = cfg.text_encoder.freeze_backbone
        T = self.T = TextEncoder(replace(cfg.text_encoder, num_ws=num_ws, w_dim=E.config.w_dim))
        T.set_w_avg(E.w_avg)
        T.to(device)
        self.cfg = t.cfg = cfg = replace(cfg, text_encoder=T.config, data=replace(cfg.data, resolution=res))
        self.weights = layer_weights(lc.layer_weights, num_ws).to(device)

        # ---- caches: E(x) for every image, the captions, and (frozen backbone) their sentence embeddings
        train_ds = make_dataset(cfg.data.kind, cfg.data.root, split=cfg.data.train_split, resolution=res)
        self.val_ds = val_ds = make_dataset(
            cfg.data.kind, cfg.data.root, split=cfg.data.val_split, resolution=res
        )
        if len(train_ds) == 0 or len(val_ds) == 0:
            raise ConfigError(
                f"empty split in {cfg.data.root}: train {len(train_ds)}, val {len(val_ds)} images"
            )
        n_train = min(cfg.train_num or len(train_ds), len(train_ds))
        n_val = min(cfg.eval_num or len(val_ds), len(val_ds))
        cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else t.out / "cache"
        enc_sha = file_sha1(Path(cfg.encoder_path) / "model.safetensors")
        caches: dict[str, PairCache] = {}
        self.built: dict[str, dict[str, bool]] = {}
        t0 = time.perf_counter()
        for name, ds, split, n in (
            ("train", train_ds, cfg.data.train_split, n_train),
            ("val", val_ds, cfg.data.val_split, n_val),
        ):
            caches[name], self.built[name] = prepare_cache(cfg, name, split, ds, n, E, T, enc_sha, acc)
        self.cache_s = time.perf_counter() - t0
        tr = self.tr = caches["train"]
        va = self.va = caches["val"]
        # variance of the training codes (mean over elements): the unit of the normalised L2 term
        self.code_var = code_var = tr.codes.double().var(dim=0).mean().item() if len(tr.codes) > 1 else 0.0
        self.l2_scale = 1.0 / code_var if lc.normalize_l2 and code_var > 0 else 1.0
        acc.print(
            f"text: {n_train} train images / {tr.num_pairs} pairs ({len(tr.captions)} distinct captions), "
            f"{n_val} held-out images / {va.num_pairs} pairs; caches ready in {self.cache_s:.1f} s ({cache_dir}); "
            f"code variance {code_var:.4g}; backbone {'frozen (head only)' if frozen else 'fine-tuned'}; "
            f"generator {self.g_note}; classifier {self.clf_note}"
        )

        # ---- model, optimiser, data
        model = T.head if frozen else T
        groups = [{"params": list(T.head.parameters()), "lr": tc.lr}]
        if not frozen:
            groups.append(
                {"params": [p for p in T.backbone.parameters() if p.requires_grad], "lr": cfg.backbone_lr}
            )
        optimizer = torch.optim.AdamW(groups, weight_decay=tc.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, warmup_cosine(cfg.lr_warmup_steps, tc.max_steps, cfg.lr_min_ratio)
        )
        self.data = t.loader(CachedPairs(tr, frozen), tc.batch_size)
        self.model, self.optimizer, self.scheduler = acc.prepare(model, optimizer, scheduler)

        # ---- held-out inputs: the fixed grid captions and the quick validation numbers
        self.val_texts = va.pair_texts()
        self.val_target = va.codes[va.pair_image].to(device)
        self.first = [int(i) for i in (va.caption_rank == 0).nonzero().flatten()[: cfg.num_grid].tolist()]
        self.grid_caps = [self.val_texts[i] for i in self.first]
        self.grid_img_ids = [int(va.pair_image[i]) for i in self.first]
        self.center = T.w_avg.detach().to(device)
        return {"model": self.model, "optimizer": self.optimizer, "scheduler": self.scheduler}

    def start(self, t: Trainer, step: int) -> None:
        self.model.train()

    @torch.no_grad()
    def val_codes(self, t: Trainer) -> torch.Tensor:
        va = self.va
        if self.frozen:
            head = t.accelerator.unwrap_model(self.model)
            head.eval()
            emb = va.embeddings[va.pair_caption].to(t.device)
            codes = torch.cat([head(emb[i : i + 4096]) for i in range(0, len(emb), 4096)])
            head.train()
            return codes
        return self.T.encode_text(self.val_texts, batch_size=self.cfg.eval_batch_size)

    def train_step(self, t: Trainer, step: int) -> None:
        lc, acc, model = self.cfg.loss, t.accelerator, self.model
        for _ in range(self.cfg.train.grad_accum):
            batch = next(self.data)
            with acc.accumulate(model), acc.autocast():
                ws = model(batch["embedding"] if self.frozen else batch["text"])
                target = batch["code"].to(ws.dtype)
                total = ws.new_zeros(())
                if lc.l2 > 0:
                    l2 = text_code_loss(ws, target, self.weights) * self.l2_scale
                    t.track("loss/l2", l2)
                    total = total + lc.l2 * l2
                if lc.contrastive > 0:
                    nce = contrastive_loss(ws, target, lc.temperature, self.center, batch["image_id"])
                    t.track("loss/contrastive", nce)
                    total = total + lc.contrastive * nce
                t.track("loss/total", total)
                acc.backward(total)
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)

    def log_row(self, t: Trainer, step: int) -> dict:
        return {"lr": self.scheduler.get_last_lr()[0]}

    def postfix(self, row: dict) -> dict:
        self.last_top1 = row.get("val/top1", getattr(self, "last_top1", float("nan")))
        return {"loss": f"{row['loss/total']:.4f}", "top1": f"{self.last_top1:.3f}"}

    def evaluate(self, t: Trainer, step: int) -> dict:
        codes, va = self.val_codes(t), self.va
        ranks = text_metrics.retrieval_ranks(codes.cpu(), va.codes, va.pair_image)
        l2 = text_code_loss(codes, self.val_target, self.weights).item()
        return {
            "val/l2": l2,
            "val/l2_normalized": l2 / self.code_var if self.code_var > 0 else float("nan"),
            "val/top1": (ranks < 1).float().mean().item(),
            "val/top5": (ranks < 5).float().mean().item(),
        }

    @torch.no_grad()
    def _grid(self, t: Trainer, codes: torch.Tensor, path: Path) -> None:
        G, device = self.G, t.device
        reals = torch.stack([self.val_ds[i]["image"] for i in self.grid_img_ids])
        recon = G.synthesis(self.va.codes[self.grid_img_ids].to(device), noise_mode="const").cpu()
        fake = G.synthesis(codes.to(device), noise_mode="const").cpu()
        render_caption_grid(
            [reals, recon, fake], self.grid_caps, path, headers=["real", "G(E(x))", "G(text)"]
        )

    def save_samples(self, t: Trainer, step: int) -> None:
        if t.is_main and self.G is not None and self.grid_caps:
            self._grid(t, self.val_codes(t)[self.first], t.out / "samples" / f"step-{step}.png")

    def components(self, t: Trainer) -> dict:
        if self.frozen:
            self.T.head = t.accelerator.unwrap_model(self.model)
        self.T.eval()
        return {"text_encoder": self.T}

    def report(self, t: Trainer, step: int) -> dict | None:
        """Held-out text metrics (:mod:`tedigan.metrics.text`) of the codes of every held-out pair."""
        if not t.is_main:
            return None
        cfg, va = self.cfg, self.va
        self.final_codes = self.val_codes(t).cpu()
        names = list(TEXT_METRICS)
        if self.G is not None and self.clf is not None:
            names.append("text_attribute_accuracy")
        inputs = text_metrics.TextEval(
            captions=va.pair_texts(),
            image_index=va.pair_image,
            image_codes=va.codes,
            caption_rank=va.caption_rank,
            attribute_captions_per_image=cfg.eval_captions_per_image,
            vocabulary=vocabulary_for(cfg.data.kind, cfg.data.root),
            codes=self.final_codes,
        )
        n_attr = int((va.caption_rank < cfg.eval_captions_per_image).sum())
        results = metrics.compute(
            names,
            generator=self.G,
            classifier=self.clf,
            num=max(1, n_attr),
            batch_size=cfg.eval_batch_size,
            device=t.device,
            seed=cfg.train.seed,
            text=inputs,
        )
        return {
            "num_images": int(va.codes.shape[0]),
            "num_captions": va.num_pairs,
            "metrics": results,
            "split": cfg.data.val_split,
            "data_root": str(cfg.data.root),
            "generator": self.g_note,
            "classifier": self.clf_note,
        }

    def saved_extra(self, step: int, report: dict | None) -> dict:
        return {"encoder": str(self.cfg.encoder_path), "generator": str(_generator_path(self.cfg) or "")}

    @torch.no_grad()
    def prototypes(self) -> Prototypes | None:
        """Value prototypes of the trained text encoder over the training captions (None without a
        vocabulary for the data)."""
        cfg, tr = self.cfg, self.tr
        vocabulary = vocabulary_for(cfg.data.kind, cfg.data.root)
        if vocabulary is None:
            return None
        T = self.T.eval()
        if self.frozen and tr.embeddings is not None:
            emb = tr.embeddings
            codes = torch.cat(
                [
                    T.head(emb[i : i + 4096].to(T.head.out.weight.device)).cpu()
                    for i in range(0, len(emb), 4096)
                ]
            )
        else:
            codes = T.encode_text(tr.captions, batch_size=cfg.embed_batch_size).cpu()
        return value_prototypes(codes, tr.captions, vocabulary, gain=cfg.prototype_gain)

    def finish(self, t: Trainer, step: int, report: dict | None, summary: dict) -> None:
        summary.update(cache_seconds=round(self.cache_s, 2), cache_built=self.built)
        if t.is_main:
            protos = self.prototypes()
            if protos is not None:
                summary["prototypes"] = str(protos.save(t.out / PROTOTYPES_NAME))
                summary["prototype_counts"] = protos.counts
        if t.is_main and self.G is not None and self.grid_caps:
            self._grid(t, self.final_codes[self.first], t.out / "text_grid.png")
            summary["grid"] = str(t.out / "text_grid.png")

    def describe(self, summary: dict) -> str:
        m = summary["eval"]["metrics"]
        l2, ret = m["text_l2"], m["text_retrieval"]
        line = (
            f"held-out L2 {l2['value']:.4g} (mean-code baseline {l2['mean_code_baseline']:.4g}), retrieval "
            f"top-1 {ret['top1']:.3f} / top-5 {ret['top5']:.3f} among {ret['num_images']} images"
        )
        acc = m.get("text_attribute_accuracy", {})
        if acc.get("value") is not None:
            line += (
                f", attribute accuracy {acc['value']:.3f} (random codes {acc['random_codes']['value']:.3f}, "
                f"inverted ceiling {acc['inverted_ceiling']['value']:.3f})"
            )
        return line


def train(cfg: TextStageConfig, resume: str | None = None) -> dict:
    """Train the text encoder; save it to ``<output_dir>/text_encoder`` and evaluate it on held-out captions
    (``eval.json``). ``resume``: ``"latest"`` or a ``checkpoint-N`` folder."""
    return Trainer(cfg, TextStage(cfg), resume).run()
