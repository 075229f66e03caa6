"""Image / sketch / label-map → W+ encoder: the inversion module of TediGAN.

Xia et al., "TediGAN: Text-Guided Diverse Face Image Generation and Manipulation" (CVPR 2021) invert images
into the W space of a fixed StyleGAN with an encoder trained in-domain (Zhu et al., "In-Domain GAN Inversion
for Real Image Editing", ECCV 2020). The layout here follows the idea of pSp (Richardson et al., "Encoding in
Style", CVPR 2021): a convolutional backbone, a feature pyramid whose three levels feed the *coarse*,
*middle* and *fine* groups of W+ (StyleGAN's coarse layers carry pose and shape, the middle ones hair and
expression, the fine ones colour and detail), and codes predicted as offsets from the generator's average
``w_avg`` (a buffer here, so a saved encoder is self-contained and starts at the average face).

Architecture (``R`` = input resolution, ``rc`` = ``coarse_resolution``, default ``max(4, R // 16)``)::

    stem 3x3 conv at R  ->  residual down blocks R -> R/2 -> ... -> rc   (widths min(channel_base // r, channel_max))
    pyramid: p(rc) = lat(f(rc)); p(2rc) = lat(f(2rc)) + up(p(rc)); p(4rc) = lat(f(4rc)) + up(p(2rc))
    coarse ws <- head(p(rc)); middle ws <- head(p(2rc)); fine ws <- head(p(4rc))
    head: stride-2 convs down to 4x4 -> flatten -> dense -> lrelu -> dense to (layers_in_group * w_dim)

``group_splits`` (default ``[3, 7]``) are the first W+ indices of the middle and fine groups. With the
StyleGAN2 layer order (w0 = 4 px conv, w1/w2 = 8 px convs, w3..w6 = 16-32 px convs, w7.. = 64 px and up) this
is pSp's split: 4-8 px coarse, 16-32 px middle, 64 px and up fine.

Inputs: images or sketches ``[B, C, R, R]`` (float, [-1, 1]; square images of another size are resized to
``R`` first, so an encoder may read at a lower resolution than its generator renders) or, for
``modality="label"``, a one-hot map ``[B, num_classes, R, R]`` or an integer class map ``[B, R, R]`` (one-hot
encoded here). Anything else raises a ``ValueError`` that says what was expected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from tedigan.models.base import PretrainedModule
from tedigan.models.layers import log2_resolution

__all__ = ["MODALITIES", "Encoder", "EncoderConfig", "label_to_onehot"]

Modality = Literal["image", "sketch", "label"]
MODALITIES = ("image", "sketch", "label")


@dataclass
class EncoderConfig:
    """Everything needed to rebuild an :class:`Encoder` (saved as ``config.json``).

    ``resolution``, ``num_ws`` and ``w_dim`` must match the generator (:meth:`Encoder.from_generator` fills
    them in). ``in_channels``: 3 for images, 1 for sketches, the number of classes for label maps.
    Width at feature resolution ``r`` is ``min(channel_base // r, channel_max)`` (the generator's rule).
    """

    resolution: int = 256
    modality: Modality = "image"
    in_channels: int = 3
    num_ws: int = 14
    w_dim: int = 512
    channel_base: int = 16384
    channel_max: int = 512
    fpn_channels: int = 256
    head_dim: int = 512
    blocks_per_level: int = 1  # extra (non-downsampling) residual blocks at every backbone resolution
    coarse_resolution: int | None = None  # pyramid top; None: max(4, resolution // 16) (pSp's 16 at 256)
    group_splits: list[int] = field(default_factory=lambda: [3, 7])
    norm_groups: int = 8  # GroupNorm groups (batch-size independent: real and generated batches differ)
    init_scale: float = 0.1  # initial weight scale of the output layers: codes start near w_avg

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {self.modality!r}")
        log2_resolution(self.resolution, "resolution")
        rc = self.pyramid_resolutions[0]
        log2_resolution(rc, "coarse_resolution")
        if rc > self.resolution:
            raise ValueError(f"coarse_resolution {rc} exceeds the input resolution {self.resolution}")
        for name in ("in_channels", "num_ws", "w_dim", "channel_base", "channel_max", "fpn_channels"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.head_dim < 1 or self.blocks_per_level < 0 or self.norm_groups < 1:
            raise ValueError("head_dim and norm_groups must be >= 1, blocks_per_level >= 0")
        self.group_splits = [int(s) for s in self.group_splits]
        if len(self.group_splits) != 2 or not 0 < self.group_splits[0] <= self.group_splits[1]:
            raise ValueError(f"group_splits must be two increasing W+ indices > 0, got {self.group_splits}")

    @property
    def pyramid_resolutions(self) -> list[int]:
        """Feature resolutions of the coarse, middle and fine pyramid levels (capped at ``resolution``)."""
        rc = self.coarse_resolution or max(4, self.resolution // 16)
        return [min(rc, self.resolution), min(2 * rc, self.resolution), min(4 * rc, self.resolution)]

    @property
    def groups(self) -> list[tuple[int, int]]:
        """``(start, stop)`` W+ index ranges of the coarse, middle and fine groups (empty ones allowed)."""
        a, b = (min(s, self.num_ws) for s in self.group_splits)
        return [(0, a), (a, b), (b, self.num_ws)]

    def width(self, r: int) -> int:
        return max(1, min(self.channel_base // r, self.channel_max))


def label_to_onehot(label: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Integer class map ``[B, H, W]`` → one-hot float ``[B, num_classes, H, W]`` (values must be in range)."""
    if label.dtype.is_floating_point or label.dtype == torch.bool or label.ndim != 3:
        raise ValueError(f"expected an integer label map [B, H, W], got {label.dtype} {tuple(label.shape)}")
    if label.numel() and (int(label.min()) < 0 or int(label.max()) >= num_classes):
        raise ValueError(
            f"label map values must lie in [0, {num_classes - 1}], got [{int(label.min())}, {int(label.max())}]"
        )
    return F.one_hot(label.long(), num_classes).permute(0, 3, 1, 2).float()


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    g = math.gcd(channels, groups)  # a group count that divides the width (= groups for powers of two)
    return nn.GroupNorm(g, channels)


class ResBlock(nn.Module):
    """Pre-activation residual block (GroupNorm, leaky ReLU, 3x3 convs), optionally halving the resolution."""

    def __init__(self, cin: int, cout: int, down: bool, groups: int) -> None:
        super().__init__()
        self.down = down
        self.norm0 = _norm(cin, groups)
        self.conv0 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm1 = _norm(cout, groups)
        self.conv1 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1, bias=False) if (cin != cout) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv0(F.leaky_relu(self.norm0(x), 0.2))
        if self.down:  # pool between the convs: the second conv runs at the lower, cheaper resolution
            h = F.avg_pool2d(h, 2)
            x = F.avg_pool2d(x, 2)
        h = self.conv1(F.leaky_relu(self.norm1(h), 0.2))
        s = self.skip(x) if self.skip is not None else x
        return (s + h) / math.sqrt(2)


class GroupHead(nn.Module):
    """Pyramid level ``[B, C, r, r]`` → codes ``[B, n_layers, w_dim]`` for one W+ group."""

    def __init__(
        self, channels: int, resolution: int, n_layers: int, w_dim: int, hidden: int, init_scale: float
    ):
        super().__init__()
        self.n_layers, self.w_dim = n_layers, w_dim
        convs: list[nn.Module] = []
        r = resolution
        while r > 4:
            convs += [nn.Conv2d(channels, channels, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
            r //= 2
        self.convs = nn.Sequential(*convs)
        self.fc = nn.Linear(channels * r * r, hidden)
        self.out = nn.Linear(hidden, n_layers * w_dim)
        with torch.no_grad():
            self.out.weight.mul_(init_scale)
            self.out.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.convs(x).flatten(1)
        h = F.leaky_relu(self.fc(h), 0.2)
        return self.out(h).view(-1, self.n_layers, self.w_dim)


class Encoder(PretrainedModule):
    """``x [B, C, R, R]`` → W+ codes ``[B, num_ws, w_dim]`` = ``w_avg`` + predicted offsets."""

    config_class = EncoderConfig

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__(config)
        c = config
        self.register_buffer("w_avg", torch.zeros(c.w_dim))
        rc = c.pyramid_resolutions[0]
        self.stem = nn.Conv2d(c.in_channels, c.width(c.resolution), 3, padding=1)
        self.backbone_resolutions: list[int] = []
        r = c.resolution
        self.levels = nn.ModuleDict()  # residual blocks at each resolution
        self.downs = nn.ModuleDict()  # r -> r/2
        while True:
            blocks = [
                ResBlock(c.width(r), c.width(r), False, c.norm_groups) for _ in range(c.blocks_per_level)
            ]
            self.levels[str(r)] = nn.Sequential(*blocks)
            self.backbone_resolutions.append(r)
            if r == rc:
                break
            self.downs[str(r)] = ResBlock(c.width(r), c.width(r // 2), True, c.norm_groups)
            r //= 2
        # lateral 1x1 convs and 3x3 smoothing, one per pyramid level (coarse, middle, fine)
        self.lateral = nn.ModuleList(nn.Conv2d(c.width(r), c.fpn_channels, 1) for r in c.pyramid_resolutions)
        self.smooth = nn.ModuleList(
            nn.Conv2d(c.fpn_channels, c.fpn_channels, 3, padding=1) for _ in c.pyramid_resolutions
        )
        self.heads = nn.ModuleDict()
        for name, (start, stop), r in zip(("coarse", "middle", "fine"), c.groups, c.pyramid_resolutions):
            if stop > start:
                self.heads[name] = GroupHead(
                    c.fpn_channels, r, stop - start, c.w_dim, c.head_dim, c.init_scale
                )

    # ---------------------------------------------------------------------------------------- construction

    @classmethod
    def from_generator(cls, generator: nn.Module, modality: str = "image", **overrides) -> Encoder:
        """An encoder sized for ``generator`` (resolution, num_ws, w_dim), starting at its ``w_avg``.

        ``overrides`` set the other :class:`EncoderConfig` fields (widths...). ``in_channels`` defaults to 3
        for images and 1 for sketches; label encoders need ``in_channels`` = the number of classes.
        """
        if modality == "label" and "in_channels" not in overrides:
            raise ValueError("a label encoder needs in_channels = the number of label classes")
        overrides.setdefault("in_channels", 1 if modality == "sketch" else 3)
        cfg = EncoderConfig(
            resolution=generator.resolution,
            num_ws=generator.num_ws,
            w_dim=generator.w_dim,
            modality=modality,
            **overrides,
        )
        enc = cls(cfg)
        enc.set_w_avg(generator.mapping.w_avg)
        return enc

    @torch.no_grad()
    def set_w_avg(self, w_avg: torch.Tensor) -> None:
        if tuple(w_avg.shape) != (self.config.w_dim,):
            raise ValueError(f"w_avg must be [{self.config.w_dim}], got {tuple(w_avg.shape)}")
        self.w_avg.copy_(w_avg.detach().to(self.w_avg))

    # --------------------------------------------------------------------------------------------- forward

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        """Check ``x`` (and one-hot encode integer label maps); returns a float ``[B, C, R, R]`` tensor."""
        c = self.config
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"encoder input must be a torch.Tensor, got {type(x).__name__}")
        if c.modality == "label" and not x.dtype.is_floating_point and x.ndim == 3:
            x = label_to_onehot(x, c.in_channels)
        what = {"image": "images", "sketch": "sketches", "label": "one-hot label maps"}[c.modality]
        expected = f"[B, {c.in_channels}, {c.resolution}, {c.resolution}]"
        if x.ndim != 4:
            raise ValueError(f"encoder expects {what} {expected}, got shape {tuple(x.shape)}")
        if x.shape[0] == 0:
            raise ValueError(f"encoder got an empty batch (shape {tuple(x.shape)})")
        if x.shape[1] != c.in_channels:
            raise ValueError(
                f"encoder expects {c.in_channels} input channel(s) ({what} {expected}), got {x.shape[1]}"
            )
        if not x.dtype.is_floating_point:
            raise ValueError(f"encoder expects float inputs, got {x.dtype}")
        if x.shape[2] != x.shape[3] or (x.shape[2] != c.resolution and c.modality == "label"):
            raise ValueError(
                f"encoder expects {c.resolution}x{c.resolution} inputs {expected}, "
                f"got {x.shape[2]}x{x.shape[3]}: resize first"
            )
        if x.shape[2] != c.resolution:  # an image encoder may read at a lower size than G renders (pSp does)
            x = F.interpolate(x, size=(c.resolution, c.resolution), mode="bilinear", antialias=True)
        return x.to(self.stem.weight.dtype)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Pyramid levels (coarse, middle, fine) for a checked input."""
        feats: dict[int, torch.Tensor] = {}
        h = self.stem(x)
        for r in self.backbone_resolutions:
            h = self.levels[str(r)](h)
            feats[r] = h
            if str(r) in self.downs:
                h = self.downs[str(r)](h)
        out, prev = [], None
        for lat, smooth, r in zip(self.lateral, self.smooth, self.config.pyramid_resolutions):
            p = lat(feats[r])
            if prev is not None:
                p = p + F.interpolate(prev, size=p.shape[-2:], mode="bilinear", align_corners=False)
            prev = p
            out.append(F.leaky_relu(smooth(p), 0.2))
        return out

    def offsets(self, x: torch.Tensor) -> torch.Tensor:
        """Predicted ``ws - w_avg`` ``[B, num_ws, w_dim]``."""
        x = self.prepare_input(x)
        levels = self.features(x)
        parts = [
            self.heads[name](level)
            for name, level in zip(("coarse", "middle", "fine"), levels)
            if name in self.heads
        ]
        delta = torch.cat(parts, dim=1)
        assert delta.shape == (x.shape[0], self.config.num_ws, self.config.w_dim), delta.shape
        return delta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.offsets(x) + self.w_avg.to(self.stem.weight.dtype)
