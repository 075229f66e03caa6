"""Photos in, photos out: the faces of a photo cut out for the pipeline, and the edited faces put back.

* :func:`check_face` — the ``face=`` argument (``0`` / ``"largest"``, ``"all"``, an index, or
  :class:`~tedigan.data.align.Face` objects with known landmarks, which skip the detector);
* :func:`find_faces` — the faces of one photo that ``face=`` names (MTCNN, :mod:`tedigan.data.align`);
* :func:`align_photos` — image inputs -> their FFHQ crops, one batch item per face, with each crop's
  :class:`~tedigan.data.align.FaceAlignment` and the upright photo it came from (what ``pipe.edit(...,
  align=True)`` and ``pipe.invert(..., align=True)`` run);
* :func:`render_faces` / :func:`paste_edits` — an aligned edit rendered at the size each face has in its
  photo (1024 px for a face larger than 256 px when the generator can, so a sharp photo gets no upscaled
  blur) and put back into the photo (:func:`tedigan.data.paste.paste_back`, the unedited reconstruction as
  colour reference);
* :func:`choose_model` — which shipped model fits an image: the default model's small domain judge tells a
  photo from a rendered avatar, without loading either pipeline.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tedigan.pipeline.inputs import IMAGE_TYPES, OUT_OF_DOMAIN_P, PipelineError
from tedigan.pipeline.quality import DegenerateOutputError

if TYPE_CHECKING:
    from PIL import Image

    from tedigan.data.align import Face, FaceAlignment

__all__ = [
    "FACE_CHOICES",
    "PASTE_SIZES",
    "AlignedPhotos",
    "FaceNotFound",
    "FaceRenders",
    "align_photos",
    "check_face",
    "choose_model",
    "find_faces",
    "group_by_photo",
    "paste_edits",
    "render_faces",
]


class FaceNotFound(PipelineError):
    """A photo holds no face (or not the one asked for). ``reason`` says which, without the photo's name."""

    def __init__(self, name: str, reason: str, hint: str = "") -> None:
        super().__init__(f"{name}: {reason}{hint}")
        self.reason = reason


#: what ``face=`` takes besides an index and Face objects
FACE_CHOICES = ("largest", "all")
#: the crop sizes an edit is rendered at for pasting back: the smallest at least the face's size in the photo
PASTE_SIZES = (256, 1024)
#: the crop size faces are cut at before the pipeline resizes them to its resolution (at least that)
ALIGN_SIZE = 512


# ------------------------------------------------------------------------------------------- which face


def check_face(face: Any) -> str | int | list[Face]:
    """``face=`` checked, before any work: ``"largest"`` (or ``0``), ``"all"``, an index (0 is the largest face;
    negative counts from the smallest) or one or more :class:`~tedigan.data.align.Face` (landmarks known: no
    detector runs; one photo only)."""
    from tedigan.data.align import Face

    if isinstance(face, Face):
        return [face]
    if isinstance(face, (list, tuple)) and face and all(isinstance(f, Face) for f in face):
        return list(face)
    if isinstance(face, str):
        key = face.strip().lower()
        if key in FACE_CHOICES:
            return key
        try:
            return int(key)
        except ValueError:
            pass
    elif isinstance(face, int) and not isinstance(face, bool):
        return int(face)
    raise PipelineError(
        f"face must be 'largest' (or 0), 'all', an index (0 is the largest face) or Face objects "
        f"(tedigan.data.align), got {face!r}"
    )


def find_faces(photo: Image.Image, face: Any = 0, name: str = "the image") -> list[Face]:
    """The faces of ``photo`` (upright) that ``face`` names (:func:`check_face`), largest first for
    ``"all"``. No face, or an index past the faces found, is a :class:`PipelineError` in one line."""
    from tedigan.data import align

    which = check_face(face)
    if isinstance(which, list):
        return which
    try:
        faces = align.detect_faces(photo)
    except align.NoFaceFound:
        raise FaceNotFound(
            name,
            "found no face in it",
            "; give a photo with a face, or edit it without alignment (--no-align, align=False) to centre-crop it",
        ) from None
    except ImportError as err:
        raise PipelineError(str(err)) from None
    try:
        return align.select_faces(faces, which)
    except ValueError as err:
        raise FaceNotFound(name, str(err)) from None


# ------------------------------------------------------------------------------------------- cutting out


@dataclass
class AlignedPhotos:
    """Image inputs cut into faces: per batch item its FFHQ ``crops`` (RGB, ``ALIGN_SIZE`` px or more), its
    ``alignments`` (the crop's place in the photo) and ``photos`` (the upright photo it came from, in the
    photo's own mode; the same object for every face of one photo)."""

    crops: list[Image.Image]
    alignments: list[FaceAlignment]
    photos: list[Image.Image]


def _photo(item: Any) -> tuple[Image.Image, str]:
    """An image input as an upright PIL photo in its own mode (8-bit; deeper modes become RGB), and its name."""
    import numpy as np
    import torch
    from PIL import Image

    from tedigan.data.io import convert_image, describe_source, open_image, to_pil
    from tedigan.pipeline.inputs import _image_tensor, _numpy_image

    if isinstance(item, np.ndarray):
        item = _numpy_image(item, 3)
    if isinstance(item, torch.Tensor):
        t = _image_tensor(item, 3)
        if len(t) != 1:
            raise PipelineError(
                f"align takes one photo per tensor, got a batch of {len(t)}: pass a list of them"
            )
        return to_pil(t[0]), "the image tensor"
    if not isinstance(item, (str, os.PathLike, bytes, bytearray, memoryview, Image.Image)):
        raise PipelineError(f"an image must be {IMAGE_TYPES}, got {type(item).__name__}")
    name = describe_source(item)
    photo = open_image(item, name)
    if photo.mode not in ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr", "LAB", "HSV"):
        photo = convert_image(photo, "RGB")  # 16-bit, 32-bit and float photos: 8-bit RGB
    return photo, name


def align_photos(image: Any, face: Any = 0, size: int = ALIGN_SIZE, progress: bool = False) -> AlignedPhotos:
    """Every image input (a path, bytes, PIL image, tensor or array, or a list of them) -> the FFHQ crops
    (``size`` px) of the faces ``face`` names (:func:`check_face`), one batch item per face, in input order.
    Raises :class:`PipelineError` for a photo without a face, naming it."""
    from tqdm.auto import tqdm

    from tedigan.data.io import convert_image

    which = check_face(face)
    items = list(image) if isinstance(image, (list, tuple)) else [image]
    if not items:
        raise PipelineError("no input image given")
    given = isinstance(which, list)  # landmarks known: nothing to detect
    if given and len(items) > 1:
        raise PipelineError(f"Face objects belong to one photo, got {len(items)} images: give one")
    out = AlignedPhotos([], [], [])
    for item in tqdm(items, desc="detect", unit="photo", disable=not progress or given):
        photo, name = _photo(item)
        rgb = convert_image(photo, "RGB")
        for f in find_faces(rgb, which, name):
            try:
                out.crops.append(f.crop(rgb, size))
            except ValueError as err:  # Face objects measured on another photo
                raise PipelineError(f"{name}: {err}") from None
            out.alignments.append(f.alignment)
            out.photos.append(photo)
    return out


def group_by_photo(photos: Sequence[Image.Image]) -> list[list[int]]:
    """The batch items of each distinct photo (``out.photos`` holds one photo object per item), in order."""
    groups: dict[int, list[int]] = {}
    for i, p in enumerate(photos):
        groups.setdefault(id(p), []).append(i)
    return list(groups.values())


# ------------------------------------------------------------------------------------------- putting back


@dataclass
class FaceRenders:
    """Per batch item: the ``size`` it was rendered at, the ``edited`` crop and the unedited
    ``reconstructions`` (the source code, same generator, same size): the colour reference of the paste; for a
    local edit (``out.masks``) the ``masks`` it was blended through, at that size (the paste covers them too)."""

    sizes: list[int]
    edited: list[Image.Image]
    reconstructions: list[Image.Image]
    masks: list[Image.Image | None] = field(default_factory=list)


#: a tuned generator whose fine detail above the pipeline's resolution is this many times the untuned one's (for
#: the same code) renders noise there: it was tuned at the pipeline's resolution only (pivotal tuning of every
#: synthesis weight at 256 px left MobileStyleGAN's 1024 px detail at 12x the untuned one's: a halftone pattern)
DETAIL_LIMIT = 3.0


def _detail(img: Image.Image) -> float:
    """Mean absolute fine detail: the image minus its 4x box-downsampled, bilinear-upsampled copy."""
    import numpy as np
    from PIL import Image

    small = img.resize((max(1, img.width // 4), max(1, img.height // 4)), Image.Resampling.BOX)
    low = small.resize(img.size, Image.Resampling.BILINEAR)
    return float(np.abs(np.asarray(img, dtype=np.float32) - np.asarray(low, dtype=np.float32)).mean())


def render_faces(
    pipe: Any, out: Any, size: int | None = None, sizes: Sequence[int] = PASTE_SIZES
) -> FaceRenders:
    """Render the edit and the reconstruction of every item of an aligned edit ``out`` at the size its face has
    in the photo (``FaceAlignment.crop_size_for(sizes)``), or at ``size``; sizes the generator cannot render
    fall back to the pipeline's own (``pipe.render_sizes``). With pivotal tuning, each item's tuned generator
    renders it; where that generator's detail above the pipeline's resolution is noise (:data:`DETAIL_LIMIT`:
    it was tuned at the pipeline's resolution only, or the output guard refuses it), the item is rendered at the
    pipeline's resolution. A local edit (``out.masks``) is blended through its masks at that size too."""
    if not out.alignments:
        raise PipelineError("render_faces needs an aligned edit (align=True)")
    can = set(pipe.render_sizes())
    usable = [s for s in sizes if s in can] or [pipe.resolution]
    tuned = out.tuned_generators or [None] * len(out.alignments)
    fixed = None if size is None else (size if size in can else pipe.resolution)
    renders = FaceRenders([], [], [], [])
    for i, al in enumerate(out.alignments):
        r = fixed or al.crop_size_for(usable)
        above = tuned[i] is not None and r > pipe.resolution
        try:
            (rec,) = pipe.decode(out.source_latents[i : i + 1], generator=tuned[i], resolution=r)
            if above:
                (untuned,) = pipe.decode(out.source_latents[i : i + 1], resolution=r)
                above = _detail(rec) > DETAIL_LIMIT * max(_detail(untuned), 1e-3)
        except DegenerateOutputError:  # so noisy above its resolution that the output guard refuses it
            if not above:
                raise
        if above:
            import warnings

            from tedigan.pipeline.inputs import RenderWarning

            warnings.warn(
                f"face {i}: the tuned generator's detail above {pipe.resolution} px is noise; this face is "
                f"rendered at {pipe.resolution} px and upscaled when pasted back",
                RenderWarning,
                stacklevel=2,
            )
            r = pipe.resolution
            (rec,) = pipe.decode(out.source_latents[i : i + 1], generator=tuned[i], resolution=r)
        renders.sizes.append(r)
        renders.reconstructions.append(rec)
        (edited,) = pipe.decode(out.latents[i : i + 1], generator=tuned[i], resolution=r)
        mask = None
        if getattr(out, "masks", None) is not None:  # a local edit: blended through its region, as out.images
            from PIL import Image

            mask = (out.masks[i, 0].clamp(0, 1) * 255).round().byte().cpu().numpy()
            mask = Image.fromarray(mask).resize(edited.size, Image.Resampling.BILINEAR)
            edited = _local_blend(rec, edited, mask, getattr(out, "chroma", None))
        renders.edited.append(edited)
        renders.masks.append(mask)
    return renders


def _local_blend(
    rec: Image.Image, edited: Image.Image, mask: Image.Image, chroma: float | None
) -> Image.Image:
    """:func:`~tedigan.pipeline.regions.local_blend` on PIL images of one size (``mask``: mode L)."""
    import numpy as np
    import torch
    from PIL import Image

    from tedigan.pipeline.regions import local_blend

    def tensor(im: Image.Image) -> torch.Tensor:
        return torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.float32)).permute(2, 0, 1)[None]

    m = torch.from_numpy(np.asarray(mask, dtype=np.float32) / 255.0)[None, None]
    y = local_blend(tensor(rec), tensor(edited), m, chroma)[0]
    return Image.fromarray(y.permute(1, 2, 0).round().clamp(0, 255).byte().numpy())


def paste_edits(out: Any, renders: FaceRenders, progress: bool = False, **paste_kw: Any) -> list[Image.Image]:
    """One image per distinct photo of ``out.photos``: the photo with each of its edited faces pasted back,
    one after another (:func:`tedigan.data.paste.paste_back_all`; the reconstruction as colour reference),
    of the photo's size and mode."""
    from tqdm.auto import tqdm

    from tedigan.data.paste import paste_back_all

    results = []
    with tqdm(total=len(out.alignments), desc="paste", unit="face", disable=not progress) as bar:
        for items in group_by_photo(out.photos):
            edits = [
                (out.alignments[i], renders.edited[i], renders.reconstructions[i], _mask(renders, i))
                for i in items
            ]
            results.append(paste_back_all(out.photos[items[0]], edits, **paste_kw))
            bar.update(len(items))
    return results


def _mask(renders: FaceRenders, i: int) -> Image.Image | None:
    return renders.masks[i] if i < len(renders.masks) else None


# ------------------------------------------------------------------------------------------- which model


def choose_model(images: Sequence[Any]) -> tuple[str, list[float]]:
    """``("avatars" | "faces", p_avatar per image)``: the shipped model for these images, by the default
    (avatar) model's domain judge (a 150 kB classifier; neither pipeline is loaded). An image is an avatar
    when the judge is at least :data:`OUT_OF_DOMAIN_P` sure (avatars come out at 1.00; photos, unaligned,
    between 0.00 and 0.41 on the real photos of the tests); the majority decides, a tie goes to photos."""
    import torch

    from tedigan.models.classifier import AttributeClassifier
    from tedigan.pipeline.folder import DEFAULT_MODEL_DIR
    from tedigan.pipeline.inputs import check_image

    judge = AttributeClassifier.from_pretrained(DEFAULT_MODEL_DIR / "domain_classifier").float().eval()
    names = judge.config.heads["domain"]
    probs = []
    with torch.no_grad():
        for img in images:
            x = check_image(img, judge.config.resolution)
            probs.append(float(judge(x)["domain"].softmax(dim=1)[0, names.index("avatars")]))
    avatars = sum(p >= OUT_OF_DOMAIN_P for p in probs)
    return ("avatars" if avatars > len(probs) - avatars else "faces"), probs
