"""``tedigan avatars --num 2000 --out data/avatars64``: render the
procedural avatar data set (:mod:`tedigan.data.avatars`), a preview grid or the attribute sheet."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tedigan import cli

HELP = "render the procedural avatar data set (or a preview grid / the attribute sheet)"

EXAMPLES = """\
examples:
  tedigan avatars --num 2000 --resolution 64 --out data/avatars64
  tedigan avatars --num 20000 --resolution 128 --out data/avatars128 --workers 8 --seed 1
  tedigan avatars --num 0 --preview preview.png            # only a preview grid
  tedigan avatars --num 0 --attribute-sheet sheet.png      # every value of every attribute

layout of --out: images/ID.png, labels/ID.png (uint8 PART_CLASSES indices), sketches/ID.png,
metadata.jsonl, info.json, hf/ (datasets.load_from_disk: train/val/test)"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "avatars",
        help=HELP,
        description="Render the procedural avatar data set (images, part label maps, sketches, 10 captions "
        "and the full attribute record per sample) as an image folder plus a Hugging Face DatasetDict.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EXAMPLES,
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
    parser.add_argument(
        "--overwrite", action="store_true", help="render again into an existing data set; replace previews"
    )
    parser.add_argument(
        "--preview", type=Path, help="write image|label|sketch rows of the first samples here"
    )
    parser.add_argument("--preview-rows", type=int, default=8, help="rows in --preview (default 8)")
    parser.add_argument("--attribute-sheet", type=Path, help="write a sheet showing every attribute value")
    return parser


def run(args: argparse.Namespace) -> int:
    if args.num < 0:
        raise cli.UsageError(f"--num must be >= 0, got {args.num}")
    if args.num <= 0 and args.preview is None and args.attribute_sheet is None:
        raise cli.UsageError("nothing to do: give --num > 0, --preview or --attribute-sheet")
    if args.num > 0:
        if args.out is None:
            raise cli.UsageError("--out is required when --num > 0")
        if (args.out / "info.json").exists() and not args.overwrite:
            raise cli.UsageError(
                f"{args.out} already holds a data set: pass --overwrite to render it again, or choose another --out"
            )
        cli.check_writable(args.out, "--out")
    images = [
        (flag, path)
        for flag, path in (("--preview", args.preview), ("--attribute-sheet", args.attribute_sheet))
        if path
    ]
    for flag, path in images:
        cli.check_outputs([path], [], args.overwrite, what=flag)
    from tedigan.data.avatars import attribute_sheet, build_dataset, preview_grid, record_for

    if args.num > 0:
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
        cli.save_image(preview_grid(recs, args.resolution), args.preview, args.overwrite)
        print(f"preview: {args.preview}")
    if args.attribute_sheet is not None:
        cli.save_image(attribute_sheet(args.resolution, args.seed), args.attribute_sheet, args.overwrite)
        print(f"attribute sheet: {args.attribute_sheet}")
    return 0
