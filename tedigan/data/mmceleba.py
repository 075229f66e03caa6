"""The Multi-Modal-CelebA-HQ folder layout (Xia et al., TediGAN, CVPR 2021).

The public release (github.com/IIGROUP/MM-CelebA-HQ-Dataset, README "Overview" table) is one folder::

    multi-modal-celeba/
      image/   30,000 JPG   CelebA-HQ faces, {id}.jpg, id 0..29999 (512x512 in the release)
      label/   30,000 PNG   CelebAMask-HQ segmentation masks, {id}.png, 512x512, 19 classes
      sketch/  30,000 PNG   sketches (Photocopy filter + sketch simplification), {id}.png
      text/    30,000 TXT   {id}.txt, ten captions, one per line
      train/filenames.pickle  names of the training images
      test/filenames.pickle   names of the test images

The maintainers say (MM-CelebA-HQ-Dataset issue #6) that the training images are ids 0..23999 and the test
images the rest, that both split files are called ``filenames.pickle`` and are told apart by their folder,
and that the two were uploaded to each other's folder at one point: a "train" list shorter than the "test"
list is reported with a warning. Without split files the id ranges are used.

Other spellings met in practice are accepted too (``images/``, ``CelebA-HQ-img/`` of CelebAMask-HQ, ``mask/``,
``CelebAMask-HQ-mask/``, ``celeba-caption/``, zero-padded names, a plain-text split list); every folder can
be given explicitly. Split pickles are read with an unpickler that refuses every class, so only plain
lists of strings or ints load: a pickle cannot run code here.
"""

from __future__ import annotations

import codecs
import json
import logging
import os
import pickle
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from tedigan.assets import check_pickle

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

IMAGE_DIRS = ("image", "images", "img", "CelebA-HQ-img", "CelebAMask-HQ/CelebA-HQ-img")
TEXT_DIRS = ("text", "texts", "captions", "celeba-caption", "celeba_caption")
MASK_DIRS = ("label", "labels", "mask", "masks", "CelebAMask-HQ-mask", "CelebAMask-HQ/CelebAMask-HQ-mask")
SKETCH_DIRS = ("sketch", "sketches", "CelebA-HQ-sketch")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
SPLITS = ("train", "test", "all")
NUM_TRAIN_IDS = 24000  # ids 0..23999 train, 24000..29999 test (maintainers, issue #6)
NUM_MASK_CLASSES = 19  # CelebAMask-HQ: background + 18 parts


# ------------------------------------------------------------------------------------------ split files


class _NamesOnlyUnpickler(pickle.Unpickler):
    """Refuses every global but ``_codecs.encode`` (how protocol-2 pickles rebuild ``bytes``): lists, tuples,
    strings and ints need none, so anything else (classes, functions, arrays) fails to load."""

    def find_class(self, module: str, name: str):
        if (module, name) == ("_codecs", "encode"):
            return codecs.encode
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: a split file may only hold a list of file names"
        )


def _read_pickled_names(path: Path) -> list[Any]:
    with open(path, "rb") as fh:
        try:
            check_pickle(fh)
            names = _NamesOnlyUnpickler(fh, encoding="latin1").load()
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
            raise ValueError(f"split file {path}: {err}") from None
    if not isinstance(names, (list, tuple)):
        raise ValueError(f"split file {path}: expected a list of names, got {type(names).__name__}")
    return list(names)


def read_split_file(path: str | os.PathLike) -> list[str]:
    """Image ids listed in a split file: a pickled list (``.pickle``/``.pkl``), a JSON list, or text lines.

    Entries may be ids (``12``), names (``12.jpg``, ``00012``) or paths (``image/12.jpg``).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".pickle", ".pkl"):
        raw = _read_pickled_names(path)
    elif suffix == ".json":
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, list):
            raise ValueError(f"split file {path}: expected a JSON list of names")
    else:
        lines = path.read_text(encoding="utf-8").splitlines()
        raw = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    ids = []
    for entry in raw:
        if isinstance(entry, bytes):
            entry = entry.decode("utf-8", errors="replace")
        if isinstance(entry, bool) or not isinstance(entry, (str, int)):
            raise ValueError(f"split file {path}: entries must be names or ids, found {type(entry).__name__}")
        ids.append(id_key(os.path.splitext(os.path.basename(str(entry).replace("\\", "/")))[0]))
    return ids


def id_key(stem: str) -> str:
    """Canonical id of a file stem: ``"00012"`` and ``"12"`` are the same image."""
    return str(int(stem)) if stem.isdigit() else stem


def _sort_key(key: str) -> tuple[int, int | str]:
    return (0, int(key)) if key.isdigit() else (1, key)


def _index_folder(folder: Path, extensions: Iterable[str]) -> dict[str, str]:
    """``{id: file name}`` for the files in ``folder`` with one of ``extensions`` (first one wins)."""
    wanted = tuple(e.lower() for e in extensions)
    index: dict[str, str] = {}
    with os.scandir(folder) as entries:
        names = sorted(e.name for e in entries if e.is_file() and not e.name.startswith("."))
    for name in names:
        stem, ext = os.path.splitext(name)
        if ext.lower() in wanted:
            index.setdefault(id_key(stem), name)
    return index


# ---------------------------------------------------------------------------------------------- dataset


class MMCelebAHQDataset(Dataset):
    """Multi-Modal-CelebA-HQ in the common sample format (``label``/``sketch`` added when requested).

    Args:
        root: the release folder (holding ``image/``, ``text/``, ...).
        split: ``"train"``, ``"test"`` or ``"all"``.
        resolution: output size for image, mask and sketch (centre-crop, resize: LANCZOS for image and
            sketch, NEAREST for the mask); ``None`` keeps the stored sizes.
        with_masks, with_sketches: also return ``label`` (LongTensor [H,W]) / ``sketch`` ([1,H,W]); their
            folder must then exist (clear error otherwise). Images lacking one are left out with a warning.
        with_text: read ``text/`` (required unless False; an image without a caption file gets none).
        image_dir, text_dir, mask_dir, sketch_dir: folders, relative to ``root`` or absolute, overriding
            the usual names.
        split_file: explicit split list (pickle / JSON / text); by default ``{split}/filenames.pickle`` and
            a few other spellings are tried, then the id ranges.
        on_error: ``"skip"`` or ``"raise"`` for unreadable images (see :class:`~tedigan.data.io.BadImagePolicy`).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        resolution: int | None = 256,
        with_masks: bool = False,
        with_sketches: bool = False,
        with_text: bool = True,
        image_dir: str | os.PathLike | None = None,
        text_dir: str | os.PathLike | None = None,
        mask_dir: str | os.PathLike | None = None,
        sketch_dir: str | os.PathLike | None = None,
        split_file: str | os.PathLike | None = None,
        on_error: str = "skip",
    ):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"Multi-Modal-CelebA-HQ root {self.root} does not exist")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.split = split
        self.resolution = resolution
        self.policy = BadImagePolicy(on_error, owner=f"MMCelebAHQDataset({self.root}, {split})")

        self.image_dir = self._find_dir("image", image_dir, IMAGE_DIRS)
        self.text_dir = self._find_dir("text", text_dir, TEXT_DIRS, "with_text=False") if with_text else None
        self.mask_dir = self._find_dir("mask", mask_dir, MASK_DIRS) if with_masks else None
        self.sketch_dir = self._find_dir("sketch", sketch_dir, SKETCH_DIRS) if with_sketches else None

        self._images = _index_folder(self.image_dir, IMAGE_EXTENSIONS)
        if not self._images:
            raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {self.image_dir}")
        self._texts = _index_folder(self.text_dir, (".txt",)) if self.text_dir else {}
        self._masks = _index_folder(self.mask_dir, (".png", ".bmp", ".tif", ".tiff")) if self.mask_dir else {}
        self._sketches = _index_folder(self.sketch_dir, IMAGE_EXTENSIONS) if self.sketch_dir else {}

        self.ids = self._select_ids(self._split_ids(split_file))
        self.num_classes = NUM_MASK_CLASSES

    # ------------------------------------------------------------------------------------------ setup

    def _find_dir(
        self, what: str, given: str | os.PathLike | None, candidates: Sequence[str], opt_out: str = ""
    ) -> Path:
        if given is not None:
            path = Path(given) if Path(given).is_absolute() else self.root / given
            if not path.is_dir():
                raise FileNotFoundError(f"{what} folder {path} does not exist")
            return path
        for name in candidates:
            if (self.root / name).is_dir():
                return self.root / name
        hint = f", or pass {opt_out}" if opt_out else ""
        raise FileNotFoundError(
            f"no {what} folder under {self.root} (looked for {', '.join(candidates)}); "
            f"pass {what}_dir=...{hint}"
        )

    def _split_file_candidates(self, split: str) -> list[Path]:
        names = [
            f"{split}/filenames.pickle", f"{split}/filenames.pkl", f"{split}/filenames.txt",
            f"{split}_filenames.pickle", f"filenames_{split}.pickle", f"{split}.pickle", f"{split}.txt",
        ]  # fmt: skip
        return [self.root / n for n in names]

    def _find_split_file(self, split: str) -> Path | None:
        return next((p for p in self._split_file_candidates(split) if p.is_file()), None)

    def _split_ids(self, split_file: str | os.PathLike | None) -> list[str]:
        everything = sorted(self._images, key=_sort_key)
        if split_file is not None:
            return read_split_file(split_file)
        if self.split == "all":
            return everything
        found = self._find_split_file(self.split)
        if found is None:
            logger.warning(
                "%s: no %s split file (looked for %s); using the release's id ranges (train: 0..%d, test: rest)",
                self.root, self.split, self._split_file_candidates(self.split)[0].name, NUM_TRAIN_IDS - 1,
            )  # fmt: skip
            in_train = {k for k in everything if k.isdigit() and int(k) < NUM_TRAIN_IDS}
            return [k for k in everything if (k in in_train) == (self.split == "train")]
        ids = read_split_file(found)
        self._warn_if_swapped(ids)
        return ids

    def _warn_if_swapped(self, ids: list[str]) -> None:
        other_name = "test" if self.split == "train" else "train"
        other = self._find_split_file(other_name)
        if other is None:
            return
        n_other = len(read_split_file(other))
        train_n, test_n = (len(ids), n_other) if self.split == "train" else (n_other, len(ids))
        if train_n < test_n:
            logger.warning(
                "%s: the train split file lists fewer images (%d) than the test one (%d); the two files may "
                "be in each other's folder (see MM-CelebA-HQ-Dataset issue #6)",
                self.root, train_n, test_n,
            )  # fmt: skip

    def _select_ids(self, ids: list[str]) -> list[str]:
        ids = list(dict.fromkeys(ids))  # drop duplicates, keep order
        required = [("image", self._images)]
        required += [("mask", self._masks)] if self.mask_dir else []
        required += [("sketch", self._sketches)] if self.sketch_dir else []
        for what, index in required:
            missing = [k for k in ids if k not in index]
            if missing:
                logger.warning(
                    "%s: %d of %d %s images have no %s file (e.g. id %s); leaving them out",
                    self.root, len(missing), len(ids), self.split, what, missing[0],
                )  # fmt: skip
                ids = [k for k in ids if k in index]
        if not ids:
            raise FileNotFoundError(f"{self.root}: no usable images for split {self.split!r}")
        if self.text_dir:
            uncaptioned = sum(k not in self._texts for k in ids)
            if uncaptioned:
                logger.warning(
                    "%s: %d images have no caption file in %s", self.root, uncaptioned, self.text_dir
                )
        return ids

    # ------------------------------------------------------------------------------------------ access

    @property
    def bad_files(self) -> list[str]:
        return self.policy.bad_files

    def __len__(self) -> int:
        return len(self.ids)

    def image_path(self, index: int) -> Path:
        return self.image_dir / self._images[self.ids[index]]

    def captions_for(self, index: int) -> list[str]:
        name = self._texts.get(self.ids[index])
        if name is None:
            return []
        text = (self.text_dir / name).read_text(encoding="utf-8", errors="replace")
        return [line.strip() for line in text.splitlines() if line.strip()]

    def _key(self, index: int) -> str:
        return os.fspath(self.image_path(index))

    def _load(self, index: int) -> dict[str, Any]:
        key = self.ids[index]
        image = to_tensor(load_image(self.image_path(index)), self.resolution)
        extra = {}
        if self.mask_dir:
            extra["label"] = load_label_map(self.mask_dir / self._masks[key], self.resolution)
        if self.sketch_dir:
            extra["sketch"] = load_sketch(self.sketch_dir / self._sketches[key], self.resolution)
        return make_sample(image, self.captions_for(index), index, **extra)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.policy.fetch(index, len(self), self._load, self._key)

    def verify(self) -> list[str]:
        """Decode every image (and mask/sketch when requested); return the paths that fail."""
        bad = []
        for index in range(len(self)):
            try:
                self._load(index)
            except ImageLoadError as err:
                self.policy.record(err, self._key(index))
                bad.append(err.path)
        return bad

    def __repr__(self) -> str:
        return (
            f"MMCelebAHQDataset(root={os.fspath(self.root)!r}, split={self.split!r}, images={len(self)}, "
            f"masks={self.mask_dir is not None}, sketches={self.sketch_dir is not None})"
        )
