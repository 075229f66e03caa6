"""Local edits: an attribute that lives in one region of the face is taken from the edit inside that region's
soft mask and from the reconstruction everywhere else.

A move in W changes more than it asks: on the grids, "blond hair" also lightened the skin of dark-skinned faces
and the wall behind them, because blond hair and light skin go together in the generator's training faces.
For the attributes of :data:`LOCAL` the edit is therefore blended into the reconstruction through the region
of the source *or* the edit (a haircut may grow), from the person matte of human's selfie segmentation and
face-api's landmarks (:func:`tedigan.data.face_regions.hair_mask`), without the pixels that are skin-coloured
in both (ears), dilated and feathered so the seam does not show.

That hair mask stops at the mouth corners (below them the matte is mostly neck and clothes). Long hair goes on
below: there the mask takes the person's pixels outside the face that the edit changed (ΔE above
:data:`CHANGED`) and that are hair-coloured in either image (within :data:`HAIR_DELTA` of that image's hair
above), joined to the hair above. A collar the edit left alone stays out; so does a black shirt under hair
turned blond.

Gray hair has no hue, but the gray direction in W carries a blue cast (on the grids, half the faces came out with
blue or cyan hair). For the values of :data:`NEUTRAL` the edit keeps only a share of its chroma inside the mask
(:func:`neutralise`: each pixel pulled toward its own luma), so the hair is silver, not blue.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "LOCAL",
    "NEUTRAL",
    "blend",
    "local_blend",
    "local_region",
    "neutral_chroma",
    "neutralise",
    "region_masks",
]

#: attribute -> the region its edit is confined to
LOCAL = {"hair_color": "hair"}
#: asked value -> the share of its chroma a local edit keeps inside the mask (values without a hue)
NEUTRAL = {("hair_color", "gray"): 0.25}
#: the side the masks are made at, the dilation and the feather (pixels at that side)
SIDE, DILATE, FEATHER = 256, 5, 2.0
#: ΔE to the cheeks' colour under which a pixel is skin (kept out of the mask when it is skin in both images)
SKIN_DELTA = 12.0
#: below the mouth corners: ΔE between reconstruction and edit above which a pixel changed, and ΔE to the
#: image's median hair colour under which a pixel is hair-coloured
CHANGED, HAIR_DELTA = 8.0, 22.0


def local_region(asked: Mapping[str, str]) -> str | None:
    """The one region every asked attribute lives in, or None (an edit of several regions, or a global one)."""
    regions = {LOCAL.get(a) for a in asked}
    return regions.pop() if len(regions) == 1 and None not in regions else None


def neutral_chroma(asked: Mapping[str, str]) -> float | None:
    """The share of chroma kept for an asked value of :data:`NEUTRAL` (None: the edit keeps its colour)."""
    kept = [NEUTRAL[item] for item in asked.items() if item in NEUTRAL]
    return min(kept) if kept else None


def neutralise(images: torch.Tensor, masks: torch.Tensor, keep: float) -> torch.Tensor:
    """``images`` ``[B, 3, H, W]`` (any range) with each pixel inside ``masks`` pulled toward its luma (Rec. 601)
    so that ``keep`` of its chroma is left, softly by the mask's value; the luma itself is unchanged."""
    m = masks.to(images)
    if m.shape[-2:] != images.shape[-2:]:
        m = F.interpolate(m, size=images.shape[-2:], mode="bilinear", align_corners=False)
    luma = (images * images.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    return images - (1.0 - keep) * (images - luma) * m


def _skin(lab: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    from tedigan.data.face_regions import region_boxes, region_pixels

    cheeks = region_pixels(lab, region_boxes(landmarks, lab.shape[0])["cheeks"])
    if not len(cheeks):  # no face where the landmarks say: nothing is known to be skin
        return np.zeros(lab.shape[:2], dtype=bool)
    return np.linalg.norm(lab - np.median(cheeks, axis=0), axis=2) < SKIN_DELTA


def _hair_below(upper: np.ndarray, mattes, lms, labs) -> np.ndarray:
    """Hair below the mouth corners (long hair): see the module docs. ``mattes`` / ``lms`` / ``labs``: the
    reconstruction's and the edit's."""
    from scipy import ndimage

    from tedigan.data.face_regions import face_oval

    size = upper.shape[0]
    person = (mattes[0] > 0.5) | (mattes[1] > 0.5)
    oval = face_oval(lms[0], size) | face_oval(lms[1], size)
    changed = np.linalg.norm(labs[0] - labs[1], axis=2) > CHANGED
    if upper.sum() < 20:  # too little hair above to know its colour
        return np.zeros_like(upper)
    hairy = np.zeros_like(upper)
    for lab in labs:
        hairy |= np.linalg.norm(lab - np.median(lab[upper], axis=0), axis=2) < HAIR_DELTA
    below = person & ~oval & changed & hairy & ~upper
    parts, _ = ndimage.label(upper | below)
    joined = np.isin(parts, np.unique(parts[upper]))
    return below & joined


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
        pair_lms, pair_mattes = (lms[i], lms[n + i]), (mattes[i], mattes[n + i])
        labs = (lab_image(pixels[i]), lab_image(pixels[n + i]))
        hair = hair_mask(pair_mattes[0], pair_lms[0]) | hair_mask(pair_mattes[1], pair_lms[1])
        hair |= _hair_below(hair, pair_mattes, pair_lms, labs)
        skin = _skin(labs[0], pair_lms[0]) & _skin(labs[1], pair_lms[1])
        masks.append(torch.from_numpy(hair & ~skin).float())
    return _soften(torch.stack(masks)[:, None], (H, W)).to(edit.device)


def _soften(m: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Dilated by :data:`DILATE`, feathered by a Gaussian of :data:`FEATHER` px, resized to ``size``."""
    m = F.max_pool2d(m, DILATE, stride=1, padding=DILATE // 2)
    k = torch.arange(-3 * int(FEATHER), 3 * int(FEATHER) + 1, dtype=torch.float32)
    g = torch.exp(-(k**2) / (2 * FEATHER**2))
    g = g / g.sum()
    pad = len(k) // 2
    m = F.conv2d(F.pad(m, (pad, pad, 0, 0), mode="replicate"), g.view(1, 1, 1, -1))
    m = F.conv2d(F.pad(m, (0, 0, pad, pad), mode="replicate"), g.view(1, 1, -1, 1))
    return F.interpolate(m, size=size, mode="bilinear", align_corners=False).clamp(0, 1)


def local_blend(
    reconstruction: torch.Tensor, edit: torch.Tensor, masks: torch.Tensor, chroma: float | None = None
) -> torch.Tensor:
    """A local edit at any size: ``edit`` (without its hue for a value of :data:`NEUTRAL`: ``chroma`` is
    :func:`neutral_chroma`'s share) inside ``masks``, ``reconstruction`` outside."""
    return blend(reconstruction, edit if chroma is None else neutralise(edit, masks, chroma), masks)


def blend(reconstruction: torch.Tensor, edit: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """The edit inside ``masks`` (resized to the images), the reconstruction outside."""
    m = masks.to(edit)
    if m.shape[-2:] != edit.shape[-2:]:
        m = F.interpolate(m, size=edit.shape[-2:], mode="bilinear", align_corners=False)
    return reconstruction.to(edit) + (edit - reconstruction.to(edit)) * m
