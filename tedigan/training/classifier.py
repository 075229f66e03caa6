"""Stage ``classifier``: train the multi-head attribute classifier on the avatar data set.

Its held-out accuracy per attribute is the trust we can place in every later attribute metric (edit
accuracy, preservation, layer analysis, separability), so it is reported per attribute and per value.
Writes ``<output_dir>/model`` (safetensors + config.json), ``eval.json``, ``metrics.jsonl`` and a grid of
the validation images it gets wrong.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from tedigan.config import ClassifierStageConfig, ConfigError
from tedigan.data import collate_samples
from tedigan.data.avatars import ATTRIBUTES, AvatarDataset
from tedigan.models.classifier import AttributeClassifier
from tedigan.training.loop import (
    GeneratorState,
    Stage,
    Trainer,
    save_image_grid,
    warmup_cosine,
)


def random_shift(images: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by up to ``max_shift`` pixels (edge padding): robustness to slight misalignment,
    which generated and reconstructed faces have."""
    if max_shift <= 0:
        return images
    b, _, h, w = images.shape
    padded = F.pad(images, [max_shift] * 4, mode="replicate")
    offsets = torch.randint(0, 2 * max_shift + 1, (b, 2), generator=generator).tolist()
    return torch.stack([padded[i, :, dy : dy + h, dx : dx + w] for i, (dy, dx) in enumerate(offsets)])


@torch.no_grad()
def evaluate(model: AttributeClassifier, loader: DataLoader, accelerator) -> tuple[dict, torch.Tensor]:
    """Per-attribute and per-value accuracy; also returns a few misclassified images for a grid."""
    model.eval()
    heads = accelerator.unwrap_model(model).config.heads
    preds, targets, wrong = [], [], []
    for batch in loader:
        logits = model(batch["image"])
        pred = torch.stack([logits[name].argmax(1) for name in heads], dim=1)
        pred, target, images = accelerator.gather_for_metrics((pred, batch["attributes"], batch["image"]))
        preds.append(pred.cpu())
        targets.append(target.cpu())
        miss = (pred != target).any(dim=1)
        if miss.any() and sum(len(w) for w in wrong) < 32:
            wrong.append(images[miss].cpu())
    model.train()
    pred, target = torch.cat(preds), torch.cat(targets)
    report: dict = {"num_images": len(pred), "accuracy": {}, "per_value": {}}
    for j, (name, values) in enumerate(heads.items()):
        ok = pred[:, j] == target[:, j]
        report["accuracy"][name] = round(ok.float().mean().item(), 4)
        report["per_value"][name] = {
            v: round(ok[target[:, j] == k].float().mean().item(), 4)
            for k, v in enumerate(values)
            if (target[:, j] == k).any()
        }
    report["mean_accuracy"] = round(sum(report["accuracy"].values()) / len(heads), 4)
    report["min_accuracy"] = min(report["accuracy"].values())
    grid = torch.cat(wrong)[:32] if wrong else torch.empty(0)
    return report, grid


class ClassifierStage(Stage):
    """Multi-head classification (AdamW, 5% warm-up then cosine to 5%); the ``domain`` stage is one too."""

    name = kind = "classifier"
    workers = 0  #: DataLoader workers of the training set

    def __init__(self, cfg: ClassifierStageConfig) -> None:
        self.cfg = cfg

    def build(self, t: Trainer) -> tuple[Any, Dataset]:
        """The model config and the training set (samples with ``image`` and ``attributes [heads]``)."""
        cfg = self.cfg
        root, res, self.workers = Path(cfg.data.root), cfg.data.resolution, cfg.data.num_workers
        model_cfg = replace(
            cfg.model, resolution=res, heads=cfg.model.heads or {k: list(v) for k, v in ATTRIBUTES.items()}
        )
        val_ds = AvatarDataset(root, split=cfg.data.val_split, resolution=res)
        self.val_loader = DataLoader(
            val_ds, batch_size=max(cfg.train.batch_size, 64), num_workers=cfg.data.num_workers,
            collate_fn=collate_samples,
        )  # fmt: skip
        return model_cfg, AvatarDataset(root, split=cfg.data.train_split, resolution=res)

    def augment(self, images: torch.Tensor) -> torch.Tensor:
        return random_shift(images, self.cfg.augment_shift, self.gen)

    def setup(self, t: Trainer) -> dict:
        tc, acc = self.cfg.train, t.accelerator
        self.gen = torch.Generator().manual_seed(tc.seed)  # augmentation: checkpointed, exact resume
        model_cfg, train_ds = self.build(t)
        self.cfg = t.cfg = replace(self.cfg, model=model_cfg)
        self.heads = list(model_cfg.heads)
        self.data = t.loader(train_ds, tc.batch_size, num_workers=self.workers, collate_fn=collate_samples)
        model = AttributeClassifier(model_cfg)
        optimizer = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, warmup_cosine(tc.max_steps // 20, tc.max_steps, 0.05)
        )
        self.model, self.optimizer, self.scheduler = acc.prepare(model, optimizer, scheduler)
        if hasattr(self, "val_loader"):
            self.val_loader = acc.prepare(self.val_loader)
        self.report_at: tuple[int, dict, torch.Tensor] | None = None
        return {
            "model": self.model, "optimizer": self.optimizer, "scheduler": self.scheduler,
            "rng": GeneratorState(self.gen),
        }  # fmt: skip

    def train_step(self, t: Trainer, step: int) -> None:
        acc, model = t.accelerator, self.model
        for _ in range(self.cfg.train.grad_accum):
            batch = next(self.data)
            with acc.accumulate(model):
                logits = model(self.augment(batch["image"]))
                target = batch["attributes"]
                loss = torch.stack(
                    [F.cross_entropy(logits[n], target[:, j]) for j, n in enumerate(self.heads)]
                ).sum()
                t.track("loss", loss)
                acc.backward(loss)
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad()
            for j, n in enumerate(self.heads):
                t.track(f"train_acc/{n}", (logits[n].detach().argmax(1) == target[:, j]).float().mean())

    def log_row(self, t: Trainer, step: int) -> dict:
        return {"lr": self.scheduler.get_last_lr()[0]}

    def postfix(self, row: dict) -> dict:
        return {"loss": f"{row['loss']:.3f}"}

    def evaluate(self, t: Trainer, step: int) -> dict:
        report, wrong = evaluate(self.model, self.val_loader, t.accelerator)
        self.report_at = (step, report, wrong)
        return {f"val_acc/{k}": v for k, v in report["accuracy"].items()}

    def components(self, t: Trainer) -> dict:
        return {"model": t.accelerator.unwrap_model(self.model)}

    def report(self, t: Trainer, step: int) -> dict:
        if self.report_at is None or self.report_at[0] != step:
            self.evaluate(t, step)
        _, report, self.wrong = self.report_at
        return {**report, "split": self.cfg.data.val_split, "data_root": str(self.cfg.data.root)}

    def saved_extra(self, step: int, report: dict | None) -> dict:
        return {"eval": report}

    def finish(self, t: Trainer, step: int, report: dict | None, summary: dict) -> None:
        if t.is_main and len(self.wrong):
            save_image_grid(self.wrong, t.out / "misclassified.png", nrow=8)

    def describe(self, summary: dict) -> str:
        return "held-out accuracy " + ", ".join(
            f"{k}={v:.4f}" for k, v in summary["eval"]["accuracy"].items()
        )


def train(cfg: ClassifierStageConfig, resume: str | None = None) -> dict:
    """Train, evaluate on the validation split, save ``<output_dir>/model``; returns the eval report."""
    if cfg.data.kind != "avatars":
        raise ConfigError("stage classifier needs attribute labels: set data.kind=avatars")
    return Trainer(cfg, ClassifierStage(cfg), resume).run()["eval"]
