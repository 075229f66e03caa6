"""Data sets: the procedural avatar faces (default) and the user's real data.

Every data set returns the same sample dict: ``image`` FloatTensor [3,H,W] in [-1,1], ``caption`` (one of
the image's captions at random, "" when none), ``captions`` list[str], ``index`` int, and, when the layout
has them, ``label`` LongTensor [H,W] (segmentation classes) and ``sketch`` FloatTensor [1,H,W] in [-1,1]
(white = 1). Build one by name with :func:`make_dataset`; batch with ``collate_fn=collate_samples`` (the
default collate cannot batch caption lists of different lengths).
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from .vocabulary import VOCABULARY_NAME, Reading, Vocabulary, VocabularyError

if TYPE_CHECKING:
    from torch.utils.data import Dataset

#: names served from the submodules on first use: importing ``tedigan.data`` (or its light vocabulary)
#: must not load torch, so that ``tedigan edit --help`` can list the vocabularies fast
_LAZY = {
    **dict.fromkeys(
        ("IMAGE_EXTENSIONS", "ImageFolderDataset", "read_captions_jsonl", "scan_images"), ".folder"
    ),
    **dict.fromkeys(("HFImageTextDataset", "load_hf_dataset"), ".hf"),
    **dict.fromkeys(
        (
            "BadImagePolicy",
            "ImageLoadError",
            "collate_samples",
            "convert_image",
            "load_image",
            "load_label_map",
            "load_sketch",
            "open_image",
            "to_pil",
            "to_tensor",
        ),
        ".io",
    ),
    **dict.fromkeys(("MMCelebAHQDataset", "read_split_file"), ".mmceleba"),
    "AvatarDataset": ".avatars",  # its renderer too: a problem there must not take the other loaders down
}

DATASET_KINDS = ("avatars", "faces", "folder", "hf", "mmceleba")

__all__ = [
    "DATASET_KINDS",
    "IMAGE_EXTENSIONS",
    "BadImagePolicy",
    "HFImageTextDataset",
    "ImageFolderDataset",
    "ImageLoadError",
    "MMCelebAHQDataset",
    "Reading",
    "VOCABULARY_NAME",
    "Vocabulary",
    "VocabularyError",
    "builtin_vocabulary",
    "collate_samples",
    "convert_image",
    "load_hf_dataset",
    "load_image",
    "load_label_map",
    "load_sketch",
    "make_dataset",
    "open_image",
    "read_captions_jsonl",
    "read_split_file",
    "scan_images",
    "to_pil",
    "to_tensor",
    "vocabulary_for",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_dataset(
    kind: str, root: str | os.PathLike, split: str = "train", resolution: int | None = 64, **kwargs: Any
) -> Dataset:
    """Build a data set by kind.

    - ``"avatars"``: :class:`~tedigan.data.avatars.AvatarDataset` (``root`` = the rendered data set);
    - ``"faces"``: :class:`~tedigan.data.faces.GeneratedFaceDataset` (generated faces with their W+ codes);
    - ``"folder"``: :class:`ImageFolderDataset` (an image folder has no splits: ``split`` is ignored);
    - ``"hf"``: :class:`HFImageTextDataset` (``root`` = saved folder, local data or Hub id);
    - ``"mmceleba"``: :class:`MMCelebAHQDataset`.

    ``kwargs`` go to the class (e.g. ``captions_file``, ``text_column``, ``with_masks``, ``on_error``).
    """
    key = kind.lower().strip()
    if key == "avatars":
        from .avatars import AvatarDataset

        return AvatarDataset(root, split=split, resolution=resolution, **kwargs)
    if key == "faces":
        from .faces import GeneratedFaceDataset

        return GeneratedFaceDataset(root, split=split, resolution=resolution, **kwargs)
    if key == "folder":
        from .folder import ImageFolderDataset

        return ImageFolderDataset(root, resolution=resolution, **kwargs)
    if key == "hf":
        from .hf import HFImageTextDataset

        return HFImageTextDataset(root, split=split, resolution=resolution, **kwargs)
    if key == "mmceleba":
        from .mmceleba import MMCelebAHQDataset

        return MMCelebAHQDataset(root, split=split, resolution=resolution, **kwargs)
    raise ValueError(f"unknown data set kind {kind!r}; choose one of {', '.join(DATASET_KINDS)}")


def builtin_vocabulary(name: str) -> Vocabulary:
    """A vocabulary tedigan ships, by domain name (``"avatars"``, ``"faces"``), or one read from a
    ``vocabulary.json`` path or the folder holding it."""
    if name == "avatars":
        from .avatars import AVATAR_VOCABULARY

        return AVATAR_VOCABULARY
    if name == "faces":
        from .faces import FACE_VOCABULARY

        return FACE_VOCABULARY
    if os.path.exists(name):
        return Vocabulary.load(name)
    raise VocabularyError(f"unknown vocabulary {name!r}: use 'avatars', 'faces' or a vocabulary.json path")


def vocabulary_for(kind: str, root: str | os.PathLike) -> Vocabulary | None:
    """The vocabulary of a data set: the avatars' own, or a ``vocabulary.json`` in the data folder (None
    when the data set has none: its captions are then read by nobody)."""
    if kind.lower().strip() == "avatars":
        return builtin_vocabulary("avatars")
    path = os.path.join(os.fspath(root), VOCABULARY_NAME)
    return Vocabulary.load(path) if os.path.isfile(path) else None
