"""``tedigan face-benchmark``: the faces benchmark, two ways.

* ``--model DIR --data data/faces256 --out DIR``: edits of held-out generated faces (and ``--photo`` photos
  inverted), scored by an independent judge (human's nets; :mod:`tedigan.evaluation.face_benchmark`);
* ``--photos DIR|FILE ... [--modes fast,faithful] --out DIR``: real photos aligned, inverted and edited in each
  fidelity mode, side by side (:mod:`tedigan.evaluation.photo_benchmark`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from tedigan import cli

HELP = "the faces benchmark: edits of held-out faces or of real photos, scored by an independent judge"
#: the fidelity modes of a photo edit (``tedigan.evaluation.photo_benchmark.FIDELITIES``), without torch
FIDELITIES = ("fast", "faithful")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "face-benchmark",
        help=HELP,
        description="Edit held-out generated faces (--data) or real photos (--photos) with a faces pipeline; "
        "score them with an independent judge (human's nets).",
        epilog="examples: tedigan face-benchmark --model faces --data data/faces256 --out reports/faces; "
        "tedigan face-benchmark --photos photos/ --modes fast,faithful --out reports/photos",
    )
    p.add_argument("--model", default="faces", help="faces pipeline folder or name (default faces)")
    p.add_argument("--data", default="data/faces256", help="face data set (its test split is used)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--photos",
        nargs="+",
        default=None,
        metavar="DIR|FILE",
        help="benchmark real photos instead: folders of jpg/png photos and/or photo files",
    )
    p.add_argument(
        "--text",
        action="append",
        default=None,
        metavar="PROMPT",
        help='with --photos: an edit to make of every photo (repeatable; default "make them smile")',
    )
    p.add_argument(
        "--attributes",
        action="store_true",
        help="benchmark the face vocabulary's attribute edits (hair colour, glasses, beard, ...) on the test "
        "split of a --mixing-prob 0 data set (--data), with --modes edit modes (default boundary)",
    )
    p.add_argument("--num", type=int, default=24, help="held-out faces to edit (default 24)")
    p.add_argument("--photo", action="append", default=[], help="a real photo to invert (repeatable)")
    p.add_argument("--t2i-samples", type=int, default=4)
    p.add_argument(
        "--modes",
        default=None,
        help="with --photos: fidelity modes (default fast,faithful); else edit modes (default mix,delta)",
    )
    p.add_argument("--opt-steps", type=int, default=0, help="also optimise a few edits this many steps")
    p.add_argument("--strength", type=float, default=1.0, help="edit strength (default 1)")
    p.add_argument("--num-optimized", type=int, default=2, help="how many edits --opt-steps optimises")
    p.add_argument("--device", default="cpu")
    return p


def _modes(text: str, allowed: tuple[str, ...], what: str) -> list[str]:
    modes = list(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    unknown = [m for m in modes if m not in allowed]
    if not modes or unknown:
        raise cli.UsageError(f"--modes must name {what} of {', '.join(allowed)}, got {text!r}")
    return modes


def run(args: argparse.Namespace) -> int:
    if args.photos is not None:
        return _run_photos(args)
    if args.attributes:
        return _run_attributes(args)
    if args.text:
        raise cli.UsageError("--text is for --photos (the generated faces get their own set of edits)")
    modes = _modes(args.modes or "mix,delta", cli.EDIT_MODES, "edit modes")
    if args.num < 1 or args.t2i_samples < 0 or args.opt_steps < 0 or args.num_optimized < 0:
        raise cli.UsageError("--num must be >= 1; --t2i-samples, --opt-steps and --num-optimized >= 0")
    out = Path(args.out)
    cli.check_writable(out, "--out")
    from tedigan.data.io import load_image
    from tedigan.evaluation.face_benchmark import run_face_benchmark
    from tedigan.pipeline import TediGANPipeline

    for photo in args.photo:
        load_image(photo)  # every photo is readable before the model loads
    pipe = TediGANPipeline.from_pretrained(args.model, device=args.device)
    try:
        run_face_benchmark(
            pipe, args.data, out, args.num, args.photo, args.t2i_samples, modes=modes,
            opt_steps=args.opt_steps, num_optimized=args.num_optimized, strength=args.strength,
        )  # fmt: skip
    except ValueError as err:  # a data set without a test split, or too few faces in it
        raise cli.UsageError(str(err)) from None
    print((out / "face_benchmark.md").read_text())
    return 0


def _run_attributes(args: argparse.Namespace) -> int:
    """The face vocabulary's edits of held-out generated faces, per edit mode."""
    modes = _modes(args.modes or "boundary", cli.EDIT_MODES, "edit modes")
    if args.num < 1:
        raise cli.UsageError("--num must be >= 1")
    data, out = Path(args.data), Path(args.out)
    for need in ("info.json", "codes.safetensors", "region_features.safetensors"):
        if not (data / need).is_file():
            raise cli.UsageError(
                f"--data {data} has no {need}: make it with tedigan face-data and face-directions"
            )
    cli.check_writable(out, "--out")
    from tedigan.evaluation.attribute_benchmark import run_attribute_benchmark
    from tedigan.pipeline import TediGANPipeline

    pipe = TediGANPipeline.from_pretrained(args.model, device=args.device)
    for mode in modes:
        folder = out / mode if len(modes) > 1 else out
        run_attribute_benchmark(pipe, data, folder, args.num, mode, args.strength)
        print((folder / "attributes.md").read_text())
    return 0


def _run_photos(args: argparse.Namespace) -> int:
    """Real photos in each fidelity mode: everything is checked before the model loads."""
    if args.photo:
        raise cli.UsageError("give photos either to --photos (the photo benchmark) or to --photo, not both")
    modes = _modes(args.modes or ",".join(FIDELITIES), FIDELITIES, "fidelity modes")
    prompts = [cli.check_text(t, "make them smile") for t in (args.text or ["make them smile"])]
    out = Path(args.out)
    from tedigan.data.io import load_image
    from tedigan.evaluation.photo_benchmark import find_photos

    try:
        photos = find_photos(args.photos)
    except ValueError as err:
        raise cli.UsageError(f"--photos: {err}") from None
    for photo in photos:
        load_image(photo)  # every photo is readable before the model loads
    cli.check_writable(out, "--out")
    from tedigan.evaluation.photo_benchmark import run_photo_benchmark, supports_fidelity
    from tedigan.pipeline import TediGANPipeline

    pipe = TediGANPipeline.from_pretrained(args.model, device=args.device)
    if any(m != "fast" for m in modes) and not supports_fidelity(pipe):
        raise cli.UsageError("this pipeline has no fidelity modes (only its fast edit): use --modes fast")
    run_photo_benchmark(pipe, photos, out, modes, prompts)
    print((out / "photos.md").read_text())
    return 0
