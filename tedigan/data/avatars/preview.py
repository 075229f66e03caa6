"""Preview grids, the attribute sheet and the CLI (python -m tedigan.data.avatars).

Part of :mod:`tedigan.data.avatars` (the package docstring explains the data set).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from tedigan.data.avatars.attributes import ATTRIBUTES, HAT_HAIR_STYLES, with_attribute
from tedigan.data.avatars.dataset import build_dataset, record_for
from tedigan.data.avatars.render import render

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
