"""SVG composition of a record from python_avatars' parts, rasterisation, label maps and sketches.

Part of :mod:`tedigan.data.avatars` (the package docstring explains the data set).
"""

from __future__ import annotations

import copy
import functools
import math
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from tedigan.data.avatars.attributes import CROP, HAIR_COLORS, PART_CLASSES, PART_COLORS, SKIN_TONES

# --------------------------------------------------------------------------------------------------------
# SVG composition
# --------------------------------------------------------------------------------------------------------

_SVG_NS = "http://www.w3.org/2000/svg"
_XLINK_NS = "http://www.w3.org/1999/xlink"
ET.register_namespace("", _SVG_NS)
ET.register_namespace("xlink", _XLINK_NS)
_G = f"{{{_SVG_NS}}}g"
_MASK = f"{{{_SVG_NS}}}mask"
_PART = "data-part"


def _parts_dir() -> Path:
    import python_avatars

    return Path(python_avatars.__file__).parent / "avatar_parts"


@functools.cache
def _load_cached(folder: str, stem: str) -> ET.Element:
    path = _parts_dir() / folder / f"{stem}.svg"
    root = ET.parse(path).getroot()
    # Prefix ids (and their references) with folder+stem so parts never collide when composed.
    prefix = f"{folder.replace('/', '-')}-{stem}_"
    href = f"{{{_XLINK_NS}}}href"
    for el in root.iter():
        if el.get("id") is not None:
            el.set("id", prefix + el.get("id"))
        for attr in ("clip-path", "filter", "mask", "fill"):
            v = el.get(attr)
            if v and v.startswith("url(#"):
                el.set(attr, f"url(#{prefix}{v[5:]}")
        v = el.get(href)
        if v and v.startswith("#"):
            el.set(href, "#" + prefix + v[1:])
    return root


def _load(folder: str, stem: str) -> ET.Element:
    return copy.deepcopy(_load_cached(folder, stem))


def _find(root: ET.Element, local_id: str) -> ET.Element | None:
    for el in root.iter():
        i = el.get("id")
        if i is not None and i.endswith("_" + local_id):
            return el
    return None


def _append_children(dst: ET.Element, src: ET.Element) -> None:
    for child in list(src):
        dst.append(child)


def _wrap(parent: ET.Element, part: str, transform: str | None = None) -> ET.Element:
    attrs = {_PART: part}
    if transform:
        attrs["transform"] = transform
    return ET.SubElement(parent, _G, attrs)


def compose_svg(record: Mapping[str, Any], crop: tuple[float, float, float] = CROP) -> ET.Element:
    """Compose the record's SVG (an ElementTree root); each part's subtree carries a ``data-part`` tag."""
    root = _load("styles", "transparent")
    x, y, s = crop
    root.set("viewBox", f"{x:g} {y:g} {s:g} {s:g}")
    root.set("width", f"{s:g}")
    root.set("height", f"{s:g}")
    main = next(el for el in root if el.tag == _G)
    bg = ET.Element(f"{{{_SVG_NS}}}rect", {"x": "-500", "y": "-500", "width": "2000", "height": "2000"})
    bg.set("fill", record["background_color"])
    bg.set(_PART, "background")
    main.insert(0, bg)

    # locate the template's anchors before any part is added (part files reuse names like "Nose")
    anchors = {
        k: _find(root, k)
        for k in ("Skin-Color", "Body", "Clothing", "Mouth", "Nose", "Eyes", "Eyebrow", "Top")
    }
    anchors["Skin-Color"].set("fill", SKIN_TONES[record["skin_tone"]])
    anchors["Body"].set(_PART, "skin")

    clothing = anchors["Clothing"]
    clothing.set(_PART, "clothes")
    clothes = _load("clothes", record["clothing"])
    fabric = _find(clothes, "Fabric-Color")
    if fabric is not None:
        fabric.set("fill", record["clothing_color"])
    if record["clothing"] == "graphic_shirt" and record.get("clothing_graphic"):
        graphic = _load("clothes/graphic", record["clothing_graphic"])
        words = "-".join(w.capitalize() for w in record["clothing_graphic"].split("_"))
        inner = _find(graphic, "Clothing/Graphic/" + words)
        if inner is not None:  # the offset python_avatars applies to graphics (its issue #2)
            inner.set("transform", "translate(77.000000, 58.000000)")
        _append_children(_find(clothes, "Graphic"), graphic)
    _append_children(clothing, clothes)

    for local_id, folder, key, part in (
        ("Mouth", "mouth", "mouth_type", "mouth"),
        ("Nose", "nose", "nose", "nose"),
        ("Eyes", "eyes", "eyes", "eyes"),
        ("Eyebrow", "eyebrows", "eyebrows", "eyebrows"),
    ):
        anchors[local_id].set(_PART, part)
        _append_children(anchors[local_id], _load(folder, record[key]))

    # Top, in z-order: facial hair, hair, hat, eyewear (python_avatars nests the first and last inside the
    # hair/hat file; drawing the hat over the hair keeps long hair visible below it).
    top = anchors["Top"]
    hair_hex = HAIR_COLORS.get(record["hair_color"], HAIR_COLORS["black"])
    if record["facial_hair_type"]:
        fh = _load("facial_hair", record["facial_hair_type"])
        color = _find(fh, "Facial-Hair-Color")
        if color is not None:
            color.set("fill", HAIR_COLORS[record["facial_hair_color"]])
        _append_children(_wrap(top, "facial_hair", "translate(49,72)"), fh)
    if record["hair_type"] != "no_hair":
        hair = _load("top/hair", record["hair_type"])
        color = _find(hair, "Hair-Color")
        if color is not None:
            color.set("fill", hair_hex)
        _append_children(_wrap(top, "hair"), hair)
    if record["hat_type"]:
        hat = _load("top/hat", record["hat_type"])
        fabric = _find(hat, "Fabric-Color")
        if fabric is not None:
            fabric.set("fill", record["hat_color"])
        _append_children(_wrap(top, "hat"), hat)
    if record["eyewear_type"]:
        _append_children(
            _wrap(top, "eyewear", "translate(62,85)"), _load("accessories", record["eyewear_type"])
        )
    return root


def _class_rgb(k: int) -> tuple[int, int, int]:
    """Flat colour coding class ``k`` in the label rasterisation (distinct and far apart)."""
    return (20 + 20 * k, 255 - 20 * k, (97 * k) % 256)


_CLASS_HEX = [f"#{r:02X}{g:02X}{b:02X}" for r, g, b in (_class_rgb(k) for k in range(len(PART_CLASSES)))]
_CLASS_CODE = {
    (r << 16) | (g << 8) | b: k for k, (r, g, b) in enumerate(_class_rgb(k) for k in range(len(PART_CLASSES)))
}


def _to_label_svg(root: ET.Element) -> None:
    """In place: recolour every part's subtree to its flat class colour with anti-aliasing off."""
    root.set("shape-rendering", "crispEdges")

    def visit(el: ET.Element, hex_color: str | None) -> None:
        if el.tag == _MASK:  # masks act through alpha only; keep them as drawn
            return
        part = el.get(_PART)
        if part is not None:
            hex_color = _CLASS_HEX[PART_CLASSES.index(part)]
            el.set("fill", hex_color)
        if hex_color is not None:
            for attr in ("fill", "stroke"):
                v = el.get(attr)
                if v is not None and v != "none":
                    el.set(attr, hex_color)
            for attr in ("opacity", "fill-opacity", "stroke-opacity"):
                if el.get(attr) is not None:
                    el.set(attr, "1")
            for attr in ("filter", "style"):
                el.attrib.pop(attr, None)
        for child in el:
            visit(child, hex_color)

    visit(root, None)


def render_px_for(resolution: int) -> int:
    """Rasterisation size used for ``resolution``: an integer multiple, >= 256 and >= 2x."""
    return resolution * max(2, math.ceil(256 / resolution))


def _rasterise(root: ET.Element, size: int) -> np.ndarray:
    import cairosvg

    png = cairosvg.svg2png(bytestring=ET.tostring(root), output_width=size, output_height=size)
    import io

    im = Image.open(io.BytesIO(png))
    im.load()
    arr = np.asarray(im.convert("RGBA"))
    return arr


@dataclass
class RenderedAvatar:
    """One rendered sample: ``image`` (PIL RGB), ``label`` (uint8 [H,W] of PART_CLASSES indices),
    ``sketch`` (PIL 'L', dark lines on white)."""

    image: Image.Image
    label: np.ndarray
    sketch: Image.Image

    def label_image(self) -> Image.Image:
        """The label map coloured with :data:`PART_COLORS` (for viewing)."""
        return colorize_label(self.label)


def colorize_label(label: np.ndarray) -> Image.Image:
    palette = np.asarray(PART_COLORS, dtype=np.uint8)
    return Image.fromarray(palette[np.asarray(label, dtype=np.int64)], "RGB")


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    out = mask.copy()
    h, w = mask.shape
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dx == 0 and dy == 0:
                continue
            ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
            xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
            out[yd, xd] |= mask[ys, xs]
    return out


def _sketch(label_hr: np.ndarray, rgb_hr: np.ndarray, factor: int, resolution: int) -> Image.Image:
    # part boundaries
    edges = np.zeros(label_hr.shape, dtype=bool)
    edges[:, 1:] |= label_hr[:, 1:] != label_hr[:, :-1]
    edges[1:, :] |= label_hr[1:, :] != label_hr[:-1, :]
    # strong luminance edges inside parts (teeth, pupils, lenses, hair strands)
    lum = rgb_hr[..., :3].astype(np.float32) @ np.asarray([0.299, 0.587, 0.114], dtype=np.float32) / 255.0
    gx = np.zeros_like(lum)
    gy = np.zeros_like(lum)
    gx[:, 1:] = np.abs(lum[:, 1:] - lum[:, :-1])
    gy[1:, :] = np.abs(lum[1:, :] - lum[:-1, :])
    edges |= np.maximum(gx, gy) > 0.12
    edges = _dilate(edges, max(1, factor // 3))
    # area-reduce the line mask, then darken: ~1 output pixel wide anti-aliased lines
    cover = edges.reshape(resolution, factor, resolution, factor).mean(axis=(1, 3))
    ink = np.clip(cover * 2.0, 0.0, 1.0)
    return Image.fromarray(np.round(255.0 * (1.0 - ink)).astype(np.uint8), "L")


def _decode_label(lab: np.ndarray) -> np.ndarray:
    """Class index per pixel of the flat-coloured label rasterisation.

    Crisp edges leave most pixels exactly on a class colour; masks are still composited with smooth edges
    by cairo, so ~1-2% of pixels (on part boundaries) are blends. Those take the label of an adjacent
    exact pixel whose class colour is nearest to theirs (never a third class, as nearest-colour would).
    """
    code = (lab[..., 0].astype(np.int32) << 16) | (lab[..., 1].astype(np.int32) << 8) | lab[..., 2]
    label = np.zeros(code.shape, dtype=np.uint8)
    known = np.zeros(code.shape, dtype=bool)
    for c, k in _CLASS_CODE.items():
        m = code == c
        label[m] = k
        known |= m
    if known.all():
        return label
    pal = np.asarray([_class_rgb(k) for k in range(len(PART_CLASSES))], dtype=np.float32)
    h, w = code.shape
    for _ in range(8):  # blends are 1-2 px wide; a few passes reach every one of them
        ys, xs = np.nonzero(~known)
        if ys.size == 0:
            break
        rgb = lab[ys, xs, :3].astype(np.float32)
        best = np.full(ys.shape, np.inf, dtype=np.float32)
        best_label = np.zeros(ys.shape, dtype=np.uint8)
        for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0), (1, 1), (-1, -1), (1, -1), (-1, 1)):
            ny, nx = np.clip(ys + dy, 0, h - 1), np.clip(xs + dx, 0, w - 1)
            nb_label = label[ny, nx]
            dist = ((rgb - pal[nb_label]) ** 2).sum(-1)
            take = known[ny, nx] & (dist < best)
            best[take] = dist[take]
            best_label[take] = nb_label[take]
        fill = np.isfinite(best)
        if not fill.any():
            break
        label[ys[fill], xs[fill]] = best_label[fill]
        known[ys[fill], xs[fill]] = True
    if not known.all():  # isolated blends with no exact neighbour at all: nearest class colour
        px = lab[~known][:, :3].astype(np.float32)
        label[~known] = np.argmin(((px[:, None, :] - pal[None]) ** 2).sum(-1), axis=1).astype(np.uint8)
    return label


def render(record: Mapping[str, Any], resolution: int = 64) -> RenderedAvatar:
    """Render a record to an aligned ``resolution`` px image, its part label map and its sketch."""
    if resolution < 8:
        raise ValueError(f"resolution must be >= 8, got {resolution}")
    size = render_px_for(resolution)
    factor = size // resolution
    root = compose_svg(record)
    rgba = _rasterise(root, size)
    image = Image.fromarray(np.ascontiguousarray(rgba[..., :3]), "RGB")
    if size != resolution:
        image = image.resize((resolution, resolution), Image.Resampling.LANCZOS)

    _to_label_svg(root)
    lab = _rasterise(root, size)
    label_hr = _decode_label(lab)
    # NEAREST: sample the centre of every factor x factor block
    off = factor // 2
    label = np.ascontiguousarray(label_hr[off::factor, off::factor])
    sketch = _sketch(label_hr, rgba, factor, resolution)
    return RenderedAvatar(image=image, label=label, sketch=sketch)
