"""Projected discriminator (Sauer et al., "Projected GANs Converge Faster", NeurIPS 2021).

The discriminator judges frozen pretrained features instead of pixels. The image (in [-1, 1]) is resized to
``feature_resolution`` and normalised as ImageNet networks expect, then run through the frozen AlexNet conv
trunk (the LPIPS backbone, found offline by :func:`tedigan.assets.lpips_backbone_state_dict`). Three maps are
tapped: after ReLU 1, 2 and 5 (31², 15² and 7² at 128 px).

Two fixed random projections follow (the paper's CCM and CSM), drawn once from ``seed`` and never trained:

- **cross-channel mixing**: a 1×1 conv per tap, to ``projection_channels``;
- **cross-scale mixing**: top-down, each deeper map goes through a 3×3 conv, is upsampled and added to the
  next shallower one.

One small discriminator per scale is trained on these maps. Each is a stack of spectral-normalised 4×4
stride-2 convs with BatchNorm and leaky ReLU, until the map is 4×4 or smaller, then a 1×1 conv to logits.
The output is the sum over scales of each map's mean logit: ``[B, 1]``, the same contract as
:class:`~tedigan.models.stylegan2.Discriminator`.

The frozen trunk and the projections are buffers, not parameters: ``parameters()`` holds only the trained
heads. ``requires_grad_``, the optimiser and DDP therefore never touch the frozen parts, and the saved
component still carries everything it needs. The paper trains without R1; set ``loss.r1_gamma: 0``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from tedigan.models.base import CONFIG_NAME, PretrainedModule
from tedigan.models.stylegan2 import Discriminator, check_discriminator_input

#: AlexNet conv trunk: (features index, in, out, kernel, stride, padding); max-pool 3/2 after convs 0 and 3
_ALEXNET = [(0, 3, 64, 11, 4, 2), (3, 64, 192, 5, 1, 2), (6, 192, 384, 3, 1, 1), (8, 384, 256, 3, 1, 1)]
_ALEXNET += [(10, 256, 256, 3, 1, 1)]
_POOL_AFTER = {0, 3}
_TAPS = (0, 3, 10)  # ReLU outputs of conv 1, 2 and 5
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class ProjectedDiscriminatorConfig:
    """Everything needed to rebuild a :class:`ProjectedDiscriminator` (saved as ``config.json``)."""

    resolution: int = 64  # input images (set from data.resolution by the generator stage)
    img_channels: int = 3
    feature_resolution: int = 128  # the image is resized to this before the feature network
    projection_channels: list[int] = field(default_factory=lambda: [64, 128, 256])  # per tap, shallow first
    head_max_channels: int = 128  # a head doubles its width per block up to this
    seed: int = 0  # draws the fixed random projections

    def __post_init__(self) -> None:
        if self.img_channels != 3:
            raise ValueError(
                "the projected discriminator's feature network takes RGB images (img_channels 3)"
            )
        if self.feature_resolution < 64:
            raise ValueError(f"feature_resolution must be >= 64, got {self.feature_resolution}")
        if len(self.projection_channels) != len(_TAPS) or min(self.projection_channels) < 1:
            raise ValueError(f"projection_channels needs {len(_TAPS)} positive widths (one per tap)")
        self.projection_channels = [int(c) for c in self.projection_channels]


def _head(channels: int, size: int, max_channels: int) -> nn.Sequential:
    """Trained per-scale discriminator: SN 4x4/2 conv + BatchNorm + lrelu while the map is > 4, then 1x1."""
    layers: list[nn.Module] = []
    while size > 4:
        out = min(2 * channels, max_channels)
        layers += [spectral_norm(nn.Conv2d(channels, out, 4, 2, 1, bias=False)), nn.BatchNorm2d(out)]
        layers.append(nn.LeakyReLU(0.2, inplace=True))
        channels, size = out, size // 2
    layers.append(spectral_norm(nn.Conv2d(channels, 1, 1)))
    return nn.Sequential(*layers)


class ProjectedDiscriminator(PretrainedModule):
    """D on frozen AlexNet features with fixed random projections; returns logits ``[B, 1]``."""

    config_class = ProjectedDiscriminatorConfig

    def __init__(
        self, config: ProjectedDiscriminatorConfig, trunk: dict[str, torch.Tensor] | None = None
    ) -> None:
        """``trunk``: the AlexNet ``features`` state dict; by default the offline LPIPS backbone (when the
        component is loaded from a folder, its saved copy overwrites it)."""
        super().__init__(config)
        if trunk is None:
            from tedigan import assets

            trunk = assets.lpips_backbone_state_dict("alex")
        for idx, cin, cout, k, _, _ in _ALEXNET:
            w, b = trunk[f"{idx}.weight"], trunk[f"{idx}.bias"]
            if tuple(w.shape) != (cout, cin, k, k):
                raise ValueError(
                    f"AlexNet features.{idx}.weight has shape {tuple(w.shape)}, expected {(cout, cin, k, k)}"
                )
            self.register_buffer(f"trunk{idx}_weight", w.detach().float().clone())
            self.register_buffer(f"trunk{idx}_bias", b.detach().float().clone())
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

        sizes, widths = self._tap_shapes()
        proj = config.projection_channels
        g = torch.Generator().manual_seed(config.seed)

        def fixed(name: str, cout: int, cin: int, k: int) -> None:
            bound = (6 / (cin * k * k)) ** 0.5  # kaiming-uniform for a ReLU-free linear map: keeps the scale
            self.register_buffer(name, (torch.rand(cout, cin, k, k, generator=g) * 2 - 1) * bound)

        for i, (cin, cout) in enumerate(zip(widths, proj)):
            fixed(f"ccm{i}", cout, cin, 1)
        for i in range(1, len(proj)):  # deeper map i -> width of map i - 1
            fixed(f"csm{i}", proj[i - 1], proj[i], 3)
        self.heads = nn.ModuleList(_head(c, s, config.head_max_channels) for c, s in zip(proj, sizes))

    def _tap_shapes(self) -> tuple[list[int], list[int]]:
        size, sizes, widths = self.config.feature_resolution, [], []
        for idx, _, cout, k, stride, pad in _ALEXNET:
            size = (size + 2 * pad - k) // stride + 1
            if idx in _TAPS:
                sizes.append(size)
                widths.append(cout)
            if idx in _POOL_AFTER:
                size = (size - 3) // 2 + 1
        return sizes, widths

    def features(self, img: torch.Tensor) -> list[torch.Tensor]:
        """The projected feature maps (shallow first) that the heads judge."""
        cfg = self.config
        x = F.interpolate(img, size=(cfg.feature_resolution,) * 2, mode="bilinear", align_corners=False)
        x = ((x + 1) / 2 - self.mean) / self.std
        taps = []
        for idx, _, _, _, stride, pad in _ALEXNET:
            x = F.relu(
                F.conv2d(
                    x, getattr(self, f"trunk{idx}_weight"), getattr(self, f"trunk{idx}_bias"), stride, pad
                )
            )
            if idx in _TAPS:
                taps.append(x)
            if idx in _POOL_AFTER:
                x = F.max_pool2d(x, 3, 2)
        maps = [F.conv2d(t, getattr(self, f"ccm{i}")) for i, t in enumerate(taps)]
        for i in range(len(maps) - 1, 0, -1):  # top-down cross-scale mixing
            up = F.conv2d(maps[i], getattr(self, f"csm{i}"), padding=1)
            maps[i - 1] = maps[i - 1] + F.interpolate(up, size=maps[i - 1].shape[-2:], mode="bilinear")
        return maps

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        check_discriminator_input(img, self.config.img_channels, self.config.resolution)
        logits = [head(m).mean(dim=(2, 3)) for head, m in zip(self.heads, self.features(img))]
        return torch.stack(logits, 0).sum(0)


def load_discriminator(path: str | Path) -> Discriminator | ProjectedDiscriminator:
    """Either kind of discriminator component from its folder (its ``config.json`` names the class)."""
    try:
        name = json.loads((Path(path) / CONFIG_NAME).read_text()).get("_class_name")
    except (OSError, ValueError, AttributeError):
        name = None  # from_pretrained says what is wrong with the folder
    cls = ProjectedDiscriminator if name == ProjectedDiscriminator.__name__ else Discriminator
    return cls.from_pretrained(path)


__all__ = ["ProjectedDiscriminator", "ProjectedDiscriminatorConfig", "load_discriminator"]
