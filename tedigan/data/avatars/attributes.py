"""The attribute space and plain JSON-able records: sampling, checking, encoding and true edits.

Part of :mod:`tedigan.data.avatars` (the package docstring explains the data set).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

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
