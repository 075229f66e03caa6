"""The text stage's cache of training pairs: E(x) of every image and the sentence embedding of every caption.

With a frozen text backbone nothing upstream of the head changes during training, so both are computed once
and kept as safetensors files under the stage's ``cache_dir``: E(x) keyed by the encoder's weights and the
data, the embeddings by the backbone settings and the captions, so either survives a change of the other.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from tedigan.config import ConfigError, TextStageConfig
from tedigan.data import collate_samples
from tedigan.fs import atomic_write
from tedigan.models.encoder import Encoder
from tedigan.models.text_encoder import TextEncoder

__all__ = [
    "CACHE_VERSION",
    "CachedPairs",
    "PairCache",
    "codes_cache_key",
    "file_sha1",
    "prepare_cache",
    "text_cache_key",
]

CACHE_VERSION = 1


class PairCache:
    """Cached codes and captions of one split.

    ``codes [N, num_ws, w_dim]`` (E(x) per image), ``captions`` (unique caption strings),
    ``embeddings [U, embed_dim]`` (sentence embeddings of ``captions``; None when the backbone trains),
    and one row per (image, caption) pair: ``pair_image [P]``, ``pair_caption [P]`` (into ``captions``),
    ``caption_rank [P]`` (the caption's position among its image's captions).

    On disk (``cache_dir``) a split is two independently keyed parts, so that retraining the image encoder
    keeps the (slow) sentence embeddings and changing the text backbone keeps E(x):
    ``<split>.codes.safetensors`` (key: encoder weights + data) and ``<split>.text.safetensors`` (key: backbone
    settings + the captions), each written atomically with its key and description in the safetensors header.
    """

    def __init__(
        self,
        codes: torch.Tensor,
        captions: list[str],
        embeddings: torch.Tensor | None,
        pair_image: torch.Tensor,
        pair_caption: torch.Tensor,
        caption_rank: torch.Tensor,
    ) -> None:
        self.codes, self.captions, self.embeddings = codes, captions, embeddings
        self.pair_image, self.pair_caption, self.caption_rank = pair_image, pair_caption, caption_rank

    @property
    def num_pairs(self) -> int:
        return len(self.pair_image)

    def pair_texts(self) -> list[str]:
        return [self.captions[i] for i in self.pair_caption.tolist()]

    @classmethod
    def load(
        cls, cache_dir: str | Path, name: str, codes_key: str | None = None, text_key: str | None = None
    ) -> PairCache | None:
        """The cached split ``name`` (None when its codes part is missing or has another key); embeddings are
        None when the text part is missing or has another key (``None`` keys accept any)."""
        part = _load_part(Path(cache_dir) / f"{name}.codes.safetensors", codes_key)
        if part is None:
            return None
        t, meta = part
        text = _load_part(Path(cache_dir) / f"{name}.text.safetensors", text_key)
        if text is not None and text[1].get("captions_sha1") != _sha1_strings(meta["captions"]):
            text = None
        return cls(
            t["codes"],
            meta["captions"],
            text[0]["embeddings"] if text is not None else None,
            t["pair_image"],
            t["pair_caption"],
            t["caption_rank"],
        )

    def save_codes(self, cache_dir: str | Path, name: str, key: str, **meta: Any) -> None:
        tensors = {
            "codes": self.codes.contiguous(),
            "pair_image": self.pair_image,
            "pair_caption": self.pair_caption,
            "caption_rank": self.caption_rank,
        }
        _save_part(
            Path(cache_dir) / f"{name}.codes.safetensors",
            tensors,
            {**meta, "key": key, "captions": self.captions},
        )

    def save_text(self, cache_dir: str | Path, name: str, key: str, **meta: Any) -> None:
        if self.embeddings is None:
            raise ValueError("no embeddings to save")
        meta = {**meta, "key": key, "captions_sha1": _sha1_strings(self.captions)}
        _save_part(
            Path(cache_dir) / f"{name}.text.safetensors", {"embeddings": self.embeddings.contiguous()}, meta
        )


def _save_part(path: Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """One cache part: tensors, with its key and description in the safetensors header (atomic)."""
    header = {"meta": json.dumps(meta)}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=header))


def _load_part(path: Path, key: str | None) -> tuple[dict[str, torch.Tensor], dict] | None:
    if not path.is_file():
        return None
    with safe_open(str(path), "pt") as fh:
        meta = json.loads((fh.metadata() or {}).get("meta", "{}"))
        if key is not None and meta.get("key") != key:
            return None
        return {k: fh.get_tensor(k) for k in fh.keys()}, meta  # noqa: SIM118 (safe_open is not iterable)


def file_sha1(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _sha1_strings(items: list[str]) -> str:
    return hashlib.sha1(json.dumps(items).encode()).hexdigest()


def _digest(parts: Any) -> str:
    return hashlib.sha1(json.dumps({"version": CACHE_VERSION, **parts}, sort_keys=True).encode()).hexdigest()


def codes_cache_key(encoder_sha: str, data: Any, split: str, num: int) -> str:
    return _digest({"encoder": encoder_sha, "data": [data.kind, str(Path(data.root).resolve()), split, num]})


def text_cache_key(T: TextEncoder) -> str:
    from tedigan.assets import text_model_path

    c = T.config
    return _digest(
        {
            "backbone": text_model_path(c.backbone),
            "text": [c.max_length, T.effective_max_length, c.pooling, c.normalize, c.embed_dim],
        }
    )


@torch.no_grad()
def compute_codes(
    E: Encoder,
    dataset: Dataset,
    num: int,
    batch_size: int = 64,
    num_workers: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = True,
    desc: str = "cache",
) -> PairCache:
    """E(x) of the first ``num`` images and their captions (a :class:`PairCache` without embeddings)."""
    loader = DataLoader(
        Subset(dataset, range(num)),
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=collate_samples,
    )
    E.eval()
    codes, per_image = [], []
    for batch in tqdm(loader, desc=f"{desc}: E(x)", disable=not progress, leave=False):
        codes.append(E(batch["image"].to(device)).float().cpu())
        per_image += [[c for c in caps if c.strip()] for caps in batch["captions"]]
    index: dict[str, int] = {}
    pair_image, pair_caption, caption_rank = [], [], []
    for i, caps in enumerate(per_image):
        for r, c in enumerate(caps):
            pair_image.append(i)
            pair_caption.append(index.setdefault(c, len(index)))
            caption_rank.append(r)
    if not index:
        raise ConfigError(
            "the text stage needs captions: this data set has none (avatars carry 10 per image; image folders "
            "read captions.jsonl)"
        )
    return PairCache(
        torch.cat(codes),
        list(index),
        None,
        torch.tensor(pair_image, dtype=torch.long),
        torch.tensor(pair_caption, dtype=torch.long),
        torch.tensor(caption_rank, dtype=torch.long),
    )


def prepare_cache(
    cfg: TextStageConfig,
    name: str,
    split: str,
    dataset: Dataset,
    num: int,
    E: Encoder,
    T: TextEncoder,
    encoder_sha: str,
    accelerator: Any,
) -> tuple[PairCache, dict[str, bool]]:
    """Load split ``name`` from the cache, computing (on the main process) and saving what is missing."""
    cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else Path(cfg.train.output_dir) / "cache"
    frozen = T.config.freeze_backbone
    ckey, tkey = codes_cache_key(encoder_sha, cfg.data, split, num), text_cache_key(T)
    cache = PairCache.load(cache_dir, name, ckey, tkey)
    built = {"codes": cache is None, "text": frozen and (cache is None or cache.embeddings is None)}
    if accelerator.is_main_process and (built["codes"] or built["text"]):
        device = accelerator.device
        if cache is None:
            cache = compute_codes(
                E, dataset, num, cfg.code_batch_size, cfg.data.num_workers, device, desc=f"cache {name}"
            )
            cache.save_codes(
                cache_dir, name, ckey, split=split, num_images=num, encoder=str(cfg.encoder_path)
            )
            old = PairCache.load(cache_dir, name, ckey, tkey)  # embeddings of the same captions survive
            cache.embeddings = old.embeddings if old is not None else None
            built["text"] = frozen and cache.embeddings is None
        if built["text"]:
            cache.embeddings = T.embed_texts(
                cache.captions, cfg.embed_batch_size, progress=True, desc=f"cache {name}: text"
            )
            cache.save_text(cache_dir, name, tkey, backbone=T.config.backbone or "default")
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        cache = PairCache.load(cache_dir, name, ckey, tkey)
    return cache, built


class CachedPairs(Dataset):
    """(caption, image) pairs over a :class:`PairCache`: ``{"code", "image_id"}`` plus ``"embedding"`` (frozen
    backbone) or ``"text"`` (a backbone that trains)."""

    def __init__(self, cache: PairCache, use_embeddings: bool) -> None:
        if use_embeddings and cache.embeddings is None:
            raise ValueError("this cache holds no sentence embeddings")
        self.cache, self.use_embeddings = cache, use_embeddings

    def __len__(self) -> int:
        return self.cache.num_pairs

    def __getitem__(self, i: int) -> dict[str, Any]:
        c = self.cache
        img, cap = int(c.pair_image[i]), int(c.pair_caption[i])
        item: dict[str, Any] = {"code": c.codes[img], "image_id": img}
        if self.use_embeddings:
            item["embedding"] = c.embeddings[cap]
        else:
            item["text"] = c.captions[cap]
        return item
