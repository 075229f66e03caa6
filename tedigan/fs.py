"""Atomic file writes: a reader (or a later run) sees a whole file or folder, or none of it.

A process killed while writing leaves at most a hidden ``.NAME.tmp-PID`` / ``.NAME.partial-PID`` beside the
target, never a truncated target; an existing target is only replaced once the new one is complete.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "atomic_write_text", "replace_dir", "temp_dir_for"]


def atomic_write(path: str | Path, write: Callable[[Path], object], replace: bool = True) -> Path:
    """Call ``write(tmp)`` to fill a temporary file beside ``path``, then rename it onto ``path``.

    The temporary name keeps ``path``'s suffix so writers that pick a format from it (PIL) still work.
    ``replace=False`` never replaces a file: if ``path`` appeared while ``write`` ran (another process
    writing the same name), ``FileExistsError`` is raised and the new file is dropped."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        write(tmp)
        if replace:
            os.replace(tmp, path)
        else:
            _publish_new(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _publish_new(tmp: Path, path: Path) -> None:
    """Give the finished ``tmp`` the name ``path`` unless that name exists. A hard link is created or fails
    in one step (a check then a rename could lose the other writer's file); file systems without hard
    links get the check and the rename."""
    try:
        os.link(tmp, path)
        return
    except FileExistsError:
        raise FileExistsError(errno.EEXIST, "written meanwhile by another process", str(path)) from None
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
            raise
    if path.exists():
        raise FileExistsError(errno.EEXIST, "written meanwhile by another process", str(path))
    os.replace(tmp, path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file (flushed to disk) and a rename."""

    def write(tmp: Path) -> None:
        with tmp.open("w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())

    return atomic_write(path, write)


def temp_dir_for(final: str | Path) -> Path:
    """A fresh, empty hidden folder beside ``final`` to build it in (see :func:`replace_dir`)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.partial-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    return tmp


def replace_dir(tmp: str | Path, final: str | Path) -> Path:
    """Move the finished folder ``tmp`` to ``final``, replacing what was there (the old copy goes last)."""
    tmp, final = Path(tmp), Path(final)
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final
