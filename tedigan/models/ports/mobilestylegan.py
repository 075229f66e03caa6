"""MobileStyleGAN (FFHQ, 1024 px) rebuilt in PyTorch from the OpenVINO IR shipped by ``random-face``.

Licence of the weights: they are distilled from NVIDIA's FFHQ StyleGAN2 (the mapping network *is* NVIDIA's), so
they are for **research / non-commercial use only** (NVIDIA Source Code License-NC, FFHQ CC BY-NC-SA 4.0). They
are never committed to this repository: :meth:`MobileStyleGAN.from_package` reads them from the installed PyPI
package (``pip install --no-deps random-face==2021.7.21.1``) or from ``$TEDIGAN_MOBILESTYLEGAN_DIR``, through
:func:`tedigan.assets.mobilestylegan_ir_dir`. OpenVINO is not needed: the IR ``.xml`` is parsed with
:mod:`xml.etree` and the constants are read from the ``.bin`` by offset and element type. Both file pairs are
checked (size and SHA-256) first; any other file raises :class:`MobileStyleGANFileError`.

Network (the facts are in ``shared/fixtures/real_faces/README.md``):

* mapping: pixel norm, 8 x (dense, LeakyReLU(0.2), x sqrt 2): NVIDIA's StyleGAN2-FFHQ mapping, so w is in
  StyleGAN2-FFHQ W space;
* synthesis: a 4x4x512 constant, a modulated full 3x3 conv, then 7 blocks (4 -> 512 px). A block multiplies its
  input by a style (``up``), upsamples it with the inverse Haar transform (:func:`haar_idwt`: 4C channels at R
  -> C at 2R) and applies two modulated depthwise-separable convs. Every conv is followed by a baked noise map
  (a constant buffer), a bias and LeakyReLU(0.2) without gain; modulation has no style-dependent demodulation.
  ``to_img`` (1x1, 64 -> 12 Haar bands at 512 px) and a last inverse Haar transform give 3x1024x1024 RGB,
  nominally in [-1, 1] and not clamped.

W+: the 23 style-modulation sites (:data:`STYLE_SITES`, forward order) each take their own w, so synthesis takes
``ws [B, 23, 512]``; equal w's reproduce W exactly (every site reads the same numbers). ``noise_mode`` is accepted
for interface compatibility and ignored: the noise is part of the exported weights, so the generator is
deterministic.

Lower output resolutions (``synthesis(ws, resolution=r)``) return ``avg_pool2d(img_1024, 1024 // r)``. In exact
arithmetic the inverse Haar transform of one 2x2 output block averages to LL/2, so for r <= 512 the last
transform and 9 of the 12 ``to_img`` rows are skipped: r = 512 is LL/2, r < 512 average-pools LL/2 further. The
result equals pooling the full image up to float rounding (about 1e-7). Nothing else can be skipped exactly: the
512 px block is non-linear. Cost drops by ~10% at r <= 512.

Speed (CPU): activations stay channels-last. A pointwise conv is one GEMM per sample whose weights carry the
style (so no activation-sized multiply) and whose output buffer starts as noise + bias; LeakyReLU runs in place.
Custom backwards for the pointwise convs (one GEMM instead of autograd's two) and the styled Haar upsampling (the
forward Haar transform of the gradient) cut forward+backward time by ~15%. The 0.5 of each Haar transform is
folded into the preceding style or weight (exact: a power of two). The output channels of every layer that feeds
an inverse Haar transform are stored band-major (LL, H0, H1, H2, each C wide) rather than the IR's interleaved
order, so the transform reads contiguous slices. On glibc, much of a forward's time can go to page faults of
freshly mapped large tensors; :func:`keep_freed_memory` (called by :meth:`MobileStyleGAN.from_package` unless
``tune_malloc=False``) makes malloc reuse them. Gradients are first-order only (no double backward).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import math
import os
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tedigan.assets import MissingWeightsError, mobilestylegan_ir_dir
from tedigan.models.style import StyleGenerator, StyleMapping

__all__ = [
    "STYLE_SITES",
    "IR_FILES",
    "MobileStyleGANFileError",
    "MobileStyleGANConfig",
    "MobileStyleGAN",
    "MobileStyleGANMapping",
    "MobileStyleGANSynthesis",
    "HaarIDWT",
    "haar_idwt",
    "load_ir",
    "verify_ir_files",
    "keep_freed_memory",
]

INSTALL_HINT = "pip install --no-deps random-face==2021.7.21.1"

#: file name -> (size in bytes, SHA-256) of random-face 2021.7.21.1's IR.
IR_FILES: dict[str, tuple[int, str]] = {
    "MappingNetwork.xml": (59865, "73e2096cad6e696e4af47df2477e048ab4c42c0e0dec83c7c66604822689e55b"),
    "MappingNetwork.bin": (8405040, "212dd716bdb556e18db603ea97300d4fa3c872b878c726b2402fea80820e7305"),
    "SynthesisNetwork.xml": (425183, "7918fce515243954d3e06628cb39a23902d6b1d5d02932cc0c2faee7a2aeeedd"),
    "SynthesisNetwork.bin": (32025440, "c7da15fa22d508c82e1c30dd6b4cdf67fe3ccdddaf85b310ee764dbf0c289645"),
}

N_BLOCKS = 7
#: (C_in, C_out) of synthesis block i; the block input is C_in channels at 4 * 2**i px.
BLOCK_CHANNELS = [(512, 512)] * 4 + [(512, 256), (256, 128), (128, 64)]
#: The 23 style-modulation sites (IR names without ``m.``), in forward order: W+ index i feeds STYLE_SITES[i].
STYLE_SITES: list[str] = [
    "conv1.conv",
    *(f"layers.{i}.{part}" for i in range(N_BLOCKS) for part in ("up", "conv1.conv", "conv2.conv")),
    f"layers.{N_BLOCKS - 1}.to_img.conv",
]
NATIVE_RESOLUTION = 1024


class MobileStyleGANFileError(MissingWeightsError, ValueError):
    """A MobileStyleGAN IR file is missing, damaged or of another version (one line naming the file and the fix).

    A :class:`~tedigan.assets.MissingWeightsError` (so the CLIs report it like any missing weight) and a
    :class:`ValueError`."""


def _bad_file(path: Path | str, problem: str) -> MobileStyleGANFileError:
    return MobileStyleGANFileError(
        f"MobileStyleGAN IR file {path} {problem}: reinstall it with `{INSTALL_HINT}` "
        "(or point $TEDIGAN_MOBILESTYLEGAN_DIR at an intact copy)",
        asset="MobileStyleGAN IR",
        hint=INSTALL_HINT,
    )


def verify_ir_files(folder: str | os.PathLike) -> Path:
    """Check that ``folder`` holds random-face 2021.7.21.1's four IR files (sizes and SHA-256); return it."""
    folder = Path(folder)
    for name, (size, sha) in IR_FILES.items():
        path = folder / name
        if not path.is_file():
            raise _bad_file(path, "is missing")
        if path.stat().st_size != size:
            raise _bad_file(
                path, f"has {path.stat().st_size} bytes, expected {size} (damaged or another version)"
            )
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != sha:
            raise _bad_file(
                path, f"has SHA-256 {digest[:8]}..., expected {sha[:8]}... (damaged or another version)"
            )
    return folder


# ------------------------------------------------------------------------------------------- IR reader

_ELEMENT_TYPES = {"f32": np.float32, "f16": np.float16, "i64": np.int64, "i32": np.int32, "u8": np.uint8}


class _IRGraph:
    """The layers, edges and constants of one OpenVINO IR v10 file pair (read-only, no OpenVINO)."""

    def __init__(self, xml_path: Path, bin_path: Path) -> None:
        self.xml_path = xml_path
        try:
            root = ET.parse(xml_path).getroot()
        except ET.ParseError as err:
            raise _bad_file(xml_path, f"is not valid XML ({err})") from None
        self.blob = bin_path.read_bytes()
        self.bin_path = bin_path
        self.type: dict[str, str] = {}
        self.name: dict[str, str] = {}
        self.data: dict[str, dict[str, str]] = {}
        self.shapes: dict[str, list[list[int]]] = {}
        self.by_name: dict[str, str] = {}
        for layer in root.iterfind("layers/layer"):
            lid = layer.get("id", "")
            self.type[lid] = layer.get("type", "")
            self.name[lid] = layer.get("name", "")
            data = layer.find("data")
            self.data[lid] = dict(data.attrib) if data is not None else {}
            self.shapes[lid] = [
                [int(d.text or 0) for d in port.iterfind("dim")] for port in layer.iterfind("output/port")
            ]
            self.by_name.setdefault(self.name[lid], lid)
        self.inputs: dict[str, dict[int, str]] = {lid: {} for lid in self.type}
        self.consumers: dict[str, list[str]] = {lid: [] for lid in self.type}
        for edge in root.iterfind("edges/edge"):
            src, dst = edge.get("from-layer", ""), edge.get("to-layer", "")
            if src not in self.type or dst not in self.type:
                raise self.error(f"has an edge between unknown layers {src} -> {dst}")
            self.inputs[dst][int(edge.get("to-port", "0"))] = src
            self.consumers[src].append(dst)

    def error(self, problem: str) -> MobileStyleGANFileError:
        return _bad_file(self.xml_path, f"is not the expected graph ({problem})")

    def find(self, name: str) -> str:
        if name not in self.by_name:
            raise self.error(f"has no layer named {name!r}")
        return self.by_name[name]

    def args(self, lid: str) -> list[str]:
        """Producers of ``lid``'s inputs, in port order."""
        return [self.inputs[lid][p] for p in sorted(self.inputs[lid])]

    def next(self, lid: str, op: str) -> str:
        """The single consumer of ``lid`` of type ``op`` (shape bookkeeping such as ShapeOf is skipped)."""
        hits = [c for c in self.consumers[lid] if self.type[c] == op]
        if len(hits) != 1:
            raise self.error(f"layer {self.name[lid]!r} feeds {len(hits)} {op} layers, expected 1")
        return hits[0]

    def const_arg(self, lid: str, shape: Iterable[int] | None = None) -> np.ndarray:
        """The one Const input of ``lid`` (optionally of a given shape)."""
        consts = [a for a in self.args(lid) if self.type[a] == "Const"]
        if shape is not None:
            consts = [a for a in consts if self.shapes[a][0] == list(shape)]
        if len(consts) != 1:
            raise self.error(
                f"layer {self.name[lid]!r} has {len(consts)} matching constant inputs, expected 1"
            )
        return self.const(consts[0])

    def other_arg(self, lid: str, known: str) -> str:
        """The input of binary layer ``lid`` that is not ``known``."""
        rest = [a for a in self.args(lid) if a != known]
        if len(rest) != 1:
            raise self.error(f"layer {self.name[lid]!r} is not a binary op on {self.name[known]!r}")
        return rest[0]

    def const(self, lid: str) -> np.ndarray:
        if self.type[lid] != "Const":
            raise self.error(f"layer {self.name[lid]!r} is a {self.type[lid]}, expected a Const")
        d = self.data[lid]
        try:
            dtype = np.dtype(_ELEMENT_TYPES[d["element_type"]]).newbyteorder("<")
            offset, size = int(d["offset"]), int(d["size"])
            shape = [int(s) for s in d["shape"].split(",") if s.strip()] if d.get("shape") else []
        except (KeyError, ValueError) as err:
            raise self.error(f"has a malformed Const {self.name[lid]!r} ({err})") from None
        if offset < 0 or offset + size > len(self.blob) or size != dtype.itemsize * math.prod(shape):
            raise _bad_file(
                self.bin_path, f"does not hold constant {self.name[lid]!r} (offset {offset}, size {size})"
            )
        return (
            np.frombuffer(self.blob, dtype=dtype, count=math.prod(shape), offset=offset).reshape(shape).copy()
        )

    def scalar(self, lid: str) -> float:
        return float(self.const_arg(lid).reshape(-1)[0])


def _check(graph: _IRGraph, ok: bool, problem: str) -> None:
    if not ok:
        raise graph.error(problem)


def _read_mapping(g: _IRGraph) -> dict[str, np.ndarray]:
    """Mapping weights in IR order: ``fc{i}.weight [512, 512]`` (out, in), ``fc{i}.bias [512]``, and scalars."""
    out: dict[str, np.ndarray] = {}
    x = g.find("var")
    _check(g, g.type[x] == "Parameter", "has no Parameter 'var'")
    sq = g.next(x, "Power")
    _check(g, g.scalar(sq) == 2.0, "pixel norm is not a mean of squares")
    add = g.next(g.next(sq, "ReduceMean"), "Add")
    eps = g.scalar(add)
    sqrt = g.next(add, "Power")
    recip = g.next(sqrt, "Power")
    num = g.next(recip, "Multiply")
    _check(
        g, (g.scalar(sqrt), g.scalar(recip), g.scalar(num)) == (0.5, -1.0, 1.0), "pixel norm is not x/sqrt(.)"
    )
    x = g.next(num, "Multiply")
    out["eps"] = np.array(eps, np.float32)
    i = 0
    while True:
        mm = [c for c in g.consumers[x] if g.type[c] == "MatMul"]
        if not mm:
            break
        mm = mm[0]
        _check(g, g.data[mm].get("transpose_b") == "true", "a mapping MatMul is not x @ W.T")
        out[f"fc{i}.weight"] = g.const_arg(mm, [512, 512])
        add = g.next(mm, "Add")
        reshape = g.other_arg(add, mm)
        out[f"fc{i}.bias"] = g.const_arg(reshape, [512])
        act = g.next(add, "PReLU")
        out[f"fc{i}.slope"] = np.array(g.scalar(act), np.float32)
        x = g.next(act, "Multiply")
        out[f"fc{i}.gain"] = np.array(g.scalar(x), np.float32)
        i += 1
    _check(
        g,
        i == 8 and g.name[x] == "style",
        f"mapping has {i} dense layers ending at {g.name[x]!r}, expected 8",
    )
    return out


def _read_site(g: _IRGraph, site: str, style: str, out: dict[str, np.ndarray]) -> tuple[str, str]:
    """Style of ``m.<site>``: returns (the Multiply that modulates the features, the feature producer)."""
    w = g.find(f"m.{site}.modulation.weight")
    mm = g.consumers[w][0]
    _check(g, g.type[mm] == "MatMul" and g.args(mm)[0] == style, f"m.{site} modulation is not a MatMul on w")
    out[f"{site}.mod_weight"] = g.const(w)
    add = g.next(mm, "Add")
    out[f"{site}.mod_bias"] = g.const_arg(add).reshape(-1)
    node = g.next(add, "Reshape")
    mul = g.next(node, "Multiply")
    a, b = g.args(mul)
    if g.type[a] == "Const" or g.type[b] == "Const":  # the constant 1/sqrt(fan_in) of a conv site
        out[f"{site}.k"] = np.array(g.scalar(mul), np.float32)
        node, mul = mul, g.next(mul, "Multiply")
    return mul, g.other_arg(mul, node)


def _read_conv_tail(g: _IRGraph, conv: str, layer: str, out: dict[str, np.ndarray]) -> str:
    """noise, bias and LeakyReLU after ``conv``; returns the activation layer."""
    add1 = g.next(conv, "Add")
    add2 = g.next(add1, "Add")
    res = g.shapes[conv][0][-1]
    out[f"{layer}.noise"] = g.const_arg(add1, [1, 1, res, res]).reshape(res, res)
    _check(
        g, g.name[[a for a in g.args(add2) if a != add1][0]] == f"m.{layer}.bias", f"m.{layer}.bias misplaced"
    )
    out[f"{layer}.bias"] = g.const_arg(add2).reshape(-1)
    act = g.next(add2, "PReLU")
    out[f"{layer}.slope"] = np.array(g.scalar(act), np.float32)
    return act


def _read_idwt(g: _IRGraph, start: str, channels: int) -> str:
    """Check that ``start`` feeds an inverse Haar transform of ``4 * channels`` channels; returns its output."""
    split = g.next(start, "VariadicSplit")
    _check(
        g,
        g.shapes[split][0][1] == channels,
        f"IDWT after {g.name[start]!r} does not split {channels} channels",
    )
    # walk everything between the split and the final Add (all of it lives in the IDWT subgraph)
    seen, todo, kinds = set(), [split], []
    r = 1 / math.sqrt(2)
    while todo:
        lid = todo.pop()
        if lid in seen:
            continue
        seen.add(lid)
        if g.type[lid] == "GroupConvolutionBackpropData":
            f = g.const_arg(lid).reshape(channels, 2)
            high = bool(np.allclose(f, [[r, -r]] * channels, atol=1e-6))
            if not (high or np.allclose(f, [[r, r]] * channels, atol=1e-6)):
                kinds.append(("other", False))
            kinds.append((g.data[lid].get("strides", ""), high))
        todo += [c for c in g.consumers[lid] if g.type[c] not in ("ShapeOf", "Multiply", "Result")]
    # a separable Haar synthesis: vertical low/high on (LL, H0) and (H1, H2), then horizontal low and high
    expected = sorted([("2, 1", False), ("2, 1", True)] * 2 + [("1, 2", False), ("1, 2", True)])
    _check(
        g,
        sorted(kinds) == expected,
        f"the upsampling after {g.name[start]!r} is not an inverse Haar transform",
    )
    ends = [lid for lid in seen if g.type[lid] == "Add" and not any(c in seen for c in g.consumers[lid])]
    _check(g, len(ends) == 1, f"the IDWT after {g.name[start]!r} has no single output")
    return ends[0]


def _read_synthesis(g: _IRGraph) -> dict[str, np.ndarray]:
    """Synthesis weights in IR order (channel order as exported). Keys: ``input``, per site ``mod_weight``,
    ``mod_bias``, ``k``; per conv ``weight_dw``, ``weight``, ``noise [R, R]``, ``bias``, ``slope``; ``to_img.*``."""
    out: dict[str, np.ndarray] = {}
    style = g.find("style")
    _check(g, g.type[style] == "Parameter", "has no Parameter 'style'")
    out["input"] = g.const(g.find("m.input.input"))
    mul, feat = _read_site(g, "conv1.conv", style, out)
    _check(g, g.type[feat] == "Tile", "m.conv1 does not modulate the tiled constant input")
    conv = g.next(mul, "Convolution")
    _check(g, g.data[conv].get("pads_begin") == "1, 1", "m.conv1 is not a padded 3x3 conv")
    out["conv1.weight"] = g.const_arg(conv, [512, 512, 3, 3])
    x = _read_conv_tail(g, conv, "conv1", out)
    for i, (cin, cout) in enumerate(BLOCK_CHANNELS):
        mul, feat = _read_site(g, f"layers.{i}.up", style, out)
        _check(g, feat == x, f"m.layers.{i}.up does not take the previous layer's output")
        x = _read_idwt(g, mul, cin // 4)
        for j, c in ((1, cin // 4), (2, cout)):
            layer = f"layers.{i}.conv{j}"
            mul, feat = _read_site(g, f"{layer}.conv", style, out)
            _check(g, feat == x, f"m.{layer} does not take the previous layer's output")
            dw = g.next(mul, "GroupConvolution")
            out[f"{layer}.weight_dw"] = g.const(g.find(f"m.{layer}.conv.weight_dw")).reshape(c, 1, 3, 3)
            _check(
                g, g.find(f"m.{layer}.conv.weight_dw") in g.args(dw), f"m.{layer} depthwise weight misplaced"
            )
            pw = g.next(dw, "Convolution")
            o = cout
            out[f"{layer}.weight"] = g.const_arg(pw, [o, c, 1, 1]).reshape(o, c)
            x = _read_conv_tail(g, pw, layer, out)
    mul, feat = _read_site(g, f"layers.{N_BLOCKS - 1}.to_img.conv", style, out)
    _check(g, feat == x, "to_img does not take the last layer's output")
    conv = g.next(mul, "Convolution")
    out["to_img.weight"] = g.const_arg(conv, [12, 64, 1, 1]).reshape(12, 64)
    add = g.next(conv, "Add")
    out["to_img.bias"] = g.const_arg(add, [1, 12, 1, 1]).reshape(12)
    img = _read_idwt(g, add, 3)
    _check(g, g.name[img] == "img", "the last IDWT is not the network output 'img'")
    # site keys without the IR's trailing ".conv"
    return {k.replace(".conv.", "."): v for k, v in out.items()}


def load_ir(path: str | os.PathLike | None = None, verify: bool = True) -> dict[str, torch.Tensor]:
    """Read the MobileStyleGAN IR into float32 tensors named as in the IR (channel order as exported).

    Keys: ``mapping.fc{i}.{weight,bias,slope,gain}``, ``mapping.eps``, ``synthesis.input``,
    ``synthesis.<site>.{mod_weight,mod_bias,k}`` (site without ``.conv``; no ``k`` on ``up``) and
    ``synthesis.<layer>.{weight_dw,weight,noise,bias,slope}``, ``synthesis.to_img.{weight,bias}``.
    """
    folder = mobilestylegan_ir_dir(path)
    if verify:
        verify_ir_files(folder)
    state: dict[str, torch.Tensor] = {}
    for net, reader in (("Mapping", _read_mapping), ("Synthesis", _read_synthesis)):
        g = _IRGraph(folder / f"{net}Network.xml", folder / f"{net}Network.bin")
        for k, v in reader(g).items():
            state[f"{net.lower()}.{k}"] = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))
    return state


# ------------------------------------------------------------------------------------------- inverse Haar

_SIGN = (1.0, -1.0)


def haar_idwt(x: torch.Tensor, band_major: bool = False) -> torch.Tensor:
    """Inverse Haar transform: ``[B, 4C, H, W] -> [B, C, 2H, 2W]``, the IR's IDWT upsampling.

    ``out[2i+a, 2j+b] = (LL + (-1)^a H0 + (-1)^b H1 + (-1)^(a+b) H2) / 2``. Channel order as in the IR: LL is
    channels ``[0, C)`` and band k of channel c is ``C + 3c + k``; with ``band_major`` the bands are instead
    ``[LL | H0 | H1 | H2]``, each C channels."""
    b, c4, h, w = x.shape
    c = c4 // 4
    if band_major:
        ll, h0, h1, h2 = x.view(b, 4, c, h, w).unbind(1)
    else:
        ll = x[:, :c]
        h0, h1, h2 = x[:, c:].reshape(b, c, 3, h, w).unbind(2)
    sign = x.new_tensor(_SIGN)
    low = torch.addcmul(ll.unsqueeze(3), h0.unsqueeze(3), sign.view(2, 1))  # [b, c, h, a, w]
    high = torch.addcmul(h1.unsqueeze(3), h2.unsqueeze(3), sign.view(2, 1))
    out = torch.addcmul(low.unsqueeze(-1), high.unsqueeze(-1), sign)  # [b, c, h, a, w, b']
    return out.view(b, c, 2 * h, 2 * w).mul(0.5)


class HaarIDWT(nn.Module):
    """Module form of :func:`haar_idwt`."""

    def __init__(self, band_major: bool = False) -> None:
        super().__init__()
        self.band_major = band_major

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return haar_idwt(x, self.band_major)


def _band_major(c: int) -> torch.Tensor:
    """Index map from band-major channel order to the IR's (LL block, then [C, 3] interleaved H bands)."""
    idx = torch.arange(c)
    return torch.cat([idx, *(c + 3 * idx + k for k in range(3))])


def _up_idwt_nhwc(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """``haar_idwt(x * s)`` on channels-last band-major ``x [B, R, R, 4C]``, ``s [B, 4C]`` (the 1/2 is in s)."""
    b, r, _, c4 = x.shape
    c = c4 // 4
    ll, h0, h1, h2 = x.view(b, r, r, 4, c).unbind(3)
    s0, s1, s2, s3 = s.view(b, 4, 1, 1, c).unbind(1)  # each [B, 1, 1, C]
    sign = x.new_tensor(_SIGN).view(2, 1, 1)
    # rows: low[a] = s0 LL + (-1)^a s1 H0, high[a] = s2 H1 + (-1)^a s3 H2, each [B, R, 2, R, C]
    low = torch.addcmul((ll * s0).unsqueeze(2), h0.unsqueeze(2), sign * s1.unsqueeze(1))
    high = torch.addcmul((h1 * s2).unsqueeze(2), h2.unsqueeze(2), sign * s3.unsqueeze(1))
    # columns: out[a, b'] = low[a] + (-1)^b' high[a]
    out = torch.addcmul(low.unsqueeze(4), high.unsqueeze(4), sign.view(2, 1))
    return out.view(b, 2 * r, 2 * r, c)


class _StyledIDWT(torch.autograd.Function):
    """:func:`_up_idwt_nhwc` with a direct backward: the adjoint of the inverse Haar transform is the forward
    transform (sums and differences of each 2x2 block), ``dx = DWT(grad) * s`` and ``ds = sum_p DWT(grad) * x``;
    autograd's generic broadcast-multiply backward takes about twice as long."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, s)
        return _up_idwt_nhwc(x, s)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, s = ctx.saved_tensors
        b, r, _, c4 = x.shape
        c = c4 // 4
        g = grad.reshape(b, r, 2, r, 2, c)
        g0, g1 = g.unbind(4)  # columns b' = 0, 1: [B, R, 2, R, C]
        col_sum, col_diff = g0 + g1, g0 - g1
        gu = x.new_empty(b, r, r, 4, c)
        # LL = sum over the block, H0 = rows differenced, H1 = columns differenced, H2 = both
        torch.add(col_sum[:, :, 0], col_sum[:, :, 1], out=gu[:, :, :, 0])
        torch.sub(col_sum[:, :, 0], col_sum[:, :, 1], out=gu[:, :, :, 1])
        torch.add(col_diff[:, :, 0], col_diff[:, :, 1], out=gu[:, :, :, 2])
        torch.sub(col_diff[:, :, 0], col_diff[:, :, 1], out=gu[:, :, :, 3])
        gu = gu.view(b, r * r, c4)
        ds = (gu * x.view(b, r * r, c4)).sum(1) if ctx.needs_input_grad[1] else None
        dx = gu.mul_(s.unsqueeze(1)).view(b, r, r, c4) if ctx.needs_input_grad[0] else None
        return dx, ds


# ------------------------------------------------------------------------------------------- modules


@dataclass(frozen=True)
class MobileStyleGANConfig:
    """Shape facts, read by code written for :class:`tedigan.models.stylegan2.Generator` (``config.*``)."""

    resolution: int = NATIVE_RESOLUTION  # default output size of synthesis (avg-pooled below 1024)
    z_dim: int = 512
    w_dim: int = 512
    num_ws: int = len(STYLE_SITES)
    img_channels: int = 3
    n_mlp: int = 8
    arch: str = "mobilestylegan"


def _check_resolution(resolution: int) -> int:
    r = int(resolution)
    if r < 1 or r > NATIVE_RESOLUTION or NATIVE_RESOLUTION % r or r & (r - 1):
        raise ValueError(
            f"resolution must be a power of two from 1 to {NATIVE_RESOLUTION}, got {resolution!r}"
        )
    return r


class MobileStyleGANMapping(StyleMapping):
    """z ``[B, 512]`` -> pixel norm -> 8 x (dense, LeakyReLU, gain) -> w, broadcast to ``num_ws``.

    ``w_avg`` (buffer) is the package's mean style: the mean mapping of ``RandomState(0).normal(size=(4096,
    512))`` as float32, averaged in float64 (filled by :meth:`MobileStyleGAN.from_package`)."""

    def __init__(
        self, num_ws: int = len(STYLE_SITES), z_dim: int = 512, w_dim: int = 512, n_mlp: int = 8
    ) -> None:
        super().__init__()
        self.z_dim, self.w_dim, self.num_ws, self.n_mlp = z_dim, w_dim, num_ws, n_mlp
        dims = [z_dim] + [w_dim] * n_mlp
        self.weight = nn.ParameterList(nn.Parameter(torch.zeros(o, i)) for i, o in zip(dims[:-1], dims[1:]))
        self.bias = nn.ParameterList(nn.Parameter(torch.zeros(o)) for o in dims[1:])
        self.register_buffer("w_avg", torch.zeros(w_dim))
        self.eps, self.slope, self.gain = 1e-8, 0.2, math.sqrt(2)

    def embed(self, z: torch.Tensor) -> torch.Tensor:
        """z ``[B, z_dim]`` -> w ``[B, w_dim]`` (no broadcast, no truncation)."""
        x = z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + self.eps)
        for w, b in zip(self.weight, self.bias):
            x = F.leaky_relu(F.linear(x, w, b), self.slope) * self.gain
        return x


class _Site(nn.Module):
    """One style-modulation site: ``s = (w @ mod_weight.T + mod_bias) * k``."""

    def __init__(self, channels: int, w_dim: int, k: float) -> None:
        super().__init__()
        self.mod_weight = nn.Parameter(torch.zeros(channels, w_dim))
        self.mod_bias = nn.Parameter(torch.zeros(channels))
        self.k = k

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        s = F.linear(w, self.mod_weight, self.mod_bias)
        return s if self.k == 1 else s * self.k


class _ModulatedPointwise(torch.autograd.Function):
    """``leaky_relu(x @ (weight * s).T + bias + noise)`` for ``x [B, P, I]``, ``s [B, I]``, ``noise [P]``.

    The style is folded into per-sample weights, so the forward is one GEMM per sample whose output already
    holds noise + bias. The backward needs one GEMM, not autograd's two: ``G = dz @ weight`` gives both
    ``dx = G * s`` and ``ds = sum_p(G * x)``, while the weight gradient (a second GEMM over all pixels) is only
    computed when a parameter requires grad."""

    @staticmethod
    def forward(
        ctx,
        x: torch.Tensor,
        s: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor,
        noise: torch.Tensor,
        slope: float,
    ) -> torch.Tensor:
        b, p, _ = x.shape
        wt = (weight.unsqueeze(0) * s.unsqueeze(1)).transpose(1, 2)  # [B, I, O]
        y = torch.add(noise.view(1, p, 1).expand(b, p, 1), bias.view(1, 1, -1))
        y.baddbmm_(x, wt)
        F.leaky_relu_(y, slope)
        ctx.save_for_backward(x, s, weight, y)
        ctx.slope = slope
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, s, weight, y = ctx.saved_tensors
        dz = torch.ops.aten.leaky_relu_backward(grad, y, ctx.slope, True)
        need_x, need_s, need_w, need_b = ctx.needs_input_grad[:4]
        dx = ds = dw = db = None
        if need_x or need_s:
            g = torch.matmul(dz, weight)  # [B, P, I]
            if need_s:
                ds = (g * x).sum(1)
            if need_x:
                dx = g.mul_(s.unsqueeze(1))
        if need_w:
            dw = (torch.bmm(dz.transpose(1, 2), x) * s.unsqueeze(1)).sum(0)
        if need_b:
            db = dz.sum((0, 1))
        return dx, ds, dw, db, None, None


class _SeparableConv(nn.Module):
    """Modulated depthwise 3x3 + pointwise 1x1, noise, bias, LeakyReLU; channels-last in and out."""

    def __init__(self, cin: int, cout: int, res: int, w_dim: int) -> None:
        super().__init__()
        self.style = _Site(cin, w_dim, 1 / math.sqrt(cin * 9))
        self.weight_dw = nn.Parameter(torch.zeros(cin, 1, 3, 3))
        self.weight = nn.Parameter(torch.zeros(cout, cin))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.register_buffer("noise", torch.zeros(res, res))
        self.slope = 0.2

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        b, r, _, c = x.shape
        # the style is per input channel, so it commutes with the depthwise conv and folds into the
        # per-sample pointwise weights ([B, I, O]: a few KB, not an activation-sized multiply)
        x = F.conv2d(x.permute(0, 3, 1, 2), self.weight_dw, padding=1, groups=c).permute(0, 2, 3, 1)
        y = _ModulatedPointwise.apply(
            x.reshape(b, r * r, c), self.style(w), self.weight, self.bias, self.noise, self.slope
        )
        return y.view(b, r, r, -1)


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, res_in: int, w_dim: int) -> None:
        super().__init__()
        self.up = _Site(cin, w_dim, 1.0)
        self.conv1 = _SeparableConv(cin // 4, cout, 2 * res_in, w_dim)
        self.conv2 = _SeparableConv(cout, cout, 2 * res_in, w_dim)

    def forward(self, x: torch.Tensor, ws: torch.Tensor) -> torch.Tensor:
        x = _StyledIDWT.apply(x, self.up(ws[:, 0]))
        return self.conv2(self.conv1(x, ws[:, 1]), ws[:, 2])


class MobileStyleGANSynthesis(nn.Module):
    """ws ``[B, 23, 512]`` (or w ``[B, 512]``) -> image ``[B, 3, r, r]`` (``avg_pool2d`` of the 1024 px image).

    Parameters are stored as used, not as exported: the output channels feeding each inverse Haar transform
    (``conv1`` / ``layers.{i}.conv2`` weight rows, biases, the next ``up`` style rows and ``to_img`` rows) are
    band-major, and the transform's 1/2 is folded into the ``up`` styles and ``to_img``; :func:`load_ir` gives
    the exported tensors."""

    def __init__(self, w_dim: int = 512, resolution: int = NATIVE_RESOLUTION) -> None:
        super().__init__()
        self.w_dim, self.num_ws = w_dim, len(STYLE_SITES)
        self.resolution = _check_resolution(resolution)
        self.register_buffer("input", torch.zeros(1, 512, 4, 4))
        self.conv1_style = _Site(512, w_dim, 1 / math.sqrt(512 * 9))
        self.conv1_weight = nn.Parameter(torch.zeros(512, 512, 3, 3))
        self.conv1_bias = nn.Parameter(torch.zeros(512))
        self.register_buffer("conv1_noise", torch.zeros(4, 4))
        self.slope = 0.2
        self.layers = nn.ModuleList(
            _Block(ci, co, 4 * 2**i, w_dim) for i, (ci, co) in enumerate(BLOCK_CHANNELS)
        )
        self.to_img_style = _Site(64, w_dim, 1 / 8)
        self.to_img_weight = nn.Parameter(torch.zeros(12, 64))
        self.to_img_bias = nn.Parameter(torch.zeros(12))

    @torch.no_grad()
    def load_ir_state(self, state: dict[str, torch.Tensor]) -> None:
        """Fill the parameters from :func:`load_ir`'s tensors (``synthesis.*`` keys)."""
        s = {k.removeprefix("synthesis."): v for k, v in state.items() if k.startswith("synthesis.")}

        def site(mod: _Site, name: str, rows: torch.Tensor | None = None, scale: float = 1.0) -> None:
            w, b = s[f"{name}.mod_weight"], s[f"{name}.mod_bias"]
            if rows is not None:
                w, b = w[rows], b[rows]
            mod.mod_weight.copy_(w * scale)
            mod.mod_bias.copy_(b * scale)
            if f"{name}.k" in s:
                mod.k = float(s[f"{name}.k"])

        self.input.copy_(s["input"])
        perm = _band_major(BLOCK_CHANNELS[0][0] // 4)
        site(self.conv1_style, "conv1")
        self.conv1_weight.copy_(s["conv1.weight"][perm])
        self.conv1_bias.copy_(s["conv1.bias"][perm])
        self.conv1_noise.copy_(s["conv1.noise"])
        self.slope = float(s["conv1.slope"])
        for i, blk in enumerate(self.layers):
            site(blk.up, f"layers.{i}.up", _band_major(BLOCK_CHANNELS[i][0] // 4), 0.5)  # 0.5: the IDWT's
            for j, conv in ((1, blk.conv1), (2, blk.conv2)):
                name = f"layers.{i}.conv{j}"
                # layers feeding the next block's IDWT produce band-major channels; the last feeds to_img
                rows = _band_major(BLOCK_CHANNELS[i + 1][0] // 4) if j == 2 and i + 1 < N_BLOCKS else None
                site(conv.style, name)
                conv.weight_dw.copy_(s[f"{name}.weight_dw"])
                conv.weight.copy_(s[f"{name}.weight"] if rows is None else s[f"{name}.weight"][rows])
                conv.bias.copy_(s[f"{name}.bias"] if rows is None else s[f"{name}.bias"][rows])
                conv.noise.copy_(s[f"{name}.noise"])
                conv.slope = float(s[f"{name}.slope"])
        site(self.to_img_style, f"layers.{N_BLOCKS - 1}.to_img")
        rgb = _band_major(3)
        self.to_img_weight.copy_(s["to_img.weight"][rgb] * 0.5)
        self.to_img_bias.copy_(s["to_img.bias"][rgb] * 0.5)

    def _ws(self, ws: torch.Tensor) -> torch.Tensor:
        if ws.ndim == 2 and ws.shape[1] == self.w_dim:
            return ws.unsqueeze(1).expand(-1, self.num_ws, -1)
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(
                f"synthesis expects ws of shape [B, {self.num_ws}, {self.w_dim}] or w [B, {self.w_dim}], "
                f"got {tuple(ws.shape)}"
            )
        return ws

    def forward(
        self,
        ws: torch.Tensor,
        noise_mode: str = "const",
        noise: list[torch.Tensor] | None = None,
        resolution: int | None = None,
        **_ignored: object,
    ) -> torch.Tensor:
        """Image ``[B, 3, r, r]``, ``r = resolution or self.resolution``: ``avg_pool2d(img_1024, 1024 // r)``.

        ``noise_mode`` is ignored (the noise maps are baked into the weights) and ``noise`` must be None; other
        keyword arguments of :class:`~tedigan.models.stylegan2.SynthesisNetwork` (``fused_modconv``) are ignored.
        """
        if noise is not None:
            raise ValueError("MobileStyleGAN's noise is baked into its weights: pass noise=None")
        if noise_mode not in ("const", "random", "none"):
            raise ValueError(f"noise_mode must be 'const', 'random' or 'none', got {noise_mode!r}")
        r = _check_resolution(resolution if resolution is not None else self.resolution)
        ws = self._ws(ws)
        b = ws.shape[0]
        ws = ws.to(self.input.dtype)
        x = self.input.expand(b, -1, -1, -1) * self.conv1_style(ws[:, 0]).view(b, -1, 1, 1)
        x = F.conv2d(x, self.conv1_weight, padding=1) + (self.conv1_noise + self.conv1_bias.view(-1, 1, 1))
        x = F.leaky_relu_(x, self.slope).permute(0, 2, 3, 1).contiguous()  # channels-last from here on
        for i, blk in enumerate(self.layers):
            x = blk(x, ws[:, 1 + 3 * i : 4 + 3 * i])
        # to_img as [B, bands, HW] (channel-first, ready for the last transform): style folded into weights
        wt = self.to_img_weight.unsqueeze(0) * self.to_img_style(ws[:, -1]).unsqueeze(1)
        bias = self.to_img_bias.view(1, -1, 1)
        side = x.shape[1]
        x = x.reshape(b, side * side, -1).transpose(1, 2)
        if r == NATIVE_RESOLUTION:
            bands = torch.baddbmm(bias, wt, x).view(b, 12, side, side)
            return _final_idwt(bands)
        ll = torch.baddbmm(bias[:, :3], wt[:, :3], x).view(b, 3, side, side)  # LL/2 = avg_pool2d(img, 2)
        return ll if r == side else F.avg_pool2d(ll, side // r)


def _final_idwt(bands: torch.Tensor) -> torch.Tensor:
    """Last transform on channel-first band-major ``[B, 12, H, W]`` whose 1/2 is already applied."""
    b, _, h, w = bands.shape
    ll, h0, h1, h2 = bands.view(b, 4, 3, h, w).unbind(1)
    sign = bands.new_tensor(_SIGN).view(2, 1)
    low = torch.addcmul(ll.unsqueeze(3), h0.unsqueeze(3), sign)
    high = torch.addcmul(h1.unsqueeze(3), h2.unsqueeze(3), sign)
    return torch.addcmul(low.unsqueeze(-1), high.unsqueeze(-1), sign.view(2)).view(b, 3, 2 * h, 2 * w)


class MobileStyleGAN(StyleGenerator, nn.Module):
    """MobileStyleGAN FFHQ generator with the interface of :class:`tedigan.models.stylegan2.Generator`.

    ``G.mapping(z, truncation_psi=...) -> ws [B, 23, 512]``, ``G.synthesis(ws, resolution=...) -> img``,
    ``G(z, truncation_psi)``. Research / non-commercial weights (see the module docstring). Build it with
    :meth:`from_package`; the result is in eval mode with frozen parameters (gradients flow to ws only)."""

    def __init__(self, config: MobileStyleGANConfig | None = None) -> None:
        super().__init__()
        self.config = config or MobileStyleGANConfig()
        self.mapping = MobileStyleGANMapping(self.config.num_ws, self.config.z_dim, self.config.w_dim)
        self.synthesis = MobileStyleGANSynthesis(self.config.w_dim, self.config.resolution)

    @classmethod
    def from_package(
        cls,
        path: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
        resolution: int = NATIVE_RESOLUTION,
        tune_malloc: bool = True,
    ) -> MobileStyleGAN:
        """Load the IR from ``path`` / ``$TEDIGAN_MOBILESTYLEGAN_DIR`` / the installed ``random-face`` package.

        ``resolution`` is the default output size (``config.resolution``). The files are verified (size and
        SHA-256) and ``w_avg`` is computed (about 0.2 s). With ``tune_malloc`` and a CPU device,
        :func:`keep_freed_memory` is called (process-wide; see there)."""
        state = load_ir(path)
        model = cls(MobileStyleGANConfig(resolution=_check_resolution(resolution)))
        model.load_ir_state(state)
        model.mapping.w_avg.copy_(model.package_w_avg())
        model = model.to(device).eval().requires_grad_(False)
        if tune_malloc and torch.device(device).type == "cpu":
            keep_freed_memory()
        return model

    def site_groups(self) -> list[tuple[str, tuple[int, ...]]]:
        """The style sites by block, as layer analysis swaps them: 4 px, then (up, conv1, conv2) per block from
        8 px to 512 px (the last block's output is 1024 px after its Haar transform), then the final to_img."""
        groups = [("4px w0", (0,))]
        for i in range(N_BLOCKS):
            sites = (1 + 3 * i, 2 + 3 * i, 3 + 3 * i)
            groups.append((f"{8 * 2**i}px w{sites[0]}-{sites[-1]}", sites))
        return [*groups, (f"rgb w{self.num_ws - 1}", (self.num_ws - 1,))]

    def package_spec(self) -> dict:
        """How a pipeline folder names this generator instead of storing it (see
        :func:`tedigan.pipeline.packaged_generator`)."""
        return {"package": "mobilestylegan", "resolution": self.config.resolution}

    @torch.no_grad()
    def load_ir_state(self, state: dict[str, torch.Tensor]) -> None:
        """Fill mapping and synthesis from :func:`load_ir`'s tensors."""
        m = self.mapping
        for i in range(m.n_mlp):
            m.weight[i].copy_(state[f"mapping.fc{i}.weight"])
            m.bias[i].copy_(state[f"mapping.fc{i}.bias"])
        slopes = {float(state[f"mapping.fc{i}.slope"]) for i in range(m.n_mlp)}
        gains = {float(state[f"mapping.fc{i}.gain"]) for i in range(m.n_mlp)}
        if len(slopes) != 1 or len(gains) != 1:
            raise ValueError("MobileStyleGAN mapping layers differ in slope or gain")
        m.slope, m.gain, m.eps = slopes.pop(), gains.pop(), float(state["mapping.eps"])
        self.synthesis.load_ir_state(state)

    @torch.no_grad()
    def package_w_avg(self) -> torch.Tensor:
        """random-face's mean style recipe: mean over ``RandomState(0).normal(size=(4096, 512))`` (float32) of
        the mapping, averaged in float64; ``[w_dim]``."""
        z = np.random.RandomState(0).normal(size=(4096, self.z_dim)).astype(np.float32)
        w = self.mapping.embed(torch.from_numpy(z).to(self.mapping.w_avg.device))
        return w.double().mean(dim=0).to(self.mapping.w_avg.dtype)

    @property
    def noise_shapes(self) -> list[tuple[int, int, int, int]]:
        """Empty: there are no noise inputs (the noise is baked in)."""
        return []

    def forward(
        self,
        z: torch.Tensor,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str = "const",
        return_ws: bool = False,
        resolution: int | None = None,
        **_ignored: object,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        ws = self.mapping(z, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        img = self.synthesis(ws, noise_mode=noise_mode, resolution=resolution)
        return (img, ws) if return_ws else img


# ------------------------------------------------------------------------------------------- allocator

_MALLOC_TUNED = False


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed large blocks for reuse (process-wide; returns whether it applied).

    By default glibc serves blocks over 32 MB (and, after trimming, many smaller ones) with fresh ``mmap`` pages
    and returns them on free, so every large activation is page-faulted and zeroed again: measured ~2 us per 4 KB
    page here, up to half of a 1024 px forward. Raising the mmap and trim thresholds (``mallopt``) lets freed
    memory be reused; the cost is that the process keeps its peak heap (resident memory is not returned to the
    OS). A no-op off glibc. Equivalent to starting Python with ``MALLOC_MMAP_THRESHOLD_=1073741824
    MALLOC_TRIM_THRESHOLD_=2147483647``."""
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's mallopt parameter numbers
    ok = bool(mallopt(m_mmap_threshold, ctypes.c_int(1 << 30))) and bool(
        mallopt(m_trim_threshold, ctypes.c_int(2**31 - 1))
    )
    _MALLOC_TUNED = ok
    return ok
