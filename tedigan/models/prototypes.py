"""Value prototypes: the mean text code of every attribute value, computed by the text stage after training.

A prototype of ``hair_color=blond`` is the mean W+ code the text encoder gives the training captions that the
vocabulary reads as naming blond hair. Captions name a random subset of an image's attributes, so the
other attributes average out of each mean, and the difference of two prototypes of one attribute is the text
encoder's own direction from one value to the other.

The text stage computes them after training (``OUT/text/prototypes.safetensors``) and the pipeline folder
carries them; the ``"prototype"`` edit mode moves codes between them
(:func:`tedigan.editing.prototypes.shift_to_prototypes`). They live with the models, below training and
editing, because both use them: a trained artefact of the text encoder, like its weights.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

__all__ = ["PROTOTYPES_NAME", "Prototypes", "PrototypeError", "value_prototypes"]

PROTOTYPES_NAME = "prototypes.safetensors"


class PrototypeError(ValueError):
    """A prototype file that cannot be read, or a value it has no prototype for."""


class Prototypes:
    """``codes[attribute][value]``: a ``[num_ws, w_dim]`` mean text code; ``counts`` the captions behind it;
    ``gain`` the step of the prototype edit at strength 1."""

    def __init__(
        self,
        codes: Mapping[str, Mapping[str, torch.Tensor]],
        counts: Mapping[str, Mapping[str, int]] | None = None,
        gain: float = 1.0,
    ) -> None:
        self.codes = {a: {v: c.detach().float().cpu() for v, c in vals.items()} for a, vals in codes.items()}
        self.counts = {a: dict(vals) for a, vals in (counts or {}).items()}
        self.gain = float(gain)
        shapes = {tuple(c.shape) for vals in self.codes.values() for c in vals.values()}
        if len(shapes) > 1 or any(len(s) != 2 for s in shapes):
            raise PrototypeError(f"prototypes must all be [num_ws, w_dim] codes, got shapes {sorted(shapes)}")

    @property
    def num_ws(self) -> int | None:
        for vals in self.codes.values():
            for c in vals.values():
                return int(c.shape[0])
        return None

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        if path.suffix != ".safetensors":
            path = path / PROTOTYPES_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {f"{a}/{v}": c.contiguous() for a, vals in self.codes.items() for v, c in vals.items()}
        save_file(tensors, str(path), metadata={"counts": json.dumps(self.counts), "gain": repr(self.gain)})
        return path

    @classmethod
    def load(cls, path: str | Path) -> Prototypes:
        path = Path(path)
        if path.is_dir():
            path = path / PROTOTYPES_NAME
        try:
            with safe_open(str(path), "pt") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
            counts = json.loads(meta.get("counts", "{}"))
            gain = float(meta.get("gain", "1.0"))
        except FileNotFoundError:
            raise
        except Exception as err:  # safetensors raises its own error types for a damaged file
            raise PrototypeError(f"{path} is not a prototype file ({type(err).__name__}: {err})") from None
        codes: dict[str, dict[str, torch.Tensor]] = {}
        for key, c in tensors.items():
            a, _, v = key.partition("/")
            codes.setdefault(a, {})[v] = c
        return cls(codes, counts, gain)


def value_prototypes(
    text_codes: torch.Tensor, captions: Sequence[str], vocabulary, gain: float = 1.0, min_count: int = 1
) -> Prototypes:
    """Prototypes from the text codes ``[N, num_ws, w_dim]`` of ``captions``: each value's mean over the
    captions that ``vocabulary`` reads as naming it (values no caption names get none)."""
    if len(captions) != len(text_codes):
        raise ValueError(f"{len(captions)} captions for {len(text_codes)} text codes")
    groups: dict[str, dict[str, list[int]]] = {}
    for i, caption in enumerate(captions):
        for a, v in vocabulary.read(caption).values.items():
            groups.setdefault(a, {}).setdefault(v, []).append(i)
    codes = {
        a: {v: text_codes[ids].float().mean(0) for v, ids in sorted(vals.items()) if len(ids) >= min_count}
        for a, vals in sorted(groups.items())
    }
    counts = {a: {v: len(ids) for v, ids in sorted(vals.items())} for a, vals in sorted(groups.items())}
    return Prototypes({a: vals for a, vals in codes.items() if len(vals) >= 2}, counts, gain)
