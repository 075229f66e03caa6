"""Image input/output shared by every data set: robust decoding, mode conversion, tensors.

Real image collections contain everything: 16-bit PNGs, palette images with a transparent colour, CMYK
JPEGs, phone photos whose pixels are stored sideways with an EXIF orientation tag, truncated downloads.
``load_image`` turns all of them into a fully decoded 8-bit RGB (or L) image, or raises
:class:`ImageLoadError` naming the file and the reason on one line, so a data set can skip or stop with a
message the user can act on. Nothing here changes Pillow's global state (``LOAD_TRUNCATED_IMAGES`` stays off:
a truncated file is an error, not a grey stripe in a training batch).

Sample format shared by all data sets (``tedigan.data``): ``image`` FloatTensor [3,H,W] in [-1,1],
``caption`` str, ``captions`` list[str], ``index`` int, optional ``label`` LongTensor [H,W] and
``sketch`` FloatTensor [1,H,W] in [-1,1] (white = 1).
"""

from __future__ import annotations

import io
import logging
import os
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

logger = logging.getLogger(__name__)

ImageSource = str | os.PathLike | bytes | bytearray | memoryview | Image.Image

#: Pillow modes that carry an alpha channel (composited on white when converted to RGB/L).
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
_INT16_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}
_WHITE = 255


class ImageLoadError(ValueError):
    """An image could not be read or decoded. ``str(err)`` names the path and the reason on one line."""

    def __init__(self, path: str, reason: str | None = None):
        if reason is None:  # rebuilt from a message alone (PyTorch re-raises worker errors this way)
            self.path, self.reason = "", str(path)
            super().__init__(str(path))
            return
        self.path = str(path)
        self.reason = " ".join(str(reason).split())  # one line, whatever the decoder said
        super().__init__(f"cannot load image {self.path}: {self.reason}")

    def __reduce__(self):
        return type(self), (self.path, self.reason)


# --------------------------------------------------------------------------------------------- decoding


def describe_source(source: ImageSource) -> str:
    """A short name for ``source`` to put in error messages."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, Image.Image):
        return f"<PIL image {source.mode} {source.size[0]}x{source.size[1]}>"
    return f"<{len(source)} bytes>"


def open_image(source: ImageSource, name: str | None = None) -> Image.Image:
    """Open and fully decode ``source`` (path, bytes or PIL image) and apply its EXIF orientation.

    The mode is left as stored; see :func:`convert_image`. Raises :class:`ImageLoadError`.
    """
    name = name or describe_source(source)
    if isinstance(source, Image.Image):
        img = source
        _decode_fully(img, name)
    else:
        img = _read(source, name)
    return _apply_exif_orientation(img, name)


def _read(source: ImageSource, name: str) -> Image.Image:
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise ImageLoadError(name, "empty data (0 bytes)")
        fp: Any = io.BytesIO(bytes(source))
    else:
        path = Path(source)
        if not path.is_file():
            raise ImageLoadError(name, "no such file" if not path.exists() else "not a regular file")
        if path.stat().st_size == 0:
            raise ImageLoadError(name, "empty file (0 bytes)")
        fp = path
    try:
        with Image.open(fp) as img:
            _decode_fully(img, name)
            # After load() the pixels live in memory; copy() detaches them from the file we close here.
            return img.copy()
    except ImageLoadError:
        raise
    except UnidentifiedImageError:
        raise ImageLoadError(name, "not a recognised image format (corrupt or not an image)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ImageLoadError(name, f"{type(err).__name__}: {err}") from None


def _decode_fully(img: Image.Image, name: str) -> None:
    """Pillow decodes lazily; force it now so truncation surfaces here and not in a worker later."""
    try:
        img.load()
    except Exception as err:  # decoders raise OSError, SyntaxError, zlib.error, struct.error, ...
        raise ImageLoadError(name, f"decoding failed ({type(err).__name__}: {err})") from None


def _apply_exif_orientation(img: Image.Image, name: str) -> Image.Image:
    try:
        return ImageOps.exif_transpose(img)
    except Exception as err:  # a malformed EXIF block should not cost us a good image
        logger.warning("ignoring unreadable EXIF orientation of %s (%s)", name, err)
        return img


# --------------------------------------------------------------------------------------- mode handling


def convert_image(img: Image.Image, mode: str = "RGB") -> Image.Image:
    """Convert a decoded image of any Pillow mode to 8-bit ``"RGB"`` or ``"L"``.

    - alpha (RGBA, LA, PA, premultiplied RGBa/La) and transparent colours (``info["transparency"]`` of
      P, L, RGB images) are composited on white;
    - 16-bit integers (I;16, I;16B, ...) are rescaled by the type's range (65535 -> 255), not clipped;
    - 32-bit integers (I) holding 0..65535 (what 16-bit PNG/TIFF decoders produce) are treated as 16-bit,
      other values are rescaled from the int32 range;
    - floats (F) in [0, 1] are scaled by 255, in [0, 255] kept, anything else min-max normalised;
    - CMYK uses its embedded ICC profile when present; LAB goes through an sRGB transform; other modes
      (YCbCr, HSV, 1, ...) through Pillow's converters.
    """
    if mode not in ("RGB", "L"):
        raise ValueError(f"convert_image supports mode 'RGB' or 'L', got {mode!r}")
    img = _to_8bit(img)
    if img.mode in ("RGBA", "LA"):
        img = _composite_on_white(img)
    return img if img.mode == mode else img.convert(mode)


def _to_8bit(img: Image.Image) -> Image.Image:
    """Return ``img`` as one of L, LA, RGB, RGBA (8 bits per channel), alpha not yet composited."""
    mode = img.mode
    if mode in _INT16_MODES:
        return _int_array_to_l(np.asarray(img), bits=16)
    if mode == "I":
        return _int32_to_l(np.asarray(img))
    if mode == "F":
        return _float_array_to_l(np.asarray(img, dtype=np.float32))
    if mode in _ALPHA_MODES:
        return img.convert("LA" if mode in ("LA", "La") else "RGBA")
    if mode in ("1", "L", "P", "RGB"):
        if "transparency" in img.info:
            return img.convert("LA" if mode in ("1", "L") else "RGBA")
        return img.convert("RGB") if mode == "P" else img.convert("L") if mode == "1" else img
    if mode == "CMYK":
        return _cmyk_to_rgb(img)
    if mode == "LAB":
        return _lab_to_rgb(img)
    return img.convert("RGB")  # YCbCr, HSV, RGBX, BGR;*, ...


def _int_array_to_l(arr: np.ndarray, bits: int) -> Image.Image:
    max_in = (1 << bits) - 1
    scaled = np.rint(arr.astype(np.float64) * (255.0 / max_in))
    return Image.fromarray(scaled.astype(np.uint8))


def _int32_to_l(arr: np.ndarray) -> Image.Image:
    if arr.size and arr.min() >= 0 and arr.max() <= 0xFFFF:
        return _int_array_to_l(arr, bits=16)
    info = np.iinfo(np.int32)
    scaled = np.rint((arr.astype(np.float64) - info.min) * (255.0 / (info.max - info.min)))
    return Image.fromarray(scaled.astype(np.uint8))


def _float_array_to_l(arr: np.ndarray) -> Image.Image:
    arr = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    if lo >= 0.0 and hi <= 1.0:
        scaled = arr * 255.0
    elif lo >= 0.0 and hi <= 255.0:
        scaled = arr
    else:
        scaled = (arr - lo) * (255.0 / (hi - lo))
    return Image.fromarray(np.rint(scaled).clip(0, 255).astype(np.uint8))


def _composite_on_white(img: Image.Image) -> Image.Image:
    white = Image.new("RGBA", img.size, (_WHITE, _WHITE, _WHITE, 255))
    out = Image.alpha_composite(white, img.convert("RGBA"))
    return out.convert("L" if img.mode == "LA" else "RGB")


def _cmyk_to_rgb(img: Image.Image) -> Image.Image:
    icc = img.info.get("icc_profile")
    if icc:
        try:
            from PIL import ImageCms

            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            return ImageCms.profileToProfile(img, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except Exception as err:  # broken profile: fall back to the naive conversion
            logger.debug("CMYK ICC conversion failed (%s); using Pillow's naive conversion", err)
    return img.convert("RGB")


def _lab_to_rgb(img: Image.Image) -> Image.Image:
    from PIL import ImageCms

    transform = ImageCms.buildTransform(
        ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB"
    )
    return ImageCms.applyTransform(img, transform)


def load_image(source: ImageSource, mode: str = "RGB") -> Image.Image:
    """Fully decode ``source`` (path, bytes or PIL image), apply EXIF orientation, convert to ``mode``.

    Raises :class:`ImageLoadError` (a ``ValueError``) naming the file and the reason on one line.
    """
    if mode not in ("RGB", "L"):
        raise ValueError(f"load_image supports mode 'RGB' or 'L', got {mode!r}")
    name = describe_source(source)
    img = open_image(source, name)
    try:
        return convert_image(img, mode)
    except Exception as err:
        raise ImageLoadError(name, f"cannot convert mode {img.mode} to {mode}: {err}") from None


# --------------------------------------------------------------------------------------------- tensors


def center_crop_square(img: Image.Image) -> Image.Image:
    """Crop the largest centred square."""
    w, h = img.size
    if w == h:
        return img
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return img.crop((left, top, left + side, top + side))


def resize_square(img: Image.Image, resolution: int | None, resample: int = Image.Resampling.LANCZOS):
    """Centre-crop to a square, then resize to ``resolution`` (``None``: keep the size, no crop)."""
    if resolution is None:
        return img
    if resolution <= 0:
        raise ValueError(f"resolution must be positive, got {resolution}")
    img = center_crop_square(img)
    if img.size != (resolution, resolution):
        img = img.resize((resolution, resolution), resample=resample)
    return img


def to_tensor(img: Image.Image, resolution: int | None = None) -> torch.Tensor:
    """8-bit PIL image (RGB or L) -> FloatTensor [C,H,W] in [-1, 1], centre-cropped and resized (LANCZOS)."""
    if img.mode not in ("RGB", "L"):
        img = convert_image(img, "RGB")
    img = resize_square(img, resolution)
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    tensor = torch.from_numpy(arr.copy()).permute(2, 0, 1).float()
    return tensor.div_(127.5).sub_(1.0)


def to_pil(tensor: torch.Tensor) -> Image.Image | list[Image.Image]:
    """Inverse of :func:`to_tensor`: [C,H,W] -> PIL image, [N,C,H,W] -> list of PIL images (C in 1, 3, 4)."""
    if tensor.ndim == 4:
        return [_single_to_pil(t) for t in tensor]
    if tensor.ndim == 3:
        return _single_to_pil(tensor)
    raise ValueError(f"to_pil expects [C,H,W] or [N,C,H,W], got shape {tuple(tensor.shape)}")


def _single_to_pil(tensor: torch.Tensor) -> Image.Image:
    modes = {1: "L", 3: "RGB", 4: "RGBA"}  # what fromarray makes of uint8 [H,W], [H,W,3], [H,W,4]
    channels = tensor.shape[0]
    if channels not in modes:
        raise ValueError(f"to_pil expects 1, 3 or 4 channels, got {channels}")
    arr = tensor.detach().float().cpu().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    arr = arr.permute(1, 2, 0).numpy()
    return Image.fromarray(arr[:, :, 0] if channels == 1 else arr)


def load_label_map(source: ImageSource, resolution: int | None = None) -> torch.LongTensor:
    """Segmentation label map -> LongTensor [H,W] of class ids (centre-crop + NEAREST resize).

    Accepts palette (P: the palette indices are the classes), L, 16/32-bit integer and 1-bit PNGs, and RGB
    images whose three channels are equal (grey-coded classes). Colour-coded RGB maps are refused: their
    colour-to-class table is not in the file.
    """
    name = describe_source(source)
    img = open_image(source, name)
    img = _label_image(img, name)
    img = resize_square(img, resolution, resample=Image.Resampling.NEAREST)
    return torch.from_numpy(np.asarray(img).astype(np.int64))


def _label_image(img: Image.Image, name: str) -> Image.Image:
    mode = img.mode
    if mode in ("P", "L", "I", "1") or mode in _INT16_MODES:
        arr = np.asarray(img)
    elif mode in ("PA", "LA"):
        arr = np.asarray(img)[:, :, 0]
    elif mode in ("RGB", "RGBA"):
        rgb = np.asarray(img)[:, :, :3]
        if not ((rgb[:, :, 0] == rgb[:, :, 1]).all() and (rgb[:, :, 1] == rgb[:, :, 2]).all()):
            raise ImageLoadError(
                name, "colour-coded RGB label map; save class ids as an L or palette (P) PNG instead"
            )
        arr = rgb[:, :, 0]
    else:
        raise ImageLoadError(name, f"unsupported label map mode {mode}")
    # mode "I" keeps any int32 class id; NEAREST resizing works on it without changing values
    return Image.fromarray(arr.astype(np.int32))


def load_sketch(source: ImageSource, resolution: int | None = None) -> torch.Tensor:
    """Sketch (dark strokes on white) -> FloatTensor [1,H,W] in [-1, 1], white = 1."""
    return to_tensor(load_image(source, mode="L"), resolution)


# ------------------------------------------------------------------------------------- sample helpers


def choose_caption(captions: Sequence[str]) -> str:
    """One caption at random (Python's ``random``: seeded per DataLoader worker by PyTorch), "" if none."""
    return captions[random.randrange(len(captions))] if captions else ""


def make_sample(image: torch.Tensor, captions: Sequence[str], index: int, **extra: Any) -> dict[str, Any]:
    """The common sample dict; ``extra`` adds optional keys such as ``label`` and ``sketch``."""
    captions = list(captions)
    sample: dict[str, Any] = {
        "image": image,
        "caption": choose_caption(captions),
        "captions": captions,
        "index": int(index),
    }
    sample.update({k: v for k, v in extra.items() if v is not None})
    return sample


def collate_samples(batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``collate_fn`` for the common samples: tensors stacked, ``index`` as a LongTensor, ``caption`` a list
    of str and ``captions`` a list of lists (PyTorch's default collate would transpose the caption lists
    and fails when images have different numbers of captions)."""
    if not batch:
        raise ValueError("collate_samples got an empty batch")
    keys = list(batch[0])
    if any(set(sample) != set(keys) for sample in batch):
        raise ValueError(f"samples in one batch have different keys: {sorted({k for s in batch for k in s})}")
    out: dict[str, Any] = {}
    for key in keys:
        values = [sample[key] for sample in batch]
        if isinstance(values[0], torch.Tensor):
            out[key] = torch.stack(values)
        elif isinstance(values[0], (bool, int, float)):
            out[key] = torch.tensor(values)
        else:
            out[key] = [list(v) if isinstance(v, (list, tuple)) else v for v in values]
    return out


T = TypeVar("T")


class BadImagePolicy:
    """What a data set does when an item's image cannot be loaded.

    ``on_error="raise"`` re-raises the :class:`ImageLoadError`; ``"skip"`` logs one warning per bad file
    (naming it), records it in :attr:`bad_files`, and tries the next item, wrapping around once; when every
    item has failed it raises a ``RuntimeError`` instead of looping forever. The record is per process (each
    DataLoader worker keeps its own); run the data set's ``verify()`` before a long run to see them all.
    """

    def __init__(self, on_error: str = "skip", owner: str = "dataset"):
        if on_error not in ("skip", "raise"):
            raise ValueError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
        self.on_error = on_error
        self.owner = owner
        self.bad_files: list[str] = []
        self.bad_reasons: dict[str, str] = {}
        self._bad_keys: set[str] = set()

    def record(self, err: ImageLoadError, key: str | None = None) -> None:
        """Remember a bad item (``key``: the data set's id for it, default the path); warn once per file."""
        self._bad_keys.add(key if key is not None else err.path)
        if err.path in self.bad_reasons:
            return
        self.bad_files.append(err.path)
        self.bad_reasons[err.path] = err.reason
        logger.warning("%s: skipping unreadable image %s (%s)", self.owner, err.path, err.reason)

    def is_bad(self, key: str) -> bool:
        return key in self._bad_keys or key in self.bad_reasons

    def fetch(self, index: int, length: int, load: Callable[[int], T], key: Callable[[int], str]) -> T:
        """``load(j)`` for the first loadable ``j`` in ``index, index+1, ...`` (mod ``length``)."""
        if not 0 <= index < length:
            raise IndexError(f"{self.owner}: index {index} out of range for {length} items")
        for offset in range(length):
            j = (index + offset) % length
            if self.is_bad(key(j)):
                continue
            try:
                return load(j)
            except ImageLoadError as err:
                if self.on_error == "raise":
                    raise
                self.record(err, key(j))
        first = self.bad_files[0] if self.bad_files else "?"
        raise RuntimeError(
            f"{self.owner}: all {length} images failed to load (e.g. {first}: "
            f"{self.bad_reasons.get(first, '?')}); check the data"
        )
