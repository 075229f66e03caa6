"""Face identity as a metric and a loss: dlib's 128-d face descriptor (offline, default) or FaceNet.

The usual identity term of face inversion/editing (pSp, e4e, TediGAN's optional extra). Two networks:

- ``kind="dlib"`` (default): face-api's port of dlib's ResNet descriptor
  (:class:`tedigan.models.ports.faceapi.FaceApiJudge`; MIT package, public-domain weights, fetched from npm by
  ``scripts/install.sh``), on FFHQ-aligned faces cropped with its fixed box; Euclidean distance, one person
  below 0.6. Differentiable.
- ``kind="facenet"``: facenet-pytorch's InceptionResnetV1 (VGGFace2 weights; Schroff et al., CVPR 2015):
  an explicit file, ``TEDIGAN_FACENET_PATH`` or the cache (:func:`tedigan.assets.facenet_weights_path`; none
  ships offline); images are resized to 160² (FaceNet's whitening ``(x·255 − 127.5) / 128`` is [-1, 1] up to
  0.4 %); distance ``1 − cos``.

Identity matters for real, aligned faces, not cartoon avatars.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FaceIdentity", "IdentityLoss"]


class FaceIdentity(nn.Module):
    """Frozen face descriptor: ``forward(images) -> [B, D]`` embeddings (FaceNet's L2-normalised, dlib's as
    they are); gradients flow to the images. ``distance(a, b)`` is the net's own (dlib: Euclidean; FaceNet:
    ``1 − cos``) with ``same_person_threshold``; ``similarity`` is the cosine for either. ``net`` replaces the
    network by any ``images -> embeddings`` module (tests, ArcFace; cosine distance)."""

    def __init__(
        self,
        weights: Any = None,
        *,
        kind: str = "dlib",
        net: nn.Module | None = None,
        download: bool | None = None,
        input_size: int = 160,
    ) -> None:
        super().__init__()
        if kind not in ("dlib", "facenet"):
            raise ValueError(f"identity kind must be 'dlib' or 'facenet', got {kind!r}")
        self.kind = kind if net is None else "custom"
        self.same_person_threshold: float | None = None
        self.dlib = None
        if net is None and kind == "dlib":
            from tedigan.models.ports.faceapi import FaceApiJudge

            self.dlib = FaceApiJudge.from_package(weights, heads=("recognition",))
            self.same_person_threshold = self.dlib.same_person_threshold
            self.weights = "face-api dlib descriptor"
        elif net is None:
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
        if self.dlib is not None:
            return self.dlib.descriptor(images)
        x = images.float()
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            size = (self.input_size, self.input_size)
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        return F.normalize(self.net(x).flatten(1), dim=-1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.embed(images)

    def similarity(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Cosine similarity per image ``[B]``."""
        return F.cosine_similarity(self.embed(a), self.embed(b), dim=-1)

    def distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The network's own distance per image ``[B]`` (dlib: Euclidean; otherwise ``1 − cos``)."""
        return self.distance_of(self.embed(a), self.embed(b))

    def distance_of(self, ea: torch.Tensor, eb: torch.Tensor) -> torch.Tensor:
        """:meth:`distance` of two embeddings ``[B, D]``."""
        if self.dlib is not None:
            return (ea - eb).norm(dim=-1)
        return 1 - F.cosine_similarity(ea, eb, dim=-1)


class IdentityLoss(FaceIdentity):
    """``(x, y) -> [B]``: the identity distance between ``x`` and ``y`` (:meth:`FaceIdentity.distance`)."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.distance(x, y)
