"""Generate faces from text: ``python -m tedigan.generate --text "a smiling man with a beard" -n 4``.

Text-to-image mixes the text code into the W+ layers that carry what the text names, on top of seeded random
codes (so the images differ in everything the text leaves open). ``--sketch`` / ``--label`` start from a
line drawing or a part-label map instead (the text, if given, is mixed into its code).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from tedigan import cli
from tedigan.data.io import load_image, load_label_map

EXAMPLES = """\
examples:
  python -m tedigan.generate --text "a smiling man with a beard" -n 4 --out faces/
  python -m tedigan.generate --text "she has pink hair and glasses" -n 8 --seed 3 --psi 0.5
  python -m tedigan.generate --sketch sketch.png --text "blond hair" --out from_sketch/
  python -m tedigan.generate --label parts.png --out from_labels/

writes OUT/<index>.png (upscaled by --scale) and OUT/grid.png with the first 16 images in a row; any -n
runs in chunks with a progress bar. Existing files are never replaced without --overwrite.
"""

GRID_MAX = 16


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tedigan.generate",
        description="Generate face images from a text prompt (or a sketch / label map) with a TediGAN pipeline.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--text", default=None, help="description of the face (required without --sketch/--label)"
    )
    parser.add_argument(
        "-n", "--num-images", type=int, default=4, help="images for a text prompt (default 4, at most 10000)"
    )
    parser.add_argument("--out", default="generated", help="output folder (default ./generated)")
    parser.add_argument(
        "--psi", type=float, default=None, help="truncation of the random codes (default: model's)"
    )
    parser.add_argument("--sketch", default=None, help="a line drawing to start from (white background)")
    parser.add_argument(
        "--label", default=None, help="a part-label map (class index per pixel) to start from"
    )
    parser.add_argument("--json", action="store_true", help="print a JSON summary instead of text")
    cli.add_common_args(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def run() -> int:
        import math

        from tedigan.pipeline import MAX_IMAGES, PSI_RANGE

        if args.text is None and args.sketch is None and args.label is None:
            raise cli.UsageError('empty text: give --text "..." (or --sketch / --label)')
        cli.check_text(args.text, 'describe the face, e.g. --text "a smiling woman with red hair"')
        cli.check_common_args(args)
        if not 1 <= args.num_images <= MAX_IMAGES:
            raise cli.UsageError(
                f"-n must be in 1..{MAX_IMAGES}, got {args.num_images} (run again with other seeds for more)"
            )
        if args.psi is not None and not (
            math.isfinite(args.psi) and PSI_RANGE[0] <= args.psi <= PSI_RANGE[1]
        ):
            raise cli.UsageError(f"--psi must be in {PSI_RANGE[0]:g}..{PSI_RANGE[1]:g}, got {args.psi}")
        out = Path(args.out)
        if out.exists() and not out.is_dir():
            raise cli.UsageError(f"--out {out} is a file: give a folder")
        if args.sketch is not None and args.label is not None:
            raise cli.UsageError("give either --sketch or --label, not both")
        inputs = [Path(p) for p in (args.sketch, args.label) if p is not None]
        count = args.num_images if not inputs else 1
        paths = [out / f"{i:03d}.png" for i in range(count)]
        cli.check_outputs([*paths, out / "grid.png"], inputs, args.overwrite, what="--out")
        sketch = load_image(args.sketch, "L") if args.sketch is not None else None  # fail before loading
        label = load_label_map(args.label) if args.label is not None else None
        layers = cli.parse_layers(args.layers)
        pipe = cli.load_pipeline(args)
        cli.check_size(pipe.resolution * min(count, GRID_MAX), pipe.resolution, args.scale)
        steps = args.steps if args.steps is not None else 0
        result = pipe.generate(
            args.text,
            num_images=args.num_images,
            seed=args.seed,
            truncation_psi=args.psi,
            sketch=sketch,
            label=label,
            layers=layers,
            steps=steps,
            progress=steps > 0,
        )
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for path, img in zip(paths, result.images):
            cli.save_image(cli.upscale(img, args.scale), path)
            written.append(str(path))
        cli.save_image(cli.strip(result.images[:GRID_MAX], args.scale), out / "grid.png")
        summary = {"out": written, "grid": str(out / "grid.png"), "text": args.text, "layers": result.layers}
        line = (
            f"{len(written)} image(s) for {args.text!r} (W+ layers {result.layers}, "
            f"{result.seconds:.2f} s) -> {out}/"
        )
        return cli.finish({**summary, "seconds": round(result.seconds, 3)}, args.json, line)

    return cli.run(run, "tedigan.generate")


if __name__ == "__main__":
    raise SystemExit(main())
