"""Every limit and check of the pipeline's inputs, in one place for the API and the commands.

Numbers (``strength``, ``seed``, ``steps``, ...), the prompt (read once per call by the model's vocabulary),
W+ layer lists, edit modes, images (paths, bytes, PIL images, torch tensors and numpy arrays), label maps and
W+ codes are checked here and refused with a :class:`PipelineError` that says what is accepted. The limits and
the number, prompt-text and layer checks need no model and no torch, so a command can check its arguments
with them before it loads anything; the image, label and latent checks import torch when first called.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from tedigan.data.vocabulary import Vocabulary

__all__ = [
    "EDIT_MODES",
    "FIDELITIES",
    "IMAGE_TYPES",
    "MAX_IMAGES",
    "MAX_SEED",
    "MAX_STEPS",
    "OUT_OF_DOMAIN_P",
    "PSI_RANGE",
    "STRENGTH_RANGE",
    "OutOfDomainWarning",
    "RenderWarning",
    "PipelineError",
    "PromptNotUnderstood",
    "PromptReading",
    "check_domain",
    "check_fidelity",
    "check_image",
    "check_integer",
    "check_labels",
    "check_latents",
    "check_layers",
    "check_mode",
    "check_number",
    "check_optimisable",
    "check_prompt",
    "check_boundaries",
    "check_prototypes",
    "check_steps",
    "read_prompt",
]

#: largest accepted values of the call arguments (beyond them a call would run for days or exhaust memory)
MAX_STEPS = 10_000
MAX_IMAGES = 10_000
MAX_SEED = 2**32 - 1
STRENGTH_RANGE = (0.0, 2.0)
PSI_RANGE = (-2.0, 2.0)
#: how an edit changes the selected layers: TediGAN's mixing, a move along the text direction, a move
#: between value prototypes (:mod:`tedigan.editing.prototypes`) or the least move across attribute boundaries
#: that keeps the other attributes (:mod:`tedigan.editing.boundaries`)
EDIT_MODES = ("mix", "delta", "prototype", "boundary")
#: how closely the source is inverted before an edit: ``fast`` (the encoder alone, optionally refined by
#: ``steps`` / ``pti_steps``) or ``faithful`` (:func:`tedigan.editing.faithful.faithful_invert`: codes and a
#: tuned generator copy fitted to the image, minutes on a CPU)
FIDELITIES = ("fast", "faithful")
#: the pipeline's judge must be at least this sure that an input belongs to another domain before it says so
OUT_OF_DOMAIN_P = 0.9
#: what an image argument may be (one of them, or a list of them)
IMAGE_TYPES = "a file path, bytes, a PIL image, a torch tensor [B, C, H, W] or a numpy array [B, H, W, C]"


class PipelineError(ValueError):
    """Something the user can fix (a missing folder or component, a bad argument); the message says how."""


class PromptNotUnderstood(PipelineError):
    """The pipeline's vocabulary reads nothing in the prompt: editing would be a guess, so it is refused."""


class OutOfDomainWarning(UserWarning):
    """An input looks like another domain's image than the pipeline's (the CLIs print it as one line)."""


class RenderWarning(UserWarning):
    """A result was made another way than asked, and still checked: a face rendered below its paste-back size,
    an edit not confined to its region (the CLIs print it as one line)."""


# ------------------------------------------------------------------------------------------------ numbers


def check_number(name: str, value: Any, lo: float, hi: float) -> float:
    """``value`` as a float in ``[lo, hi]`` (finite; booleans are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PipelineError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not (math.isfinite(value) and lo <= value <= hi):
        raise PipelineError(f"{name} must be a finite number in [{lo:g}, {hi:g}], got {value}")
    return value


def check_integer(name: str, value: Any, lo: int, hi: int) -> int:
    """``value`` as an int in ``lo..hi`` (booleans and floats such as 3.0 are refused, not rounded)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise PipelineError(f"{name} must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise PipelineError(f"{name} must be in {lo}..{hi}, got {value}")
    return int(value)


def check_steps(steps: int | None, default: int = 0) -> int:
    """Optimisation steps in ``0..MAX_STEPS``; ``None`` takes ``default``."""
    return check_integer("steps", default if steps is None else steps, 0, MAX_STEPS)


def check_mode(mode: Any) -> str:
    if mode not in EDIT_MODES:
        raise PipelineError(f"mode must be one of {EDIT_MODES}, got {mode!r}")
    return mode


def check_fidelity(fidelity: Any) -> str:
    if fidelity not in FIDELITIES:
        raise PipelineError(f"fidelity must be one of {FIDELITIES}, got {fidelity!r}")
    return fidelity


def check_layers(layers: Any, num_ws: int) -> list[int]:
    """W+ layer indices: integers (numpy and 0-d tensor integers too) in ``0..num_ws - 1``, sorted, unique.
    A float such as ``1.9`` is an error, never rounded to a layer."""
    import operator

    if isinstance(layers, (str, bytes)) or not isinstance(layers, (Sequence, set, frozenset, range)):
        raise PipelineError(f"layers must be a list of W+ layer indices, got {layers!r}")
    out = set()
    for item in layers:
        try:
            if isinstance(item, bool):
                raise TypeError
            out.add(operator.index(item))
        except TypeError:
            raise PipelineError(
                f"layers must be integer W+ layer indices, got {item!r} in {list(layers)}"
            ) from None
    if not out:
        raise PipelineError(f"layers is empty: name at least one W+ layer in 0..{num_ws - 1}")
    if any(not 0 <= i < num_ws for i in out):
        raise PipelineError(f"layers must be in 0..{num_ws - 1}, got {list(layers)}")
    return sorted(out)


def check_optimisable(steps: int, dtype: Any) -> None:
    """Instance-level optimisation and pivotal tuning need float32 weights."""
    import torch

    if steps > 0 and dtype != torch.float32:
        raise PipelineError(
            f"instance-level optimisation needs float32 weights, the pipeline is {dtype}: call "
            "pipe.to(torch.float32) first, or use steps=0"
        )


# ------------------------------------------------------------------------------------------------ prompt


def check_prompt(prompt: Any) -> str:
    """A non-empty string of valid UTF-8 text (surrounding whitespace kept: the text model reads it)."""
    if not isinstance(prompt, str):
        raise PipelineError(f"the prompt must be a str, got {type(prompt).__name__}")
    if not prompt.strip():
        raise PipelineError(
            f"empty text: the prompt is {prompt!r}; describe the face, e.g. 'a smiling man with glasses'"
        )
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError:
        raise PipelineError("the prompt is not valid UTF-8 text: type it again or save it as UTF-8") from None
    return prompt


@dataclass(frozen=True)
class PromptReading:
    """A prompt read once per call: the checked ``text``, the ``{attribute: value}`` the vocabulary reads in
    it (``asked``) and the attributes a negation turned to their absent value (``negated``: ``"remove the
    glasses"`` asks ``eyewear=none``). Layer selection, the text direction, the prototypes and the mixing all
    take this one reading."""

    text: str
    asked: dict[str, str] = field(default_factory=dict)
    negated: tuple[str, ...] = ()


def read_prompt(prompt: Any, vocabulary: Vocabulary | None, *, required: bool = True) -> PromptReading:
    """Check ``prompt`` and read it with ``vocabulary``. When ``required``, a prompt the vocabulary reads
    nothing in is refused (:class:`PromptNotUnderstood`); without a vocabulary nothing is read or refused."""
    text = check_prompt(prompt)
    if vocabulary is None:
        return PromptReading(text)
    reading = vocabulary.read(text)
    if required and not reading and reading.dropped:
        a = reading.dropped[0]
        options = ", ".join(v for v in vocabulary.attributes[a] if v != "none")
        raise PromptNotUnderstood(
            f"{text!r} negates the {a.replace('_', ' ')}, which has no 'none' value: say what it should be "
            f"instead ({options})"
        )
    if required and not reading:
        names = ", ".join(a.replace("_", " ") for a in vocabulary.attributes)
        raise PromptNotUnderstood(
            f"the {vocabulary.domain} model does not understand {text!r}: name one of its attributes "
            f"({names}); or give the W+ layers to edit yourself (layers=, --layers)"
        )
    return PromptReading(text, dict(reading.values), tuple(a for a in reading.negated if a in reading.values))


def check_boundaries(boundaries: Any, reading: PromptReading) -> None:
    """The ``"boundary"`` mode can edit what ``reading`` asks: the model has a boundary of every asked value."""
    if boundaries is None:
        raise PipelineError(
            "this model has no attribute boundaries (boundaries/, written by `tedigan face-directions`): "
            "use mode='mix' or 'delta'"
        )
    if not reading.asked:
        raise PipelineError("mode 'boundary' needs a prompt the model's vocabulary reads")
    if not boundaries.covers(reading.asked):
        missing = [
            f"{a.replace('_', ' ')} = {v}" for a, v in reading.asked.items() if not boundaries.covers({a: v})
        ]
        known = "; ".join(
            f"{a.replace('_', ' ')}: {', '.join(v)}" for a, v in boundaries.attribute_values.items()
        )
        raise PipelineError(f"the model cannot edit {', '.join(missing)} (it edits {known})")


def check_prototypes(prototypes: Any, reading: PromptReading) -> None:
    """The ``"prototype"`` mode can edit what ``reading`` asks: the model has a prototype of every asked value."""
    if prototypes is None:
        raise PipelineError(
            "this model has no value prototypes (prototypes.safetensors, written by the text stage): "
            "use mode='mix' or 'delta', or re-assemble it from a newer text stage"
        )
    if not reading.asked:
        raise PipelineError("mode 'prototype' needs a prompt the model's vocabulary reads")
    for a, v in reading.asked.items():
        if v not in prototypes.codes.get(a, {}):
            raise PipelineError(
                f"the model has no prototype for {a.replace('_', ' ')} = {v} (no training caption named it): "
                "use mode='mix' for this prompt"
            )


# ------------------------------------------------------------------------------------------------ images


def _items(value: Any, what: str) -> list[Any]:
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not items:
        raise PipelineError(f"no {what} given")
    return items


def check_image(
    image: Any,
    resolution: int,
    *,
    mode: str = "RGB",
    align: bool = False,
    device: Any = "cpu",
    dtype: Any = None,
) -> torch.Tensor:
    """Images -> ``[B, C, R, R]`` in [-1, 1] on ``device``: a path, bytes, a PIL image, a torch tensor
    (``[C, H, W]`` / ``[B, C, H, W]``: uint8 in 0..255 or float in [-1, 1]), a numpy array (``[H, W, C]`` /
    ``[B, H, W, C]``, ``[H, W]`` for grey: uint8 in 0..255 or float in [0, 1], as diffusers takes them), or a
    list of these. Files and PIL images are converted from any mode; everything is centre-cropped to a
    square and resized to ``resolution``. ``align``: the FFHQ crop of the largest face first (files, PIL)."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from PIL import Image

    from tedigan.data.io import load_image, to_tensor

    channels = 1 if mode == "L" else 3
    out = []
    for item in _items(image, "input image"):
        if isinstance(item, np.ndarray):
            item = _numpy_image(item, channels)
        if isinstance(item, torch.Tensor):
            t = _center_square(_image_tensor(item, channels))
            if t.shape[-1] != resolution:
                t = F.interpolate(t, size=(resolution,) * 2, mode="bilinear", antialias=True)
        elif isinstance(item, (str, os.PathLike, bytes, bytearray, memoryview, Image.Image)):
            pil = load_image(item, mode)
            if align:
                pil = _align_face(pil)
            t = to_tensor(pil, resolution).unsqueeze(0)
        else:
            raise PipelineError(f"an image must be {IMAGE_TYPES}, got {type(item).__name__}")
        out.append(t.to(device, dtype or torch.float32))
    return torch.cat(out)


def _numpy_image(arr: Any, channels: int) -> torch.Tensor:
    """A numpy image (``[H, W]``, ``[H, W, C]`` or ``[B, H, W, C]``; uint8, or float in [0, 1]) as a tensor
    ``[B, C, H, W]``: uint8 as it is, float mapped to [-1, 1]."""
    import numpy as np
    import torch

    a = arr[..., None] if arr.ndim == 2 else arr
    a = a[None] if a.ndim == 3 else a
    if a.ndim != 4 or a.shape[-1] != channels:
        raise PipelineError(
            f"a numpy image must be [H, W, {channels}] or [B, H, W, {channels}]"
            f"{' or [H, W]' if channels == 1 else ''} ({'grey' if channels == 1 else 'RGB'}), got {arr.shape}"
        )
    if a.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2)
    if a.dtype.kind != "f":
        raise PipelineError(f"a numpy image must be uint8 in 0..255 or float in [0, 1], got {a.dtype}")
    t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).permute(0, 3, 1, 2)
    if not bool(torch.isfinite(t).all()):
        raise PipelineError("the numpy image holds NaN or inf values")
    lo, hi = float(t.min()), float(t.max())
    if lo < -0.01 or hi > 1.01:
        hint = " (looks like 0..255: pass x / 255, or a uint8 array)" if hi > 2 else ""
        raise PipelineError(
            f"a float numpy image must be in [0, 1], got values in [{lo:.3g}, {hi:.3g}]{hint}"
        )
    return t * 2.0 - 1.0


def _center_square(t: torch.Tensor) -> torch.Tensor:
    """The centred square crop of ``[..., H, W]`` (side ``min(H, W)``), as files are cropped on load."""
    h, w = t.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return t[..., top : top + side, left : left + side]


def _image_tensor(item: torch.Tensor, channels: int) -> torch.Tensor:
    """Check an image tensor and bring it to float ``[B, C, H, W]`` in [-1, 1]. ``uint8`` tensors are read as
    0..255; float tensors must already be in [-1, 1] (a little overshoot, as generators give, is fine)."""
    import torch

    t = item.unsqueeze(0) if item.ndim == 3 else item
    if t.ndim != 4 or t.shape[1] != channels or min(t.shape[-2:]) < 1 or t.shape[0] < 1:
        raise PipelineError(
            f"an image tensor must be [{channels}, H, W] or [B, {channels}, H, W] "
            f"({'grey' if channels == 1 else 'RGB'}), got {tuple(item.shape)}"
        )
    if t.dtype == torch.uint8:
        return t.float() / 127.5 - 1.0
    if not t.dtype.is_floating_point:
        raise PipelineError(f"an image tensor must be float in [-1, 1] or uint8 in 0..255, got {t.dtype}")
    t = t.float()
    if not bool(torch.isfinite(t).all()):
        raise PipelineError("the image tensor holds NaN or inf values")
    lo, hi = float(t.min()), float(t.max())
    if lo < -1.5 or hi > 1.5:
        hint = " (looks like 0..255: pass x / 127.5 - 1, or a uint8 tensor)" if hi > 2 else ""
        raise PipelineError(f"an image tensor must be in [-1, 1], got values in [{lo:.3g}, {hi:.3g}]{hint}")
    return t


def _align_face(img: Any) -> Any:
    """The FFHQ crop of the photo's largest face (:mod:`tedigan.data.align`; MTCNN landmarks, offline weights)."""
    from tedigan.data.align import NoFaceFound, align_face

    try:
        return align_face(img)
    except NoFaceFound:
        raise PipelineError(
            "--align found no face in the image; run without --align to centre-crop it"
        ) from None
    except ImportError as err:
        raise PipelineError(str(err)) from None


def check_labels(label: Any, resolution: int, device: Any = "cpu") -> torch.Tensor:
    """Label maps (files, PIL or integer tensors ``[H, W]`` / ``[B, H, W]``) -> ``[B, R, R]`` class ids,
    centre-cropped and resized with nearest neighbours."""
    import torch
    import torch.nn.functional as F
    from PIL import Image

    from tedigan.data.io import load_label_map

    maps = []
    for item in _items(label, "label map"):
        if isinstance(item, (str, os.PathLike, bytes, bytearray, memoryview, Image.Image)):
            item = load_label_map(item)
        if not isinstance(item, torch.Tensor):
            raise PipelineError(
                f"a label map must be a file path, bytes, a PIL image or an integer tensor [H, W], "
                f"got {type(item).__name__}"
            )
        t = item.unsqueeze(0) if item.ndim == 2 else item
        if t.ndim != 3 or t.dtype.is_floating_point:
            raise PipelineError(
                f"a label map must be integer class ids [H, W], got {t.dtype} {tuple(t.shape)}"
            )
        t = _center_square(t)
        if t.shape[-1] != resolution:
            t = F.interpolate(t[:, None].float(), size=(resolution,) * 2, mode="nearest")[:, 0].long()
        maps.append(t.to(device))
    return torch.cat(maps)


def check_latents(latents: Any, num_ws: int, w_dim: int) -> torch.Tensor:
    """W+ codes for a generator of ``num_ws`` layers of ``w_dim``: ``[B, num_ws, w_dim]`` (or one
    ``[num_ws, w_dim]``), float, finite."""
    import torch

    if not isinstance(latents, torch.Tensor) or not latents.dtype.is_floating_point:
        raise PipelineError(
            f"latents must be a float tensor [B, {num_ws}, w_dim], got {type(latents).__name__}"
        )
    w = latents.unsqueeze(0) if latents.ndim == 2 else latents
    if w.ndim != 3 or tuple(w.shape[1:]) != (num_ws, w_dim):
        raise PipelineError(
            f"latents are {tuple(latents.shape)}, this generator takes [B, {num_ws}, {w_dim}] "
            "(codes from another model?)"
        )
    if not bool(torch.isfinite(w).all()):
        raise PipelineError("the latents hold NaN or inf values")
    return w


def check_domain(judge: Any, domain: str | None, images: torch.Tensor) -> list[str | None]:
    """Per image, the other domain ``judge`` (a classifier with a ``domain`` head) is at least
    :data:`OUT_OF_DOMAIN_P` sure it belongs to (None: ``domain``, or no judge). Warns once per call
    (:class:`OutOfDomainWarning`), naming the shipped model for that domain."""
    import warnings

    import torch
    import torch.nn.functional as F

    from tedigan.domains import SHIPPED_MODELS as NAMED_MODELS

    names = (judge.config.heads.get("domain") if judge is not None else None) or []
    if not names or domain not in names:
        return [None] * len(images)
    with torch.no_grad():
        x = F.interpolate(images.float(), size=(judge.config.resolution,) * 2, mode="area")
        probs = judge.to(torch.float32)(x.to(next(judge.parameters()).device))["domain"].softmax(dim=1).cpu()
    found = [
        names[int(p.argmax())]
        if names[int(p.argmax())] != domain and float(p.max()) >= OUT_OF_DOMAIN_P
        else None
        for p in probs
    ]
    other = next((f for f in found if f is not None), None)
    if other is not None:
        hint = (
            f"--model {other} / from_pretrained({other!r})" if other in NAMED_MODELS else f"a {other} model"
        )
        warnings.warn(
            f"{sum(f is not None for f in found)} of {len(found)} input image(s) look like {other}, not "
            f"{domain} (judged {float(probs.max(dim=1).values.max()):.2f} sure): this {domain} model "
            f"will edit it into nonsense; the model for {other} is {hint}",
            OutOfDomainWarning,
            stacklevel=4,
        )
    return found
