"""Face identity: FaceNet embeddings (facenet-pytorch's InceptionResnetV1, VGGFace2 weights) as a metric and a loss.

Schroff et al., "FaceNet" (CVPR 2015); the usual identity term of face inversion/editing (pSp, e4e, TediGAN's
optional extra). Images in [-1, 1] are resized to the network's 160x160 input (FaceNet's whitening
``(x·255 − 127.5) / 128`` is [-1, 1] up to 0.4 %). Weights: an explicit file, ``TEDIGAN_FACENET_PATH`` or the
cache (:func:`tedigan.assets.facenet_weights_path`; none ships offline); the classifier ``logits.*`` tensors of
the released file are dropped. Identity matters for real, aligned faces, not cartoon avatars.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FaceIdentity", "IdentityLoss"]


class FaceIdentity(nn.Module):
    """Frozen face descriptor: ``forward(images) -> [B, 512]`` L2-normalised embeddings; gradients flow to the
    images. ``net`` replaces FaceNet by any ``images -> embeddings`` module (tests, ArcFace)."""

    def __init__(
        self,
        weights: Any = None,
        *,
        net: nn.Module | None = None,
        download: bool | None = None,
        input_size: int = 160,
    ) -> None:
        super().__init__()
        if net is None:
            from tedigan import assets

            # weights first: without them there is nothing to build (and facenet-pytorch is a slow import)
            path = assets.facenet_weights_path(weights, download=download)
            try:
                from facenet_pytorch.models.inception_resnet_v1 import InceptionResnetV1
            except ImportError as e:  # pragma: no cover - depends on the environment
                raise ImportError(
                    "face identity needs facenet-pytorch: pip install --no-deps facenet-pytorch"
                ) from e
            net = InceptionResnetV1(pretrained=None, classify=False)
            state = torch.load(path, map_location="cpu", weights_only=True)
            net.load_state_dict({k: v for k, v in state.items() if not k.startswith("logits.")}, strict=True)
            self.weights = str(path)
        self.net = net
        self.input_size = int(input_size)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> FaceIdentity:  # a fixed metric: batch norm and dropout stay off
        return super().train(False)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float()
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            size = (self.input_size, self.input_size)
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        return F.normalize(self.net(x).flatten(1), dim=-1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.embed(images)

    def similarity(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Cosine similarity per image ``[B]``."""
        return (self.embed(a) * self.embed(b)).sum(dim=-1)


class IdentityLoss(FaceIdentity):
    """``(x, y) -> [B]``: ``1 − cos`` between the embeddings of ``x`` and ``y``."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return 1 - self.similarity(x, y)
