"""One validator for the API and the commands (tedigan.pipeline.inputs): table-driven cases of input -> error
class and message fragment, the image types the pipeline takes (numpy arrays as diffusers takes them), and
one reading of the prompt per call."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from tedigan.data import builtin_vocabulary
from tedigan.pipeline import PipelineError, PromptNotUnderstood, TediGANPipeline
from tedigan.pipeline.inputs import (
    check_integer,
    check_layers,
    check_mode,
    check_number,
    check_prompt,
    check_steps,
    read_prompt,
)

RES = 16  # the conftest's tiny pipeline: num_ws 6, w_dim 16
VOCAB = builtin_vocabulary("avatars")


@pytest.fixture(scope="module")
def face() -> Image.Image:
    img = Image.new("RGB", (24, 20), (90, 160, 220))
    img.paste((230, 190, 150), (6, 4, 18, 18))
    return img


# ---------------------------------------------------------------------------------- checks with no model

PURE_CASES = {
    "seed float": (lambda: check_integer("seed", 3.0, 0, 10), PipelineError, "seed must be an integer"),
    "seed bool": (lambda: check_integer("seed", True, 0, 10), PipelineError, "seed must be an integer"),
    "seed too large": (lambda: check_integer("seed", 11, 0, 10), PipelineError, "seed must be in 0..10"),
    "strength string": (lambda: check_number("strength", "1", 0, 2), PipelineError, "must be a number"),
    "strength nan": (lambda: check_number("strength", float("nan"), 0, 2), PipelineError, "finite number"),
    "steps negative": (lambda: check_steps(-1), PipelineError, "steps must be in 0..10000"),
    "mode unknown": (lambda: check_mode("sideways"), PipelineError, "mode must be one of"),
    "layers float": (lambda: check_layers([1.9], 6), PipelineError, "integer W+ layer indices, got 1.9"),
    "layers bool": (lambda: check_layers([1, True], 6), PipelineError, "integer W+ layer indices"),
    "layers string": (lambda: check_layers("45", 6), PipelineError, "a list of W+ layer indices"),
    "layers int": (lambda: check_layers(4, 6), PipelineError, "a list of W+ layer indices"),
    "layers empty": (lambda: check_layers([], 6), PipelineError, "layers is empty"),
    "layers out of range": (lambda: check_layers([6], 6), PipelineError, "layers must be in 0..5"),
    "prompt bytes": (lambda: check_prompt(b"red hair"), PipelineError, "the prompt must be a str, got bytes"),
    "prompt blank": (lambda: check_prompt("  "), PipelineError, "empty text"),
    "prompt surrogate": (lambda: check_prompt("\udcff"), PipelineError, "utf-8"),
    "prompt unread": (lambda: read_prompt("zzz", VOCAB), PromptNotUnderstood, "does not understand"),
    "prompt negates no-none": (lambda: read_prompt("no longer bald", VOCAB), PromptNotUnderstood, "negates"),
}


@pytest.mark.parametrize("case", sorted(PURE_CASES))
def test_checks_refuse_with_what_is_accepted(case):
    call, error, fragment = PURE_CASES[case]
    with pytest.raises(error) as info:
        call()
    assert fragment.lower() in str(info.value).lower(), (fragment, str(info.value))


def test_checks_pass_what_they_accept():
    assert check_layers([5, np.int64(1), torch.tensor(3), 1], 6) == [1, 3, 5]
    assert check_layers(range(2), 6) == [0, 1] and check_steps(None, default=7) == 7
    reading = read_prompt("take the glasses off and make the hair ginger", VOCAB)
    assert reading.asked == {"hair_color": "red", "eyewear": "none"} and reading.negated == ("eyewear",)
    assert read_prompt("zzz", VOCAB, required=False).asked == {} and read_prompt("zzz", None).asked == {}


def test_inputs_import_without_torch():
    code = "import sys; import tedigan.pipeline.inputs; from tedigan.pipeline import MAX_STEPS; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------------------------------- the pipeline


def _call_cases(pipe: TediGANPipeline, face: Image.Image) -> dict:
    u8 = np.zeros((RES, RES, 3), np.uint8)
    return {
        "image int": (
            lambda: pipe.edit(42, "red hair"),
            PipelineError,
            "a numpy array [B, H, W, C], got int",
        ),
        "image dict": (lambda: pipe.invert({"a": 1}), PipelineError, "an image must be a file path"),
        "image list of none": (lambda: pipe.invert([None]), PipelineError, "got NoneType"),
        "image empty list": (lambda: pipe.invert([]), PipelineError, "no input image given"),
        "numpy channels": (
            lambda: pipe.invert(np.zeros((RES, RES, 4), np.uint8)),
            PipelineError,
            "[H, W, 3]",
        ),
        "numpy ndim": (lambda: pipe.invert(np.zeros((1, 1, RES, RES, 3))), PipelineError, "[B, H, W, 3]"),
        "numpy int32": (lambda: pipe.invert(u8.astype(np.int32)), PipelineError, "uint8 in 0..255 or float"),
        "numpy 0..255 float": (lambda: pipe.invert(u8 + 200.0), PipelineError, "looks like 0..255"),
        "numpy nan": (lambda: pipe.invert(np.full((RES, RES, 3), np.nan)), PipelineError, "nan or inf"),
        "layers float": (lambda: pipe.edit(face, "red hair", layers=[1.9]), PipelineError, "got 1.9"),
        "generate layers float": (
            lambda: pipe.generate("red hair", layers=[4.0]),
            PipelineError,
            "integer w+ layer indices",
        ),
        "strength bool": (lambda: pipe.edit(face, "red hair", strength=True), PipelineError, "strength"),
        "steps float": (
            lambda: pipe.edit(face, "red hair", steps=1.5),
            PipelineError,
            "steps must be an integer",
        ),
        "mode": (lambda: pipe.edit(face, "red hair", mode="sideways"), PipelineError, "mode must be one of"),
        "prompt int": (lambda: pipe.edit(face, 7), PipelineError, "prompt must be a str"),
        "prompt unread": (lambda: pipe.edit(face, "zzz"), PromptNotUnderstood, "does not understand"),
        "delta unread with layers": (
            lambda: pipe.edit(face, "zzz", layers=[1], mode="delta"),
            PromptNotUnderstood,
            "does not understand",
        ),
        "both image and latents": (
            lambda: pipe.edit(face, "red hair", latents=torch.zeros(1, 6, 16)),
            PipelineError,
            "not both",
        ),
        "pti without image": (
            lambda: pipe.edit(None, "red hair", latents=torch.zeros(1, 6, 16), pti_steps=2),
            PipelineError,
            "pti_steps needs the image",
        ),
        "unknown knob": (lambda: pipe.edit(face, "red hair", stepz=3), TypeError, "stepz"),
        "latents numpy": (
            lambda: pipe.decode(np.zeros((1, 6, 16))),
            PipelineError,
            "latents must be a float tensor",
        ),
        "latents nan": (
            lambda: pipe.decode(torch.full((1, 6, 16), float("nan"))),
            PipelineError,
            "nan or inf",
        ),
        "label float": (
            lambda: pipe.generate(label=torch.zeros(RES, RES)),
            PipelineError,
            "integer class ids",
        ),
        "label int": (lambda: pipe.generate(label=3), PipelineError, "a label map must be a file path"),
        "no prompt no input": (lambda: pipe.generate(), PipelineError, "empty text"),
    }


def test_pipeline_calls_refuse_bad_inputs(tiny_pipe, face):
    for name, (call, error, fragment) in _call_cases(tiny_pipe, face).items():
        with pytest.raises(error) as info:
            call()
        assert fragment.lower() in str(info.value).lower(), (name, fragment, str(info.value))


def test_numpy_images_are_read_as_diffusers_reads_them(tiny_pipe, face):
    small = face.resize((RES, RES))
    u8 = np.asarray(small).copy()
    as_tensor = tiny_pipe.invert(torch.from_numpy(u8).permute(2, 0, 1).contiguous()).latents
    for arr in (u8, u8[None], u8.astype(np.float32) / 255.0, [u8, u8]):
        got = tiny_pipe.invert(arr).latents
        assert got.shape[0] == (2 if isinstance(arr, list) else 1)
        torch.testing.assert_close(got[:1], as_tensor, rtol=0, atol=1e-5)
    wide = np.zeros((RES, 3 * RES, 3), np.uint8)
    wide[:, RES : 2 * RES] = 255  # the centre square is white: numpy images are centre-cropped like files
    assert tiny_pipe.invert(wide).source_images[0].getextrema() == ((255, 255),) * 3
    grey = np.full((RES, RES), 255, np.uint8)  # [H, W] for the grey sketch input
    assert len(tiny_pipe.generate(sketch=grey).images) == 1
    out = tiny_pipe.edit(u8, "red hair", layers=[np.int64(4)])
    assert out.layers == [4]


def test_the_prompt_is_read_once_per_call(tiny_pipe, face, monkeypatch):
    from tedigan.models.prototypes import Prototypes

    calls = []
    read = tiny_pipe.vocabulary.read
    monkeypatch.setattr(tiny_pipe.vocabulary, "read", lambda text: calls.append(text) or read(text))
    g = torch.Generator().manual_seed(0)
    protos = {v: torch.randn(6, 16, generator=g) for v in ("black", "blond", "red")}
    monkeypatch.setattr(tiny_pipe, "prototypes", Prototypes({"hair_color": protos}))
    for mode in ("mix", "delta", "prototype"):
        calls.clear()
        tiny_pipe.edit(face, "make the hair ginger", mode=mode)
        assert calls == ["make the hair ginger"], mode
    calls.clear()
    tiny_pipe.generate("red hair", num_images=1)
    assert calls == ["red hair"]
