"""A folder of images (any nesting) with optional captions in a JSON-lines manifest.

Layout::

    root/
      captions.jsonl          optional; one JSON object per line:
                              {"file_name": "a/b.png", "text": "a smiling woman"}
                              {"file_name": "a/c.png", "captions": ["...", "..."]}
      a/b.png  a/c.png  d.jpg ...

``file_name`` is relative to the manifest's folder (the same key as Hugging Face's imagefolder
``metadata.jsonl``, which is read when no ``captions.jsonl`` exists). Text may be given as ``text`` /
``caption`` (a string) and/or ``captions`` / ``texts`` (a list); several lines for one file add up.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from .io import BadImagePolicy, ImageLoadError, load_image, make_sample, to_tensor

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm",
)  # fmt: skip
DEFAULT_CAPTIONS_FILE = "captions.jsonl"
_FALLBACK_CAPTIONS_FILE = "metadata.jsonl"
_FILE_KEYS = ("file_name", "file", "image", "path")
_TEXT_KEYS = ("text", "caption")
_LIST_KEYS = ("captions", "texts")


def scan_images(root: str | os.PathLike, extensions: Iterable[str] = IMAGE_EXTENSIONS) -> list[str]:
    """Relative POSIX paths of the images under ``root``, recursively, sorted; hidden entries skipped."""
    root = Path(root)
    wanted = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
    found = []
    seen: set[tuple[int, int]] = set()  # real directories visited: a symlink loop must not recurse forever
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        st = os.stat(dirpath)
        if (st.st_dev, st.st_ino) in seen:
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in wanted:
                found.append(Path(dirpath, name).relative_to(root).as_posix())
    return sorted(found)


def _normalise_key(name: str) -> str:
    key = Path(name.replace("\\", "/")).as_posix()
    return key[2:] if key.startswith("./") else key


def _texts_of(record: dict[str, Any], where: str) -> list[str]:
    texts: list[str] = []
    for key in _TEXT_KEYS:
        value = record.get(key)
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, list):
            texts.extend(value)
        elif value is not None:
            raise ValueError(f"{where}: '{key}' must be a string or a list of strings")
    for key in _LIST_KEYS:
        value = record.get(key)
        if isinstance(value, str):
            value = [value]
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise ValueError(f"{where}: '{key}' must be a list of strings")
        texts.extend(value or [])
    if not all(isinstance(t, str) for t in texts):
        raise ValueError(f"{where}: captions must be strings")
    return [t.strip() for t in texts if t.strip()]


def read_captions_jsonl(path: str | os.PathLike) -> dict[str, list[str]]:
    """``{relative file name: [captions]}`` from a JSON-lines manifest; malformed lines raise ``ValueError``."""
    captions: dict[str, list[str]] = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{where}: invalid JSON ({err.msg})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{where}: expected a JSON object")
            file_key = next((k for k in _FILE_KEYS if isinstance(record.get(k), str)), None)
            if file_key is None:
                raise ValueError(f"{where}: no file name (expected one of {', '.join(_FILE_KEYS)})")
            key = _normalise_key(record[file_key])
            captions.setdefault(key, []).extend(_texts_of(record, where))
    return captions


class ImageFolderDataset(Dataset):
    """Images under ``root`` (recursive, sorted) with optional captions; returns the common sample dict.

    Args:
        root: folder to scan.
        resolution: output size (centre-crop to square, LANCZOS resize); ``None`` keeps each image's size.
        captions_file: manifest path, relative to ``root`` or absolute; ``None`` disables captions. The
            default ``captions.jsonl`` may be absent (then ``metadata.jsonl`` is tried); a name given
            explicitly must exist.
        on_error: ``"skip"`` (log a warning naming the file, serve the next good image) or ``"raise"``.
        extensions: file endings counted as images.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        resolution: int | None = 256,
        captions_file: str | os.PathLike | None = DEFAULT_CAPTIONS_FILE,
        on_error: str = "skip",
        extensions: Iterable[str] = IMAGE_EXTENSIONS,
    ):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder {self.root} does not exist or is not a directory")
        self.resolution = resolution
        self.extensions = tuple(extensions)
        self.policy = BadImagePolicy(on_error, owner=f"ImageFolderDataset({self.root})")
        self.files = scan_images(self.root, self.extensions)
        if not self.files:
            raise FileNotFoundError(f"no images ({', '.join(self.extensions)}) found under {self.root}")
        self.captions_path = self._find_captions_file(captions_file)
        self.captions = self._load_captions()

    # ------------------------------------------------------------------------------------------ setup

    def _find_captions_file(self, captions_file: str | os.PathLike | None) -> Path | None:
        if captions_file is None:
            return None
        path = Path(captions_file)
        path = path if path.is_absolute() else self.root / path
        if path.is_file():
            return path
        if os.fspath(captions_file) != DEFAULT_CAPTIONS_FILE:
            raise FileNotFoundError(f"captions file {path} does not exist")
        fallback = self.root / _FALLBACK_CAPTIONS_FILE
        return fallback if fallback.is_file() else None

    def _load_captions(self) -> dict[str, list[str]]:
        if self.captions_path is None:
            return {}
        raw = read_captions_jsonl(self.captions_path)
        # File names in the manifest are relative to the manifest's own folder.
        base = os.path.abspath(self.captions_path.parent)
        root = os.path.abspath(self.root)
        captions = {}
        for name, texts in raw.items():
            rel = os.path.relpath(os.path.normpath(os.path.join(base, name)), root)
            key = name if rel.startswith("..") else Path(rel).as_posix()
            captions.setdefault(key, []).extend(texts)
        unknown = sorted(set(captions) - set(self.files))
        if unknown:
            logger.warning(
                "%s lists %d file(s) that are not images under %s, e.g. %s",
                self.captions_path, len(unknown), self.root, unknown[0],
            )  # fmt: skip
        return captions

    # ------------------------------------------------------------------------------------------ access

    @property
    def on_error(self) -> str:
        return self.policy.on_error

    @property
    def bad_files(self) -> list[str]:
        """Paths found unreadable so far in this process (by ``__getitem__`` or :meth:`verify`)."""
        return self.policy.bad_files

    def __len__(self) -> int:
        return len(self.files)

    def path(self, index: int) -> Path:
        return self.root / self.files[index]

    def captions_for(self, index: int) -> list[str]:
        return list(self.captions.get(self.files[index], []))

    def _key(self, index: int) -> str:
        return os.fspath(self.path(index))

    def _load(self, index: int) -> dict[str, Any]:
        image = to_tensor(load_image(self.path(index)), self.resolution)
        return make_sample(image, self.captions_for(index), index)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.policy.fetch(index, len(self), self._load, self._key)

    def verify(self, exclude: bool = False, progress: bool = False) -> list[str]:
        """Decode every file (no resizing) and return the paths that fail; they join :attr:`bad_files`.

        A pre-flight check before a long run. With ``exclude=True`` the bad files are also dropped from
        the data set, so indices shift and ``len()`` shrinks.
        """
        indices: Iterable[int] = range(len(self))
        if progress:
            from tqdm.auto import tqdm

            indices = tqdm(indices, desc=f"verifying {self.root}", unit="img")
        bad = []
        for i in indices:
            try:
                load_image(self.path(i))
            except ImageLoadError as err:
                self.policy.record(err)
                bad.append(err.path)
        if exclude and bad:
            dropped = set(bad)
            self.files = [f for i, f in enumerate(self.files) if self._key(i) not in dropped]
            if not self.files:
                raise RuntimeError(f"all images under {self.root} are unreadable (e.g. {bad[0]})")
        return bad

    def __repr__(self) -> str:
        return (
            f"ImageFolderDataset(root={os.fspath(self.root)!r}, images={len(self)}, "
            f"captioned={sum(f in self.captions for f in self.files)}, resolution={self.resolution})"
        )
