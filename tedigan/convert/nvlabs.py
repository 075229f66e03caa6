"""Read NVlabs stylegan2-ada-pytorch network pickles (``.pkl``) without running any code from them.

An NVlabs ``network-snapshot-*.pkl`` is a plain Python pickle of a dict ``{'G', 'D', 'G_ema', ...}`` whose
networks are *persistent objects*: ``torch_utils.persistence`` pickles each network as a call
``_reconstruct_persistent_obj(meta)`` where ``meta`` holds the module's whole source code, the class name and
the module's ``__dict__`` (``_parameters``, ``_buffers``, ``_modules``, ``_init_args``, ``_init_kwargs``, ...).
Tensors are pickled as ``torch._utils._rebuild_tensor_v2(storage, ...)`` and every storage as
``torch.storage._load_from_bytes(<legacy torch.save bytes>)``.

Loading such a file with :func:`pickle.load` executes the embedded source. This module instead uses
:class:`RestrictedUnpickler`:

* a short whitelist of globals, each mapped to *our own* implementation (tensor/storage rebuild, ``OrderedDict``,
  a few data-only builtins, numpy dtypes/scalars/arrays, the persistence hook which only *records* ``meta``);
* every other global resolves to an inert stand-in class. Building one through ``NEWOBJ`` + ``BUILD`` +
  ``SETITEMS`` (how pickle restores ordinary objects, e.g. ``dnnlib.EasyDict`` or a ``torch.nn.ModuleList``) only
  records the arguments and state. *Calling* one (the ``REDUCE`` opcode, how ``os.system``/``eval`` payloads
  work) raises :class:`UnsafePickleError` before anything runs.

:func:`read_nvlabs_pickle` turns the recorded objects into :class:`NVNetwork` records (class name, constructor
kwargs, flat state dict); :func:`load_nvlabs` builds tedigan's own :class:`~tedigan.models.stylegan2.Generator`
and :class:`~tedigan.models.stylegan2.Discriminator` from them. Command::

    tedigan convert nvlabs network-snapshot.pkl --out converted/
"""

from __future__ import annotations

import collections
import io
import math
import pickle
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tedigan.assets import check_pickle

__all__ = [
    "UnsafePickleError",
    "InertObject",
    "PersistentObject",
    "NVNetwork",
    "RestrictedUnpickler",
    "restricted_load",
    "read_nvlabs_pickle",
    "nvlabs_generator_config",
    "nvlabs_discriminator_config",
    "convert_generator_state",
    "convert_discriminator_state",
    "build_models",
    "load_nvlabs",
]


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle asked to call something that is not on the whitelist (or is otherwise malformed)."""


# ---------------------------------------------------------------------------------------------------------------
# Inert stand-ins


class _InertMeta(type):
    """Metaclass of stand-in classes: creating instances via ``NEWOBJ`` is fine, *calling* the class is not."""

    _pk_module: str
    _pk_name: str

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        raise UnsafePickleError(
            f"refusing to call non-whitelisted global {cls._pk_module}.{cls._pk_name} with {len(args)} "
            "argument(s): this pickle tries to run code (REDUCE of an unknown callable)"
        )

    def __repr__(cls) -> str:
        return f"<inert global {cls._pk_module}.{cls._pk_name}>"


class InertObject(metaclass=_InertMeta):
    """A recorded object of a class we never import. ``args``: constructor args (``NEWOBJ``), ``state``: what
    ``BUILD`` passed, ``items``/``list_items``: what ``SETITEMS``/``APPENDS`` added."""

    _pk_module = "?"
    _pk_name = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> InertObject:
        obj = object.__new__(cls)
        object.__setattr__(obj, "args", args)
        object.__setattr__(obj, "kwargs", kwargs)
        object.__setattr__(obj, "state", None)
        object.__setattr__(obj, "items", {})
        object.__setattr__(obj, "list_items", [])
        return obj

    @property
    def qualname(self) -> str:
        return f"{type(self)._pk_module}.{type(self)._pk_name}"

    def __setstate__(self, state: Any) -> None:
        object.__setattr__(self, "state", state)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.items[key] = value

    def append(self, value: Any) -> None:
        self.list_items.append(value)

    def extend(self, values: Any) -> None:
        self.list_items.extend(values)

    def __repr__(self) -> str:
        return f"<inert {self.qualname}>"


@dataclass
class PersistentObject:
    """What ``torch_utils.persistence._reconstruct_persistent_obj(meta)`` would have rebuilt, recorded only.

    ``module_src`` is kept as text for inspection; it is never compiled or executed."""

    class_name: str
    state: Any
    version: Any = None
    module_src: str = field(default="", repr=False)
    meta: dict = field(default_factory=dict, repr=False)


def _record_persistent_obj(meta: Any) -> PersistentObject:
    if isinstance(meta, InertObject):  # meta passed as an EasyDict
        meta = dict(meta.items)
    if not isinstance(meta, dict):
        raise UnsafePickleError(f"persistent object meta must be a dict, got {type(meta).__name__}")
    if meta.get("type", "class") != "class":
        raise UnsafePickleError(f"unsupported persistent object type {meta.get('type')!r}")
    src = meta.get("module_src", "")
    return PersistentObject(
        class_name=str(meta.get("class_name", "?")),
        state=meta.get("state"),
        version=meta.get("version"),
        module_src=src if isinstance(src, str) else "",
        meta=meta,
    )


# ---------------------------------------------------------------------------------------------------------------
# Storages and tensors (our own implementations of torch's rebuild helpers)

_STORAGE_DTYPES = {
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
    "ComplexFloatStorage": torch.complex64,
    "ComplexDoubleStorage": torch.complex128,
    "UntypedStorage": torch.uint8,
}

_TORCH_DTYPES = {
    name: getattr(torch, name)
    for name in (
        "float32",
        "float",
        "float64",
        "double",
        "float16",
        "half",
        "bfloat16",
        "int64",
        "long",
        "int32",
        "int",
        "int16",
        "short",
        "int8",
        "uint8",
        "bool",
        "complex64",
        "complex128",
    )
}

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


class _StorageType:
    """Stand-in for ``torch.FloatStorage`` & co. inside the legacy storage payload."""

    def __init__(self, name: str, dtype: torch.dtype) -> None:
        self.name, self.dtype = name, dtype


class _Storage:
    """A flat 1-D tensor holding a storage's elements."""

    def __init__(self, flat: torch.Tensor) -> None:
        self.flat = flat

    @property
    def dtype(self) -> torch.dtype:
        return self.flat.dtype


def _element_size(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def _tensor_from_bytes(raw: bytes, dtype: torch.dtype, little_endian: bool = True) -> torch.Tensor:
    if len(raw) == 0:
        return torch.empty(0, dtype=dtype)
    flat = torch.frombuffer(bytearray(raw), dtype=dtype)
    if not little_endian and flat.element_size() > 1:
        flat = torch.frombuffer(
            bytearray(
                b"".join(
                    raw[i : i + flat.element_size()][::-1] for i in range(0, len(raw), flat.element_size())
                )
            ),
            dtype=dtype,
        )
    return flat


class _LegacyStorageUnpickler(pickle.Unpickler):
    """Unpickler for the pickles inside a legacy ``torch.save`` stream: only storage type names are allowed."""

    def __init__(self, file: io.BytesIO, storages: dict[str, Any]) -> None:
        super().__init__(file)
        self._storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name, _STORAGE_DTYPES[name])
        raise UnsafePickleError(f"unexpected global {module}.{name} inside a tensor storage payload")

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise UnsafePickleError(f"unsupported persistent id in storage payload: {pid!r:.80}")
        storage_type, key, _location, numel = pid[1:5]
        view = pid[5] if len(pid) > 5 else None
        if not isinstance(storage_type, _StorageType) or not isinstance(numel, int):
            raise UnsafePickleError(f"malformed storage record {pid!r:.80}")
        self._storages.setdefault(str(key), {"dtype": storage_type.dtype, "numel": numel, "flat": None})
        if view is not None:
            _view_key, offset, size = view
            return ("view", str(key), int(offset), int(size))
        return ("storage", str(key))


def _legacy_load(f: io.BytesIO, storages: dict[str, Any]) -> Any:
    check_pickle(f)
    return _LegacyStorageUnpickler(f, storages).load()


def _load_storage_from_bytes(payload: Any) -> _Storage:
    """Safe replacement for ``torch.storage._load_from_bytes``: parse the legacy ``torch.save`` stream."""
    if not isinstance(payload, (bytes, bytearray)):
        raise UnsafePickleError("storage payload must be bytes")
    # torch (1.x and 2.x) pickles a storage as the *legacy* (non-zip) torch.save stream of that storage:
    # pickled magic number, protocol version, sys_info, the storage record (a persistent id naming its
    # element type), the list of storage keys, then per key an int64 element count and the raw bytes.
    f = io.BytesIO(bytes(payload))
    magic = _legacy_load(f, {})
    if magic != _LEGACY_MAGIC:
        raise UnsafePickleError("storage payload is not a legacy torch.save stream (bad magic number)")
    if _legacy_load(f, {}) != _LEGACY_PROTOCOL:
        raise UnsafePickleError("unsupported legacy torch.save protocol version")
    sys_info = _legacy_load(f, {})
    little_endian = bool(sys_info.get("little_endian", True)) if isinstance(sys_info, dict) else True
    storages: dict[str, Any] = {}
    result = _legacy_load(f, storages)
    keys = _legacy_load(f, {})
    if not isinstance(keys, list):
        raise UnsafePickleError("malformed storage key list")
    for key in keys:
        rec = storages.get(str(key))
        if rec is None:
            raise UnsafePickleError(f"storage payload lists unknown key {key!r}")
        (numel,) = struct.unpack("<q" if little_endian else ">q", f.read(8))
        nbytes = numel * _element_size(rec["dtype"])
        raw = f.read(nbytes)
        if len(raw) != nbytes:
            raise UnsafePickleError("truncated storage payload")
        rec["flat"] = _tensor_from_bytes(raw, rec["dtype"], little_endian)
    if not (isinstance(result, tuple) and result and result[0] in ("storage", "view")):
        raise UnsafePickleError("storage payload did not contain a storage")
    rec = storages[result[1]]
    if rec["flat"] is None:
        raise UnsafePickleError("storage payload is missing its data")
    flat = rec["flat"]
    if result[0] == "view":
        flat = flat[result[2] : result[2] + result[3]]
    return _Storage(flat)


def _check_storage(storage: Any) -> _Storage:
    if not isinstance(storage, _Storage):
        raise UnsafePickleError(f"tensor rebuild got a {type(storage).__name__}, not a storage")
    return storage


def _as_size(x: Any) -> tuple[int, ...]:
    if not (isinstance(x, (tuple, list)) and all(isinstance(v, int) and v >= 0 for v in x)):
        raise UnsafePickleError(f"bad tensor size/stride {x!r:.80}")
    return tuple(x)


def _rebuild_tensor(storage: Any, storage_offset: int, size: Any, stride: Any) -> torch.Tensor:
    flat = _check_storage(storage).flat
    size, stride = _as_size(size), _as_size(stride)
    if not isinstance(storage_offset, int) or storage_offset < 0:
        raise UnsafePickleError("bad storage offset")
    if len(size) != len(stride):
        raise UnsafePickleError("size and stride differ in length")
    last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride) if n > 0)
    if all(n > 0 for n in size) and last >= flat.numel():
        raise UnsafePickleError("tensor view exceeds its storage")
    # a saved network tensor never has more elements than its storage; a zero-stride view that claims
    # more would be materialised later (a few bytes of pickle asking for terabytes)
    if math.prod(size) > max(flat.numel(), 1):
        raise UnsafePickleError(f"tensor of size {size} claims more elements than its storage holds")
    return flat.as_strided(size, stride, storage_offset)


def _rebuild_tensor_v2(
    storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, *rest
):
    return _rebuild_tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype, *rest):
    st = _check_storage(storage)
    if not isinstance(dtype, torch.dtype):
        raise UnsafePickleError("bad dtype in tensor rebuild")
    flat = st.flat if st.flat.dtype == dtype else st.flat.view(torch.uint8).view(dtype)
    return _rebuild_tensor(_Storage(flat), storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *rest):
    if not isinstance(data, torch.Tensor):
        raise UnsafePickleError("parameter rebuild got a non-tensor")
    return data


def _rebuild_from_type_v2(func, new_type, args, state):
    if func not in (_rebuild_tensor_v2, _rebuild_tensor_v3, _rebuild_tensor, _rebuild_parameter):
        raise UnsafePickleError("tensor subclass rebuild with a non-whitelisted function")
    return func(*args)


def _torch_size(values=()):
    return _as_size(tuple(values))


def _torch_device(spec, index=None):
    if not isinstance(spec, str) or (index is not None and not isinstance(index, int)):
        raise UnsafePickleError("bad torch.device arguments")
    return torch.device(spec) if index is None else torch.device(spec, index)


# ---------------------------------------------------------------------------------------------------------------
# Whitelisted builtins and numpy


def _ordered_dict(items=()):
    return collections.OrderedDict(items)


def _data_only(fn, allowed_arg_types):
    def safe(*args):
        for a in args:
            if not isinstance(a, allowed_arg_types):
                raise UnsafePickleError(f"{fn.__name__}() called with a {type(a).__name__}")
        return fn(*args)

    safe.__name__ = fn.__name__
    return safe


_PLAIN = (int, float, complex, str, bytes, bytearray, bool, tuple, list, dict, set, frozenset, type(None))


def _codecs_encode(obj, encoding="utf-8"):
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8"):
        raise UnsafePickleError("bad _codecs.encode arguments")
    return obj.encode(encoding)


def _newobj(cls, *args):
    """``copyreg.__newobj__`` (protocol < 2): instantiate without calling the class."""
    if isinstance(cls, _InertMeta):
        return cls.__new__(cls, *args)
    if cls in (collections.OrderedDict, dict, list, set, tuple):
        return cls.__new__(cls, *args)
    raise UnsafePickleError(f"copyreg.__newobj__ on non-whitelisted {cls!r:.80}")


def _reconstructor(cls, base, state=None):
    """``copyreg._reconstructor`` (protocol 0/1 object reconstruction)."""
    if isinstance(cls, _InertMeta) and base is object and state is None:
        return cls.__new__(cls)
    if cls in (collections.OrderedDict, dict) and base in (dict, object):
        return cls()
    raise UnsafePickleError(f"copyreg._reconstructor on non-whitelisted {cls!r:.80}")


def _numpy_whitelist() -> dict[tuple[str, str], Any]:
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy is a dependency
        return {}

    def np_dtype(obj, align=False, copy=False):
        if not isinstance(obj, str):
            raise UnsafePickleError("numpy.dtype() from a non-string")
        dt = np.dtype(obj)
        if dt.hasobject:
            raise UnsafePickleError("numpy object dtypes are not allowed")
        return dt

    def np_scalar(dtype, data=None):
        if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, bytes):
            raise UnsafePickleError("numpy scalar with a non-plain dtype or payload")
        return np.frombuffer(data, dtype=dtype, count=1)[0].copy()

    def np_reconstruct(subtype, shape, dtype):
        if subtype is not _NDARRAY or not isinstance(dtype, (bytes, str, np.dtype)):
            raise UnsafePickleError("numpy array reconstruction of a non-ndarray")
        return _NumpyArray(np, _as_size(shape))

    out: dict[tuple[str, str], Any] = {}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        out[(mod, "scalar")] = np_scalar
        out[(mod, "_reconstruct")] = np_reconstruct
    out[("numpy", "dtype")] = np_dtype
    out[("numpy", "ndarray")] = _NDARRAY  # a marker, not the (callable) class
    return out


_NDARRAY = ("numpy", "ndarray")


class _NumpyArray:
    """Receives ``ndarray.__setstate__`` data for a plain-dtype array; materialised by :func:`_materialize`."""

    def __init__(self, np: Any, shape: tuple[int, ...]) -> None:
        self._np, self.shape, self.array = np, shape, None

    def __setstate__(self, state: Any) -> None:
        np = self._np
        if not (isinstance(state, tuple) and len(state) == 5):
            raise UnsafePickleError("malformed numpy array state")
        _version, shape, dtype, fortran, raw = state
        if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(raw, (bytes, bytearray)):
            raise UnsafePickleError("numpy arrays must have a plain dtype and a byte payload")
        shape = _as_size(shape)
        arr = np.frombuffer(bytes(raw), dtype=dtype).copy()
        self.array = arr.reshape(shape, order="F" if fortran else "C")


# ---------------------------------------------------------------------------------------------------------------
# The restricted unpickler

_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}
_PERSISTENCE_MODULES = ("torch_utils.persistence", "torch_utils.persistence_v2")


def _build_whitelist() -> dict[tuple[str, str], Any]:
    wl: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): _ordered_dict,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
        ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
        ("torch.storage", "_load_from_bytes"): _load_storage_from_bytes,
        ("torch", "Size"): _torch_size,
        ("torch", "device"): _torch_device,
        ("builtins", "set"): _data_only(set, _PLAIN),
        ("builtins", "frozenset"): _data_only(frozenset, _PLAIN),
        ("builtins", "slice"): _data_only(slice, _PLAIN),
        ("builtins", "complex"): _data_only(complex, (int, float, str)),
        # no int argument: bytearray(10**12) would allocate a terabyte from a few bytes of pickle
        ("builtins", "bytearray"): _data_only(bytearray, (bytes, bytearray, list)),
        ("builtins", "range"): _data_only(range, (int,)),
        ("_codecs", "encode"): _codecs_encode,
        ("copyreg", "__newobj__"): _newobj,
        ("copyreg", "_reconstructor"): _reconstructor,
        ("builtins", "object"): object,
    }
    for name, dt in _TORCH_DTYPES.items():
        wl[("torch", name)] = dt
    for mod in _PERSISTENCE_MODULES:
        wl[(mod, "_reconstruct_persistent_obj")] = _record_persistent_obj
    wl.update(_numpy_whitelist())
    return wl


_WHITELIST = _build_whitelist()


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that never imports or calls anything outside :data:`_WHITELIST`.

    Unknown globals become inert stand-in classes (see :class:`InertObject`); calling one raises
    :class:`UnsafePickleError`. ``persistent_load`` is refused (NVlabs pickles do not use it)."""

    def __init__(self, file: Any) -> None:
        super().__init__(file)
        self._stand_ins: dict[tuple[str, str], type] = {}

    def find_class(self, module: str, name: str) -> Any:
        module = _PY2_MODULES.get(module, module)  # protocol 0-2 pickles name the Python 2 modules
        key = (module, name)
        if key in _WHITELIST:
            return _WHITELIST[key]
        cls = self._stand_ins.get(key)
        if cls is None:
            cls = _InertMeta(
                f"Inert[{module}.{name}]", (InertObject,), {"_pk_module": module, "_pk_name": name}
            )
            self._stand_ins[key] = cls
        return cls

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"unexpected persistent id {pid!r:.80} in a network pickle")


def _materialize(obj: Any, _seen: dict[int, Any] | None = None) -> Any:
    """Replace numpy array placeholders by their arrays (in containers, inert objects and persistent objects)."""
    seen = {} if _seen is None else _seen
    if id(obj) in seen:
        return seen[id(obj)]
    if isinstance(obj, _NumpyArray):
        return obj.array
    if isinstance(obj, dict):
        seen[id(obj)] = obj
        for k in list(obj):
            obj[k] = _materialize(obj[k], seen)
    elif isinstance(obj, list):
        seen[id(obj)] = obj
        obj[:] = [_materialize(v, seen) for v in obj]
    elif isinstance(obj, tuple):
        out = tuple(_materialize(v, seen) for v in obj)
        seen[id(obj)] = out
        return out
    elif isinstance(obj, InertObject):
        seen[id(obj)] = obj
        object.__setattr__(obj, "args", _materialize(obj.args, seen))
        object.__setattr__(obj, "state", _materialize(obj.state, seen))
        _materialize(obj.items, seen)
        _materialize(obj.list_items, seen)
    elif isinstance(obj, PersistentObject):
        seen[id(obj)] = obj
        obj.state = _materialize(obj.state, seen)
    return obj


def restricted_load(file: Any) -> Any:
    """Unpickle ``file`` (a path or a binary file object) with :class:`RestrictedUnpickler`."""
    if isinstance(file, (str, Path)):
        with open(file, "rb") as f:
            return restricted_load(f)
    check_pickle(file)
    return _materialize(RestrictedUnpickler(file).load())


# ---------------------------------------------------------------------------------------------------------------
# From recorded objects to networks


@dataclass
class NVNetwork:
    """One network of an NVlabs pickle: ``G``, ``D`` or ``G_ema``."""

    name: str
    class_name: str
    init_kwargs: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    init_args: tuple = ()


def _plain(obj: Any) -> Any:
    """Recorded values -> plain Python (EasyDict stand-ins become dicts, numpy scalars become numbers)."""
    if isinstance(obj, InertObject):
        if obj.items:
            return {k: _plain(v) for k, v in obj.items.items()}
        if obj.list_items:
            return [_plain(v) for v in obj.list_items]
        if isinstance(obj.state, dict) and obj.state:
            return {k: _plain(v) for k, v in obj.state.items()}
        return {} if type(obj)._pk_name.endswith("Dict") else obj
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_plain(v) for v in obj)
    if hasattr(obj, "item") and type(obj).__module__ == "numpy":
        return obj.item()
    return obj


def _object_state(obj: Any) -> dict[str, Any] | None:
    """The ``__dict__`` a recorded module would have had."""
    if not isinstance(obj, (PersistentObject, InertObject)):
        return None
    state = obj.state
    if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], (dict, type(None))):
        state = state[0]  # (dict state, slot state)
    if isinstance(state, InertObject):
        state = state.items
    return state if isinstance(state, dict) else None


def _class_name(obj: Any) -> str:
    if isinstance(obj, PersistentObject):
        return obj.class_name
    if isinstance(obj, InertObject):
        return type(obj)._pk_name
    return type(obj).__name__


def _module_state_dict(obj: Any, prefix: str, out: dict[str, torch.Tensor], seen: set[int]) -> None:
    state = _object_state(obj)
    if state is None or id(obj) in seen:
        return
    seen.add(id(obj))
    non_persistent = state.get("_non_persistent_buffers_set") or set()
    for group in ("_parameters", "_buffers"):
        entries = state.get(group) or {}
        if isinstance(entries, InertObject):
            entries = entries.items
        for name, value in entries.items():
            if value is None or (group == "_buffers" and name in non_persistent):
                continue
            if not isinstance(value, torch.Tensor):
                raise UnsafePickleError(f"{prefix}{name} is a {type(value).__name__}, not a tensor")
            out[prefix + name] = value.detach()
    modules = state.get("_modules") or {}
    if isinstance(modules, InertObject):
        modules = modules.items
    for name, child in modules.items():
        if child is not None:
            _module_state_dict(child, f"{prefix}{name}.", out, seen)


def network_from_object(name: str, obj: Any) -> NVNetwork:
    state = _object_state(obj)
    if state is None:
        raise ValueError(f"{name!r} is not a recorded network object (got {type(obj).__name__})")
    sd: dict[str, torch.Tensor] = {}
    _module_state_dict(obj, "", sd, set())
    kwargs = _plain(state.get("_init_kwargs") or {})
    args = _plain(state.get("_init_args") or ())
    return NVNetwork(
        name=name,
        class_name=_class_name(obj),
        init_kwargs=dict(kwargs) if isinstance(kwargs, dict) else {},
        state_dict={k: v.contiguous() for k, v in sd.items()},
        init_args=tuple(args) if isinstance(args, (tuple, list)) else (),
    )


def read_nvlabs_pickle(path: str | Path) -> dict[str, NVNetwork]:
    """Read ``G``, ``D`` and ``G_ema`` (whichever are present) from an NVlabs pickle, executing nothing."""
    data = restricted_load(path)
    if isinstance(data, InertObject):
        data = data.items
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a dict of networks at the top level, got {type(data).__name__}")
    nets = {}
    for key in ("G", "D", "G_ema"):
        if data.get(key) is not None:
            nets[key] = network_from_object(key, data[key])
    if not nets:
        raise ValueError(f"{path}: no G, D or G_ema network found (keys: {sorted(map(str, data))})")
    return nets


# ---------------------------------------------------------------------------------------------------------------
# NVlabs networks -> tedigan models
#
# Name table (``r`` = feature resolution). NVlabs stores parameters in the same equalised-lr convention as
# tedigan (unscaled weights, mapping weights/biases divided by lr_mul, affine biases including the +1), and
# its discriminator's "skip gain sqrt(.5), conv1 act gain sqrt(2)*sqrt(.5)" equals our "(skip + conv1)/sqrt(2)"
# because lrelu is positively homogeneous. So every tensor is copied as is:
#
#     mapping.fc{i}.* / mapping.w_avg            -> same names
#     synthesis.b4.const [C,4,4]                 -> synthesis.input.weight
#     synthesis.b{r}.{conv0,conv1}.noise_strength -> synthesis.b{r}.{conv0,conv1}.noise.strength
#     synthesis.b{r}.{conv0,conv1}.noise_const    -> synthesis.b{r}.{conv0,conv1}.noise.const
#     synthesis.b{r}.{conv0,conv1,torgb}.{weight,bias,affine.*} -> same names
#     D b{r}.{fromrgb,conv0,conv1,skip}.*, b4.{conv,fc,out}.* -> same names
#     *.resample_filter (fixed FIR buffers)      -> checked against the config's blur kernel and dropped

_NV_SUPPORTED_G = {"z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs"}
_NV_SUPPORTED_SYNTH = {
    "channel_base",
    "channel_max",
    "num_fp16_res",
    "conv_clamp",
    "architecture",
    "resample_filter",
    "use_noise",
    "activation",
    "fp16_channels_last",
    "kernel_size",
}


def _kwargs_dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def _check_filter(sd: dict[str, torch.Tensor], blur_kernel: list[float], where: str) -> None:
    a = torch.tensor(blur_kernel, dtype=torch.float64)
    expected = (torch.outer(a, a) / a.sum() ** 2).float()
    for key, value in sd.items():
        if key.endswith("resample_filter") and (
            value.shape != expected.shape or not torch.allclose(value.float(), expected, atol=1e-6)
        ):
            raise ValueError(
                f"{where}: {key} = {value.tolist()} is not the filter of resample_filter={blur_kernel}"
            )


def _blur_kernel(kwargs: dict[str, Any]) -> list[float]:
    k = kwargs.get("resample_filter", [1, 3, 3, 1])
    if isinstance(k, torch.Tensor):
        k = k.tolist()
    if not (isinstance(k, (list, tuple)) and all(isinstance(v, (int, float)) for v in k)):
        raise NotImplementedError(f"resample_filter={k!r}: only a 1-D separable filter is supported")
    return [float(v) for v in k]


def nvlabs_generator_config(net: NVNetwork) -> Any:
    """:class:`~tedigan.models.stylegan2.GeneratorConfig` for an NVlabs ``Generator`` (from ``init_kwargs``).

    Raises ``NotImplementedError`` for NVlabs options our generator cannot express (conditioning, non-'skip'
    synthesis, non-lrelu activations, mapping widths different from ``w_dim``, kernels other than 3x3)."""
    from tedigan.models.stylegan2 import GeneratorConfig

    kw = dict(net.init_kwargs)
    if net.class_name != "Generator":
        raise ValueError(f"{net.name} is a {net.class_name}, not an NVlabs Generator")
    if "synthesis.input.affine.weight" in net.state_dict or "synthesis.input.freqs" in net.state_dict:
        raise NotImplementedError(f"{net.name} is a StyleGAN3 generator; only StyleGAN2(-ADA) is supported")
    if int(kw.get("c_dim", 0) or 0) != 0 or "mapping.embed.weight" in net.state_dict:
        raise NotImplementedError(f"{net.name}: conditional generators (c_dim > 0) are not supported")
    mk = _kwargs_dict(kw.get("mapping_kwargs"))
    # train.py and legacy.py pass synthesis options through synthesis_kwargs; Generator(**kwargs) too.
    sk = {k: v for k, v in kw.items() if k not in _NV_SUPPORTED_G and k != "synthesis_kwargs"}
    sk.update(_kwargs_dict(kw.get("synthesis_kwargs")))
    unknown = sorted(set(sk) - _NV_SUPPORTED_SYNTH)
    if unknown:
        raise NotImplementedError(f"{net.name}: unsupported synthesis options {unknown}")
    if sk.get("architecture", "skip") != "skip":
        raise NotImplementedError(f"{net.name}: synthesis architecture {sk['architecture']!r} (only 'skip')")
    if sk.get("activation", "lrelu") != "lrelu" or mk.get("activation", "lrelu") != "lrelu":
        raise NotImplementedError(f"{net.name}: only 'lrelu' activations are supported")
    if int(sk.get("kernel_size", 3)) != 3:
        raise NotImplementedError(f"{net.name}: only 3x3 synthesis convolutions are supported")
    w_dim = int(kw["w_dim"])
    if mk.get("layer_features") not in (None, w_dim):
        raise NotImplementedError(
            f"{net.name}: mapping layer_features={mk['layer_features']} != w_dim={w_dim}"
        )
    if sk.get("conv_clamp") is not None:
        warnings.warn(
            f"{net.name}: conv_clamp={sk['conv_clamp']} is not reproduced (tedigan does not clamp activations); "
            "outputs only differ where NVlabs would clip an activation",
            stacklevel=3,
        )
    w_avg_beta = mk.get("w_avg_beta", 0.995)
    return GeneratorConfig(
        resolution=int(kw["img_resolution"]),
        z_dim=int(kw["z_dim"]),
        w_dim=w_dim,
        n_mlp=int(mk.get("num_layers", 8)),
        lr_mlp=float(mk.get("lr_multiplier", 0.01)),
        img_channels=int(kw.get("img_channels", 3)),
        arch="stylegan2",
        channel_base=int(sk.get("channel_base", 32768)),
        channel_max=int(sk.get("channel_max", 512)),
        blur_kernel=_blur_kernel(sk),
        w_avg_beta=0.995 if w_avg_beta is None else float(w_avg_beta),
    )


def convert_generator_state(net: NVNetwork, config: Any) -> dict[str, torch.Tensor]:
    """Rename an NVlabs generator state dict to :class:`~tedigan.models.stylegan2.Generator` names."""
    sd = net.state_dict
    _check_filter(sd, config.blur_kernel, net.name)
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        if key.endswith("resample_filter"):
            continue
        new = key
        if key == "synthesis.b4.const":
            new = "synthesis.input.weight"
        elif key.endswith(".noise_strength"):
            new = key[: -len("noise_strength")] + "noise.strength"
        elif key.endswith(".noise_const"):
            new = key[: -len("noise_const")] + "noise.const"
        out[new] = value.detach().clone().float()
    return out


def nvlabs_discriminator_config(net: NVNetwork) -> Any:
    """:class:`~tedigan.models.stylegan2.DiscriminatorConfig` for an NVlabs ``Discriminator``."""
    from tedigan.models.stylegan2 import DiscriminatorConfig

    kw = dict(net.init_kwargs)
    if net.class_name != "Discriminator":
        raise ValueError(f"{net.name} is a {net.class_name}, not an NVlabs Discriminator")
    if int(kw.get("c_dim", 0) or 0) != 0:
        raise NotImplementedError(f"{net.name}: conditional discriminators (c_dim > 0) are not supported")
    if kw.get("architecture", "resnet") != "resnet":
        raise NotImplementedError(
            f"{net.name}: discriminator architecture {kw['architecture']!r} (only 'resnet')"
        )
    bk, ek = _kwargs_dict(kw.get("block_kwargs")), _kwargs_dict(kw.get("epilogue_kwargs"))
    if bk.get("activation", "lrelu") != "lrelu" or ek.get("activation", "lrelu") != "lrelu":
        raise NotImplementedError(f"{net.name}: only 'lrelu' activations are supported")
    if kw.get("conv_clamp") is not None:
        warnings.warn(f"{net.name}: conv_clamp={kw['conv_clamp']} is not reproduced", stacklevel=3)
    group = ek.get("mbstd_group_size", 4)
    return DiscriminatorConfig(
        resolution=int(kw["img_resolution"]),
        img_channels=int(kw.get("img_channels", 3)),
        arch="stylegan2",
        channel_base=int(kw.get("channel_base", 32768)),
        channel_max=int(kw.get("channel_max", 512)),
        blur_kernel=_blur_kernel(bk),
        # None means "the whole minibatch"; min(group, N) with a huge group does the same.
        mbstd_group_size=2**31 - 1 if group is None else int(group),
        mbstd_num_channels=int(ek.get("mbstd_num_channels", 1)),
    )


def convert_discriminator_state(net: NVNetwork, config: Any) -> dict[str, torch.Tensor]:
    """NVlabs discriminator state dict -> :class:`~tedigan.models.stylegan2.Discriminator` names (drop filters)."""
    _check_filter(net.state_dict, config.blur_kernel, net.name)
    return {
        k: v.detach().clone().float() for k, v in net.state_dict.items() if not k.endswith("resample_filter")
    }


def _load_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    ref = model.state_dict()
    missing = sorted(set(ref) - set(state))
    extra = sorted(set(state) - set(ref))
    wrong = [
        f"{k} {tuple(state[k].shape)} != {tuple(ref[k].shape)}"
        for k in ref
        if k in state and state[k].shape != ref[k].shape
    ]
    if missing or extra or wrong:
        raise ValueError(
            f"{where}: the NVlabs network does not match the tedigan model built from its init_kwargs: "
            f"missing {missing[:6]}, unexpected {extra[:6]}, wrong shapes {wrong[:6]}"
        )
    model.load_state_dict(state, strict=True)


def build_models(
    nets: dict[str, NVNetwork], generator: str = "G_ema", where: str = "pickle"
) -> tuple[Any, Any]:
    """``(Generator, Discriminator or None)`` in eval mode from :func:`read_nvlabs_pickle`'s records.

    ``generator`` picks ``G_ema`` (default, for sampling) or ``G``; if it is absent the other is used."""
    from tedigan.models.stylegan2 import Discriminator, Generator

    key = generator if generator in nets else next((k for k in ("G_ema", "G") if k in nets), None)
    if key is None:
        raise ValueError(f"{where}: no generator (G_ema or G) in the pickle")
    if key != generator:
        warnings.warn(f"{where}: no {generator!r}; using {key!r}", stacklevel=3)
    g_net = nets[key]
    g_cfg = nvlabs_generator_config(g_net)
    G = Generator(g_cfg)
    g_state = convert_generator_state(g_net, g_cfg)
    ref = G.state_dict()
    if not any(".noise." in k for k in g_state):  # use_noise=False upstream: equivalent to zero strength
        g_state.update({k: torch.zeros_like(v) for k, v in ref.items() if ".noise." in k})
    if "mapping.w_avg" not in g_state:  # w_avg_beta=None upstream: no running mean was tracked
        warnings.warn(f"{where}: {key} has no mapping.w_avg; truncation will centre on zeros", stacklevel=3)
        g_state["mapping.w_avg"] = torch.zeros(g_cfg.w_dim)
    _load_strict(G, g_state, key)
    G.eval()
    D = None
    if "D" in nets:
        d_cfg = nvlabs_discriminator_config(nets["D"])
        D = Discriminator(d_cfg)
        _load_strict(D, convert_discriminator_state(nets["D"], d_cfg), "D")
        D.eval()
    return G, D


def load_nvlabs(path: str | Path, generator: str = "G_ema") -> tuple[Any, Any]:
    """Build ``(Generator, Discriminator or None)`` in eval mode from an NVlabs stylegan2-ada-pytorch pickle.

    ``generator`` picks ``G_ema`` (default, for sampling) or ``G``; if it is absent the other is used.
    Nothing from the pickle is imported or executed (see :class:`RestrictedUnpickler`).
    """
    return build_models(read_nvlabs_pickle(path), generator=generator, where=str(path))
