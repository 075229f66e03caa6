"""``tedigan invert --image face.png --out face.safetensors`` (also ``python -m tedigan.invert``).

Each image (any size or mode; ``--align`` crops a photo around its face first) is encoded by the pipeline's
image encoder into W+ codes ``[num_ws, w_dim]``; the codes of all images are saved together as one
safetensors file (tensor ``latents`` ``[N, num_ws, w_dim]``; the metadata names the images and the model),
and ``--recon`` writes the reconstructions side by side with the inputs. Edit saved codes later with
``tedigan edit --latent face.safetensors --text "..."``, without inverting again.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tedigan import cli

HELP = "encode images into W+ codes (saved as safetensors)"

EXAMPLES = """\
examples:
  tedigan invert --image face.png --out face.safetensors --recon face_recon.png
  tedigan invert --image a.png --image b.png --out codes.safetensors
  tedigan edit --latent codes.safetensors --index 1 --text "blond hair"
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "invert",
        help=HELP,
        description="Encode face images into W+ codes with a TediGAN pipeline and save them.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--image", action="append", required=True, help="input image (repeat for more)")
    parser.add_argument("--out", required=True, help="codes file to write (.safetensors)")
    parser.add_argument("--recon", default=None, help="also write input | reconstruction pairs to this image")
    parser.add_argument("--align", action="store_true", help="crop a photo around its face (MTCNN) first")
    parser.add_argument("--json", action="store_true", help="print a JSON summary instead of text")
    parser.add_argument(
        "--fast",
        action="store_true",
        help="invert with the image encoder only (quick, less faithful to the photo); without it the model's "
        "default fidelity (faces: faithful, a tuned generator copy per image, a minute or so on a CPU)",
    )
    cli.add_common_args(parser)
    cli.add_pti_arg(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from safetensors.torch import save_file

    from tedigan.data.io import load_image

    cli.check_common_args(args)
    sources = [Path(p) for p in args.image]
    out = Path(args.out)
    if out.suffix != ".safetensors":
        raise cli.UsageError(f"--out {out} must end in .safetensors")
    if out.exists() and not args.overwrite:
        raise cli.UsageError(f"{out} already exists: pass --overwrite to replace it, or choose another --out")
    if any(cli.same_file(out, s) for s in sources):
        raise cli.UsageError(f"--out {out} is one of the input images")
    cli.check_writable(out.parent, "--out")
    if args.recon:
        cli.check_outputs([Path(args.recon)], sources, args.overwrite, what="--recon")
    images = [load_image(s) for s in sources]  # unreadable images fail before the model loads
    pipe = cli.load_pipeline(args)
    result = pipe.invert(
        images,
        align=args.align,
        steps=args.steps or 0,
        pti_steps=args.pti_steps,
        seed=args.seed,
        progress=True,
        fidelity="fast" if args.fast else None,
    )
    meta = {"images": json.dumps([str(s) for s in sources]), "model": str(args.model or "shipped")}
    latents = result.latents.detach().float().cpu().contiguous()
    cli.write_new(out, lambda tmp: save_file({"latents": latents}, str(tmp), metadata=meta), args.overwrite)
    written = [str(out)]
    if args.recon:
        pairs = [im for pair in zip(result.source_images, result.images) for im in pair]
        cli.save_image(cli.strip(pairs, args.scale), Path(args.recon), args.overwrite)
        written.append(args.recon)
    line = f"inverted {len(sources)} image(s) into W+ {tuple(latents.shape)} ({result.seconds:.2f} s) -> "
    summary = {"out": written, "shape": list(latents.shape), "seconds": round(result.seconds, 3)}
    return cli.finish(summary, args.json, line + ", ".join(written))
