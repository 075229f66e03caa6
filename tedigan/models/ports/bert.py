"""A frozen BERT encoder and its fast tokenizer without importing ``transformers`` (start-up: ~0.1 s, not ~3 s).

The text encoder's default backbone is a frozen BERT-type sentence model (MiniLM-L6, 6 layers, 384 wide);
inference needs only the encoder stack — embeddings, post-LayerNorm self-attention blocks with GELU MLPs —
which fits in a screen of torch, and the tokenizer, which the ``tokenizers`` library reads straight from the
model's ``tokenizer.json`` (the same file ``transformers``' fast tokenizer wraps, so the ids are identical).
:func:`load_bert` is used for frozen local BERT folders; anything else (another architecture, a hub id, a
fine-tuned backbone) goes through ``transformers`` as before. Outputs equal ``transformers.BertModel``'s to
float rounding (``tests/test_text.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BertEncoder", "FastTokenizer", "is_light_bert", "load_bert"]


def is_light_bert(folder: str | Path) -> bool:
    """Whether ``folder`` holds a BERT model this module reads (config, safetensors, tokenizer.json)."""
    folder = Path(folder)
    files = ("config.json", "model.safetensors", "tokenizer.json")
    if not all((folder / f).is_file() for f in files):
        return False
    try:
        cfg = json.loads((folder / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return (
        cfg.get("model_type") == "bert"
        and cfg.get("hidden_act", "gelu") == "gelu"
        and cfg.get("position_embedding_type", "absolute") == "absolute"
    )


class _Layer(nn.Module):
    def __init__(self, c: SimpleNamespace) -> None:
        super().__init__()
        h = c.hidden_size
        self.heads = c.num_attention_heads
        self.query, self.key, self.value = nn.Linear(h, h), nn.Linear(h, h), nn.Linear(h, h)
        self.attn_out, self.attn_norm = nn.Linear(h, h), nn.LayerNorm(h, eps=c.layer_norm_eps)
        self.mlp_in, self.mlp_out = nn.Linear(h, c.intermediate_size), nn.Linear(c.intermediate_size, h)
        self.out_norm = nn.LayerNorm(h, eps=c.layer_norm_eps)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, n, h = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, n, self.heads, h // self.heads).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=bias).transpose(1, 2).reshape(b, n, h)
        x = self.attn_norm(x + self.attn_out(a))
        return self.out_norm(x + self.mlp_out(F.gelu(self.mlp_in(x))))


class BertEncoder(nn.Module):
    """BERT's embeddings + encoder stack (no pooler), inference only: ``forward(input_ids, attention_mask,
    token_type_ids)`` → an object with ``last_hidden_state [B, N, hidden]``, as ``transformers`` returns."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        c = SimpleNamespace(**{"layer_norm_eps": 1e-12, "type_vocab_size": 2, **config})
        self.config = c
        h = c.hidden_size
        self.word = nn.Embedding(c.vocab_size, h)
        self.position = nn.Embedding(c.max_position_embeddings, h)
        self.token_type = nn.Embedding(c.type_vocab_size, h)
        self.norm = nn.LayerNorm(h, eps=c.layer_norm_eps)
        self.layers = nn.ModuleList(_Layer(c) for _ in range(c.num_hidden_layers))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> SimpleNamespace:
        n = input_ids.shape[1]
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        pos = torch.arange(n, device=input_ids.device)
        x = self.norm(self.word(input_ids) + self.position(pos)[None] + self.token_type(token_type_ids))
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        # additive mask over the keys, as BERT does (finfo.min on padding)
        bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        for layer in self.layers:
            x = layer(x, bias)
        return SimpleNamespace(last_hidden_state=x)

    def load_hf_state(self, state: dict[str, torch.Tensor]) -> None:
        """Weights named as ``transformers.BertModel`` names them (``embeddings.*``, ``encoder.layer.i.*``)."""
        names = {
            "word.weight": "embeddings.word_embeddings.weight",
            "position.weight": "embeddings.position_embeddings.weight",
            "token_type.weight": "embeddings.token_type_embeddings.weight",
            "norm.weight": "embeddings.LayerNorm.weight",
            "norm.bias": "embeddings.LayerNorm.bias",
        }
        parts = {
            "query": "attention.self.query",
            "key": "attention.self.key",
            "value": "attention.self.value",
            "attn_out": "attention.output.dense",
            "attn_norm": "attention.output.LayerNorm",
            "mlp_in": "intermediate.dense",
            "mlp_out": "output.dense",
            "out_norm": "output.LayerNorm",
        }
        for i in range(len(self.layers)):
            for ours, theirs in parts.items():
                for p in ("weight", "bias"):
                    names[f"layers.{i}.{ours}.{p}"] = f"encoder.layer.{i}.{theirs}.{p}"
        prefix = "bert." if any(k.startswith("bert.") for k in state) else ""
        missing = [v for v in names.values() if prefix + v not in state]
        if missing:
            raise ValueError(f"BERT weights lack {missing[:3]} (and {max(0, len(missing) - 3)} more)")
        self.load_state_dict({ours: state[prefix + theirs] for ours, theirs in names.items()}, strict=True)


class FastTokenizer:
    """The model's ``tokenizer.json`` through the ``tokenizers`` library, called like a ``transformers``
    fast tokenizer: ``tok(texts, padding=True, truncation=True, max_length=N, return_tensors="pt")``."""

    def __init__(self, folder: str | Path) -> None:
        from tokenizers import Tokenizer

        folder = Path(folder)
        self.folder = folder
        self._tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        cfg_file = folder / "tokenizer_config.json"
        cfg = json.loads(cfg_file.read_text()) if cfg_file.is_file() else {}
        self.model_max_length = int(cfg.get("model_max_length", 512))
        pad = cfg.get("pad_token", "[PAD]")
        pad = pad.get("content", "[PAD]") if isinstance(pad, dict) else pad
        self.pad_token, self.pad_token_id = pad, self._tok.token_to_id(pad) or 0

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size()

    def save_pretrained(self, folder: str | Path) -> None:
        """Copy the tokenizer's files (``transformers.AutoTokenizer`` reads the copy)."""
        import shutil

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        names = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
        for name in names:
            if (self.folder / name).is_file():
                shutil.copyfile(self.folder / name, folder / name)

    def __call__(
        self,
        texts: list[str],
        padding: bool = False,
        truncation: bool = False,
        max_length: int | None = None,
        return_tensors: str | None = None,
        verbose: bool = True,
    ) -> dict[str, Any]:
        tok = self._tok
        if truncation:
            tok.enable_truncation(max_length or self.model_max_length)
        else:
            tok.no_truncation()
        if padding:
            tok.enable_padding(pad_id=self.pad_token_id, pad_token=self.pad_token)
        else:
            tok.no_padding()
        enc = tok.encode_batch(list(texts))
        out = {
            "input_ids": [e.ids for e in enc],
            "token_type_ids": [e.type_ids for e in enc],
            "attention_mask": [e.attention_mask for e in enc],
        }
        if return_tensors == "pt":
            return {k: torch.tensor(v, dtype=torch.long) for k, v in out.items()}
        return out


def load_bert(folder: str | Path) -> tuple[FastTokenizer, BertEncoder]:
    """``(tokenizer, encoder)`` of a local BERT folder (see :func:`is_light_bert`), eval mode, frozen."""
    from safetensors.torch import load_file

    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text())
    model = BertEncoder(config)
    model.load_hf_state(load_file(str(folder / "model.safetensors")))
    return FastTokenizer(folder), model.eval().requires_grad_(False)
