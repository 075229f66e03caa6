"""Stage ``classifier``: train the multi-head attribute classifier on the avatar data set.

Its held-out accuracy per attribute is the trust we can place in every later attribute metric (edit
accuracy, preservation, layer analysis, separability), so it is reported per attribute and per value.
Writes ``<output_dir>/model`` (safetensors + config.json), ``eval.json``, ``metrics.jsonl`` and a grid of
the validation images it gets wrong.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from tedigan.config import ClassifierStageConfig, ConfigError, save_config
from tedigan.data import collate_samples
from tedigan.data.avatars import ATTRIBUTES, AvatarDataset
from tedigan.models.classifier import AttributeClassifier
from tedigan.training.loop import (
    CheckpointManager,
    DivergenceGuard,
    GeneratorState,
    ResumableSampler,
    ensure_data,
    finish_stage,
    make_accelerator,
    save_image_grid,
    start_final_save,
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


def train(cfg: ClassifierStageConfig, resume: str | None = None) -> dict:
    """Train, evaluate on the validation split, save ``<output_dir>/model``; returns the eval report."""
    tc = cfg.train
    out = Path(tc.output_dir)
    # a checkpoint that cannot be resumed is refused before anything is written
    CheckpointManager(out, tc.checkpoints_total_limit).resolve(resume, report=False)
    accelerator = make_accelerator(tc)
    set_seed(tc.seed)
    if cfg.data.kind != "avatars":
        raise ConfigError("stage classifier needs attribute labels: set data.kind=avatars")
    root = ensure_data(cfg.data, accelerator)

    model_cfg = cfg.model
    if not model_cfg.heads:
        model_cfg.heads = {name: list(values) for name, values in ATTRIBUTES.items()}
    model_cfg.resolution = cfg.data.resolution
    if accelerator.is_main_process:
        save_config(cfg, out / "config.yaml", stage="classifier")
    accelerator.init_trackers("classifier")

    train_ds = AvatarDataset(root, split=cfg.data.train_split, resolution=cfg.data.resolution)
    val_ds = AvatarDataset(root, split=cfg.data.val_split, resolution=cfg.data.resolution)
    sampler = ResumableSampler(len(train_ds), seed=tc.seed)
    train_loader = DataLoader(
        train_ds,
        batch_size=tc.batch_size,
        sampler=sampler,
        num_workers=cfg.data.num_workers,
        drop_last=True,
        collate_fn=collate_samples,
    )
    val_loader = DataLoader(
        val_ds,
        batch_size=max(tc.batch_size, 64),
        num_workers=cfg.data.num_workers,
        collate_fn=collate_samples,
    )

    model = AttributeClassifier(model_cfg)
    optimizer = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    # linear warm-up over 5% of the steps, cosine decay to 5%
    lr_lambda = warmup_cosine(tc.max_steps // 20, tc.max_steps, 0.05)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
    model, optimizer, train_loader, val_loader, scheduler = accelerator.prepare(
        model, optimizer, train_loader, val_loader, scheduler
    )
    gen = torch.Generator().manual_seed(tc.seed)  # augmentation shifts: checkpointed, exact resume
    state = {"model": model, "optimizer": optimizer, "scheduler": scheduler, "rng": GeneratorState(gen)}
    ckpt = CheckpointManager(out, tc.checkpoints_total_limit)
    step = ckpt.restore(accelerator, resume, state)
    per_step = tc.batch_size * tc.grad_accum * accelerator.num_processes
    sampler.start = step * per_step
    guard = DivergenceGuard("classifier", accelerator.device)

    data = iter(train_loader)
    bar = tqdm(total=tc.max_steps, initial=step, desc="classifier", disable=not accelerator.is_main_process)
    heads = list(model_cfg.heads)
    while step < tc.max_steps:
        for _ in range(tc.grad_accum):
            batch = next(data)
            with accelerator.accumulate(model):
                images = random_shift(batch["image"], cfg.augment_shift, gen)
                logits = model(images)
                losses = [F.cross_entropy(logits[n], batch["attributes"][:, j]) for j, n in enumerate(heads)]
                loss = torch.stack(losses).sum()
                guard(step, "loss", loss)
                accelerator.backward(loss)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
        step += 1
        bar.update(1)
        if step % tc.log_every == 0 or step == tc.max_steps:
            acc = {
                f"train_acc/{n}": (logits[n].argmax(1) == batch["attributes"][:, j]).float().mean().item()
                for j, n in enumerate(heads)
            }
            accelerator.log({"loss": loss.item(), "lr": scheduler.get_last_lr()[0], **acc}, step=step)
            bar.set_postfix(loss=f"{loss.item():.3f}")
        if step % tc.eval_every == 0 and step < tc.max_steps:
            report, _ = evaluate(model, val_loader, accelerator)
            accelerator.log({f"val_acc/{k}": v for k, v in report["accuracy"].items()}, step=step)
        if step % tc.checkpoint_every == 0 or step == tc.max_steps:
            guard.flush(step)
            ckpt.save(accelerator, step, state)
    bar.close()

    report, wrong = evaluate(model, val_loader, accelerator)
    report.update(step=step, split=cfg.data.val_split, data_root=str(root))
    accelerator.log({f"val_acc/{k}": v for k, v in report["accuracy"].items()}, step=step)
    model_raw = accelerator.unwrap_model(model)
    start_final_save(out, "classifier", {"model": model_raw}, accelerator)
    if accelerator.is_main_process:
        model_raw.save_pretrained(out / "model", extra={"eval": report})
        (out / "eval.json").write_text(json.dumps(report, indent=2) + "\n")
        if len(wrong):
            save_image_grid(wrong, out / "misclassified.png", nrow=8)
        finish_stage(out, "classifier", {"step": step, "model": str(out / "model")})
        accelerator.print(
            "classifier held-out accuracy: "
            + ", ".join(f"{k}={v:.4f}" for k, v in report["accuracy"].items())
            + f" -> {out / 'model'}"
        )
    accelerator.end_training()
    return report
