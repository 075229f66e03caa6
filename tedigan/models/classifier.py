"""Multi-head attribute classifier: the judge behind attribute accuracy, layer analysis and edit metrics.

A small VGG-style CNN with one linear head per attribute. The config names every attribute and its values,
so a saved classifier is self-describing (``config.json``) and metrics can decode predictions by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from tedigan.models.base import PretrainedModule
from tedigan.models.judge import Judge, Judgement


@dataclass
class ClassifierConfig:
    resolution: int = 64
    in_channels: int = 3
    widths: list[int] = field(default_factory=lambda: [16, 32, 64, 128])
    dropout: float = 0.1
    # attribute -> ordered value names; filled from the data set by the training stage when empty
    heads: dict[str, list[str]] = field(default_factory=dict)


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class AttributeClassifier(PretrainedModule, Judge):
    """``images [B, C, H, W] in [-1, 1] → {attribute: logits [B, num_values]}``; as a :class:`Judge`,
    ``judge(images)`` gives the softmax probabilities of every head."""

    config_class = ClassifierConfig

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__(config)
        if not config.heads:
            raise ValueError("ClassifierConfig.heads is empty: name the attributes and their values")
        chans = [config.in_channels, *config.widths]
        self.features = nn.Sequential(*(_block(a, b) for a, b in zip(chans[:-1], chans[1:])))
        self.dropout = nn.Dropout(config.dropout)
        self.heads = nn.ModuleDict(
            {name: nn.Linear(chans[-1], len(vals)) for name, vals in config.heads.items()}
        )

    @property
    def attributes(self) -> list[str]:
        return list(self.config.heads)

    @property
    def attribute_values(self) -> dict[str, list[str]]:  # the Judge interface
        return {a: list(v) for a, v in self.config.heads.items()}

    def judge(self, images: torch.Tensor) -> Judgement:
        return Judgement(probs={a: logits.softmax(dim=1) for a, logits in self.forward(images).items()})

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if images.ndim != 4 or images.shape[1] != self.config.in_channels:
            raise ValueError(
                f"expected images [B, {self.config.in_channels}, H, W], got {tuple(images.shape)}"
            )
        if images.shape[-1] != self.config.resolution or images.shape[-2] != self.config.resolution:
            # judge images of any generator resolution at the resolution the classifier was trained on
            size = (self.config.resolution, self.config.resolution)
            images = F.interpolate(images, size=size, mode="bilinear", antialias=True, align_corners=False)
        feats = self.dropout(self.features(images).mean(dim=(2, 3)))
        return {name: head(feats) for name, head in self.heads.items()}

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Predicted value index per attribute: LongTensor ``[B, num_attributes]`` in ``heads`` order."""
        logits = self(images)
        return torch.stack([logits[name].argmax(dim=1) for name in self.config.heads], dim=1)

    def decode(self, indices: torch.Tensor) -> list[dict[str, str]]:
        """``[B, num_attributes]`` indices → one ``{attribute: value}`` dict per image."""
        names = list(self.config.heads.items())
        return [{a: vals[int(i)] for (a, vals), i in zip(names, row)} for row in indices.tolist()]
