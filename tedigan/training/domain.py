"""Stage ``domain``: a small judge of which shipped domain an image belongs to.

A pipeline serves one domain (its vocabulary's ``domain``: the procedural ``avatars`` or photo-real
``faces``). Handed an image of another kind it would still invert and edit it, into nonsense; with this judge
it says so and names the model that fits (:class:`tedigan.pipeline.OutOfDomainWarning`). The judge is a
:class:`~tedigan.models.classifier.AttributeClassifier` with one head, ``domain``, trained on the train
splits of each domain's data set, with degradations user images have (blur from downscaling, grey scale,
contrast and brightness changes, noise, shifts; not JPEG blocks), so a small, blurry avatar is still an avatar
and an old black-and-white photo still a photo. It is evaluated on the val splits,
clean and degraded.

Outputs in ``<output_dir>``: ``model/`` (safetensors + config.json; copied into each shipped pipeline as
``domain_classifier/``), ``eval.json`` (held-out accuracy per domain), ``metrics.jsonl``, ``checkpoints/``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import ConcatDataset, Dataset, Subset

from tedigan.config import DomainStageConfig
from tedigan.data import make_dataset
from tedigan.models.classifier import ClassifierConfig
from tedigan.training.classifier import ClassifierStage
from tedigan.training.loop import Trainer

__all__ = ["DomainStage", "degrade", "train"]


class _Labelled(Dataset):
    """``{"image", "attributes": [label]}`` samples of one domain's data set."""

    def __init__(self, dataset: Dataset, label: int) -> None:
        self.dataset, self.label = dataset, torch.tensor([label])

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"image": self.dataset[index]["image"], "attributes": self.label}


def degrade(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random user-image degradations, per image: down-and-up scaling (1 to 4x), grey scale (p 0.2), contrast
    and brightness (±30 %, ±0.2), Gaussian noise (σ up to 0.08), shifts (up to 1/16 of the side)."""
    b, _, h, w = images.shape
    out = []
    for i in range(b):
        x = images[i : i + 1]
        r = torch.rand(6, generator=generator).tolist()
        factor = 1 + 3 * r[0]
        if factor > 1.2:
            small = max(4, int(h / factor))
            x = F.interpolate(x, size=(small, small), mode="area")
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
        if r[1] < 0.2:
            x = x.mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)
        x = x * (0.7 + 0.6 * r[2]) + (r[3] - 0.5) * 0.4
        x = x + torch.randn(x.shape, generator=generator) * 0.08 * r[4]
        shift = int((r[5] - 0.5) * h / 8)
        x = torch.roll(x, shifts=(shift, -shift), dims=(2, 3))
        out.append(x.clamp(-1, 1))
    return torch.cat(out)


class DomainStage(ClassifierStage):
    name = kind = "domain"

    def _split(self, split: str, cap: int | None) -> Dataset:
        parts = []
        for label, (kind, root) in enumerate(self.cfg.domains.items()):
            ds = make_dataset(kind, root, split=split, resolution=self.cfg.resolution)
            n = len(ds) if cap is None else min(cap, len(ds))
            parts.append(_Labelled(Subset(ds, range(n)), label))
        return ConcatDataset(parts)

    def build(self, t: Trainer) -> tuple[ClassifierConfig, Dataset]:
        cfg = self.cfg
        self.names = list(cfg.domains)
        self.val = self._split("val", 500)
        model_cfg = ClassifierConfig(
            resolution=cfg.resolution, widths=cfg.model.widths, dropout=cfg.model.dropout,
            heads={"domain": self.names},
        )  # fmt: skip
        return model_cfg, self._split("train", cfg.num_per_domain)

    def augment(self, images: torch.Tensor) -> torch.Tensor:
        return degrade(images.cpu(), self.gen).to(images.device)

    def postfix(self, row: dict) -> dict:
        return {"loss": f"{row['loss']:.3f}", "acc": f"{row['train_acc/domain']:.3f}"}

    @torch.no_grad()
    def evaluate(self, t: Trainer, step: int) -> dict:
        model = t.accelerator.unwrap_model(self.model).eval()
        gen = torch.Generator().manual_seed(12345)  # the same degradations at every evaluation
        hits: dict[str, list[bool]] = {}
        for i in range(0, len(self.val), 100):
            items = [self.val[j] for j in range(i, min(len(self.val), i + 100))]
            x = torch.stack([it["image"] for it in items]).to(t.device)
            y = torch.cat([it["attributes"] for it in items]).to(t.device)
            for mode, inputs in (("clean", x), ("degraded", degrade(x.cpu(), gen).to(t.device))):
                ok = (model(inputs)["domain"].argmax(1) == y).cpu()
                for k, label in enumerate(y.tolist()):
                    hits.setdefault(f"{mode}/{self.names[label]}", []).append(bool(ok[k]))
        model.train()
        return {f"val_acc/{k}": sum(v) / len(v) for k, v in sorted(hits.items())}

    def report(self, t: Trainer, step: int) -> dict:
        return {"domains": self.cfg.domains, "accuracy": self.evaluate(t, step)}

    def finish(self, t: Trainer, step: int, report: dict | None, summary: dict) -> None:
        pass

    def describe(self, summary: dict) -> str:
        acc = summary["eval"]["accuracy"]
        return "held-out accuracy " + ", ".join(
            f"{k.removeprefix('val_acc/')}={v:.3f}" for k, v in acc.items()
        )


def train(cfg: DomainStageConfig, resume: str | None = None) -> dict:
    """Train the domain judge; save it to ``<output_dir>/model``; returns the summary (with ``eval``)."""
    return Trainer(cfg, DomainStage(cfg), resume).run()
