"""Edit a face from text: ``python -m tedigan.edit --image face.png --text "blond hair"``.

The image (any size or mode) is centre-cropped and resized to the model's resolution (``--align`` crops a
photo around the face detected by facenet-pytorch's MTCNN first), inverted into W+ by the image encoder; the
W+ layers that carry what the text names come from the text code; ``--steps N`` then refines the code by
instance-level optimisation (pixel + LPIPS to the source outside the edited region, encoder regulariser).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from tedigan import cli
from tedigan.data.io import load_image, to_pil

EXAMPLES = """\
examples:
  python -m tedigan.edit --image face.png --text "blond hair"
  python -m tedigan.edit --image face.png --text "she wears sunglasses" --steps 30 --grid
  python -m tedigan.edit --image face.png --text "blond hair" --steps 60 --video blond.gif
  python -m tedigan.edit --image photo.jpg --align --text "a bald man" --out bald.png
  python -m tedigan.edit --latent codes.safetensors --index 1 --text "blond hair" --out blond.png
  python -m tedigan.edit --image photos/ --text "blond hair" --text "remove the glasses" --out edited/
  python -m tedigan.edit --image photos/ --prompts prompts.txt --out edited/
  python -m tedigan.edit --image face.png --text "pink hair" --strength 0.6
  python -m tedigan.edit --image face.png --text "pink hair" --layers 0,1,2,3 --out pink.png --overwrite

writes OUT (default: <image name>_edited.png in the current folder), upscaled by --scale for viewing,
and with --grid a source | reconstruction | edit strip next to it (OUT with _grid). With a folder of images,
several --text or a --prompts file, OUT is a folder of <image>__<prompt>.png (one model load, a progress
bar; every input and prompt is checked before the first edit). An existing file is never replaced without
--overwrite, and an input never.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tedigan.edit",
        description="Edit a face image from a text prompt with a TediGAN pipeline.",
        epilog=EXAMPLES + cli.vocabulary_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--image",
        default=None,
        help="input face image (any format PIL reads), or a folder of them (batch edit)",
    )
    parser.add_argument(
        "--latent", default=None, help="instead of --image: W+ codes saved by python -m tedigan.invert"
    )
    parser.add_argument("--index", type=int, default=0, help="with --latent: which of its codes (default 0)")
    parser.add_argument(
        "--text",
        action="append",
        default=None,
        help='what to change, e.g. "blond hair" (repeat for several edits of each image)',
    )
    parser.add_argument("--prompts", default=None, help="a text file of prompts, one per line (batch edit)")
    parser.add_argument("--out", default=None, help="output image path (default <image>_edited.png)")
    parser.add_argument(
        "--strength",
        type=float,
        default=1.0,
        help="how far the selected layers move to the text code (0..1; up to 2 exaggerates)",
    )
    parser.add_argument(
        "--mode",
        choices=("mix", "delta", "prototype"),
        default=None,
        help="mix: the selected layers come from the text code (TediGAN); delta: they move along the text "
        "direction of the asked value; prototype: from the mean text code of the image's nearest value to the "
        "asked value's (default: the model's choice)",
    )
    parser.add_argument(
        "--grid", action="store_true", help="also write a source | reconstruction | edit strip"
    )
    parser.add_argument("--align", action="store_true", help="crop a photo around its face (MTCNN) first")
    parser.add_argument(
        "--video",
        default=None,
        help="with --steps: write the optimisation as an animated GIF (e.g. path.gif)",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON summary instead of text")
    cli.add_common_args(parser)
    cli.add_pti_arg(parser)
    return parser


def _read_latents(path: Path, index: int):
    """Row ``index`` of the ``latents`` tensor of a codes file written by ``python -m tedigan.invert``."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise cli.UsageError(f"--latent {path}: no such file")
    try:
        codes = load_file(str(path)).get("latents")
    except (SafetensorError, OSError, ValueError) as err:
        raise cli.UsageError(
            f"--latent {path} is not a codes file ({err}): write one with tedigan.invert"
        ) from None
    if codes is None or codes.ndim != 3:
        raise cli.UsageError(
            f"--latent {path} holds no latents [N, num_ws, w_dim]: write it with tedigan.invert"
        )
    if not 0 <= index < len(codes):
        raise cli.UsageError(f"--index must be in 0..{len(codes) - 1} for {path}, got {index}")
    return codes[index : index + 1]


def _slug(text: str, limit: int = 40) -> str:
    keep = "".join(c if c.isalnum() else "_" for c in text.lower()).strip("_")
    return "_".join(part for part in keep.split("_") if part)[:limit] or "edit"


def _batch(args, prompts: list[str]) -> int:
    """Every image (a file or a folder of them) × every prompt, one model load, into the folder --out."""
    from tqdm.auto import tqdm

    from tedigan.data.folder import scan_images
    from tedigan.pipeline import STRENGTH_RANGE

    cli.check_common_args(args)
    if args.latent is not None or args.grid:
        raise cli.UsageError("a batch edit takes --image (a file or folder), not --latent or --grid")
    if args.image is None:
        raise cli.UsageError("give --image FILE or a folder of images")
    lo, hi = STRENGTH_RANGE
    if not lo <= args.strength <= hi:
        raise cli.UsageError(f"--strength must be in {lo:g}..{hi:g}, got {args.strength}")
    src = Path(args.image)
    sources = [src / p for p in scan_images(src)] if src.is_dir() else [src]
    if not sources:
        raise cli.UsageError(f"--image {src} holds no images")
    out = Path(args.out) if args.out else Path(f"{src.stem}_edited")
    if out.exists() and not out.is_dir():
        raise cli.UsageError(f"--out {out} is a file: a batch edit writes into a folder")
    slugs = [_slug(p) for p in prompts]
    if len(set(slugs)) != len(slugs):
        raise cli.UsageError("two prompts give the same file name: make them differ in letters or digits")
    jobs = [(s, p, out / f"{s.stem}__{slug}.png") for s in sources for p, slug in zip(prompts, slugs)]
    if len({j[2] for j in jobs}) != len(jobs):
        raise cli.UsageError("two images share a name (stem): their edits would overwrite each other")
    cli.check_outputs([j[2] for j in jobs], sources, args.overwrite)
    images = {s: load_image(s) for s in sources}  # every input is readable before the first edit
    layers = cli.parse_layers(args.layers)
    pipe = cli.load_pipeline(args)
    if layers is None:
        for p in prompts:
            pipe.read_prompt(p)  # every prompt is understood before the first edit
    steps = args.steps if args.steps is not None else pipe.defaults.edit_steps
    out.mkdir(parents=True, exist_ok=True)
    written, start = [], time.perf_counter()
    for s, p, path in tqdm(jobs, desc="edits", unit="edit", disable=len(jobs) < 2):
        result = pipe.edit(
            images[s],
            p,
            steps=steps,
            strength=args.strength,
            layers=layers,
            seed=args.seed,
            align=args.align,
            mode=args.mode,
            pti_steps=args.pti_steps,
        )
        cli.save_image(cli.upscale(result.images[0], args.scale), path)
        written.append(str(path))
    seconds = time.perf_counter() - start
    line = f"{len(written)} edit(s) of {len(sources)} image(s) x {len(prompts)} prompt(s) ({seconds:.1f} s) -> {out}/"
    return cli.finish({"out": written, "prompts": prompts, "seconds": round(seconds, 3)}, args.json, line)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def run() -> int:
        from tedigan.pipeline import STRENGTH_RANGE

        prompts = list(args.text or [])
        if args.prompts is not None:
            try:
                lines = Path(args.prompts).read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as err:
                raise cli.UsageError(
                    f"--prompts {args.prompts}: cannot read it as UTF-8 text ({err})"
                ) from None
            prompts += [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
        if not prompts:
            raise cli.UsageError('empty text: say what to change, e.g. --text "blond hair"')
        for prompt in prompts:
            cli.check_text(prompt, 'say what to change, e.g. --text "blond hair"')
        if args.image is not None and Path(args.image).is_dir() or len(prompts) > 1:
            return _batch(args, prompts)
        args.text = prompts[0]
        if (args.image is None) == (args.latent is None):
            raise cli.UsageError(
                "give --image FILE or --latent CODES (from python -m tedigan.invert), one of them"
            )
        src = Path(args.image or args.latent)
        cli.check_text(args.text, 'say what to change, e.g. --text "blond hair"')
        cli.check_common_args(args)
        lo, hi = STRENGTH_RANGE
        if not lo <= args.strength <= hi:  # also refuses nan
            raise cli.UsageError(f"--strength must be in {lo:g}..{hi:g}, got {args.strength}")
        out = Path(args.out) if args.out else Path(f"{src.stem}_edited.png")
        if out.is_dir() or not out.name:
            raise cli.UsageError(f"--out {out} is a folder: give a file name such as {out / 'edited.png'}")
        grid = out.with_name(f"{out.stem}_grid{out.suffix}")
        video = Path(args.video) if args.video else None
        if video is not None and (video.suffix.lower() != ".gif" or (args.steps or 0) < 1):
            raise cli.UsageError("--video needs a .gif path and --steps N > 0 (it shows the optimisation)")
        cli.check_outputs([p for p in (out, grid if args.grid else None, video) if p], [src], args.overwrite)
        image = latents = None
        if args.latent is None:
            image = load_image(src)  # an unreadable image fails before the model loads
        else:
            latents = _read_latents(src, args.index)
        layers = cli.parse_layers(args.layers)
        pipe = cli.load_pipeline(args)
        cli.check_size(pipe.resolution * (3 if args.grid else 1), pipe.resolution, args.scale)
        steps = args.steps if args.steps is not None else pipe.defaults.edit_steps
        frames: list = []
        every = max(1, steps // 40)

        def keep_frame(step: int, images) -> None:
            if step % every == 0:
                frames.append(cli.upscale(to_pil(images[:1].float().clamp(-1, 1).cpu())[0], args.scale))

        result = pipe.edit(
            image,
            args.text,
            latents=latents,
            callback=keep_frame if video is not None else None,
            steps=steps,
            strength=args.strength,
            layers=layers,
            seed=args.seed,
            align=args.align,
            progress=steps > 0 or args.pti_steps > 0,
            mode=args.mode,
            pti_steps=args.pti_steps,
        )
        cli.save_image(cli.upscale(result.images[0], args.scale), out)
        written = [str(out)]
        if video is not None:
            cli.save_gif([*frames, cli.upscale(result.images[0], args.scale)], video)
            written.append(str(video))
        if args.grid:
            rec = pipe.decode(result.source_latents[:1], generator=(result.tuned_generators or [None])[0])[0]
            cli.save_image(cli.strip([result.source_images[0], rec, result.images[0]], args.scale), grid)
            written.append(str(grid))
        summary = {"out": written, "text": args.text, "layers": result.layers, "steps": steps}
        line = (
            f"edited {src} with {args.text!r} (W+ layers {result.layers}, {steps} steps, "
            f"{result.seconds:.2f} s) -> {', '.join(written)}"
        )
        return cli.finish({**summary, "seconds": round(result.seconds, 3)}, args.json, line)

    return cli.run(run, "tedigan.edit")


if __name__ == "__main__":
    raise SystemExit(main())
