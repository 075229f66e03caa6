"""Any Hugging Face ``datasets`` data set with an image column and (optionally) a text column.

``name_or_path`` may be a folder written by ``save_to_disk`` (a ``Dataset`` or a ``DatasetDict``), a local
data folder or file that ``datasets.load_dataset`` understands (an imagefolder with ``metadata.jsonl``, parquet,
json lines...), or a Hub id for users who are online. Images are decoded here, not by ``datasets``, through
:mod:`tedigan.data.io`, so every mode converts the same way and an unreadable image names its file.

Columns are found by their features: the image column is an ``Image`` feature, the text column a string or
a list of strings, preferring usual names (``text``, ``caption``, ``captions``, ``sentence``...). When the
choice is missing or ambiguous the error lists every column with its type; pass ``image_column`` /
``text_column`` to choose, or ``text_column=False`` for an image-only data set. Image columns named like
``label``/``mask`` (segmentation maps) and ``sketch`` are returned as ``label`` and ``sketch``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from .io import (
    BadImagePolicy,
    ImageLoadError,
    load_image,
    load_label_map,
    load_sketch,
    make_sample,
    to_tensor,
)

logger = logging.getLogger(__name__)

IMAGE_NAMES = ("image", "img", "images", "picture", "photo", "pixel_values")
TEXT_NAMES = (
    "text", "caption", "captions", "texts", "sentence", "sentences", "description", "descriptions",
    "prompt", "prompts", "title",
)  # fmt: skip
LABEL_NAMES = ("label", "labels", "mask", "masks", "segmentation", "label_map", "seg", "parsing")
SKETCH_NAMES = ("sketch", "sketches", "edge", "edges", "edge_map")
_DATA_FILE_BUILDERS = {
    ".parquet": "parquet", ".json": "json", ".jsonl": "json", ".csv": "csv", ".arrow": "arrow",
}  # fmt: skip


# ------------------------------------------------------------------------------------------- loading


def is_saved_dataset(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``."""
    path = Path(path)
    return (path / "dataset_dict.json").is_file() or (
        (path / "state.json").is_file() and (path / "dataset_info.json").is_file()
    )


def load_hf_dataset(name_or_path: str | os.PathLike, split: str = "train", **load_kwargs: Any):
    """A ``datasets.Dataset`` for ``split`` from a saved folder, a local data file/folder or a Hub id."""
    import datasets

    path = Path(name_or_path)
    if is_saved_dataset(path):
        loaded = datasets.load_from_disk(os.fspath(path))
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise KeyError(f"{path} has no split {split!r}; available splits: {', '.join(loaded)}")
            return loaded[split]
        logger.info("%s holds a single Dataset; using all of it for split %r", path, split)
        return loaded
    if path.is_file() and path.suffix.lower() in _DATA_FILE_BUILDERS:
        builder = _DATA_FILE_BUILDERS[path.suffix.lower()]
        return datasets.load_dataset(builder, data_files={split: os.fspath(path)}, split=split, **load_kwargs)
    return datasets.load_dataset(os.fspath(name_or_path), split=split, **load_kwargs)


# ------------------------------------------------------------------------------------ column detection


def _is_image_feature(feature: Any) -> bool:
    import datasets

    return isinstance(feature, datasets.Image)


def _is_string_value(feature: Any) -> bool:
    import datasets

    return isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string")


def _is_text_feature(feature: Any) -> bool:
    """A string, or a list of strings (``List``/``Sequence``/``LargeList`` or a plain ``[Value]``)."""
    if _is_string_value(feature):
        return True
    if isinstance(feature, list) and len(feature) == 1:
        return _is_string_value(feature[0])
    inner = getattr(feature, "feature", None)
    return inner is not None and _is_string_value(inner)


def _describe_columns(features: Any) -> str:
    return ", ".join(f"{name} ({type(feat).__name__})" for name, feat in features.items())


def _pick_by_name(candidates: list[str], preferred: tuple[str, ...]) -> str | None:
    lowered = {c.lower(): c for c in candidates}
    return next((lowered[name] for name in preferred if name in lowered), None)


def detect_columns(
    features: Any,
    image_column: str | None = None,
    text_column: str | bool | None = None,
    where: str = "data set",
) -> dict[str, str | None]:
    """Choose the ``image``, ``text``, ``label`` and ``sketch`` columns from a ``datasets.Features``."""
    columns = list(features)
    listing = _describe_columns(features)

    def check(name: str, kind: str, predicate) -> str:
        if name not in features:
            raise KeyError(f"{where}: no column {name!r}; columns: {listing}")
        if not predicate(features[name]):
            raise TypeError(f"{where}: column {name!r} is not {kind}; columns: {listing}")
        return name

    images = [c for c in columns if _is_image_feature(features[c])]
    label = _pick_by_name(images, LABEL_NAMES)
    sketch = _pick_by_name(images, SKETCH_NAMES)
    if image_column is not None:
        image = check(image_column, "an Image feature", _is_image_feature)
    else:
        rest = [c for c in images if c not in (label, sketch)]
        image = _pick_by_name(rest, IMAGE_NAMES) or (rest[0] if len(rest) == 1 else None)
        if image is None:
            problem = "no Image column" if not rest else f"several Image columns ({', '.join(rest)})"
            raise ValueError(f"{where}: {problem}; pass image_column=... . Columns: {listing}")
    label = None if label == image else label
    sketch = None if sketch == image else sketch

    text: str | None
    if text_column is False or text_column == "":
        text = None
    elif isinstance(text_column, str):
        text = check(text_column, "a string or list of strings", _is_text_feature)
    else:
        texts = [c for c in columns if _is_text_feature(features[c])]
        text = _pick_by_name(texts, TEXT_NAMES)
        if text is None:
            problem = "no text column" if not texts else f"no obvious text column among {', '.join(texts)}"
            raise ValueError(
                f"{where}: {problem}; pass text_column=... (or text_column=False for images only). "
                f"Columns: {listing}"
            )
    return {"image": image, "text": text, "label": label, "sketch": sketch}


def captions_from_value(value: Any) -> list[str]:
    """A text cell -> list of captions. A string holding several lines counts as one caption per line."""
    if value is None:
        return []
    items = value if isinstance(value, (list, tuple)) else [value]
    out: list[str] = []
    for item in items:
        if isinstance(item, str):
            out.extend(line.strip() for line in item.splitlines() if line.strip())
    return out


# --------------------------------------------------------------------------------------------- dataset


class HFImageTextDataset(Dataset):
    """A ``datasets`` data set served in the common sample format.

    Args:
        name_or_path: saved-dataset folder, local data folder/file, or Hub id.
        split: split to use (``DatasetDict`` key, or ``load_dataset``'s ``split``; ignored for a single
            saved ``Dataset``).
        resolution: output size (centre-crop to square, LANCZOS resize); ``None`` keeps the size.
        image_column, text_column: override detection; ``text_column=False`` means no text.
        on_error: ``"skip"`` or ``"raise"`` (see :class:`tedigan.data.io.BadImagePolicy`).
        load_kwargs: passed to ``datasets.load_dataset`` (e.g. ``cache_dir``, ``revision``).
    """

    def __init__(
        self,
        name_or_path: str | os.PathLike,
        split: str = "train",
        resolution: int | None = 256,
        image_column: str | None = None,
        text_column: str | bool | None = None,
        on_error: str = "skip",
        **load_kwargs: Any,
    ):
        import datasets

        self.name = os.fspath(name_or_path)
        self.split = split
        self.resolution = resolution
        ds = load_hf_dataset(name_or_path, split=split, **load_kwargs)
        self.columns = detect_columns(ds.features, image_column, text_column, where=f"{self.name}[{split}]")
        keep = [c for c in self.columns.values() if c is not None]
        ds = ds.select_columns(list(dict.fromkeys(keep)))
        for kind in ("image", "label", "sketch"):
            if self.columns[kind] is not None:  # decode ourselves: same conversions, errors name the file
                ds = ds.cast_column(self.columns[kind], datasets.Image(decode=False))
        self.dataset = ds
        self.policy = BadImagePolicy(on_error, owner=f"HFImageTextDataset({self.name})")
        if len(ds) == 0:
            raise ValueError(f"{self.name}[{split}] is empty")

    @property
    def image_column(self) -> str:
        return self.columns["image"]

    @property
    def text_column(self) -> str | None:
        return self.columns["text"]

    @property
    def bad_files(self) -> list[str]:
        return self.policy.bad_files

    def __len__(self) -> int:
        return len(self.dataset)

    def _key(self, index: int) -> str:
        return f"{self.name}[{self.split}][{index}]"

    def _source(self, cell: Any, index: int) -> tuple[Any, str]:
        """The bytes or path to decode for an undecoded Image cell, and a name for error messages."""
        cell = cell or {}
        path = cell.get("path")
        name = f"{self._key(index)} ({path})" if path else self._key(index)
        data = cell.get("bytes")
        if data is None and path is None:
            raise ImageLoadError(name, "no image data (null cell)")
        return (data if data is not None else path), name

    def _decode(self, cell: Any, index: int, loader):
        source, name = self._source(cell, index)
        try:
            return loader(source)
        except ImageLoadError as err:
            raise ImageLoadError(name, err.reason) from None

    def _load(self, index: int) -> dict[str, Any]:
        row = self.dataset[index]
        cols = self.columns
        image = self._decode(row[cols["image"]], index, lambda s: to_tensor(load_image(s), self.resolution))
        captions = captions_from_value(row[cols["text"]]) if cols["text"] else []
        extra = {}
        if cols["label"]:
            extra["label"] = self._decode(
                row[cols["label"]], index, lambda s: load_label_map(s, self.resolution)
            )
        if cols["sketch"]:
            extra["sketch"] = self._decode(
                row[cols["sketch"]], index, lambda s: load_sketch(s, self.resolution)
            )
        return make_sample(image, captions, index, **extra)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.policy.fetch(index, len(self), self._load, self._key)

    def verify(self) -> list[str]:
        """Decode every image cell; return the names of those that fail (they join :attr:`bad_files`).

        With ``on_error="skip"``, ``__getitem__`` then skips them without trying again.
        """
        bad = []
        column = self.dataset[self.columns["image"]]
        for index in range(len(self)):
            try:
                self._decode(column[index], index, load_image)
            except ImageLoadError as err:
                self.policy.record(err, self._key(index))
                bad.append(err.path)
        return bad

    def __repr__(self) -> str:
        return f"HFImageTextDataset({self.name!r}, split={self.split!r}, rows={len(self)}, columns={self.columns})"
