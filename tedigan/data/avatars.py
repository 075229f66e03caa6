"""Procedural avatar faces: the project's default data set, with ground truth for every attribute.

Aligned cartoon faces are composed from the SVG parts shipped with ``python_avatars`` (MIT) and rasterised
with ``cairosvg``. Every choice that determines the pixels is kept in a plain JSON-able *record*, so an
edit's true result is known: ``render(with_attribute(record, "hat", "beanie"))`` is what a perfect
text-guided editor (TediGAN, Xia et al., CVPR 2021) should produce for "add a beanie". Each sample also has
10 captions from a small probabilistic grammar (as Multi-Modal-CelebA-HQ has 10 per image), a segmentation
label map over :data:`PART_CLASSES` and a line sketch, i.e. every modality TediGAN conditions on.

Attribute space (:data:`ATTRIBUTES`) and why
--------------------------------------------
The classified attributes feed an attribute classifier that must be near perfect at 64 px, so every value
is a group of SVG templates that is visibly distinct at that size; oddities (vomit mouth, eye patch, heart
eyes, astronaut helmet, flower crowns, fixed-colour hair templates) are left out.

* ``hair_color`` has an explicit ``"none"`` value used exactly when ``hair_style == "bald"``: a bald head
  shows no hair colour, and an explicit value keeps the label learnable instead of asking a classifier to
  guess an invisible colour. The record still keeps the person's colour in ``facial_hair_color`` (beards
  keep it, and it comes back when hair grows back in :func:`with_attribute`).
* ``python_avatars`` draws hats *instead of* hair. Here the hat is drawn over the hair, which keeps long,
  curly and afro hair visible below it, but short hair, a bun or a bald head disappear under any hat. Hats
  are therefore only sampled with ``hair_style in HAT_HAIR_STYLES`` (long, curly, afro): hair style and
  colour stay visible on every image. Hijabs/turbans would hide all hair and are not used.
* ``skin_tone`` uses four well separated tones; ``facial_hair`` uses the hair colour (natural look).

Non-classified record fields vary for diversity: eyes, eyebrows, nose, clothing type/colour/graphic,
hat colour, background colour, and the concrete template inside each attribute group.

Rendering
---------
The composed SVG's viewBox is the fixed face-centred crop :data:`CROP` (user units of the 264x280
avataaars canvas; it is the (48,16,208,176) crop of a 256 px render, widened a little so hats and hair tops
are not cut). It is rasterised at ``render_px = resolution * ceil(256 / resolution)`` (>= 256, at least 2x
supersampling; cairosvg clips masks when drawing below 1 px per user unit) and reduced with LANCZOS.
The label map comes from a second rasterisation of the same SVG in which each part's subtree is recoloured
to a flat class colour with anti-aliasing off (``shape-rendering="crispEdges"``), opacities set to 1 and
filters dropped, so parts are composited in their true z-order (hair over skin, hat over hair, glasses over
the hat); it is decoded by exact colour lookup (the ~1-2% of pixels that cairo still blends at mask edges
take the class of an adjacent exact pixel) and reduced with NEAREST. The sketch draws dark lines on part
boundaries plus strong luminance edges (teeth, pupils, hair strands) at ``render_px``, thickened and
area-reduced, so lines stay about one output pixel wide at any resolution.

Determinism: sample ``i`` of a data set depends only on ``(seed, i)`` (string-seeded :class:`random.Random`,
stable across Python versions); the same record always renders to identical pixels on a given
cairo/cairosvg build.
"""

from __future__ import annotations

import argparse
import copy
import functools
import hashlib
import json
import math
import multiprocessing as mp
import os
import random
import re
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from tedigan.data.vocabulary import NEGATORS, Vocabulary
from tedigan.fs import atomic_write_text

# --------------------------------------------------------------------------------------------------------
# Attribute space
# --------------------------------------------------------------------------------------------------------

ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "hair_color": ("black", "brown", "blond", "red", "gray", "pink", "none"),
    "hair_style": ("bald", "short", "long", "curly", "afro", "bun"),
    "eyewear": ("none", "glasses", "sunglasses"),
    "hat": ("none", "beanie", "winter_hat", "fedora"),
    "mouth": ("smiling", "neutral", "sad", "open"),
    "facial_hair": ("none", "beard", "moustache"),
    "skin_tone": ("light", "tan", "brown", "dark"),
}

PART_CLASSES: tuple[str, ...] = (
    "background",
    "skin",
    "hair",
    "eyes",
    "eyebrows",
    "mouth",
    "nose",
    "eyewear",
    "hat",
    "facial_hair",
    "clothes",
)

#: Display colours for label maps (previews); index = PART_CLASSES index.
PART_COLORS: tuple[tuple[int, int, int], ...] = (
    (40, 40, 40),  # background
    (255, 204, 153),  # skin
    (140, 70, 20),  # hair
    (0, 170, 255),  # eyes
    (90, 0, 160),  # eyebrows
    (230, 0, 60),  # mouth
    (255, 140, 0),  # nose
    (0, 220, 120),  # eyewear
    (250, 250, 0),  # hat
    (120, 120, 255),  # facial_hair
    (200, 200, 200),  # clothes
)

#: Hair styles that stay visible below a hat (hats are only combined with these).
HAT_HAIR_STYLES: tuple[str, ...] = ("long", "curly", "afro")

HAIR_COLORS: dict[str, str] = {
    "black": "#2C1B18",
    "brown": "#724133",
    "blond": "#D6B370",  # python_avatars BLONDE_GOLDEN (plain BLONDE reads as light brown)
    "red": "#C93305",
    "gray": "#E8E1E1",  # SILVER_GRAY
    "pink": "#F59797",  # PASTEL_PINK
}
SKIN_TONES: dict[str, str] = {"light": "#FFDBB4", "tan": "#D08B5B", "brown": "#AE5D29", "dark": "#614335"}

# Template groups: attribute value -> python_avatars SVG file stems.
HAIR_TEMPLATES: dict[str, tuple[str, ...]] = {
    "bald": ("no_hair",),
    "short": ("short_flat", "short_round", "short_waved", "caesar", "caesar_side_part"),
    "long": ("straight_1", "straight_strand", "long_not_too_long"),
    "curly": ("curly", "curvy"),  # curly_2 has a large dark overlay that muddies the hair colour
    "afro": ("fro",),
    "bun": ("bun",),
}
EYEWEAR_TEMPLATES: dict[str, tuple[str, ...]] = {
    "none": ("",),
    "glasses": ("prescription_02", "round"),  # prescription_01's light frames vanish on light skin
    "sunglasses": ("sunglasses", "wayfarers", "sunglasses_2", "wayfarers_2", "kurt"),
}
HAT_TEMPLATES: dict[str, tuple[str, ...]] = {
    "none": ("",),
    "beanie": ("winter_hat_3",),
    "winter_hat": ("winter_hat_1", "winter_hat_2"),
    "fedora": ("hat",),
}
MOUTH_TEMPLATES: dict[str, tuple[str, ...]] = {
    "smiling": ("smile", "default", "big_smile"),
    "neutral": ("serious",),
    "sad": ("sad",),
    "open": ("disbelief", "scream_open"),
}
FACIAL_HAIR_TEMPLATES: dict[str, tuple[str, ...]] = {
    "none": ("",),
    "beard": ("beard_light", "beard_medium", "beard_magestic"),
    "moustache": ("moustache_fancy", "moustache_magnum"),
}
_TEMPLATES: dict[str, dict[str, tuple[str, ...]]] = {
    "hair_style": HAIR_TEMPLATES,
    "eyewear": EYEWEAR_TEMPLATES,
    "hat": HAT_TEMPLATES,
    "mouth": MOUTH_TEMPLATES,
    "facial_hair": FACIAL_HAIR_TEMPLATES,
}
# record key holding the concrete template of each templated attribute
_TEMPLATE_KEY = {
    "hair_style": "hair_type",
    "eyewear": "eyewear_type",
    "hat": "hat_type",
    "mouth": "mouth_type",
    "facial_hair": "facial_hair_type",
}

EYES = ("default", "happy", "squint", "side", "surprised", "closed", "wink")
EYEBROWS = (
    "default",
    "default_natural",
    "flat_natural",
    "raised_excited",
    "raised_excited_natural",
    "sad_concerned",
    "sad_concerned_natural",
    "up_down",
    "up_down_natural",
    "angry",
    "angry_natural",
    "frown_natural",
)
NOSES = ("default", "small", "wide")
CLOTHING = (
    "blazer_shirt",
    "blazer_sweater",
    "collar_sweater",
    "graphic_shirt",
    "hoodie",
    "overall",
    "shirt_crew_neck",
    "shirt_scoop_neck",
    "shirt_v_neck",
)
CLOTHING_GRAPHICS = ("bat", "bear", "deer", "diamond", "pizza", "skull", "skull_outline")  # no text/fonts
# Clothing, hat and background palettes avoid hair colours so they are never mistaken for hair.
CLOTHING_COLORS = (
    "#262E33",
    "#65C9FF",
    "#5199E4",
    "#25557C",
    "#929598",
    "#3C4F5C",
    "#B1E2FF",
    "#A7FFC4",
    "#FFFFFF",
    "#3C8D5A",
    "#7B4FA0",
)
HAT_COLORS = ("#25557C", "#5199E4", "#3C8D5A", "#7B4FA0", "#2A9D8F", "#3C4F5C")
BACKGROUND_COLORS = ("#65C9FF", "#B1E2FF", "#A7FFC4", "#C9B8FF", "#9AD0C2", "#8EA7E9")

#: sampling weights of the classified attributes (hair_color is uniform over real colours unless bald)
_WEIGHTS: dict[str, dict[str, float]] = {
    "hair_style": {"bald": 0.10, "short": 0.26, "long": 0.24, "curly": 0.16, "afro": 0.10, "bun": 0.14},
    "eyewear": {"none": 0.5, "glasses": 0.25, "sunglasses": 0.25},
    "hat": {"none": 0.55, "beanie": 0.15, "winter_hat": 0.15, "fedora": 0.15},  # only for HAT_HAIR_STYLES
    "mouth": {"smiling": 0.25, "neutral": 0.25, "sad": 0.25, "open": 0.25},
    "facial_hair": {"none": 0.6, "beard": 0.2, "moustache": 0.2},
    "skin_tone": {"light": 0.25, "tan": 0.25, "brown": 0.25, "dark": 0.25},
}

RECORD_VERSION = 1

#: face-centred square crop in avataaars user units: (x, y, size)
CROP: tuple[float, float, float] = (38.0, 10.0, 188.0)

# --------------------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------------------


def _as_rng(rng_or_seed: Any) -> random.Random:
    """``random.Random`` from an int/str seed, a ``random.Random`` (used as is) or a numpy Generator."""
    if isinstance(rng_or_seed, random.Random):
        return rng_or_seed
    if isinstance(rng_or_seed, np.random.Generator):
        return random.Random(int(rng_or_seed.integers(0, 2**63 - 1)))
    if isinstance(rng_or_seed, (int, np.integer, str)):
        return random.Random(f"tedigan-avatars:{rng_or_seed}")
    raise TypeError(f"expected an int/str seed or a random.Random, got {type(rng_or_seed).__name__}")


def _pick(rng: random.Random, weights: Mapping[str, float]) -> str:
    keys = list(weights)
    return rng.choices(keys, weights=[weights[k] for k in keys], k=1)[0]


def sample_record(rng_or_seed: Any) -> dict[str, Any]:
    """Sample a random avatar record (plain JSON-able dict holding every choice needed to render it)."""
    rng = _as_rng(rng_or_seed)
    style = _pick(rng, _WEIGHTS["hair_style"])
    color = rng.choice(list(HAIR_COLORS))
    hat = _pick(rng, _WEIGHTS["hat"]) if style in HAT_HAIR_STYLES else "none"
    eyewear = _pick(rng, _WEIGHTS["eyewear"])
    mouth = _pick(rng, _WEIGHTS["mouth"])
    facial_hair = _pick(rng, _WEIGHTS["facial_hair"])
    clothing = rng.choice(CLOTHING)
    record = {
        "version": RECORD_VERSION,
        "skin_tone": _pick(rng, _WEIGHTS["skin_tone"]),
        "hair_style": style,
        "hair_type": rng.choice(HAIR_TEMPLATES[style]),
        "hair_color": "none" if style == "bald" else color,
        "facial_hair": facial_hair,
        "facial_hair_type": rng.choice(FACIAL_HAIR_TEMPLATES[facial_hair]),
        "facial_hair_color": color,
        "eyewear": eyewear,
        "eyewear_type": rng.choice(EYEWEAR_TEMPLATES[eyewear]),
        "hat": hat,
        "hat_type": rng.choice(HAT_TEMPLATES[hat]),
        "hat_color": rng.choice(HAT_COLORS),
        "mouth": mouth,
        "mouth_type": rng.choice(MOUTH_TEMPLATES[mouth]),
        "eyes": rng.choice(EYES),
        "eyebrows": rng.choice(EYEBROWS),
        "nose": rng.choice(NOSES),
        "clothing": clothing,
        "clothing_color": rng.choice(CLOTHING_COLORS),
        "clothing_graphic": rng.choice(CLOTHING_GRAPHICS) if clothing == "graphic_shirt" else "",
        "background_color": rng.choice(BACKGROUND_COLORS),
    }
    return record


def check_record(record: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` when a record breaks the attribute space's rules."""
    for name, values in ATTRIBUTES.items():
        if record.get(name) not in values:
            raise ValueError(f"record[{name!r}] = {record.get(name)!r} is not one of {values}")
    for name, key in _TEMPLATE_KEY.items():
        if record.get(key) not in _TEMPLATES[name][record[name]]:
            raise ValueError(
                f"record[{key!r}] = {record.get(key)!r} is not a template of {name}={record[name]!r}"
            )
    bald = record["hair_style"] == "bald"
    if bald != (record["hair_color"] == "none"):
        raise ValueError("hair_color must be 'none' exactly when hair_style is 'bald'")
    if record["facial_hair_color"] not in HAIR_COLORS:
        raise ValueError(
            f"facial_hair_color {record['facial_hair_color']!r} is not one of {tuple(HAIR_COLORS)}"
        )
    if not bald and record["facial_hair_color"] != record["hair_color"]:
        raise ValueError("facial_hair_color must equal hair_color unless bald")
    if record["hat"] != "none" and record["hair_style"] not in HAT_HAIR_STYLES:
        raise ValueError(f"hats need hair_style in {HAT_HAIR_STYLES}, got {record['hair_style']!r}")


def encode_attributes(record: Mapping[str, Any]) -> dict[str, int]:
    """Index of each classified attribute's value in :data:`ATTRIBUTES` (ordered like ``ATTRIBUTES``)."""
    return {name: values.index(record[name]) for name, values in ATTRIBUTES.items()}


def decode_attributes(indices: Mapping[str, int] | Sequence[int]) -> dict[str, str]:
    """Inverse of :func:`encode_attributes` (accepts a mapping or a sequence in ``ATTRIBUTES`` order)."""
    if not isinstance(indices, Mapping):
        indices = dict(zip(ATTRIBUTES, (int(i) for i in indices)))
    return {name: ATTRIBUTES[name][int(indices[name])] for name in ATTRIBUTES}


def _edit_rng(record: Mapping[str, Any], name: str, value: str) -> random.Random:
    key = json.dumps(dict(record), sort_keys=True) + f"|{name}={value}"
    return random.Random(hashlib.sha256(key.encode()).hexdigest())


def with_attribute(record: Mapping[str, Any], name: str, value: str, rng: Any = None) -> dict[str, Any]:
    """Copy of ``record`` with one classified attribute set to ``value``; everything else is kept.

    The concrete template of the new value (e.g. which sad mouth) is drawn from ``rng``; by default from a
    hash of (record, name, value), so the same edit of the same record always has the same true result.
    Dependencies, chosen so that the edit changes exactly one classified attribute or fails loudly:

    * ``hair_color`` on a bald record raises ``ValueError`` (no hair to colour: set ``hair_style`` first);
      ``hair_color="none"`` raises too (use ``hair_style="bald"``). A colour change also recolours the beard.
    * ``hair_style="bald"`` sets ``hair_color`` to ``"none"`` (the colour survives in ``facial_hair_color``
      and returns when another style is set on the bald record).
    * a hat needs ``hair_style in HAT_HAIR_STYLES`` and a hat-wearing record keeps one of those styles;
      anything else raises ``ValueError``. :func:`valid_edits` lists the edits that are allowed.
    """
    if name not in ATTRIBUTES:
        raise ValueError(f"unknown attribute {name!r}; known: {list(ATTRIBUTES)}")
    if value not in ATTRIBUTES[name]:
        raise ValueError(f"{name} has no value {value!r}; values: {ATTRIBUTES[name]}")
    out = dict(record)
    if out[name] == value:
        return out
    r = _as_rng(rng) if rng is not None else _edit_rng(record, name, value)
    if name == "hair_color":
        if value == "none":
            raise ValueError("hair_color 'none' means bald: use with_attribute(record, 'hair_style', 'bald')")
        if out["hair_style"] == "bald":
            raise ValueError("cannot set hair_color on a bald record (no visible hair); set hair_style first")
        out["hair_color"] = out["facial_hair_color"] = value
    elif name == "hair_style":
        if out["hat"] != "none" and value not in HAT_HAIR_STYLES:
            raise ValueError(
                f"hair_style {value!r} would be hidden by the {out['hat']}: hats need one of {HAT_HAIR_STYLES}"
            )
        out["hair_style"] = value
        out["hair_type"] = r.choice(HAIR_TEMPLATES[value])
        out["hair_color"] = "none" if value == "bald" else out["facial_hair_color"]
    elif name == "hat":
        if value != "none" and out["hair_style"] not in HAT_HAIR_STYLES:
            raise ValueError(
                f"a {value} would hide {out['hair_style']!r} hair: hats need hair_style in {HAT_HAIR_STYLES}"
            )
        out["hat"] = value
        out["hat_type"] = r.choice(HAT_TEMPLATES[value])
    else:
        out[name] = value
        if name in _TEMPLATE_KEY:
            out[_TEMPLATE_KEY[name]] = r.choice(_TEMPLATES[name][value])
    return out


def valid_edits(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """All ``(attribute, value)`` pairs, different from the record's, that :func:`with_attribute` accepts."""
    out = []
    for name, values in ATTRIBUTES.items():
        for value in values:
            if value == record[name]:
                continue
            try:
                with_attribute(record, name, value, rng=0)
            except ValueError:
                continue
            out.append((name, value))
    return out


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


# --------------------------------------------------------------------------------------------------------
# Captions: a small probabilistic grammar; PHRASES is its vocabulary, parse_prompt its inverse
# --------------------------------------------------------------------------------------------------------

#: hair colour adjectives (used in "<adj> hair", "<adj>-haired", "<adj> curls", "a <adj> afro")
HAIR_COLOR_WORDS: dict[str, tuple[str, ...]] = {
    "black": ("black", "jet-black", "raven"),
    "brown": ("brown", "chestnut", "brunette"),
    "blond": ("blond", "blonde", "golden"),
    "red": ("red", "ginger", "copper"),
    "gray": ("gray", "grey", "silver", "white"),
    "pink": ("pink", "pastel pink", "bubblegum pink"),
}


def _hair_color_phrases(value: str) -> tuple[str, ...]:
    words = HAIR_COLOR_WORDS.get(value, ())
    return tuple(f"{w}{suffix}" for w in words for suffix in (" hair", "-haired", " curls", " afro"))


#: attribute -> value -> key phrases. parse_prompt finds these (longest first); every caption contains
#: phrases for exactly the attributes it mentions. Hair-style phrases "<x> hair" also match "<x> <colour>
#: hair" ("long blond hair"); the generic "hat" means the fedora.
PHRASES: dict[str, dict[str, tuple[str, ...]]] = {
    "hair_color": {v: _hair_color_phrases(v) for v in ATTRIBUTES["hair_color"]},
    "hair_style": {
        "bald": (
            "bald",
            "bald head",
            "shaved head",
            "shaven head",
            "no hair",
            "hairless",
            "shave the head",
            "shave his head",
            "shave her head",
            "head shaved",
        ),
        "short": ("short hair", "short haircut", "cropped hair", "short-haired", "close-cropped hair"),
        "long": ("long hair", "straight hair", "flowing hair", "shoulder-length hair", "long-haired"),
        "curly": ("curly hair", "curls", "wavy hair", "curly-haired"),
        "afro": ("afro", "afro hairstyle"),
        "bun": ("bun", "topknot", "top knot"),
    },
    "eyewear": {
        "none": ("no glasses", "without glasses", "not wearing glasses", "no eyewear", "no sunglasses"),
        "glasses": ("glasses", "eyeglasses", "spectacles", "bespectacled", "reading glasses"),
        "sunglasses": ("sunglasses", "shades", "dark glasses", "sun glasses"),
    },
    "hat": {
        "none": ("no hat", "without a hat", "not wearing a hat", "bareheaded", "hatless"),
        "beanie": ("beanie", "knit cap", "knitted cap", "woolly hat"),
        "winter_hat": ("winter hat", "hat with ear flaps", "earflap hat", "trapper hat"),
        "fedora": ("fedora", "wide-brimmed hat", "brimmed hat", "hat"),
    },
    "mouth": {
        "smiling": ("smiling", "smile", "grinning", "grin", "happy", "cheerful"),
        "neutral": ("neutral expression", "serious", "straight face", "expressionless", "blank expression"),
        "sad": ("sad", "frowning", "frown", "unhappy", "gloomy"),
        "open": ("open mouth", "mouth open", "open-mouthed", "surprised", "shocked", "astonished"),
    },
    "facial_hair": {
        "none": ("clean-shaven", "no beard", "beardless", "without a beard", "no facial hair"),
        "beard": ("beard", "bearded", "full beard"),
        "moustache": ("moustache", "mustache", "moustached", "mustached"),
    },
    "skin_tone": {
        "light": ("light skin", "fair skin", "pale skin", "light-skinned", "fair-skinned", "pale-skinned"),
        "tan": ("tan skin", "tanned skin", "olive skin", "tan-skinned", "olive-skinned", "medium skin"),
        "brown": ("brown skin", "brown-skinned"),
        "dark": ("dark skin", "dark-skinned", "dark complexion"),
    },
}

# Surface forms of the grammar per attribute value and role: "adj" (before the noun), "has" (noun phrase
# after "with"/"has"), "wear" (noun phrase after "wearing"). Every form contains a PHRASES key phrase.
_FORMS: dict[str, dict[str, dict[str, tuple[str, ...]]]] = {
    "eyewear": {
        "none": {"has": ("no glasses",), "adj": ()},
        "glasses": {
            "wear": ("glasses", "a pair of glasses", "eyeglasses", "spectacles", "reading glasses"),
            "adj": ("bespectacled",),
        },
        "sunglasses": {
            "wear": ("sunglasses", "a pair of sunglasses", "dark sunglasses", "shades", "dark glasses")
        },
    },
    "hat": {
        "none": {"adj": ("bareheaded", "hatless"), "has": ("no hat",)},
        "beanie": {"wear": ("a beanie", "a knit cap", "a woolly hat", "a knitted cap")},
        "winter_hat": {"wear": ("a winter hat", "a hat with ear flaps", "a trapper hat", "an earflap hat")},
        "fedora": {"wear": ("a fedora", "a wide-brimmed hat", "a brimmed hat", "a hat")},
    },
    "mouth": {
        "smiling": {
            "adj": ("smiling", "grinning", "happy", "cheerful"),
            "has": ("a smile", "a big smile", "a grin"),
        },
        "neutral": {
            "adj": ("serious", "expressionless"),
            "has": ("a neutral expression", "a serious expression", "a straight face", "a blank expression"),
        },
        "sad": {"adj": ("sad", "frowning", "unhappy", "gloomy"), "has": ("a frown", "a sad expression")},
        "open": {
            "adj": ("surprised", "shocked", "open-mouthed", "astonished"),
            "has": ("an open mouth", "a surprised expression", "a shocked expression"),
        },
    },
    "facial_hair": {
        "none": {"adj": ("clean-shaven", "beardless"), "has": ("no beard", "no facial hair")},
        "beard": {"adj": ("bearded",), "has": ("a beard", "a full beard")},
        "moustache": {"adj": ("moustached", "mustached"), "has": ("a moustache", "a mustache")},
    },
    "skin_tone": {
        "light": {
            "adj": ("light-skinned", "fair-skinned", "pale-skinned"),
            "has": ("light skin", "fair skin", "pale skin"),
        },
        "tan": {"adj": ("tan-skinned", "olive-skinned"), "has": ("tan skin", "tanned skin", "olive skin")},
        "brown": {"adj": ("brown-skinned",), "has": ("brown skin",)},
        "dark": {"adj": ("dark-skinned",), "has": ("dark skin", "a dark complexion")},
    },
}
_STYLE_WORD = {"short": ("short",), "long": ("long", "straight", "flowing"), "curly": ("curly", "wavy")}
_CLOTHING_PHRASES = {
    "blazer_shirt": "a blazer",
    "blazer_sweater": "a blazer and sweater",
    "collar_sweater": "a collared sweater",
    "graphic_shirt": "a graphic t-shirt",
    "hoodie": "a hoodie",
    "overall": "overalls",
    "shirt_crew_neck": "a crew-neck t-shirt",
    "shirt_scoop_neck": "a scoop-neck top",
    "shirt_v_neck": "a v-neck t-shirt",
}
_NOUNS = ("person", "face", "cartoon face", "avatar", "cartoon character", "character", "cartoon person")
_BEARDED_NOUNS = ("man", "guy")


def _hair_forms(record: Mapping[str, Any], color: bool, style: bool, rng: random.Random) -> dict[str, str]:
    """One surface form per role for the hair item (colour and/or style)."""
    s, c = record["hair_style"], record["hair_color"]
    cw = rng.choice(HAIR_COLOR_WORDS[c]) if color else ""
    if color and style:
        if s in _STYLE_WORD:
            has = [f"{rng.choice(_STYLE_WORD[s])} {cw} hair"]
            if s == "curly":
                has.append(f"{cw} curls")
        elif s == "afro":
            has = [f"a {cw} afro"]
        else:  # bun
            has = [f"{cw} hair in a bun", f"{cw} hair tied in a bun", f"{cw} hair in a topknot"]
        return {"has": rng.choice(has)}
    if color:
        return {"has": f"{cw} hair", "adj": f"{cw}-haired"}
    forms = {
        "bald": {"adj": ("bald",), "has": ("a bald head", "a shaved head", "no hair")},
        "short": {"adj": ("short-haired",), "has": ("short hair", "a short haircut", "cropped hair")},
        "long": {"adj": ("long-haired",), "has": ("long hair", "long straight hair", "flowing hair")},
        "curly": {"adj": ("curly-haired",), "has": ("curly hair", "curls", "wavy hair")},
        "afro": {"has": ("an afro", "an afro hairstyle")},
        "bun": {"has": ("a bun", "hair in a bun", "a topknot")},
    }[s]
    return {role: rng.choice(opts) for role, opts in forms.items()}


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _article(phrase: str) -> str:
    return "an" if phrase[:1].lower() in "aeiou" else "a"


def caption_with_mentions(record: Mapping[str, Any], rng_or_seed: Any) -> tuple[str, dict[str, str]]:
    """One caption and the ``{attribute: value}`` it mentions (what :func:`parse_prompt` should recover)."""
    rng = _as_rng(rng_or_seed)
    mentioned: dict[str, str] = {}
    for name in ATTRIBUTES:
        value = record[name]
        if name == "hair_color" and value == "none":
            continue
        p = 0.25 if value == "none" else (0.55 if name in ("skin_tone", "hair_color") else 0.65)
        if rng.random() < p:
            mentioned[name] = value
    if not mentioned:
        mentioned["hair_style"] = record["hair_style"]

    adj: list[str] = []
    has: list[str] = []
    wear: list[str] = []
    names = list(mentioned)
    rng.shuffle(names)
    done_hair = False
    for name in names:
        value = mentioned[name]
        if name in ("hair_color", "hair_style"):
            if done_hair:
                continue
            done_hair = True
            forms = _hair_forms(record, "hair_color" in mentioned, "hair_style" in mentioned, rng)
        else:
            forms = {role: rng.choice(opts) for role, opts in _FORMS[name][value].items() if opts}
        roles = [r for r in forms if r != "adj" or len(adj) < 2]
        role = rng.choice(roles)
        {"adj": adj, "has": has, "wear": wear}[role].append(forms[role])
    if rng.random() < 0.15:
        wear.append(_CLOTHING_PHRASES[record["clothing"]])
    rng.shuffle(has)
    rng.shuffle(wear)

    nouns = _NOUNS + (_BEARDED_NOUNS if record["facial_hair"] != "none" else ())
    noun = rng.choice(nouns)
    head = " ".join([*adj, noun])
    template = rng.randrange(4)
    if template == 0:  # "a smiling man with blond hair wearing glasses"
        text = f"{_article(head)} {head}"
        if has:
            text += " with " + _join(has)
        if wear:
            text += (", " if has else " ") + "wearing " + _join(wear)
    elif template == 1:  # "This person has blond hair and wears sunglasses."
        text = f"This {head}"
        parts = []
        if has:
            parts.append("has " + _join(has))
        if wear:
            parts.append(rng.choice(("wears ", "is wearing ")) + _join(wear))
        text += " " + " and ".join(parts) + "." if parts else " is shown."
    elif template == 2:  # "cartoon avatar, blond hair, sunglasses, smiling"
        bits = [*has, *wear, *adj]
        rng.shuffle(bits)
        text = ", ".join([noun, *bits])
    else:  # "A smiling person. They have blond hair. They are wearing sunglasses."
        text = f"{_article(head).capitalize()} {head}."
        if has:
            text += " They have " + _join(has) + "."
        if wear:
            text += " They are wearing " + _join(wear) + "."
    text = re.sub(r"\s+", " ", text).strip()
    return text[0].upper() + text[1:] if rng.random() < 0.5 else text, mentioned


def captions(record: Mapping[str, Any], rng_or_seed: Any, n: int = 10) -> list[str]:
    """``n`` captions of a record (distinct where the grammar allows), each mentioning a random subset of
    its classified attributes in random order with random synonyms."""
    rng = _as_rng(rng_or_seed)
    out: list[str] = []
    for _ in range(n):
        text = ""
        for _try in range(8):
            text, _ = caption_with_mentions(record, rng)
            if text not in out:
                break
        out.append(text)
    return out


@functools.lru_cache(maxsize=1)
def _vocabulary() -> Vocabulary:
    """The avatar domain's :class:`~tedigan.data.vocabulary.Vocabulary` (saved with avatar pipelines)."""
    phrases = {a: {v: list(ps) for v, ps in values.items()} for a, values in PHRASES.items()}
    for a, values in ATTRIBUTES.items():  # every value listed, even without a phrase
        phrases[a] = {v: phrases[a].get(v, []) for v in values}
    # "<x> hair" style phrases also read as the word <x> next to "hair" ("long blond hair", "hair that is long")
    style_words = {
        v: [p[: -len(" hair")] for p in ps if p.endswith(" hair") and p[: -len(" hair")] not in NEGATORS]
        for v, ps in PHRASES["hair_style"].items()
    }
    return Vocabulary(
        domain="avatars",
        attributes=phrases,
        nouns={"hair_color": ["hair", "curls", "afro"], "hair_style": ["hair"]},
        words={
            "hair_color": {v: list(ws) for v, ws in HAIR_COLOR_WORDS.items()},
            "hair_style": {v: ws for v, ws in style_words.items() if ws},
        },
        absent={"eyewear": "none", "hat": "none", "facial_hair": "none", "mouth": "neutral"},
        noun_window=2,
    )


#: the avatar vocabulary: PHRASES, the hair words, and negation (``"remove the glasses"`` → no eyewear)
AVATAR_VOCABULARY = _vocabulary()


def parse_prompt(text: str) -> dict[str, str]:
    """Map free text to ``{attribute: value}`` with :data:`AVATAR_VOCABULARY` (see
    :meth:`tedigan.data.vocabulary.Vocabulary.read`: phrases longest first, value words next to their noun,
    negation to the absent value; attributes not mentioned are absent)."""
    return AVATAR_VOCABULARY.read(text).values


# --------------------------------------------------------------------------------------------------------
# Data set on disk
# --------------------------------------------------------------------------------------------------------


def sample_id(index: int) -> str:
    return f"{index:06d}"


def split_ranges(num: int, splits: Sequence[float] = (0.8, 0.1, 0.1)) -> dict[str, range]:
    """Index ranges of the train/val/test splits (cumulative rounding of the fractions)."""
    if len(splits) != 3 or any(s < 0 for s in splits) or sum(splits) <= 0:
        raise ValueError(f"splits must be three non-negative fractions, got {splits}")
    total = float(sum(splits))
    b1 = round(num * splits[0] / total)
    b2 = round(num * (splits[0] + splits[1]) / total)
    return {"train": range(0, b1), "val": range(b1, b2), "test": range(b2, num)}


def record_for(seed: int, index: int) -> dict[str, Any]:
    """The record of sample ``index`` of a data set built with ``seed`` (depends on nothing else)."""
    return sample_record(f"{seed}:{index}:record")


def captions_for(seed: int, index: int, record: Mapping[str, Any], n: int = 10) -> list[str]:
    return captions(record, f"{seed}:{index}:captions", n=n)


def _build_one(job: tuple[str, int, int, int, str]) -> tuple[dict[str, Any], float, float]:
    out, seed, index, resolution, split = job
    t0, c0 = time.perf_counter(), time.process_time()
    record = record_for(seed, index)
    rendered = render(record, resolution)
    sid = sample_id(index)
    root = Path(out)
    rendered.image.save(root / "images" / f"{sid}.png")
    Image.fromarray(rendered.label, "L").save(root / "labels" / f"{sid}.png")
    rendered.sketch.save(root / "sketches" / f"{sid}.png")
    meta = {
        "id": sid,
        "index": index,
        "split": split,
        "file_name": f"images/{sid}.png",
        "label_file": f"labels/{sid}.png",
        "sketch_file": f"sketches/{sid}.png",
        "captions": captions_for(seed, index, record),
        "attributes": {name: record[name] for name in ATTRIBUTES},
        "record": record,
    }
    return meta, time.perf_counter() - t0, time.process_time() - c0


def _hf_rows(root: str, rows: list[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    out = Path(root)

    def img(rel: str) -> dict[str, Any]:
        return {"bytes": (out / rel).read_bytes(), "path": None}  # embedded: hf/ is self-contained

    for m in rows:
        yield {
            "id": m["id"],
            "image": img(m["file_name"]),
            "label": img(m["label_file"]),
            "sketch": img(m["sketch_file"]),
            "captions": m["captions"],
            "attributes": m["attributes"],
            "record": json.dumps(m["record"], sort_keys=True),
        }


def _save_hf(out: Path, metas: list[dict[str, Any]]) -> None:
    """Write ``out/hf`` (a DatasetDict with train/val/test), streaming rows so memory stays flat."""
    import shutil
    import tempfile

    import datasets

    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "image": datasets.Image(),
            "label": datasets.Image(),
            "sketch": datasets.Image(),
            "captions": datasets.Sequence(datasets.Value("string")),
            "attributes": {name: datasets.Value("string") for name in ATTRIBUTES},
            "record": datasets.Value("string"),
        }
    )
    # a fresh cache per build: datasets would otherwise reuse a cached table with the same fingerprint
    cache = Path(tempfile.mkdtemp(prefix=".hf-build-", dir=out))
    progress = datasets.utils.logging.is_progress_bar_enabled()
    datasets.utils.logging.disable_progress_bar()
    try:
        splits = {}
        for split in ("train", "val", "test"):
            rows = [m for m in metas if m["split"] == split]
            if rows:
                splits[split] = datasets.Dataset.from_generator(
                    _hf_rows,
                    features=features,
                    cache_dir=str(cache),
                    gen_kwargs={"root": str(out), "rows": rows},
                )
            else:
                splits[split] = datasets.Dataset.from_dict({k: [] for k in features}, features=features)
        if (out / "hf").exists():
            shutil.rmtree(out / "hf")
        # one shard per split at least: an empty split saved with zero shards cannot be loaded back
        num_shards = {k: max(1, math.ceil(len(v) / 20000)) for k, v in splits.items()}
        datasets.DatasetDict(splits).save_to_disk(str(out / "hf"), num_shards=num_shards)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        if progress:
            datasets.utils.logging.enable_progress_bar()


def build_dataset(
    out: str | os.PathLike,
    num: int,
    resolution: int = 64,
    seed: int = 0,
    workers: int | None = None,
    splits: Sequence[float] = (0.8, 0.1, 0.1),
    hf: bool = True,
    progress: bool = True,
) -> Path:
    """Render ``num`` avatars into ``out`` (images/, labels/, sketches/, metadata.jsonl, info.json, hf/).

    Sample ``i`` depends only on ``(seed, i)``, so a larger ``num`` keeps every earlier sample; splits are
    index ranges (first ``splits[0]`` share train, then val, then test). Rendering runs on ``workers``
    processes (default: all cores) with a tqdm bar; ``seconds_per_image`` in info.json is the measured
    render+write time of one image in one worker (``cpu_seconds_per_image``: its CPU time).
    """
    from tqdm.auto import tqdm

    if num < 0:
        raise ValueError(f"num must be >= 0, got {num}")
    out = Path(out)
    for sub in ("images", "labels", "sketches"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    workers = max(1, int(workers or os.cpu_count() or 1))
    ranges = split_ranges(num, splits)
    split_of = {i: name for name, r in ranges.items() for i in r}
    jobs = [(str(out), int(seed), i, int(resolution), split_of[i]) for i in range(num)]
    metas: list[dict[str, Any]] = []
    busy = cpu = 0.0
    t0 = time.perf_counter()
    bar = tqdm(total=num, desc=f"avatars {resolution}px", unit="img", disable=not progress)
    if workers == 1 or num <= 1:
        results: Iterable = map(_build_one, jobs)
        pool = None
    else:
        pool = mp.get_context().Pool(min(workers, num))
        results = pool.imap(_build_one, jobs, chunksize=max(1, min(16, num // (workers * 8) or 1)))
    try:
        for meta, seconds, cpu_seconds in results:
            metas.append(meta)
            busy += seconds
            cpu += cpu_seconds
            bar.update(1)
    finally:
        bar.close()
        if pool is not None:
            pool.close()
            pool.join()
    wall = time.perf_counter() - t0
    with open(out / "metadata.jsonl", "w", encoding="utf-8") as f:
        for meta in metas:
            f.write(json.dumps(meta, sort_keys=True) + "\n")
    info = {
        "num": num,
        "resolution": resolution,
        "seed": seed,
        "splits": {name: len(r) for name, r in ranges.items()},
        "ATTRIBUTES": {k: list(v) for k, v in ATTRIBUTES.items()},
        "PART_CLASSES": list(PART_CLASSES),
        "seconds_per_image": busy / max(num, 1),  # wall time in a worker (grows when cores are shared)
        "cpu_seconds_per_image": cpu / max(num, 1),
        "wall_seconds": wall,
        "images_per_second": num / wall if wall > 0 else None,
        "workers": workers,
        "record_version": RECORD_VERSION,
        "python_avatars": _version("python_avatars"),
        "cairosvg": _version("cairosvg"),
    }
    if hf:
        _save_hf(out, metas)
    # info.json last and atomically: its presence marks a complete data set (train_all.sh, ensure_data)
    atomic_write_text(out / "info.json", json.dumps(info, indent=2) + "\n")
    return out


def _version(package: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(package)
    except Exception:
        return None


# --------------------------------------------------------------------------------------------------------
# torch Dataset
# --------------------------------------------------------------------------------------------------------


def _to_tensor(im: Image.Image) -> torch.Tensor:
    arr = np.asarray(im, dtype=np.float32) / 127.5 - 1.0
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(arr))


class AvatarDataset(torch.utils.data.Dataset):
    """A built avatar folder (see :func:`build_dataset`) as a torch Dataset.

    Items are dicts: ``image`` float [3,H,W] in [-1,1]; ``caption`` (one of the 10, chosen at random);
    ``captions`` (all 10); ``index`` (position in this split); ``attributes`` long [len(ATTRIBUTES)] in
    ``ATTRIBUTES`` order; ``label`` long [H,W] of PART_CLASSES indices; ``sketch`` float [1,H,W] in [-1,1]
    (white = 1). ``resolution`` resizes on load (LANCZOS image, NEAREST label, bilinear sketch).
    ``split`` is "train", "val", "test" or "all".
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", resolution: int | None = None) -> None:
        self.root = Path(root)
        manifest = self.root / "metadata.jsonl"
        if not manifest.is_file():
            raise FileNotFoundError(
                f"{self.root} has no metadata.jsonl; create it with: "
                f"python -m tedigan.data.avatars --num 2000 --resolution 64 --out {self.root}"
            )
        if split not in ("train", "val", "test", "all"):
            raise ValueError(f"split must be train, val, test or all, got {split!r}")
        with open(manifest, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
        self.metadata: list[dict[str, Any]] = [m for m in rows if split == "all" or m["split"] == split]
        self.split = split
        self.resolution = resolution

    @property
    def records(self) -> list[dict[str, Any]]:
        return [m["record"] for m in self.metadata]

    def __len__(self) -> int:
        return len(self.metadata)

    def _open(self, rel: str, mode: str, resample: Image.Resampling) -> Image.Image:
        im = Image.open(self.root / rel)
        im = im.convert(mode)
        if self.resolution is not None and im.size != (self.resolution, self.resolution):
            im = im.resize((self.resolution, self.resolution), resample)
        return im

    def __getitem__(self, index: int) -> dict[str, Any]:
        meta = self.metadata[index]
        image = self._open(meta["file_name"], "RGB", Image.Resampling.LANCZOS)
        label = self._open(meta["label_file"], "L", Image.Resampling.NEAREST)
        sketch = self._open(meta["sketch_file"], "L", Image.Resampling.BILINEAR)
        attrs = [ATTRIBUTES[name].index(meta["attributes"][name]) for name in ATTRIBUTES]
        return {
            "image": _to_tensor(image),
            "caption": random.choice(meta["captions"]),
            "captions": list(meta["captions"]),
            "index": index,
            "attributes": torch.tensor(attrs, dtype=torch.long),
            "label": torch.from_numpy(np.asarray(label, dtype=np.int64).copy()),
            "sketch": _to_tensor(sketch),
        }


# --------------------------------------------------------------------------------------------------------
# Previews and CLI
# --------------------------------------------------------------------------------------------------------


def preview_grid(records: Sequence[Mapping[str, Any]], resolution: int = 64, scale: int = 2) -> Image.Image:
    """One row per record: image | coloured label map | sketch (nearest-upscaled by ``scale``)."""
    w = resolution * scale
    grid = Image.new("RGB", (3 * w + 8, max(1, len(records)) * (w + 2)), "white")
    for row, record in enumerate(records):
        r = render(record, resolution)
        for col, im in enumerate((r.image, r.label_image(), r.sketch.convert("RGB"))):
            grid.paste(im.resize((w, w), Image.Resampling.NEAREST), (col * (w + 4), row * (w + 2)))
    return grid


def attribute_sheet(resolution: int = 64, seed: int = 0, faces: int = 3, scale: int = 2) -> Image.Image:
    """Visibility check: for each attribute, ``faces`` rows of one face re-rendered with every value."""
    w = resolution * scale
    rows: list[tuple[str, list[tuple[str, Image.Image | None]]]] = []
    for name, values in ATTRIBUTES.items():
        for j in range(faces):
            base = None
            for k in range(200):  # a base face on which most values of this attribute are valid edits
                cand = record_for(seed + 1000 * j, k)
                if name == "hair_color" and cand["hair_style"] == "bald":
                    continue
                if name == "hat" and cand["hair_style"] not in HAT_HAIR_STYLES:
                    continue
                base = cand
                break
            cells: list[tuple[str, Image.Image | None]] = []
            for value in values:
                try:
                    rec = with_attribute(base, name, value)
                except ValueError:
                    cells.append((value, None))
                    continue
                cells.append((value, render(rec, resolution).image.resize((w, w), Image.Resampling.NEAREST)))
            rows.append((name, cells))
    cols = max(len(c) for _, c in rows)
    label_w = 80
    sheet = Image.new("RGB", (label_w + cols * (w + 2), len(rows) * (w + 14)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (name, cells) in enumerate(rows):
        y = r * (w + 14)
        draw.text((2, y + w // 2), name, fill="black")
        for c, (value, im) in enumerate(cells):
            x = label_w + c * (w + 2)
            if im is not None:
                sheet.paste(im, (x, y))
            draw.text((x + 2, y + w), value, fill="black")
    return sheet


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tedigan.data.avatars",
        description="Render the procedural avatar data set (images, part label maps, sketches, 10 captions "
        "and the full attribute record per sample) as an image folder plus a Hugging Face DatasetDict.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""examples:
  python -m tedigan.data.avatars --num 2000 --resolution 64 --out data/avatars64
  python -m tedigan.data.avatars --num 20000 --resolution 128 --out data/avatars128 --workers 8 --seed 1
  python -m tedigan.data.avatars --num 0 --preview preview.png            # only a preview grid
  python -m tedigan.data.avatars --num 0 --attribute-sheet sheet.png      # every value of every attribute

layout of --out: images/ID.png, labels/ID.png (uint8 PART_CLASSES indices), sketches/ID.png,
metadata.jsonl, info.json, hf/ (datasets.load_from_disk: train/val/test)""",
    )
    parser.add_argument("--num", type=int, required=True, help="number of samples (0: no data set)")
    parser.add_argument("--resolution", type=int, default=64, help="output size in px (default 64)")
    parser.add_argument("--out", type=Path, help="output folder (required when --num > 0)")
    parser.add_argument("--seed", type=int, default=0, help="data set seed; sample i depends on (seed, i)")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    parser.add_argument(
        "--splits",
        type=float,
        nargs=3,
        default=(0.8, 0.1, 0.1),
        metavar=("TRAIN", "VAL", "TEST"),
        help="split fractions by index range (default 0.8 0.1 0.1)",
    )
    parser.add_argument("--no-hf", action="store_true", help="skip the Hugging Face copy under OUT/hf")
    parser.add_argument("--overwrite", action="store_true", help="render again into an existing data set")
    parser.add_argument(
        "--preview", type=Path, help="write image|label|sketch rows of the first samples here"
    )
    parser.add_argument("--preview-rows", type=int, default=8, help="rows in --preview (default 8)")
    parser.add_argument("--attribute-sheet", type=Path, help="write a sheet showing every attribute value")
    args = parser.parse_args(argv)

    if args.num > 0:
        if args.out is None:
            parser.error("--out is required when --num > 0")
        if (args.out / "info.json").exists() and not args.overwrite:
            parser.exit(
                2,
                f"tedigan.data.avatars: error: {args.out} already holds a data set: pass --overwrite "
                "to render it again, or choose another --out\n",
            )
        (args.out / "info.json").unlink(missing_ok=True)
        build_dataset(
            args.out,
            args.num,
            args.resolution,
            args.seed,
            args.workers,
            tuple(args.splits),
            hf=not args.no_hf,
        )
        info = json.loads((args.out / "info.json").read_text())
        print(
            f"wrote {args.num} avatars ({args.resolution}px) to {args.out} in {info['wall_seconds']:.1f} s: "
            f"{info['seconds_per_image']:.4f} s/image per worker ({info['cpu_seconds_per_image']:.4f} CPU s), "
            f"{info['images_per_second']:.1f} images/s with {info['workers']} workers"
        )
    if args.preview is not None:
        recs = [record_for(args.seed, i) for i in range(args.preview_rows)]
        preview_grid(recs, args.resolution).save(args.preview)
        print(f"preview: {args.preview}")
    if args.attribute_sheet is not None:
        attribute_sheet(args.resolution, args.seed).save(args.attribute_sheet)
        print(f"attribute sheet: {args.attribute_sheet}")
    if args.num <= 0 and args.preview is None and args.attribute_sheet is None:
        parser.error("nothing to do: give --num > 0, --preview or --attribute-sheet")
    return 0


if __name__ == "__main__":
    sys.exit(main())
