"""Preview grids and the attribute sheet (``tedigan avatars --preview / --attribute-sheet``).

Part of :mod:`tedigan.data.avatars` (the package docstring explains the data set).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from PIL import Image, ImageDraw

from tedigan.data.avatars.attributes import ATTRIBUTES, HAT_HAIR_STYLES, with_attribute
from tedigan.data.avatars.dataset import record_for
from tedigan.data.avatars.render import render

# --------------------------------------------------------------------------------------------------------
# Previews
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
