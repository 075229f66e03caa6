"""``tedigan generate --text "a smiling man with a beard" -n 4`` (also ``python -m tedigan.generate``).

Text-to-image mixes the text code into the W+ layers that carry what the text names, on top of seeded random
codes (so the images differ in everything the text leaves open). ``--sketch`` / ``--label`` start from a
line drawing or a part-label map instead (the text, if given, is mixed into its code). Without text,
``--seeds 0-7`` samples the generator (NVlabs' seed convention) and ``--mix-seeds`` draws a style-mixing grid;
``--model mobilestylegan`` is the photo-real FFHQ generator alone (MobileStyleGAN; research / non-commercial
weights; ``--model faces`` is the pipeline built on it).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tedigan import cli

HELP = "faces from text, a sketch or a label map; --seeds samples, --interpolate walks"

EXAMPLES = """\
examples:
  tedigan generate --text "a smiling man with a beard" -n 4 --out faces/
  tedigan generate --text "she has pink hair and glasses" -n 8 --seed 3 --psi 0.5
  tedigan generate --sketch sketch.png --text "blond hair" --out from_sketch/
  tedigan generate --label parts.png --out from_labels/
  tedigan generate --model mobilestylegan --seeds 0-7 --resolution 256 --out faces/
  tedigan generate --model mobilestylegan --seeds 0-3 --mix-seeds 10-13 --mix-layers 0-6 --out mixing/
  tedigan generate --model mobilestylegan --seeds 0-4 --interpolate 12 --resolution 128 --out walk/

writes OUT/<index>.png (upscaled by --scale) and OUT/grid.png with the first 16 images in a row; any -n
runs in chunks with a progress bar. --seeds writes OUT/seed0003.png per seed (and grid.png); --mix-seeds
writes OUT/mixing.png: the row seeds' codes with --mix-layers taken from the column seeds (default: the
coarse third of W+: pose, face shape, hair style). Existing files are never replaced without --overwrite.
"""

GRID_MAX = 16


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "generate",
        help=HELP,
        description="Generate face images from a text prompt (or a sketch / label map) with a TediGAN pipeline.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``generate`` (``mix`` takes the same)."""
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
    parser.add_argument(
        "--seeds", default=None, metavar="SPEC", help="sample without text from these seeds, e.g. 0-7,12"
    )
    parser.add_argument(
        "--mix-seeds", default=None, metavar="SPEC", help="with --seeds: columns of a style-mixing grid"
    )
    parser.add_argument(
        "--mix-layers",
        default=None,
        metavar="SPEC",
        help="W+ layers the columns give (default: the coarse third)",
    )
    parser.add_argument(
        "--resolution",
        type=int,
        default=None,
        help="--model mobilestylegan: output size, 64..1024 (default 256)",
    )
    parser.add_argument(
        "--interpolate",
        type=int,
        default=None,
        metavar="N",
        help="with --seeds: an animated GIF walking through the seeds in W, N frames per step",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON summary instead of text")
    cli.add_common_args(parser)


def run(args: argparse.Namespace) -> int:
    import math

    from tedigan.data.io import load_image, load_label_map
    from tedigan.pipeline import MAX_IMAGES, PSI_RANGE

    if args.seeds is not None or args.mix_seeds is not None:
        if args.seeds is None:
            raise cli.UsageError("--mix-seeds needs --seeds (the rows of the grid)")
        return _sample(args)
    from tedigan.pipeline import model_folder

    if cli.is_named_generator(args.model) and not model_folder(args.model).is_dir():
        raise cli.UsageError(
            f"--model {args.model} has no text encoder in this install: sample it with --seeds 0-7 (and "
            "--mix-seeds)"
        )
    if args.text is None and args.sketch is None and args.label is None:
        raise cli.UsageError('empty text: give --text "..." (or --sketch / --label)')
    cli.check_text(args.text, 'describe the face, e.g. --text "a smiling woman with red hair"')
    cli.check_common_args(args)
    if not 1 <= args.num_images <= MAX_IMAGES:
        raise cli.UsageError(
            f"-n must be in 1..{MAX_IMAGES}, got {args.num_images} (run again with other seeds for more)"
        )
    if args.psi is not None and not (math.isfinite(args.psi) and PSI_RANGE[0] <= args.psi <= PSI_RANGE[1]):
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
        cli.save_image(cli.upscale(img, args.scale), path, args.overwrite)
        written.append(str(path))
    cli.save_image(cli.strip(result.images[:GRID_MAX], args.scale), out / "grid.png", args.overwrite)
    summary = {"out": written, "grid": str(out / "grid.png"), "text": args.text, "layers": result.layers}
    line = (
        f"{len(written)} image(s) for {args.text and cli.shorten(args.text)!r} (W+ layers {result.layers}, "
        f"{result.seconds:.2f} s) -> {out}/"
    )
    return cli.finish({**summary, "seconds": round(result.seconds, 3)}, args.json, line)


def _sample(args: argparse.Namespace) -> int:
    """``--seeds`` (and ``--mix-seeds``): unconditional samples or a style-mixing grid."""
    import math

    import torch
    from PIL import Image
    from tqdm.auto import tqdm

    from tedigan.data.io import to_pil
    from tedigan.editing.mixing import layer_mask, mix
    from tedigan.models.latents import seed_latents
    from tedigan.pipeline import MAX_IMAGES, PSI_RANGE

    if args.text is not None or args.sketch is not None or args.label is not None:
        raise cli.UsageError(
            "--seeds samples without text: drop --text/--sketch/--label (or use -n and --seed)"
        )
    cli.check_common_args(args)
    seeds = cli.parse_ranges(args.seeds, "--seeds", cli.MAX_SEED, MAX_IMAGES)
    cols = cli.parse_ranges(args.mix_seeds, "--mix-seeds", cli.MAX_SEED, 64) if args.mix_seeds else None
    if cols is not None and len(seeds) > 64:
        raise cli.UsageError("a style-mixing grid takes at most 64 --seeds rows")
    if args.mix_layers and cols is None:
        raise cli.UsageError("--mix-layers needs --mix-seeds (the columns that give those layers)")
    if args.psi is not None and not (math.isfinite(args.psi) and PSI_RANGE[0] <= args.psi <= PSI_RANGE[1]):
        raise cli.UsageError(f"--psi must be in {PSI_RANGE[0]:g}..{PSI_RANGE[1]:g}, got {args.psi}")
    if args.resolution is not None and args.resolution not in (64, 128, 256, 512, 1024):
        raise cli.UsageError(f"--resolution must be 64, 128, 256, 512 or 1024, got {args.resolution}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise cli.UsageError(f"--out {out} is a file: give a folder")
    if args.interpolate is not None and (cols or not 1 <= args.interpolate <= 120 or len(seeds) < 2):
        raise cli.UsageError(
            "--interpolate N (1..120 frames a step) needs two or more --seeds and no --mix-seeds"
        )
    paths = [out / "mixing.png"] if cols else [*(out / f"seed{s:04d}.png" for s in seeds), out / "grid.png"]
    if args.interpolate is not None:
        paths = [out / "interpolation.gif"]
    cli.check_outputs(paths, [], args.overwrite, what="--out")
    G, default_psi, what = cli.load_generator(args, args.resolution)
    psi = default_psi if args.psi is None else args.psi
    num_ws = int(G.num_ws)
    layers = cli.parse_ranges(args.mix_layers, "--mix-layers", num_ws - 1) if args.mix_layers else None
    kwargs = {"resolution": args.resolution or 256} if cli.is_named_generator(args.model) else {}
    res = kwargs.get("resolution") or int(G.resolution)
    cli.check_size(
        res * (len(cols) + 1 if cols else min(len(seeds), GRID_MAX)), res * (len(seeds) + 1), args.scale
    )

    def render(ws: torch.Tensor) -> list[Image.Image]:
        with torch.no_grad():
            return list(to_pil(G.synthesis(ws, noise_mode="const", **kwargs).float().clamp(-1, 1).cpu()))

    start = time.perf_counter()
    rows = list(seeds)
    images: list[Image.Image] = []
    for i in tqdm(range(0, len(rows), 8), desc="seeds", unit="batch", disable=len(rows) <= 8):
        images += render(seed_latents(G, rows[i : i + 8], psi))
    out.mkdir(parents=True, exist_ok=True)
    if args.interpolate is not None:
        w = seed_latents(G, rows, psi)
        w = torch.cat([w, w[:1]])  # and back to the first: a loop
        t = torch.linspace(0, 1, args.interpolate + 1)[:-1].to(w)
        path_ws = torch.cat(
            [w[i : i + 1] + t[:, None, None] * (w[i + 1 : i + 2] - w[i : i + 1]) for i in range(len(rows))]
        )
        frames = []
        for i in tqdm(range(0, len(path_ws), 8), desc="frames", unit="batch", disable=len(path_ws) <= 8):
            frames += [cli.upscale(f, args.scale) for f in render(path_ws[i : i + 8])]
        cli.save_gif(frames, out / "interpolation.gif", args.overwrite)
        written = [str(out / "interpolation.gif")]
    elif cols is None:
        for seed, img in zip(seeds, images):
            cli.save_image(cli.upscale(img, args.scale), out / f"seed{seed:04d}.png", args.overwrite)
        cli.save_image(cli.strip(images[:GRID_MAX], args.scale), out / "grid.png", args.overwrite)
        written = [str(p) for p in paths]
    else:
        layers = layers or list(range(max(1, num_ws // 3)))
        mask = layer_mask(layers, num_ws)
        w_rows, w_cols = seed_latents(G, rows, psi), seed_latents(G, cols, psi)
        col_images = render(w_cols)
        grid = Image.new("RGB", (res * (len(cols) + 1), res * (len(rows) + 1)), "white")
        for j, img in enumerate(col_images):
            grid.paste(img, (res * (j + 1), 0))
        for i in tqdm(range(len(rows)), desc="mixing", unit="row", disable=len(rows) <= 2):
            grid.paste(images[i], (0, res * (i + 1)))
            cells = render(mix(w_cols, w_rows[i : i + 1].expand_as(w_cols), mask))
            for j, img in enumerate(cells):
                grid.paste(img, (res * (j + 1), res * (i + 1)))
        cli.save_image(cli.upscale(grid, args.scale), out / "mixing.png", args.overwrite)
        written = [str(out / "mixing.png")]
    seconds = time.perf_counter() - start
    line = f"{len(seeds)} seed(s) from {what} (psi {psi:g}, {seconds:.1f} s) -> {', '.join(written[:3])}"
    summary = {"out": written, "seeds": seeds, "mix_seeds": cols, "psi": psi, "seconds": round(seconds, 3)}
    return cli.finish(summary, args.json, line + (" ..." if len(written) > 3 else ""))
