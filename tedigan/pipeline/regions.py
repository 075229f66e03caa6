"""Local edits: an attribute that lives in one region of the face is taken from the edit inside that region's
soft mask and from the reconstruction everywhere else.

A move in W changes more than it asks: on the grids, "blond hair" also lightened the skin of dark-skinned faces
and the wall behind them, because blond hair and light skin go together in the generator's training faces.
For the attributes of :data:`LOCAL` the edit is therefore blended into the reconstruction through the region
of the source *or* the edit (a haircut may grow), from the person matte of human's selfie segmentation and
face-api's landmarks (:func:`tedigan.data.face_regions.hair_mask`), without the pixels that are skin-coloured
in both (ears), dilated and feathered so the seam does not show.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["LOCAL", "blend", "local_region", "region_masks"]

#: attribute -> the region its edit is confined to
LOCAL = {"hair_color": "hair"}
#: the side the masks are made at, the dilation and the feather (pixels at that side)
SIDE, DILATE, FEATHER = 256, 5, 2.0
#: ΔE to the cheeks' colour under which a pixel is skin (kept out of the mask when it is skin in both images)
SKIN_DELTA = 12.0


def local_region(asked: Mapping[str, str]) -> str | None:
    """The one region every asked attribute lives in, or None (an edit of several regions, or a global one)."""
    regions = {LOCAL.get(a) for a in asked}
    return regions.pop() if len(regions) == 1 and None not in regions else None


def _skin(lab: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    from tedigan.data.face_regions import region_boxes, region_pixels

    cheeks = region_pixels(lab, region_boxes(landmarks, lab.shape[0])["cheeks"])
    if not len(cheeks):  # no face where the landmarks say: nothing is known to be skin
        return np.zeros(lab.shape[:2], dtype=bool)
    return np.linalg.norm(lab - np.median(cheeks, axis=0), axis=2) < SKIN_DELTA


@torch.no_grad()
def region_masks(reader: Any, reconstruction: torch.Tensor, edit: torch.Tensor) -> torch.Tensor:
    """``[B, 1, H, W]`` soft hair masks in [0, 1] for ``[B, 3, H, W]`` images in [-1, 1] (``reader``: a
    :class:`~tedigan.models.attribute_reader.RegionAttributeReader`; its landmarks and segmentation)."""
    from tedigan.data.face_regions import hair_mask, lab_image

    H, W = edit.shape[-2:]
    both = torch.cat([reconstruction, edit]).float().clamp(-1, 1)
    x = F.interpolate(both, size=(SIDE, SIDE), mode="bilinear", align_corners=False, antialias=True)
    lms = reader.landmark_judge.landmarks(x).cpu().numpy()
    mattes = reader.segmentation(x)[:, 0].cpu().numpy()
    pixels = ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    n = len(edit)
    masks = []
    for i in range(n):
        hair = hair_mask(mattes[i], lms[i]) | hair_mask(mattes[n + i], lms[n + i])
        skin = _skin(lab_image(pixels[i]), lms[i]) & _skin(lab_image(pixels[n + i]), lms[n + i])
        masks.append(torch.from_numpy(hair & ~skin).float())
    m = torch.stack(masks)[:, None]
    m = F.max_pool2d(m, DILATE, stride=1, padding=DILATE // 2)
    k = torch.arange(-3 * int(FEATHER), 3 * int(FEATHER) + 1, dtype=torch.float32)
    g = torch.exp(-(k**2) / (2 * FEATHER**2))
    g = g / g.sum()
    pad = len(k) // 2
    m = F.conv2d(F.pad(m, (pad, pad, 0, 0), mode="replicate"), g.view(1, 1, 1, -1))
    m = F.conv2d(F.pad(m, (0, 0, pad, pad), mode="replicate"), g.view(1, 1, -1, 1))
    return F.interpolate(m, size=(H, W), mode="bilinear", align_corners=False).clamp(0, 1).to(edit.device)


def blend(reconstruction: torch.Tensor, edit: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """The edit inside ``masks`` (resized to the images), the reconstruction outside."""
    m = masks.to(edit)
    if m.shape[-2:] != edit.shape[-2:]:
        m = F.interpolate(m, size=edit.shape[-2:], mode="bilinear", align_corners=False)
    return reconstruction.to(edit) + (edit - reconstruction.to(edit)) * m
