"""``tedigan edit --image face.png --text "blond hair"`` (also ``python -m tedigan.edit``).

Without ``--model`` the input decides: a photo goes to the ``faces`` model, a rendered avatar to the avatar
model (the avatar model's small domain judge tells them apart; neither pipeline is loaded for that). With the
faces model a photo is aligned (``--no-align`` for an already aligned crop): facenet-pytorch's MTCNN finds the
faces, each face's FFHQ crop is edited, and the edit is rendered at the size the face has in the photo and
pasted back into it (``--aligned`` writes the 1024 px crop of the edit instead). Without alignment the image
(any size or mode) is centre-cropped and resized to the model's resolution. The image is inverted into W+ by
the image encoder; the W+ layers that carry what the text names move as the model's edit mode says;
``--steps N`` then refines the code by instance-level optimisation (pixel + LPIPS to the source outside the
edited region, encoder regulariser).

A folder of images, several ``--text`` or a ``--prompts`` file make a batch: every input and prompt is
checked before the first edit (every unreadable image is named; ``--skip-bad`` edits the others), and the
same command run again after an interruption goes on where it stopped (finished outputs are skipped).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tedigan import cli

HELP = "edit a face image (or saved W+ codes, or a folder of images) from text"

EXAMPLES = """\
examples:
  tedigan edit --image photo.jpg --text "make him look older" --grid
  tedigan edit --image group.jpg --text "make them smile" --face all
  tedigan edit --image photo.jpg --text "make her smile" --aligned --out smile_1024.png
  tedigan edit --image face.png --text "blond hair"
  tedigan edit --image face.png --text "she wears sunglasses" --steps 30 --grid
  tedigan edit --image face.png --text "blond hair" --steps 60 --video blond.gif
  tedigan edit --latent codes.safetensors --index 1 --text "blond hair" --out blond.png
  tedigan edit --image photos/ --text "blond hair" --text "remove the glasses" --out edited/
  tedigan edit --image photos/ --prompts prompts.txt --out edited/ --skip-bad
  tedigan edit --image face.png --text "pink hair" --strength 0.6
  tedigan edit --image face.png --text "pink hair" --layers 0,1,2,3 --out pink.png --overwrite

writes OUT (default: <image name>_edited.png in the current folder). For a photo (aligned) that is the
photo, its size and mode, with the edited face(s) pasted back; --aligned writes the edited 1024 px FFHQ crop
instead (OUT_face<i> for several faces), and --grid an aligned input | reconstruction | edit | photo strip
(OUT with _grid, at a common height). For an image edited without alignment it is the model-size edit,
upscaled by --scale for viewing, and --grid a source | reconstruction | edit strip. With a folder of images,
several --text or a --prompts file, OUT is a folder of <image>__<prompt>.png (one model load, a progress
bar). A batch checks every input and prompt before the first edit and names every unreadable image
(--skip-bad edits the others and still exits with status 2); run it again after an interruption and it
skips the edits already written (every file is written whole or not at all). An existing file is never
replaced without --overwrite, an input never; a file another run writes meanwhile is kept.
"""

#: batch edits whose outputs exist are skipped; a message lists at most this many unreadable images
_MAX_NAMED = 20


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "edit",
        help=HELP,
        description="Edit a face image from a text prompt with a TediGAN pipeline.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        more_help=cli.vocabulary_help,
    )
    parser.add_argument(
        "--image",
        default=None,
        help="input face image (any format PIL reads), or a folder of them (batch edit)",
    )
    parser.add_argument("--latent", default=None, help="instead of --image: W+ codes saved by tedigan invert")
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
        "--face",
        default=None,
        metavar="WHICH",
        help="which face of a photo to edit: largest (the default), all, or an index (0 is the largest)",
    )
    parser.add_argument(
        "--aligned",
        action="store_true",
        help="write the edited 1024 px FFHQ crop of the face instead of the photo with the edit pasted back",
    )
    parser.add_argument(
        "--fast",
        action="store_true",
        help="invert with the image encoder only (quick, less faithful to the photo)",
    )
    parser.add_argument(
        "--strength",
        type=float,
        default=1.0,
        help="how far the edit goes: 1 reads as the asked value (0..1 a part of the way; up to 2 exaggerates)",
    )
    parser.add_argument(
        "--mode",
        choices=cli.EDIT_MODES,
        default=None,
        help="mix: the selected layers come from the text code (TediGAN); delta: they move along the text "
        "direction of the asked value; prototype: from the mean text code of the image's nearest value to the "
        "asked value's; boundary: the least move across the asked value's boundary in W that keeps the other "
        "attributes (faces model: hair colour, glasses, beard, ...) (default: the model's choice)",
    )
    parser.add_argument(
        "--grid",
        action="store_true",
        help="also write a source | reconstruction | edit strip (for a photo: aligned input | reconstruction | "
        "edit | photo)",
    )
    parser.add_argument(
        "--align",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="find the faces of a photo (MTCNN), edit their FFHQ crops and paste the edits back (default: on "
        "with the faces model; --no-align for an image that is already an aligned face crop)",
    )
    parser.add_argument(
        "--video",
        default=None,
        help="with --steps: write the optimisation as an animated GIF (e.g. path.gif)",
    )
    parser.add_argument(
        "--skip-bad",
        action="store_true",
        help="batch: edit the readable images, name the others and exit with status 2",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON summary instead of text")
    cli.add_common_args(
        parser,
        model_help="a shipped model by name (faces: photos, research / non-commercial; avatars: the rendered "
        "avatars) or a pipeline folder (default: the input decides: a photo goes to faces, an avatar to avatars)",
    )
    cli.add_pti_arg(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    prompts = list(args.text or [])
    if args.prompts is not None:
        try:
            lines = Path(args.prompts).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise cli.UsageError(f"--prompts {args.prompts}: cannot read it as UTF-8 text ({err})") from None
        prompts += [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not prompts:
        raise cli.UsageError('empty text: say what to change, e.g. --text "blond hair"')
    for prompt in prompts:
        cli.check_text(prompt, 'say what to change, e.g. --text "blond hair"')
    if args.image is not None and Path(args.image).is_dir() or len(prompts) > 1:
        return _batch(args, prompts)
    if args.skip_bad:
        raise cli.UsageError("--skip-bad is for a batch edit (a folder of images or several prompts)")
    return _single(args, prompts[0])


def _check_strength(strength: float) -> None:
    from tedigan.pipeline import STRENGTH_RANGE

    lo, hi = STRENGTH_RANGE
    if not lo <= strength <= hi:  # also refuses nan
        raise cli.UsageError(f"--strength must be in {lo:g}..{hi:g}, got {strength}")


def _single(args: argparse.Namespace, text: str) -> int:
    from tedigan.data.io import load_image, open_image, to_pil

    if (args.image is None) == (args.latent is None):
        raise cli.UsageError("give --image FILE or --latent CODES (from tedigan invert), one of them")
    src = Path(args.image or args.latent)
    cli.check_common_args(args)
    _check_strength(args.strength)
    which = _face(args)
    out = Path(args.out) if args.out else Path(f"{src.stem}_edited.png")
    if out.is_dir() or not out.name:
        raise cli.UsageError(f"--out {out} is a folder: give a file name such as {out / 'edited.png'}")
    grid = out.with_name(f"{out.stem}_grid{out.suffix}")
    video = Path(args.video) if args.video else None
    if video is not None and (video.suffix.lower() != ".gif" or (args.steps or 0) < 1):
        raise cli.UsageError("--video needs a .gif path and --steps N > 0 (it shows the optimisation)")
    outputs = [p for p in (out, grid if args.grid else None, video) if p]
    cli.check_outputs(outputs, [src], args.overwrite)
    layers = cli.parse_layers(args.layers)
    image = latents = faces = None
    if args.latent is None:
        image = load_image(src)  # an unreadable image fails before the model loads
    else:
        latents = _read_latents(src, args.index)
    _choose_model(args, [image] if image is not None else [])
    align = _resolve_align(args)
    if align:
        image = open_image(src)  # in its own mode: the photo written back keeps it
        faces = _detect({src: image}, which)[src]  # no face: one line, before the model loads
        if args.aligned and len(faces) > 1:
            outputs = [*_face_paths(out, len(faces)), *outputs[1:]]
            cli.check_outputs(outputs, [src], args.overwrite)
    pipe = cli.load_pipeline(args)
    if not align:
        cli.check_size(pipe.resolution * (3 if args.grid else 1), pipe.resolution, args.scale)
    steps = args.steps if args.steps is not None else pipe.defaults.edit_steps
    frames: list = []
    every = max(1, steps // 40)

    def keep_frame(step: int, images) -> None:
        if step % every == 0:
            frames.append(cli.upscale(to_pil(images[:1].float().clamp(-1, 1).cpu())[0], args.scale))

    result = pipe.edit(
        image,
        text,
        latents=latents,
        callback=keep_frame if video is not None else None,
        steps=steps,
        strength=args.strength,
        layers=layers,
        seed=args.seed,
        align=align,
        face=faces if align else 0,
        progress=steps > 0 or args.pti_steps > 0 or (not args.fast and pipe.defaults.fidelity == "faithful"),
        mode=args.mode,
        pti_steps=args.pti_steps,
        fidelity="fast" if args.fast else None,
    )
    if align:
        written = _write_photo(args, pipe, result, out, grid if args.grid else None)
    else:
        cli.save_image(cli.upscale(result.images[0], args.scale), out, args.overwrite)
        written = [str(out)]
    if video is not None:
        cli.save_gif([*frames, cli.upscale(result.images[0], args.scale)], video, args.overwrite)
        written.append(str(video))
    if args.grid and not align:
        rec = pipe.decode(result.source_latents[:1], generator=(result.tuned_generators or [None])[0])[0]
        cli.save_image(
            cli.strip([result.source_images[0], rec, result.images[0]], args.scale), grid, args.overwrite
        )
        written.append(str(grid))
    summary = {"out": written, "text": text, "model": args.model, "layers": result.layers, "steps": steps}
    what = ""
    if align:
        summary["faces"] = [al.to_dict() for al in result.alignments]
        what = f"{len(result.alignments)} face(s), "
    line = (
        f"edited {src} with {cli.shorten(text)!r} ({what}W+ layers {result.layers}, {steps} steps, "
        f"{result.seconds:.2f} s) -> {', '.join(written)}"
    )
    return cli.finish({**summary, "seconds": round(result.seconds, 3)}, args.json, line)


# ------------------------------------------------------------------------------------------------ photos


def _warn(message: str) -> None:
    print(f"tedigan edit: warning: {message}", file=sys.stderr)


def _choose_model(args: argparse.Namespace, images: list) -> None:
    """Without ``--model`` the input decides (:func:`tedigan.pipeline.photos.choose_model`): a photo goes to
    the faces model when its generator is installed (else a warning line and the avatar model), a rendered
    avatar to the avatar model. Sets ``args.model`` to the chosen model's folder."""
    if args.model is not None or not images:
        return
    from tedigan import assets
    from tedigan.domains import SHIPPED_MODELS
    from tedigan.pipeline.photos import choose_model

    name, _ = choose_model(images)
    if name == "faces":
        try:
            assets.mobilestylegan_ir_dir()
            if not SHIPPED_MODELS["faces"].is_dir():
                raise assets.MissingWeightsError(f"{SHIPPED_MODELS['faces']} is missing")
        except assets.MissingWeightsError:
            _warn(
                "this looks like a photo, but the faces model's generator (the random-face package) is not "
                "installed: editing it with the avatar model (bash scripts/install.sh installs it)"
            )
            name = "avatars"
    args.model = str(SHIPPED_MODELS[name])


def _domain(model: str | None) -> str | None:
    """The domain of a model (its vocabulary's), read without loading it; None when unknown."""
    from tedigan.data.vocabulary import Vocabulary, VocabularyError
    from tedigan.pipeline import model_folder

    try:
        return Vocabulary.load(model_folder(model)).domain
    except (OSError, VocabularyError):
        return None


def _face(args: argparse.Namespace):
    """``--face`` checked before any work: ``0`` (the largest) when not given."""
    if args.face is None:
        return 0
    from tedigan.pipeline import PipelineError
    from tedigan.pipeline.photos import check_face

    try:
        return check_face(args.face)
    except PipelineError:
        raise cli.UsageError(
            f"--face must be largest, all or an index (0 is the largest face), got {args.face!r}"
        ) from None


def _resolve_align(args: argparse.Namespace) -> bool:
    """``--align`` as given, else on for the faces model; ``--face`` and ``--aligned`` need it."""
    if args.latent is not None:
        if args.align or args.face is not None or args.aligned:
            raise cli.UsageError("--align, --face and --aligned are for an --image photo, not --latent codes")
        return False
    align = args.align if args.align is not None else _domain(args.model) == "faces"
    if not align and (args.face is not None or args.aligned):
        option = "--face" if args.face is not None else "--aligned"
        raise cli.UsageError(
            f"{option} is for a photo whose faces are found and aligned: pass --align (the faces model's default)"
        )
    return align


def _detect(photos: dict, which, bar: bool = True) -> dict:
    """Per photo, its faces that ``--face`` names (MTCNN), with a progress bar; no face raises one line."""
    from tqdm.auto import tqdm

    from tedigan.data.io import convert_image
    from tedigan.pipeline.photos import find_faces

    return {
        s: find_faces(convert_image(photo, "RGB"), which, str(s))
        for s, photo in tqdm(photos.items(), desc="detect", unit="photo", disable=not bar)
    }


def _face_paths(out: Path, n: int) -> list[Path]:
    """``--aligned`` output paths: OUT for one face, OUT_face0, OUT_face1, ... for several."""
    if n == 1:
        return [out]
    return [out.with_name(f"{out.stem}_face{i}{out.suffix}") for i in range(n)]


def _save_photo(img, path: Path, overwrite: bool) -> Path:
    """Write a photo-sized result in its own mode where the format takes it (else RGB), atomically."""

    def write(tmp: Path) -> None:
        try:
            img.save(tmp)
        except (OSError, KeyError, ValueError):  # e.g. CMYK as PNG, RGBA as JPEG
            img.convert("RGB").save(tmp)

    return cli.write_new(path, write, overwrite)


def _photo_grid(panels: list, height: int):
    """Panels side by side, each scaled to ``height`` (aspect kept)."""
    from PIL import Image

    scaled = [
        im
        if im.height == height
        else im.resize((max(1, round(im.width * height / im.height)), height), Image.Resampling.LANCZOS)
        for im in (p.convert("RGB") for p in panels)
    ]
    return cli.strip(scaled, 1)


def _write_photo(
    args: argparse.Namespace, pipe, result, out: Path, grid: Path | None, progress: bool = True
) -> list[str]:
    """The outputs of an aligned edit: the photo with the edits pasted back (or with ``--aligned`` the edited
    1024 px crops), and with ``grid`` an aligned input | reconstruction | edit (per face) | photo strip."""
    from tedigan.pipeline.photos import paste_edits, render_faces

    written: list[str] = []
    renders = render_faces(pipe, result) if grid is not None or not args.aligned else None
    pasted = paste_edits(result, renders, progress=progress)[0] if renders is not None else None
    if args.aligned:
        from PIL import Image

        crops = render_faces(pipe, result, size=1024)
        can_1024 = 1024 in pipe.render_sizes()
        for path, im, r in zip(_face_paths(out, len(crops.edited)), crops.edited, crops.sizes):
            if r < 1024:  # a tuned generator whose 1024 px detail is noise: Lanczos; a small model: --scale
                im = (
                    im.resize((1024, 1024), Image.Resampling.LANCZOS)
                    if can_1024
                    else cli.upscale(im, args.scale)
                )
            cli.save_image(im, path, args.overwrite)
            written.append(str(path))
    else:
        _save_photo(pasted, out, args.overwrite)
        written.append(str(out))
    if grid is not None:
        panels = []
        for i, al in enumerate(result.alignments):
            r = renders.sizes[i]
            panels += [al.crop(result.photos[i], r), renders.reconstructions[i], renders.edited[i]]
        cli.save_image(_photo_grid([*panels, pasted], max(256, *renders.sizes)), grid, args.overwrite)
        written.append(str(grid))
    return written


def _read_latents(path: Path, index: int):
    """Row ``index`` of the ``latents`` tensor of a codes file written by ``tedigan invert``."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise cli.UsageError(f"--latent {path}: no such file")
    try:
        codes = load_file(str(path)).get("latents")
    except (SafetensorError, OSError, ValueError) as err:
        raise cli.UsageError(
            f"--latent {path} is not a codes file ({err}): write one with tedigan invert"
        ) from None
    if codes is None or codes.ndim != 3:
        raise cli.UsageError(
            f"--latent {path} holds no latents [N, num_ws, w_dim]: write it with tedigan invert"
        )
    if not 0 <= index < len(codes):
        raise cli.UsageError(f"--index must be in 0..{len(codes) - 1} for {path}, got {index}")
    return codes[index : index + 1]


def _slug(text: str, limit: int = 40) -> str:
    keep = "".join(c if c.isalnum() else "_" for c in text.lower()).strip("_")
    return "_".join(part for part in keep.split("_") if part)[:limit] or "edit"


def _batch(args: argparse.Namespace, prompts: list[str]) -> int:
    """Every image (a file or a folder of them) x every prompt, one model load, into the folder --out.

    Edits whose output exists are skipped (outputs are written whole or not at all, so an existing one is
    finished): the same command goes on after an interruption. ``--overwrite`` edits them again."""
    from tqdm.auto import tqdm

    from tedigan.data.folder import scan_images
    from tedigan.data.io import ImageLoadError, convert_image, open_image

    cli.check_common_args(args)
    if args.latent is not None or args.grid:
        raise cli.UsageError("a batch edit takes --image (a file or folder), not --latent or --grid")
    if args.image is None:
        raise cli.UsageError("give --image FILE or a folder of images")
    _check_strength(args.strength)
    which = _face(args)
    if args.aligned and which == "all":
        raise cli.UsageError(
            "a batch writes one file per photo and prompt: --aligned takes one face (--face largest or N)"
        )
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
    done = [] if args.overwrite else [j for j in jobs if j[2].is_file()]
    jobs = [j for j in jobs if j not in done]
    cli.check_outputs([j[2] for j in jobs], sources, args.overwrite)
    cli.check_writable(out, "--out")
    images, photos, bad = {}, {}, {}
    for s in dict.fromkeys(j[0] for j in jobs):  # every input is read before the first edit
        try:
            photos[s] = open_image(s)  # in its own mode: a photo written back keeps it
            images[s] = convert_image(photos[s], "RGB")
        except ImageLoadError as err:
            bad[s] = err.reason or str(err)
        except Exception as err:  # noqa: BLE001 - as load_image: a mode that does not convert
            bad[s] = f"cannot convert it to RGB: {err}"
    if bad and not args.skip_bad:
        raise cli.UsageError(
            f"{_unreadable(bad, len(sources))}: fix or remove them, or pass --skip-bad to edit the others"
        )
    _choose_model(args, list(images.values()))
    align = _resolve_align(args) if images else False
    faces, faceless = {}, {}
    if align:  # every photo's faces are found before the first edit
        from tedigan.pipeline.photos import FaceNotFound

        for s in tqdm(images, desc="detect", unit="photo"):
            try:
                faces[s] = _detect({s: images[s]}, which, bar=False)[s]
            except FaceNotFound as err:
                faceless[s] = err.reason
        if faceless and not args.skip_bad:
            raise cli.UsageError(
                f"{_unreadable(faceless, len(sources), 'have no face to edit')}: pass --skip-bad to edit the others"
            )
        bad.update(faceless)
    jobs = [j for j in jobs if j[0] not in bad]
    layers = cli.parse_layers(args.layers)
    pipe = cli.load_pipeline(args) if jobs else None
    if layers is None and pipe is not None:
        for p in prompts:
            pipe.read_prompt(p)  # every prompt is understood before the first edit
    steps = args.steps if args.steps is not None else (pipe.defaults.edit_steps if pipe else 0)
    out.mkdir(parents=True, exist_ok=True)
    written, start = [], time.perf_counter()
    for s, p, path in tqdm(jobs, desc="edits", unit="edit", disable=len(jobs) < 2):
        result = pipe.edit(
            photos[s] if align else images[s],
            p,
            steps=steps,
            strength=args.strength,
            layers=layers,
            seed=args.seed,
            align=align,
            face=faces[s] if align else 0,
            mode=args.mode,
            pti_steps=args.pti_steps,
            progress=False,
            fidelity="fast" if args.fast else None,
        )
        if align:
            _write_photo(args, pipe, result, path, None, progress=False)
        else:
            cli.save_image(cli.upscale(result.images[0], args.scale), path, args.overwrite)
        written.append(str(path))
    seconds = time.perf_counter() - start
    line = f"{len(written)} edit(s) of {len(sources)} image(s) x {len(prompts)} prompt(s) ({seconds:.1f} s) -> {out}/"
    if done:
        line += f"; {len(done)} edit(s) already written, skipped (--overwrite edits them again)"
    summary = {
        "out": written,
        "skipped_existing": [str(j[2]) for j in done],
        "unreadable": [str(s) for s in bad],
        "prompts": prompts,
        "seconds": round(seconds, 3),
    }
    cli.finish(summary, args.json, line)
    if bad:
        unreadable = {s: r for s, r in bad.items() if s not in faceless}
        parts = [_unreadable(unreadable, len(sources))] if unreadable else []
        parts += [_unreadable(faceless, len(sources), "have no face to edit")] if faceless else []
        raise cli.UsageError(f"{'; '.join(parts)}: skipped (--skip-bad); the others are edited")
    return 0


def _unreadable(bad: dict[Path, str], total: int, what: str = "cannot be read") -> str:
    """``2 of 5 images cannot be read: a.png (reason); b.png (reason)``, the first ``_MAX_NAMED`` named."""
    named = "; ".join(f"{s} ({reason})" for s, reason in list(bad.items())[:_MAX_NAMED])
    more = f"; and {len(bad) - _MAX_NAMED} more" if len(bad) > _MAX_NAMED else ""
    return f"{len(bad)} of {total} image(s) {what}: {named}{more}"
