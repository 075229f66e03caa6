"""PyTorch ports of the face-api networks (npm ``@vladmandic/face-api`` 1.7.15) as a tedigan judge.

Four tfjs layers models, read from the npm package's ``model/*-weights_manifest.json`` + ``.bin``:

* :class:`FaceExpressionNet` — 7-way expression softmax (:data:`EXPRESSIONS`), 112² input;
* :class:`AgeGenderNet` — TinyXception: age in years (raw regression) and a [male, female] softmax, 112²;
* :class:`FaceLandmark68Net` — 68 (x, y) landmarks relative to the input square, 112²;
* :class:`FaceRecognitionNet` — dlib's ResNet-29 face descriptor (128-d; same person below Euclidean 0.6),
  150².

Each net's ``forward`` takes NCHW float RGB in [0, 255] (the tensor face-api's ``NetInput.toBatchTensor``
builds) and normalises it itself, (x − :data:`MEAN_RGB`) / 255, as face-api does; ``forward_input`` takes the
same tensor in face-api's NHWC layout (the fixtures' ``*.x``). TF 'same' padding is reproduced exactly
(stride-2 convs on even sizes pad 0 before, 1 after), so the ports match tfjs's cpu backend to float32
rounding.

:func:`face_api_input` reproduces face-api's preprocessing of a face box: clip + floor the box, slice,
``padToSquare`` (centred, JS ``Math.round``) and tfjs's legacy ``resizeBilinear`` (no half-pixel centres),
differentiably. :class:`FaceApiJudge` applies it with fixed FFHQ-alignment boxes, so it needs no detector
and stays differentiable end to end.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tedigan import assets
from tedigan.models.judge import Judge, Judgement
from tedigan.models.ports.tfjs import TfjsFormatError, load_layers_weights

__all__ = [
    "BOX_ALIGNED_512",
    "BOX_DLIB_512",
    "EXPRESSIONS",
    "GENDERS",
    "MEAN_RGB",
    "NETS",
    "AgeGenderNet",
    "FaceApiJudge",
    "FaceExpressionNet",
    "FaceLandmark68Net",
    "FaceRecognitionNet",
    "face_api_input",
    "identity_distance",
    "landmarks_post_process",
    "legacy_resize_bilinear",
    "load_net",
    "pad_to_square",
    "scale_box",
]

PACKAGE = "@vladmandic/face-api"
#: per-channel RGB mean every face-api net subtracts before dividing by 255
MEAN_RGB = (122.782, 117.001, 104.298)
EXPRESSIONS = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")
GENDERS = ("male", "female")
#: fixed FFHQ face boxes (x, y, w, h) on a 512² image: face-api's ``alignedRect`` (68-landmark box widened
#: 10% per side; expression, age/gender, landmarks) and its dlib alignment box (descriptor)
BOX_ALIGNED_512 = (77, 165, 354, 324)
BOX_DLIB_512 = (85, 140, 337, 337)
#: the image side the fixed boxes were measured at (and face-api's references were made at)
BOX_RESOLUTION = 512


# ------------------------------------------------------------------------------------------ weights


class _Weights:
    """A tfjs weight map that names its file in every error (a missing or misshapen tensor means a damaged
    or foreign manifest, which should fail loudly at load time, not as a shape error mid-forward)."""

    def __init__(self, tensors: dict[str, torch.Tensor], source: str) -> None:
        self.tensors, self.source = tensors, source

    def get(self, name: str, shape: Sequence[int] | None = None) -> torch.Tensor:
        t = self.tensors.get(name)
        if t is None:
            raise TfjsFormatError(f"{self.source}: weight {name!r} is missing (damaged or foreign manifest?)")
        if shape is not None and tuple(t.shape) != tuple(shape):
            raise TfjsFormatError(
                f"{self.source}: {name} has shape {tuple(t.shape)}, expected {tuple(shape)}"
            )
        return t.float()


def _param(t: torch.Tensor) -> nn.Parameter:
    # judges are frozen: gradients flow to the image, never into face-api's weights
    return nn.Parameter(t.contiguous(), requires_grad=False)


def _same_pad(n: int, k: int, s: int) -> tuple[int, int]:
    """TF 'SAME' padding (before, after) of one axis: the odd pixel goes after, unlike PyTorch."""
    total = max((math.ceil(n / s) - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def _pad_same(x: torch.Tensor, k: int, s: int, value: float = 0.0) -> torch.Tensor:
    top, bottom = _same_pad(x.shape[-2], k, s)
    left, right = _same_pad(x.shape[-1], k, s)
    if top == bottom == left == right == 0:
        return x
    return F.pad(x, (left, right, top, bottom), value=value)


def _normalise(x: torch.Tensor) -> torch.Tensor:
    """face-api's input normalisation, a subtraction then a division (not a multiply by 1/255)."""
    mean = torch.tensor(MEAN_RGB, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / 255.0


class _Conv(nn.Module):
    """``tf.conv2d(x, filters, stride, padding) + bias``; filters HWIO in the manifest."""

    def __init__(self, w: _Weights, prefix: str, stride: int = 1, padding: str = "same") -> None:
        super().__init__()
        filters = w.get(f"{prefix}/filters")
        if filters.ndim != 4:
            raise TfjsFormatError(f"{w.source}: {prefix}/filters is not a 4-d HWIO filter")
        self.weight = _param(filters.permute(3, 2, 0, 1))  # HWIO -> OIHW
        self.bias = _param(w.get(f"{prefix}/bias", (filters.shape[3],)))
        self.k, self.stride, self.padding = filters.shape[0], stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding == "same":
            x = _pad_same(x, self.k, self.stride)
        return F.conv2d(x, self.weight, self.bias, stride=self.stride)


class _SepConv(nn.Module):
    """``tf.separableConv2d`` (depthwise 3×3 with the stride, then pointwise 1×1) + bias, 'same' padding."""

    def __init__(self, w: _Weights, prefix: str, stride: int = 1) -> None:
        super().__init__()
        dw = w.get(f"{prefix}/depthwise_filter")
        pw = w.get(f"{prefix}/pointwise_filter")
        if dw.ndim != 4 or pw.ndim != 4 or dw.shape[3] != 1 or pw.shape[2] != dw.shape[2]:
            raise TfjsFormatError(f"{w.source}: {prefix} has inconsistent separable filters")
        self.depthwise = _param(dw.permute(2, 3, 0, 1))  # [kh, kw, C, 1] -> [C, 1, kh, kw]
        self.pointwise = _param(pw.permute(3, 2, 0, 1))  # [1, 1, C, O] -> [O, C, 1, 1]
        self.bias = _param(w.get(f"{prefix}/bias", (pw.shape[3],)))
        self.k, self.stride = dw.shape[0], stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _pad_same(x, self.k, self.stride)
        x = F.conv2d(x, self.depthwise, stride=self.stride, groups=self.depthwise.shape[0])
        return F.conv2d(x, self.pointwise, self.bias)


class _Linear(nn.Module):
    """``matMul(x, weights) + bias`` with weights stored [in, out]."""

    def __init__(self, w: _Weights, prefix: str, bias: bool = True) -> None:
        super().__init__()
        weights = w.get(f"{prefix}/weights" if bias else prefix)
        if weights.ndim != 2:
            raise TfjsFormatError(f"{w.source}: {prefix} is not a 2-d [in, out] matrix")
        self.weight = _param(weights.t())
        self.bias = _param(w.get(f"{prefix}/bias", (weights.shape[1],))) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


# ------------------------------------------------------------- expression / landmarks (dense blocks)


class _DenseBlock(nn.Module):
    """face-api ``denseBlock4``: a stride-2 c0 then three separable convs with dense additive skips."""

    def __init__(self, w: _Weights, prefix: str, first: bool) -> None:
        super().__init__()
        # block 0 reads the 3-channel image with a full conv; the others downsample with a separable one
        self.conv0 = _Conv(w, f"{prefix}/conv0", stride=2) if first else _SepConv(w, f"{prefix}/conv0", 2)
        self.conv1 = _SepConv(w, f"{prefix}/conv1")
        self.conv2 = _SepConv(w, f"{prefix}/conv2")
        self.conv3 = _SepConv(w, f"{prefix}/conv3")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o1 = F.relu(self.conv0(x))
        o2 = self.conv1(o1)
        o3 = self.conv2(F.relu(o1 + o2))
        o4 = self.conv3(F.relu(o1 + (o2 + o3)))
        return F.relu(o1 + (o2 + (o3 + o4)))  # tfjs's summation order


class _FaceFeatureExtractor(nn.Module):
    """face-api ``FaceFeatureExtractor``: 4 dense blocks (32, 64, 128, 256 ch), 112 → 7, then 7×7 avg-pool."""

    def __init__(self, w: _Weights) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(_DenseBlock(w, f"dense{i}", first=i == 0) for i in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _normalise(x)
        for block in self.blocks:
            x = block(x)
        return F.avg_pool2d(x, 7, 2).flatten(1)  # avgPool(7, 2, 'valid')


class _FaceApiNet(nn.Module):
    """Shared NHWC entry point: face-api's ``forwardInput`` on the batch tensor of ``toBatchTensor``."""

    input_size = 112

    def forward_input(self, x_nhwc: torch.Tensor) -> Any:
        """The net on ``[B, S, S, 3]`` float RGB in [0, 255] (face-api's layout, the fixtures' ``*.x``)."""
        return self(x_nhwc.permute(0, 3, 1, 2))


class FaceExpressionNet(_FaceApiNet):
    """face-api ``FaceExpressionNet``: ``[B, 3, 112, 112]`` RGB in [0, 255] → ``[B, 7]`` softmax over
    :data:`EXPRESSIONS`."""

    def __init__(self, w: _Weights) -> None:
        super().__init__()
        self.features = _FaceFeatureExtractor(w)
        self.fc = _Linear(w, "fc")

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x).softmax(dim=1)


class FaceLandmark68Net(_FaceApiNet):
    """face-api ``FaceLandmark68Net``: ``[B, 3, 112, 112]`` RGB in [0, 255] → ``[B, 68, 2]`` (x, y) relative
    to the input square (the raw FC output; for a padded crop see :func:`landmarks_post_process`)."""

    def __init__(self, w: _Weights) -> None:
        super().__init__()
        self.features = _FaceFeatureExtractor(w)
        self.fc = _Linear(w, "fc")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x)).view(-1, 68, 2)  # interleaved x0, y0, x1, y1, ...


def landmarks_post_process(
    raw: torch.Tensor, crop_wh: tuple[int, int], input_size: int = 112
) -> torch.Tensor:
    """face-api ``FaceLandmark68NetBase.postProcess``: net output relative to the padded square → relative
    to the unpadded ``(width, height)`` crop. Like face-api, it takes the padding as |w − h|·s / 2 per side."""
    w, h = crop_wh
    s = input_size / max(w, h)
    ws, hs = w * s, h * s
    px = abs(ws - hs) / 2 if ws < hs else 0.0
    py = abs(ws - hs) / 2 if hs < ws else 0.0
    pad = raw.new_tensor([px, py])
    return (raw * input_size - pad) / raw.new_tensor([ws, hs])


# ------------------------------------------------------------------------ age / gender (TinyXception)


class _ReductionBlock(nn.Module):
    """TinyXception reduction block: two separable convs, a 'same' 3×3/2 max-pool, plus a 1×1/2 expansion
    conv of the (unactivated) input."""

    def __init__(self, w: _Weights, prefix: str, activate_input: bool = True) -> None:
        super().__init__()
        self.activate_input = activate_input
        self.sep0 = _SepConv(w, f"{prefix}/separable_conv0")
        self.sep1 = _SepConv(w, f"{prefix}/separable_conv1")
        self.expansion = _Conv(w, f"{prefix}/expansion_conv", stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(x) if self.activate_input else x
        out = self.sep1(F.relu(self.sep0(out)))
        out = F.max_pool2d(_pad_same(out, 3, 2, value=-math.inf), 3, 2)  # TF pads max-pools with −∞
        return out + self.expansion(x)


class _MainBlock(nn.Module):
    """TinyXception middle-flow block: three relu → separable conv, plus the identity."""

    def __init__(self, w: _Weights, prefix: str) -> None:
        super().__init__()
        self.convs = nn.ModuleList(_SepConv(w, f"{prefix}/separable_conv{i}") for i in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for conv in self.convs:
            out = conv(F.relu(out))
        return out + x


class AgeGenderNet(_FaceApiNet):
    """face-api ``AgeGenderNet`` (TinyXception, 2 main blocks): ``[B, 3, 112, 112]`` RGB in [0, 255] →
    ``(age [B] in years, gender [B, 2] softmax over [male, female])``."""

    def __init__(self, w: _Weights, num_main_blocks: int = 2) -> None:
        super().__init__()
        self.conv_in = _Conv(w, "entry_flow/conv_in", stride=2)
        self.entry = nn.ModuleList(
            [
                _ReductionBlock(w, "entry_flow/reduction_block_0", activate_input=False),
                _ReductionBlock(w, "entry_flow/reduction_block_1"),
            ]
        )
        self.middle = nn.ModuleList(
            _MainBlock(w, f"middle_flow/main_block_{i}") for i in range(num_main_blocks)
        )
        self.exit_reduction = _ReductionBlock(w, "exit_flow/reduction_block")
        self.exit_conv = _SepConv(w, "exit_flow/separable_conv")
        self.fc_age = _Linear(w, "fc/age")
        self.fc_gender = _Linear(w, "fc/gender")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv_in(_normalise(x)))
        for block in (*self.entry, *self.middle, self.exit_reduction):
            x = block(x)
        x = F.relu(self.exit_conv(x))
        return F.avg_pool2d(x, 7, 2).flatten(1)  # 7×7 → 1: avgPool(7, 2, 'valid')

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        return self.fc_age(f)[:, 0], self.fc_gender(f).softmax(dim=1)


# ------------------------------------------------------------------- recognition (dlib ResNet-29)


class _ScaledConv(nn.Module):
    """Recognition-net conv: conv + bias, then the per-channel scale layer x·weights + biases (kept apart,
    not folded, to round as tfjs does)."""

    def __init__(self, w: _Weights, prefix: str, stride: int = 1, padding: str = "same") -> None:
        super().__init__()
        self.conv = _Conv(w, f"{prefix}/conv", stride, padding)
        c = self.conv.bias.shape[0]
        self.scale = _param(w.get(f"{prefix}/scale/weights", (c,)).view(1, c, 1, 1))
        self.shift = _param(w.get(f"{prefix}/scale/biases", (c,)).view(1, c, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * self.scale + self.shift


class _Residual(nn.Module):
    """dlib residual block; ``down``: 3×3/2 'valid' conv, with an avg-pooled, zero-channel-padded shortcut."""

    def __init__(self, w: _Weights, prefix: str, down: bool = False) -> None:
        super().__init__()
        self.down = down
        self.conv1 = _ScaledConv(w, f"{prefix}/conv1", *((2, "valid") if down else (1, "same")))
        self.conv2 = _ScaledConv(w, f"{prefix}/conv2")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(F.relu(self.conv1(x)))
        if not self.down:
            return F.relu(out + x)
        short = F.avg_pool2d(x, 2, 2)
        if short.shape[-2:] != out.shape[-2:]:
            # 8 → 3 vs 4 and 4 → 1 vs 2: face-api appends a zero row (bottom) and column (right)
            out = F.pad(out, (0, 1, 0, 1))
        if short.shape[1] != out.shape[1]:
            short = torch.cat([short, torch.zeros_like(short)], dim=1)  # channels doubled with zeros after
        return F.relu(short + out)


class FaceRecognitionNet(_FaceApiNet):
    """face-api ``FaceRecognitionNet`` (dlib's ResNet-29 face descriptor): ``[B, 3, 150, 150]`` RGB in
    [0, 255] → ``[B, 128]``; two faces are one person below Euclidean distance 0.6."""

    input_size = 150

    def __init__(self, w: _Weights) -> None:
        super().__init__()
        self.conv_in = _ScaledConv(w, "conv32_down", stride=2, padding="valid")  # 7×7/2: 150 → 72
        spec = [("conv32", 3, False), ("conv64", 3, True), ("conv128", 2, True), ("conv256", 2, True)]
        blocks: list[_Residual] = []
        for name, n, down in spec:
            if down:
                blocks.append(_Residual(w, f"{name}_down", down=True))
            blocks.extend(_Residual(w, f"{name}_{i}") for i in range(1, n + 1))
        blocks.append(_Residual(w, "conv256_down_out", down=True))
        self.blocks = nn.ModuleList(blocks)
        self.fc = _Linear(w, "fc", bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv_in(_normalise(x)))
        x = F.max_pool2d(x, 3, 2)  # 'valid': 72 → 35
        for block in self.blocks:
            x = block(x)
        return self.fc(x.mean(dim=(2, 3)))


#: head name → (manifest stem, net class)
NETS: dict[str, tuple[str, type[_FaceApiNet]]] = {
    "expression": ("face_expression_model", FaceExpressionNet),
    "age_gender": ("age_gender_model", AgeGenderNet),
    "landmarks": ("face_landmark_68_model", FaceLandmark68Net),
    "recognition": ("face_recognition_model", FaceRecognitionNet),
}


def load_net(head: str, path: str | Path | None = None) -> _FaceApiNet:
    """One face-api net (``head`` from :data:`NETS`), frozen in eval mode, from the npm package root ``path``
    (default: :func:`tedigan.assets.npm_model_dir`). Raises ``MissingWeightsError`` when the files are
    absent and :class:`~tedigan.models.ports.tfjs.TfjsFormatError` when they are damaged."""
    if head not in NETS:
        raise ValueError(f"unknown face-api net {head!r} (known: {sorted(NETS)})")
    stem, cls = NETS[head]
    manifest = assets.npm_model_dir(PACKAGE, path) / "model" / f"{stem}-weights_manifest.json"
    net = cls(_Weights(load_layers_weights(manifest), str(manifest)))
    return net.eval().requires_grad_(False)


# ------------------------------------------------------------------------------------ preprocessing


def scale_box(box: Sequence[float], width: int, height: int, at: int = BOX_RESOLUTION) -> tuple[float, ...]:
    """A box ``(x, y, w, h)`` given on an ``at``² image, scaled to a ``width × height`` one."""
    x, y, w, h = box
    sx, sy = width / at, height / at
    return (x * sx, y * sy, w * sx, h * sy)


def _clip_floor(box: Sequence[float], width: int, height: int) -> tuple[int, int, int, int]:
    """face-api ``Box.clipAtImageBorders``: clip to the image (keeping right/bottom), then floor each field."""
    x, y, w, h = box
    cx, cy = max(x, 0), max(y, 0)
    cw, ch = min(x + w - cx, width - cx), min(y + h - cy, height - cy)
    return math.floor(cx), math.floor(cy), math.floor(cw), math.floor(ch)


def pad_to_square(x: torch.Tensor) -> torch.Tensor:
    """face-api ``padToSquare(·, isCenterImage=true)`` on NCHW: the short side gets round(d/2) zeros after
    the image and the rest before (JS ``Math.round`` rounds halves up)."""
    h, w = x.shape[-2:]
    d = abs(h - w)
    after = math.floor(d / 2 + 0.5)
    before = d - after
    if d == 0:
        return x
    return F.pad(x, (0, 0, before, after) if w > h else (before, after, 0, 0))


def _resize_axis(x: torch.Tensor, dim: int, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    n = x.shape[dim]
    # JS doubles: source = out_index · (in / out), no half-pixel shift; floor/ceil neighbours clamped
    src = torch.arange(size, dtype=torch.float64, device=x.device) * (n / size)
    lo = src.floor()
    frac = (src - lo).to(x.dtype)
    hi = src.ceil().clamp(max=n - 1).long()
    return lo.long().clamp(0, n - 1), hi, frac


def legacy_resize_bilinear(x: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """tfjs ``resizeBilinear(x, size, alignCorners=false, halfPixelCenters=false)`` on NCHW, differentiably.

    The source coordinate is ``dst · in/out`` (not torch's ``(dst + ½)·in/out − ½``) and there is no
    antialiasing. As tfjs's cpu kernel, it lerps along columns first, then rows, in float64 (JS numbers), and
    rounds once to ``x``'s dtype (float32 stays float32 where float64 is unsupported, e.g. MPS)."""
    out_h, out_w = (size, size) if isinstance(size, int) else size
    dtype = x.dtype
    work = torch.float64 if x.device.type in ("cpu", "cuda") else dtype
    xw = x.to(work)
    r0, r1, rf = _resize_axis(xw, -2, out_h)
    c0, c1, cf = _resize_axis(xw, -1, out_w)
    top, bottom = xw.index_select(-2, r0), xw.index_select(-2, r1)
    top = top.index_select(-1, c0) + (top.index_select(-1, c1) - top.index_select(-1, c0)) * cf
    bottom = bottom.index_select(-1, c0) + (bottom.index_select(-1, c1) - bottom.index_select(-1, c0)) * cf
    return (top + (bottom - top) * rf[:, None]).to(dtype)


def face_api_input(
    images255: torch.Tensor, box: Sequence[float], size: int
) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """face-api's preprocessing of one box on every image of ``[B, 3, H, W]`` RGB in [0, 255]:
    ``extractFaceTensors`` (clip + floor, slice), then ``toBatchTensor(size)`` (padToSquare, legacy
    resizeBilinear). Returns the net input ``[B, 3, size, size]`` (float, unrounded) and the integer crop
    box ``(x, y, w, h)`` (for :func:`landmarks_post_process`)."""
    H, W = images255.shape[-2:]
    x, y, w, h = _clip_floor(box, W, H)
    if w <= 0 or h <= 0:
        raise ValueError(f"face box {tuple(box)} lies outside the {W}×{H} image")
    crop = pad_to_square(images255[..., y : y + h, x : x + w])
    if crop.shape[-1] != size:  # toBatchTensor resizes only when needed
        crop = legacy_resize_bilinear(crop, size)
    return crop, (x, y, w, h)


# ---------------------------------------------------------------------------------------------- judge


class FaceApiJudge(Judge):
    """face-api's expression, age/gender and dlib-descriptor nets as a differentiable :class:`Judge` of
    FFHQ-aligned faces, with fixed face boxes (:data:`BOX_ALIGNED_512`, :data:`BOX_DLIB_512`, scaled to the
    image) instead of a detector.

    Images ``[B, 3, H, W]`` RGB in [-1, 1] become 0..255 as ``(clamp(x, −1, 1) + 1) · 127.5``, unrounded (the
    u8 pipeline of the references rounds to integers: a difference of at most ½ grey level per pixel).
    Square images whose side is a multiple of ``box_resolution`` (1024² from StyleGAN2-FFHQ) are first
    average-pooled down to it, because the boxes and face-api's references were taken at 512².

    ``heads`` picks the nets to load and run: ``"expression"`` → ``probs["expression"]``, ``"age_gender"`` →
    ``values["age"]`` (years) and ``probs["gender"]`` ([male, female]), ``"recognition"`` → ``embedding``
    (128-d, Euclidean, same person below 0.6), ``"landmarks"`` → :meth:`landmarks` only.
    """

    attribute_values = {"expression": list(EXPRESSIONS), "gender": list(GENDERS)}
    embedding_dim = 128
    same_person_threshold = 0.6
    HEADS = ("expression", "age_gender", "landmarks", "recognition")

    def __init__(
        self,
        heads: Sequence[str] = HEADS,
        path: str | Path | None = None,
        *,
        box_aligned: Sequence[float] = BOX_ALIGNED_512,
        box_dlib: Sequence[float] = BOX_DLIB_512,
        box_resolution: int = BOX_RESOLUTION,
    ) -> None:
        super().__init__()
        unknown = sorted(set(heads) - set(self.HEADS))
        if unknown or not heads:
            raise ValueError(f"FaceApiJudge heads must be a non-empty subset of {self.HEADS}, got {heads!r}")
        self.heads = tuple(h for h in self.HEADS if h in heads)
        self.nets = nn.ModuleDict({h: load_net(h, path) for h in self.heads})
        self.box_aligned, self.box_dlib = tuple(box_aligned), tuple(box_dlib)
        self.box_resolution = box_resolution
        # only the attributes this judge's heads produce
        owner = {"expression": "expression", "gender": "age_gender"}
        self.attribute_values = {
            a: v for a, v in type(self).attribute_values.items() if owner[a] in self.heads
        }
        if "recognition" not in self.heads:
            self.embedding_dim = self.same_person_threshold = None
        self.eval()

    @classmethod
    def from_package(
        cls, path: str | Path | None = None, heads: Sequence[str] = HEADS, **kwargs: Any
    ) -> FaceApiJudge:
        """The judge from the extracted npm package (``path`` → ``$TEDIGAN_FACE_API_DIR`` → the tedigan
        cache; see :func:`tedigan.assets.npm_model_dir`)."""
        return cls(heads, path, **kwargs)

    def train(self, mode: bool = True) -> FaceApiJudge:
        return super().train(False)  # a frozen reference network: no train mode

    def _net(self, head: str) -> nn.Module:
        if head not in self.nets:
            raise RuntimeError(f"this FaceApiJudge was built without the {head!r} head (heads={self.heads})")
        return self.nets[head]

    def to_255(self, images: torch.Tensor) -> torch.Tensor:
        """[-1, 1] images → float 0..255 at the box resolution (see the class docstring)."""
        self.check_images(images)
        x = (images.float().clamp(-1.0, 1.0) + 1.0) * 127.5
        H, W = x.shape[-2:]
        r = self.box_resolution
        if H == W and r < H and H % r == 0:
            x = F.avg_pool2d(x, H // r)
        return x

    def _inputs(self, x255: torch.Tensor, which: str) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
        H, W = x255.shape[-2:]
        box = self.box_aligned if which == "aligned" else self.box_dlib
        size = 112 if which == "aligned" else 150
        return face_api_input(x255, scale_box(box, W, H, self.box_resolution), size)

    def judge(self, images: torch.Tensor) -> Judgement:
        x255 = self.to_255(images)
        out = Judgement()
        if "expression" in self.heads or "age_gender" in self.heads:
            x112, _ = self._inputs(x255, "aligned")
            if "expression" in self.heads:
                out.probs["expression"] = self.nets["expression"](x112)
            if "age_gender" in self.heads:
                out.values["age"], out.probs["gender"] = self.nets["age_gender"](x112)
        if "recognition" in self.heads:
            out.embedding = self.nets["recognition"](self._inputs(x255, "dlib")[0])
        return out

    def descriptor(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 128]`` dlib descriptors of FFHQ-aligned faces (only the recognition net runs)."""
        return self._net("recognition")(self._inputs(self.to_255(images), "dlib")[0])

    def landmarks(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 68, 2]`` face-api 68-point landmarks (x, y) relative to the image (0..1 across its width and
        height), differentiable."""
        net = self._net("landmarks")
        x255 = self.to_255(images)
        x112, (bx, by, bw, bh) = self._inputs(x255, "aligned")
        rel = landmarks_post_process(net(x112), (bw, bh))  # relative to the crop, as face-api returns it
        H, W = x255.shape[-2:]
        return (rel * rel.new_tensor([bw, bh]) + rel.new_tensor([bx, by])) / rel.new_tensor([W, H])


def identity_distance(judge: FaceApiJudge, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Differentiable identity loss on real faces: ``[B]`` Euclidean distances between the dlib descriptors
    of images ``a`` and ``b`` (``[B, 3, H, W]`` in [-1, 1]); ``b`` may instead be precomputed descriptors
    ``[B or 1, 128]`` (e.g. ``judge.descriptor(target).detach()``). Below ``judge.same_person_threshold``
    (0.6), face-api calls it one person."""
    da = judge.descriptor(a)
    db = b if b.ndim == 2 else judge.descriptor(b)
    return judge.distance(da, db)
