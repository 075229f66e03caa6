"""Read TensorFlow.js weight files into torch tensors (no TensorFlow, no JavaScript, no code execution).

A tfjs model stores its weights as a *manifest* — a JSON list of groups, each naming its binary shard files
(``paths``) and its tensors (``weights``: name, shape, dtype, optional ``quantization``) — plus the shards,
whose bytes are the group's tensors back to back in manifest order. Layers models keep the manifest in
``*-weights_manifest.json`` (face-api); graph models inside ``model.json`` under ``weightsManifest``, beside a
``modelTopology`` graph (human). Quantised tensors hold ``uint8``/``uint16`` codes ``q`` with
``value = q·scale + min``, or ``float16`` values. Tensors keep tfjs's layout (conv filters HWIO): a port
transposes them itself.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["TfjsFormatError", "decode_manifest", "load_graph_model", "load_layers_weights"]

_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}
_QUANT = {"uint8": np.uint8, "uint16": np.uint16, "float16": np.float16}


class TfjsFormatError(ValueError):
    """A tfjs manifest or shard is malformed, truncated or of another version; says which file."""


def decode_manifest(manifest: list[dict[str, Any]], folder: Path) -> dict[str, torch.Tensor]:
    """All tensors of a weights manifest whose shard files lie in ``folder`` (float32 / int32 / bool)."""
    out: dict[str, torch.Tensor] = {}
    if not isinstance(manifest, list):
        raise TfjsFormatError(f"{folder}: a tfjs weights manifest is a list of groups")
    for group in manifest:
        try:
            paths, weights = list(group["paths"]), list(group["weights"])
        except (KeyError, TypeError):
            raise TfjsFormatError(f"{folder}: manifest group without paths/weights") from None
        blob = b"".join(_read(folder / p) for p in paths)
        offset = 0
        for w in weights:
            name, shape, dtype = w["name"], [int(d) for d in w["shape"]], w.get("dtype", "float32")
            if dtype not in _DTYPES:
                raise TfjsFormatError(f"{folder}: {name} has unsupported dtype {dtype!r}")
            quant = w.get("quantization")
            stored = _QUANT.get(quant["dtype"]) if quant else _DTYPES[dtype]
            if stored is None:
                raise TfjsFormatError(f"{folder}: {name} has unsupported quantization {quant!r}")
            count = math.prod(shape)
            nbytes = count * np.dtype(stored).itemsize
            if offset + nbytes > len(blob):
                raise TfjsFormatError(f"{folder}: the weight shards end inside {name} (truncated file?)")
            raw = np.frombuffer(blob, dtype=stored, count=count, offset=offset)
            offset += nbytes
            if quant and quant["dtype"] in ("uint8", "uint16"):
                # as tfjs: q·scale + min in double precision, rounded to float32 once
                values = (raw.astype(np.float64) * float(quant["scale"]) + float(quant["min"])).astype(
                    np.float32
                )
            else:
                values = raw.astype(_DTYPES[dtype])
            out[name] = torch.from_numpy(values.reshape(shape).copy())
        if offset != len(blob):
            raise TfjsFormatError(
                f"{folder}: {len(blob) - offset} bytes left over after {paths} (wrong version?)"
            )
    return out


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise TfjsFormatError(f"cannot read tfjs shard {path}: {err.strerror or err}") from None


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise TfjsFormatError(f"{path} is not a readable tfjs JSON file ({err})") from None


def load_layers_weights(manifest_file: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``*-weights_manifest.json`` (face-api style), by name."""
    manifest_file = Path(manifest_file)
    return decode_manifest(_json(manifest_file), manifest_file.parent)


def load_graph_model(model_file: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``(graph nodes by name, tensors by name)`` of a tfjs graph model's ``model.json`` (human style).

    Each node is the JSON dict tfjs stores (``op``, ``input``, ``attr``); constants are in the tensors."""
    model_file = Path(model_file)
    data = _json(model_file)
    if not isinstance(data, dict) or "modelTopology" not in data or "weightsManifest" not in data:
        raise TfjsFormatError(f"{model_file} is not a tfjs graph model (no modelTopology / weightsManifest)")
    nodes = {n["name"]: n for n in data["modelTopology"].get("node", [])}
    return nodes, decode_manifest(data["weightsManifest"], model_file.parent)
