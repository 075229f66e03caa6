"""The tfjs graph executor (tedigan.models.ports.graph): each op against its plain torch meaning, on a tiny
graph written here, and human's selfie segmentation on a face when the npm weights are installed."""

import base64
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tedigan.models.ports.graph import TfjsGraph
from tedigan.models.ports.tfjs import TfjsFormatError


def _s(text: str) -> dict:
    return {"s": base64.b64encode(text.encode()).decode()}


def _ints(*values: int) -> dict:
    return {"list": {"i": [str(v) for v in values]}}


def _write_graph(folder, nodes, weights):
    """A graph model.json + one shard holding ``weights`` (name -> float32 array) in order."""
    blob = b"".join(np.ascontiguousarray(a, dtype=np.float32).tobytes() for a in weights.values())
    (folder / "g.bin").write_bytes(blob)
    manifest = [
        {
            "paths": ["g.bin"],
            "weights": [{"name": k, "shape": list(a.shape), "dtype": "float32"} for k, a in weights.items()],
        }
    ]
    consts = [{"name": k, "op": "Const", "attr": {}} for k in weights]
    (folder / "model.json").write_text(
        json.dumps({"modelTopology": {"node": [*consts, *nodes]}, "weightsManifest": manifest})
    )
    return folder / "model.json"


def test_ops_match_their_torch_meaning(tmp_path):
    rng = np.random.default_rng(0)
    conv = rng.normal(size=(3, 3, 3, 4)).astype(np.float32)  # HWIO
    dw = rng.normal(size=(3, 3, 4, 1)).astype(np.float32)  # H W C multiplier
    bias = rng.normal(size=(4,)).astype(np.float32)
    up = rng.normal(size=(2, 2, 2, 4)).astype(np.float32)  # transposed conv: H W out in
    sizes = np.array([1, 4, 4, 2], dtype=np.float32)
    size = np.array([8, 8], dtype=np.float32)
    same, valid = _s("SAME"), _s("VALID")
    nodes = [
        {"name": "x", "op": "Placeholder", "attr": {}},
        {"name": "c", "op": "Conv2D", "input": ["x", "conv"], "attr": {"strides": _ints(1, 2, 2, 1), "padding": same}},
        {"name": "b", "op": "AddV2", "input": ["c", "bias"]},
        {"name": "r", "op": "Relu6", "input": ["b"]},
        {"name": "d", "op": "DepthwiseConv2dNative", "input": ["r", "dw"], "attr": {"strides": _ints(1, 1, 1, 1), "padding": same}},
        {"name": "p", "op": "AvgPool", "input": ["d"], "attr": {"ksize": _ints(1, 2, 2, 1), "strides": _ints(1, 2, 2, 1), "padding": valid}},
        {"name": "u", "op": "Conv2DBackpropInput", "input": ["sizes", "up", "p"], "attr": {"strides": _ints(1, 2, 2, 1), "padding": same}},
        {"name": "s", "op": "Sigmoid", "input": ["u"]},
        {"name": "z", "op": "ResizeBilinear", "input": ["s", "size"], "attr": {"half_pixel_centers": {"b": True}}},
        {"name": "out", "op": "AddN", "input": ["z", "z"]},
    ]  # fmt: skip
    weights = {"conv": conv, "bias": bias, "dw": dw, "up": up, "sizes": sizes, "size": size}
    graph = TfjsGraph(_write_graph(tmp_path, nodes, weights), output="out")
    x = torch.randn(2, 3, 9, 9)

    t = torch.from_numpy
    y = F.conv2d(F.pad(x, (1, 1, 1, 1)), t(conv).permute(3, 2, 0, 1), stride=2)  # 9 -> 5, SAME: 1 | 1
    y = (y + t(bias).view(1, -1, 1, 1)).clamp(0, 6)
    y = F.conv2d(F.pad(y, (1, 1, 1, 1)), t(dw).permute(2, 3, 0, 1).reshape(4, 1, 3, 3), groups=4)
    y = F.avg_pool2d(y, 2, 2)  # 5 -> 2 (VALID)
    y = torch.sigmoid(F.conv_transpose2d(y, t(up).permute(3, 2, 0, 1), stride=2))  # 2 -> 4 (the asked size)
    y = F.interpolate(y, size=(8, 8), mode="bilinear", align_corners=False)
    assert torch.allclose(graph(x), 2 * y, atol=1e-5)


def test_unknown_ops_and_nodes_are_refused_at_load(tmp_path):
    nodes = [
        {"name": "x", "op": "Placeholder", "attr": {}},
        {"name": "y", "op": "Softplus", "input": ["x"]},
    ]
    path = _write_graph(tmp_path, nodes, {"unused": np.zeros(1, np.float32)})
    with pytest.raises(TfjsFormatError, match="Softplus"):
        TfjsGraph(path, output="y")
    nodes[1]["op"] = "Relu"
    path = _write_graph(tmp_path, nodes, {"unused": np.zeros(1, np.float32)})
    with pytest.raises(TfjsFormatError, match="no node 'nope'"):
        TfjsGraph(path, output="nope")
