"""Shared plumbing of the commands (:mod:`tedigan.commands`) and the web demo.

Errors a user can fix (missing model folder or weights, unreadable image, empty text, bad arguments) end
the program with one line on stderr naming the problem and what to do, and exit status 2; nothing is
written in that case (:func:`user_errors` names them; :mod:`tedigan.commands` prints them). Anything else is
a bug and keeps its traceback (``TEDIGAN_DEBUG=1`` shows the traceback of user errors too).

Every output path is checked before any work: never one of the inputs, never an existing file unless
``--overwrite`` is given, and its folder exists or can be made and takes new files. Images are written
through a temporary file and a rename, so an interrupted run leaves no half-written file and replaces
nothing; without ``--overwrite`` a file that another run wrote meanwhile is not replaced either.

Only the standard library is imported here at start-up: ``tedigan <command> --help`` needs no torch.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from tedigan.domains import NAMED_GENERATORS, SHIPPED_MODELS

if TYPE_CHECKING:
    from PIL import Image

#: --scale limit and the largest side of a written image (beyond them a strip would take gigabytes)
MAX_SCALE = 16
MAX_SIDE = 16384
MAX_SEED = 2**32 - 1
#: the pipeline's edit modes (``tedigan.pipeline.EDIT_MODES``), here for ``--help`` without loading torch
EDIT_MODES = ("mix", "delta", "prototype", "boundary")


class UsageError(ValueError):
    """A bad command-line argument."""


#: module -> the exceptions in it that are the user's to fix (one line, exit 2), not bugs
USER_ERRORS = {
    "tedigan.cli": ("UsageError",),
    "tedigan.typed": ("ConfigError",),
    "tedigan.assets": ("MissingWeightsError",),
    "tedigan.data.io": ("ImageLoadError",),
    "tedigan.models.base": ("ComponentLoadError",),
    "tedigan.pipeline": ("PipelineError",),
    "tedigan.training.checkpoint": ("CheckpointError", "DivergenceError"),
    "tedigan.convert": ("ConversionError",),
}


def user_errors() -> tuple[type[BaseException], ...]:
    """The exception types that are the user's to fix (one line, exit 2), not bugs.

    Only modules already imported are asked: an exception of a module never loaded cannot have been raised,
    and an error found before the model loads should not have to import torch to be printed."""
    found: list[type[BaseException]] = [FileNotFoundError]
    for module, names in USER_ERRORS.items():
        if module in sys.modules:
            found += [getattr(sys.modules[module], name) for name in names]
    return tuple(found)


#: longest quoted text (a prompt, a path) an error line repeats, and the longest error line
QUOTE_LIMIT = 80
LINE_LIMIT = 600
_QUOTED = re.compile(rf"'([^'\n]{{{QUOTE_LIMIT}}})[^'\n]+'|\"([^\"\n]{{{QUOTE_LIMIT}}})[^\"\n]+\"")


def shorten(text: str, limit: int = QUOTE_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, with ``…`` where it was cut."""
    return text if len(text) <= limit else text[:limit] + "…"


def error_line(err: BaseException) -> str:
    """The message of ``err`` as one line: whitespace folded, quoted text (a 10,000-character prompt) cut
    to its first characters, the whole line capped."""
    text = " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        text = f"{err.filename}: {err.strerror}"
    text = _QUOTED.sub(lambda m: f"'{m.group(1)}…'" if m.group(1) is not None else f'"{m.group(2)}…"', text)
    return shorten(text, LINE_LIMIT)


def add_pti_arg(parser: argparse.ArgumentParser) -> None:
    """``--pti-steps`` of the commands that invert an image (edit, invert)."""
    parser.add_argument(
        "--pti-steps",
        type=int,
        default=0,
        metavar="N",
        help="pivotal tuning: fine-tune a copy of the generator for at most N steps to reproduce the image from "
        "its code and render with it (keeps the image's own details; 100 is a good start, about 0.12 s per step "
        "and image on a CPU core for the avatar model; the best step is kept). In a faithful inversion: the "
        "step limit of its tuning stage",
    )


def add_common_args(parser: argparse.ArgumentParser, model_help: str | None = None) -> None:
    parser.add_argument(
        "--model",
        default=None,
        metavar="DIR",
        help=model_help
        or "a shipped model by name (avatars, the default; faces: photos, research / non-commercial) or a "
        "pipeline folder",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        metavar="N",
        help="instance-level optimisation steps after mixing (0 = encoder only)",
    )
    parser.add_argument("--seed", type=int, default=0, help=f"random seed, 0..{MAX_SEED} (default 0)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace output files that already exist (never the inputs)"
    )
    parser.add_argument(
        "--layers",
        default=None,
        metavar="I,J,..",
        help="W+ layers to take from the text (default: chosen by the model's layer map)",
    )
    parser.add_argument(
        "--scale",
        type=int,
        default=4,
        help=f"nearest-neighbour upscaling of the written images, 1..{MAX_SCALE} (default 4; 1 = model size)",
    )


def vocabulary_help() -> str:
    """What each shipped model understands, for ``--help`` (models whose vocabulary cannot be read are left out)."""
    from tedigan.data.vocabulary import Vocabulary, VocabularyError

    parts = []
    for name, folder in SHIPPED_MODELS.items():
        try:
            vocab = Vocabulary.load(folder)
        except (OSError, VocabularyError):
            continue
        lines = "\n".join(f"  {line}" for line in vocab.describe().splitlines())
        parts.append(f"\n--model {name} understands:\n{lines}\n")
    if not parts:
        return ""
    return (
        "\nprompts are read by the model's vocabulary (synonyms, any word order, negation such as \"remove the "
        'glasses" or "stop smiling"):' + "".join(parts)
    )


def check_common_args(args: argparse.Namespace) -> None:
    """Range checks of the shared options, before any work."""
    import torch

    if not 0 <= args.seed <= MAX_SEED:
        raise UsageError(f"--seed must be in 0..{MAX_SEED}, got {args.seed}")
    if not 1 <= args.scale <= MAX_SCALE:
        raise UsageError(f"--scale must be in 1..{MAX_SCALE}, got {args.scale}")
    if args.steps is not None and args.steps < 0:
        raise UsageError(f"--steps must be >= 0, got {args.steps}")
    from tedigan.pipeline import MAX_STEPS

    if args.steps is not None and args.steps > MAX_STEPS:
        raise UsageError(f"--steps must be at most {MAX_STEPS}, got {args.steps}")
    try:
        device = torch.device(args.device)
    except (RuntimeError, TypeError):
        raise UsageError(f"--device {args.device!r} is not a device: use cpu or cuda (cuda:0, ...)") from None
    if device.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"--device {args.device!r} is not supported: use cpu or cuda")


def check_text(text: str | None, example: str) -> str | None:
    """``None`` passes; empty or whitespace-only text and text that is not valid UTF-8 are refused."""
    if text is None:
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError("--text is not valid UTF-8: type it again, or set a UTF-8 locale") from None
    if not text.strip():
        raise UsageError(f"empty text: {example}")
    return text


def parse_ranges(text: str, what: str, hi: int, limit: int | None = None) -> list[int]:
    """``"0-3,7,10-11"`` -> ``[0, 1, 2, 3, 7, 10, 11]`` (order kept, duplicates dropped), each in 0..hi."""
    out: list[int] = []
    try:
        for part in text.replace(" ", "").split(","):
            if not part:
                continue
            a, _, b = part.partition("-")
            lo, up = int(a), int(b) if b else int(a)
            if lo > up:
                raise ValueError
            out.extend(range(lo, up + 1))
            if limit is not None and len(out) > limit:
                raise UsageError(f"{what} names more than {limit} values")
    except ValueError:
        raise UsageError(f"{what} must look like 0-7,12 (non-negative integers), got {text!r}") from None
    if not out:
        raise UsageError(f"{what} names nothing ({text!r}): give values such as 0-7")
    bad = [v for v in out if not 0 <= v <= hi]
    if bad:
        raise UsageError(f"{what} must be in 0..{hi}, got {bad[0]}")
    return list(dict.fromkeys(out))


def parse_layers(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        layers = [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise UsageError(f"--layers must be comma-separated integers, got {text!r}") from None
    if not layers:
        raise UsageError(f"--layers names no layer ({text!r}): give indices such as 0,1,2")
    return layers


def load_pipeline(args: argparse.Namespace):
    from tedigan.pipeline import TediGANPipeline, model_folder

    if args.model in NAMED_GENERATORS and not model_folder(args.model).is_dir():
        raise UsageError(
            f"--model {args.model} is a generator without trained encoders in this install: sample it with "
            f"tedigan generate --model {args.model} --seeds 0-7"
        )
    check_device_available(args)
    return TediGANPipeline.from_pretrained(args.model, device=args.device)


def is_named_generator(model: str | None) -> bool:
    """``--model NAME`` names a packaged generator (``mobilestylegan``) rather than a pipeline folder."""
    return model in NAMED_GENERATORS


def load_generator(args: argparse.Namespace, resolution: int | None = None) -> tuple[object, float, str]:
    """``(generator, default truncation psi, what it is)`` for ``--model``: a named generator
    (:data:`tedigan.domains.NAMED_GENERATORS`: ``mobilestylegan``) or the generator of a pipeline folder
    (default: the shipped model)."""
    if args.model in NAMED_GENERATORS:
        from tedigan.models import named

        check_device_available(args)
        return named.load_generator(args.model, args.device, resolution), 0.7, NAMED_GENERATORS[args.model]
    if resolution is not None:
        raise UsageError(
            f"--resolution applies to --model {' / '.join(NAMED_GENERATORS)} only (pipelines render at their own size)"
        )
    from tedigan.pipeline import TediGANPipeline

    check_device_available(args)
    G, psi = TediGANPipeline.load_generator(args.model, device=args.device)
    return G, psi, f"the generator of {args.model or 'the shipped model'}"


def check_device_available(args: argparse.Namespace) -> None:
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for, but torch sees no CUDA GPU: use --device cpu")
    if args.device.startswith("mps") and not torch.backends.mps.is_available():
        raise UsageError("--device mps was asked for, but torch sees no Apple GPU: use --device cpu")


def upscale(img: Image.Image, scale: int) -> Image.Image:
    from PIL import Image

    if scale <= 1:
        return img
    return img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)


def strip(images: list[Image.Image], scale: int, gap: int = 2) -> Image.Image:
    """Images side by side on white, each upscaled by ``scale``."""
    from PIL import Image

    big = [upscale(im.convert("RGB"), scale) for im in images]
    w = sum(im.width for im in big) + gap * (len(big) - 1)
    out = Image.new("RGB", (w, max(im.height for im in big)), "white")
    x = 0
    for im in big:
        out.paste(im, (x, 0))
        x += im.width + gap
    return out


def same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


def check_writable(folder: Path, what: str) -> None:
    """``folder`` exists or can be made, is a folder and takes new files, checked before any work.

    The test is a real one (a hidden file created and removed again in the nearest folder that exists):
    permission bits do not tell, e.g. for root on a read-only mount such as /sys."""
    folder = Path(folder)
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"{what}: {probe} is a file, not a folder")
    try:
        fd, name = tempfile.mkstemp(prefix=".tedigan-probe-", dir=probe)
    except OSError as err:
        raise UsageError(
            f"{what}: cannot write in {probe} ({err.strerror or err}): choose another {what}"
        ) from None
    os.close(fd)
    os.unlink(name)


def check_outputs(paths: list[Path], inputs: list[Path], overwrite: bool, what: str = "--out") -> None:
    """Check output image paths before any work (so a refusal writes nothing): never an input (also through
    a link), never a folder, an extension PIL can write, no existing file unless ``overwrite``, and a
    folder that takes new files."""
    from PIL import Image

    Image.init()
    for path in paths:
        for src in inputs:
            if same_file(path, src):
                raise UsageError(
                    f"{what}: {path} is the input image {src}: choose another --out so the input is kept"
                )
        if path.is_dir():
            raise UsageError(f"{what} {path} is a folder: give a file name such as {path / 'edited.png'}")
        if path.suffix.lower() not in Image.EXTENSION:
            raise UsageError(f"{what} {path} needs an image extension such as .png or .jpg")
        if path.exists() and not overwrite:
            raise UsageError(
                f"{path} already exists: pass --overwrite to replace it, or choose another --out"
            )
    for folder in dict.fromkeys(p.parent for p in paths):
        check_writable(folder, what)


def check_size(width: int, height: int, scale: int) -> None:
    if max(width, height) * scale > MAX_SIDE:
        raise UsageError(
            f"--scale {scale} would write a {width * scale}x{height * scale} image: lower --scale "
            f"(at most {MAX_SIDE} px a side)"
        )


def write_new(path: Path, write, overwrite: bool) -> Path:
    """:func:`tedigan.fs.atomic_write` for a command's output: without ``overwrite`` a file that appeared at
    ``path`` since the checks (another run writing the same name) is kept, and that is a user error."""
    from tedigan.fs import atomic_write

    try:
        return atomic_write(path, write, replace=overwrite)
    except FileExistsError:
        raise UsageError(
            f"{path} was written by another run while this one worked: kept it; pass --overwrite to replace "
            "it, or choose another --out"
        ) from None


def save_gif(frames: list[Image.Image], path: Path, overwrite: bool, ms_per_frame: int = 80) -> Path:
    """An animated GIF (loops), written atomically: the video format that needs nothing beyond Pillow."""
    if not frames:
        raise UsageError("no frames to write")
    return write_new(
        path,
        lambda tmp: frames[0].save(
            tmp, format="GIF", save_all=True, append_images=frames[1:], duration=ms_per_frame, loop=0
        ),
        overwrite,
    )


def save_image(img: Image.Image, path: Path, overwrite: bool) -> Path:
    """Write ``img`` atomically (a temporary file renamed onto ``path``; see :func:`write_new`)."""
    return write_new(path, lambda tmp: img.save(tmp), overwrite)


def finish(summary: dict, as_json: bool, line: str) -> int:
    """Print the JSON ``summary`` (``--json``) or the human ``line``; exit status 0."""
    print(json.dumps(summary) if as_json else line)
    return 0
