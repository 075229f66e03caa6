"""Put an edited FFHQ crop back into the photo it was cut from.

:func:`paste_back` warps the edited crop (any size: the generator's 256 or 1024 px) back into the photo with the
inverse of the crop's transform (:class:`tedigan.data.align.FaceAlignment`), blends it through a soft mask over
face and hair, and matches its colour to the photo at the seam. The result has the photo's size and mode, and
every pixel outside the mask is the photo's own, bit for bit.

The mask is an ellipse in normalised crop coordinates (the crop is ``[0, 1]²``). FFHQ's crop puts the eyes at
about ``y = 0.47`` (about ``0.38`` and ``0.62`` across) and the mouth at about ``y = 0.75``; the chin falls near
``y = 0.88`` and the hairline near ``0.15``. The default ellipse, centred at ``(0.5, 0.5)`` with half-axes
``(0.37, 0.42)``, covers the face, the chin and most of the hair, and its edge is feathered like a Gaussian blur
of the hard ellipse: the weight is ``½ erfc(d / (σ√2))`` at signed distance ``d`` from the ellipse, ``σ =
feather`` crop sides, and exactly zero beyond ``3σ`` outside it (and it fades out before the crop's border, so
nothing outside the crop is ever drawn).

An edit confined to a region that reaches past the ellipse (a hair colour edit: long hair, a bun) hands that
region's soft mask in crop coordinates as ``region``: the paste mask is then the larger of the two at each pixel,
so the whole edited region goes back into the photo, not only its part inside the ellipse.

Colour: the GAN's reconstruction drifts in tone. In a ring just inside the mask's edge the mean (and, with
``"mean_std"``, the standard deviation) of each channel of the edited crop is matched to the photo's. Passing the
unedited reconstruction as ``color_reference`` measures the drift on it instead and applies that correction to
the edit, so an intended change of colour (darker skin, blond hair) is not matched away.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from PIL import Image

from tedigan.data.align import Face, FaceAlignment, _check_size, upright

__all__ = ["crop_mask", "face_mask", "paste_back", "paste_back_all"]

#: the default mask ellipse in normalised crop coordinates: centre and half-axes (x, y)
MASK_CENTER = (0.5, 0.5)
MASK_AXES = (0.37, 0.42)
#: the default feather: the Gaussian's sigma as a fraction of the crop side
FEATHER = 0.025
#: the default width of the colour-matching ring inside the mask's edge, as a fraction of the crop side
RING = 0.06

_NATIVE = ("L", "LA", "RGB", "RGBA")
_UNSUPPORTED = ("I", "F", "I;16", "I;16L", "I;16B", "I;16N")
_PAD = 4  # crop pixels reflected around the crop before warping (the bicubic kernel's reach, and then some)


def _erfc(x: np.ndarray) -> np.ndarray:
    """Complementary error function (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7)."""
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    e = poly * np.exp(-z * z)
    return np.where(x >= 0, e, 2.0 - e)


def _ellipse_distance(t: np.ndarray, center, axes) -> np.ndarray:
    """Signed distance (in crop sides; negative inside) of normalised crop points ``[..., 2]`` from the ellipse,
    to first order (``f / |∇f|`` for ``f = (x/a)² + (y/b)² - 1``): exact on the ellipse, where the feather is."""
    a, b = axes
    dx, dy = t[..., 0] - center[0], t[..., 1] - center[1]
    f = (dx / a) ** 2 + (dy / b) ** 2 - 1.0
    g = 2.0 * np.hypot(dx / a**2, dy / b**2)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = f / g
    return np.where(g > 0, d, -np.inf)


def _mask_params(center, axes, scale, feather):
    axes = (axes[0] * scale, axes[1] * scale)
    if min(axes) <= 0 or feather <= 0:
        raise ValueError(f"mask axes and feather must be positive, got axes {axes}, feather {feather}")
    return tuple(center), axes, float(feather)


def face_mask(
    t: np.ndarray,
    *,
    center: Sequence[float] = MASK_CENTER,
    axes: Sequence[float] = MASK_AXES,
    scale: float = 1.0,
    feather: float = FEATHER,
) -> np.ndarray:
    """The paste mask in ``[0, 1]`` at normalised crop points ``t`` ``[..., 2]`` (the crop is ``[0, 1]²``)."""
    return _mask_and_distance(np.asarray(t, dtype=np.float64), *_mask_params(center, axes, scale, feather))[0]


def _mask_and_distance(t, center, axes, feather):
    d = _ellipse_distance(t, center, axes)
    m = 0.5 * _erfc(d / (feather * np.sqrt(2.0)))
    m[d > 3.0 * feather] = 0.0
    return m * _border_fade(t, feather), d  # only a mask grown past the crop reaches its border


def _border_fade(t: np.ndarray, feather: float) -> np.ndarray:
    """1 inside the crop, falling smoothly to 0 over ``2 feather`` before its border (nothing outside is drawn)."""
    edge = np.minimum(np.minimum(t[..., 0], 1 - t[..., 0]), np.minimum(t[..., 1], 1 - t[..., 1]))
    s = np.clip(edge / (2.0 * feather), 0.0, 1.0)
    return s * s * (3.0 - 2.0 * s)


def crop_mask(size: int, **mask_kw) -> Image.Image:
    """The paste mask over a ``size`` px crop as an ``"L"`` image (for looking at; keywords as
    :func:`face_mask`)."""
    c = (np.arange(size) + 0.5) / size
    t = np.stack(np.meshgrid(c, c), axis=-1)
    return Image.fromarray(np.rint(face_mask(t, **mask_kw) * 255).astype(np.uint8))


def _as_image(img, mode: str) -> Image.Image:
    if isinstance(img, np.ndarray):
        arr = img
        if arr.dtype != np.uint8:
            arr = np.clip(np.rint(arr * (255.0 if arr.max() <= 1.0 else 1.0)), 0, 255).astype(np.uint8)
        img = Image.fromarray(arr)
    if not isinstance(img, Image.Image):
        raise TypeError(f"expected a PIL image or a numpy array, got {type(img).__name__}")
    if img.width != img.height:
        raise ValueError(f"the edited crop must be square, got {img.width}x{img.height}")
    return img.convert(mode)


def _warp(crop: Image.Image, alignment: FaceAlignment, n: int, region) -> np.ndarray:
    """``crop`` resampled onto the photo pixels of ``region`` ``(x0, y0, x1, y1)`` -> float ``[h, w, c]``."""
    if crop.width != n:  # resize to the face's size first (Lanczos), so the warp is close to 1:1
        crop = crop.resize((n, n), Image.Resampling.LANCZOS)
    arr = np.asarray(crop)
    pad = ((_PAD, _PAD), (_PAD, _PAD)) + (((0, 0),) if arr.ndim == 3 else ())
    padded = Image.fromarray(np.pad(arr, pad, mode="reflect" if n > _PAD else "edge"))
    x0, y0, x1, y1 = region
    # output pixel i has its centre at continuous X = i + 0.5, i.e. photo point x0 + i = x0 + X - 0.5; its crop
    # position, normalised, is inv(axes) (p - quad[0]), and continuous input coordinates are n times that
    inv = np.linalg.inv(alignment._axes()) * n
    off = inv @ (np.array([x0 - 0.5, y0 - 0.5]) - alignment.quad[0]) + _PAD
    coeffs = (inv[0, 0], inv[0, 1], off[0], inv[1, 0], inv[1, 1], off[1])
    out = padded.transform((x1 - x0, y1 - y0), Image.Transform.AFFINE, coeffs, Image.Resampling.BICUBIC)
    out = np.asarray(out, dtype=np.float64)
    return out if out.ndim == 3 else out[..., None]


def _region_mask(region, t: np.ndarray, alignment: FaceAlignment, n: int, box, feather: float) -> np.ndarray:
    """A crop-space soft mask warped onto the photo pixels of ``box``, zero outside the crop and faded out
    before its border (as the ellipse)."""
    if isinstance(region, np.ndarray) and region.dtype != np.uint8:
        region = np.clip(np.rint(np.asarray(region, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)
    r = _warp(_as_image(region, "L"), alignment, n, box)[..., 0] / 255.0
    return np.clip(r, 0.0, 1.0) * _border_fade(t, feather)


def _match_colour(src, ref, photo, ring, how: str):
    """Per-channel gain and offset taking ``ref``'s statistics in ``ring`` to the photo's, applied to ``src``."""
    w = ring.astype(np.float64)
    total = w.sum()
    if total < 32:  # too little of the ring inside the photo to measure anything
        return src
    w = w[..., None] / total
    mu_p, mu_r = (photo * w).sum((0, 1)), (ref * w).sum((0, 1))
    gain = np.ones_like(mu_p)
    if how == "mean_std":
        sd_p = np.sqrt(((photo - mu_p) ** 2 * w).sum((0, 1)))
        sd_r = np.sqrt(((ref - mu_r) ** 2 * w).sum((0, 1)))
        gain = np.clip(sd_p / np.maximum(sd_r, 1e-3), 0.5, 2.0)
    return (src - mu_r) * gain + mu_p


def paste_back(
    photo: Image.Image,
    alignment: FaceAlignment | Face,
    edited: Image.Image | np.ndarray,
    *,
    mask_scale: float = 1.0,
    mask_center: Sequence[float] = MASK_CENTER,
    mask_axes: Sequence[float] = MASK_AXES,
    feather: float = FEATHER,
    color_match: str | None = "mean_std",
    color_reference: Image.Image | np.ndarray | None = None,
    ring: float = RING,
    region: Image.Image | np.ndarray | None = None,
) -> Image.Image:
    """``photo`` with the edited FFHQ crop ``edited`` of the face ``alignment`` put back in its place.

    - ``photo``: the photo the face was found in (any size; modes L, LA, RGB, RGBA natively, others through
      RGB; 16/32-bit and float modes are refused). Its EXIF orientation is applied, as when it was aligned:
      the result is upright and carries the photo's ``info`` (ICC profile, EXIF without the orientation).
    - ``edited``: the edited crop, square, any size (PIL image or ``uint8`` / ``[0, 1]`` float array). It is
      resized to the face's size in the photo with Lanczos, then warped with bicubic sampling: hand it the
      1024 px crop when the face is larger than 256 px (:meth:`FaceAlignment.crop_size_for`).
    - mask: the ellipse ``mask_center`` / ``mask_axes`` (normalised crop coordinates) grown by ``mask_scale``,
      feathered with a Gaussian of sigma ``feather`` crop sides.
    - ``color_match``: ``"mean_std"`` (default), ``"mean"`` or ``None``; measured in a ring ``ring`` crop sides
      wide inside the mask's edge, on ``color_reference`` (the unedited reconstruction) when given, else on
      ``edited``.
    - ``region``: an optional soft mask over the crop (square ``"L"`` image, ``uint8`` or ``[0, 1]`` float array,
      any size) of the region a local edit changed; the paste mask is the larger of it and the ellipse. It fades
      out before the crop's border like the ellipse.

    Returns a new image of the photo's size and mode; outside the mask it equals the photo bit for bit.
    """
    alignment = alignment.alignment if isinstance(alignment, Face) else alignment
    if color_match not in (None, "mean", "mean_std"):
        raise ValueError(f"color_match must be 'mean_std', 'mean' or None, got {color_match!r}")
    photo = upright(photo)
    _check_size(photo, alignment)
    if photo.mode in _UNSUPPORTED:
        raise ValueError(f"paste_back works on 8-bit photos; convert this {photo.mode} photo first")
    center, axes, feather = _mask_params(mask_center, mask_axes, mask_scale, feather)

    base = photo if photo.mode in _NATIVE else photo.convert("RGB")
    colour_mode = "L" if base.mode in ("L", "LA") else "RGB"
    arr = np.asarray(base)
    arr = arr[..., None] if arr.ndim == 2 else arr
    n_colour = 1 if colour_mode == "L" else 3

    # the photo region the mask can reach: the mask's support in the crop (all of it with a region), mapped to
    # the photo, clipped
    lo = np.clip(np.array(center) - np.array(axes) - 3 * feather, 0, 1)
    hi = np.clip(np.array(center) + np.array(axes) + 3 * feather, 0, 1)
    if region is not None:
        lo, hi = np.zeros(2), np.ones(2)
    corners = np.array([[lo[0], lo[1]], [lo[0], hi[1]], [hi[0], hi[1]], [hi[0], lo[1]]])
    pts = alignment.quad[0] + corners @ alignment._axes().T
    x0, y0 = np.maximum(np.floor(pts.min(axis=0)).astype(int) - 1, 0)
    x1, y1 = np.minimum(np.ceil(pts.max(axis=0)).astype(int) + 2, photo.size)
    if x1 <= x0 or y1 <= y0:
        return _finish(photo, photo.copy())

    xs, ys = np.meshgrid(np.arange(x0, x1, dtype=np.float64), np.arange(y0, y1, dtype=np.float64))
    t = (np.stack([xs, ys], axis=-1) - alignment.quad[0]) @ np.linalg.inv(alignment._axes()).T
    m, d = _mask_and_distance(t, center, axes, feather)
    n = max(1, int(round(alignment.side)))
    box = (x0, y0, x1, y1)
    if region is not None:
        m = np.maximum(m, _region_mask(region, t, alignment, n, box, feather))
    if not (m > 0).any():
        return _finish(photo, photo.copy())

    warped = _warp(_as_image(edited, colour_mode), alignment, n, box)
    here = arr[y0:y1, x0:x1, :n_colour].astype(np.float64)
    if color_match is not None:
        ref = (
            warped
            if color_reference is None
            else _warp(_as_image(color_reference, colour_mode), alignment, n, box)
        )
        ring_px = (d <= 0) & (d >= -ring) & (m > 0)
        warped = _match_colour(warped, ref, here, ring_px, color_match)

    blended = np.clip(np.rint(here + (warped - here) * m[..., None]), 0, 255).astype(np.uint8)
    out = arr.copy()
    inside = m > 0
    out[y0:y1, x0:x1, :n_colour][inside] = blended[inside]
    result = Image.fromarray(out[..., 0] if out.shape[-1] == 1 else out, base.mode)
    if base is not photo:  # back to the photo's mode; outside the mask the photo's own pixels, exactly
        result = (
            result.quantize(palette=photo, dither=Image.Dither.NONE)
            if photo.mode == "P"
            else result.convert(photo.mode)
        )
        keep = np.zeros(photo.size[::-1], dtype=np.uint8)
        keep[y0:y1, x0:x1][inside] = 255
        result = Image.composite(result, photo, Image.fromarray(keep))
    return _finish(photo, result)


def _finish(photo: Image.Image, result: Image.Image) -> Image.Image:
    result.info = dict(photo.info)
    return result


def paste_back_all(photo: Image.Image, edits: Iterable[tuple], **kw) -> Image.Image:
    """Paste several edited faces into one photo, one after another (keywords as :func:`paste_back`).
    ``edits``: ``(alignment or face, edited crop)`` pairs, e.g. every face of :func:`detect_faces`, optionally
    followed by the face's ``color_reference`` (its unedited reconstruction) and its edit's ``region`` mask
    (either may be None)."""
    out = upright(photo)
    for alignment, edited, *extra in edits:
        if len(extra) > 2:
            raise ValueError(
                "paste_back_all takes (alignment, edited[, color_reference[, region]]) tuples, "
                f"got one of {2 + len(extra)}"
            )
        face_kw = dict(kw)
        for key, value in zip(("color_reference", "region"), extra, strict=False):
            if value is not None:
                face_kw[key] = value
        out = paste_back(out, alignment, edited, **face_kw)
    return out
