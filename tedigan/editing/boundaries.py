"""Attribute boundaries in W: linear read-outs of attributes and the smallest move that changes one while the
others stay (InterFaceGAN, Shen et al. CVPR 2020 / TPAMI 2020, with its conditional manipulation).

Each *row* is a linear score of a face's code, ``s(w) = n · (w − w_avg) + b``, fitted on generated faces whose
codes and labels are known (:mod:`tedigan.training.face_boundaries`): the logit of one value of an attribute
(one-vs-rest logistic regression: ``hair_color = blond``) or a kept quantity (the face-api gender logit, age in
years). An edit asks some rows to reach their ``target`` (the median score of the training faces that have that
value) and others to stay where they are; the move is the least-norm ``Δ`` with

    ``N_asked Δ = strength · max(target − s(w), 0)``  and  ``N_kept Δ = 0``

(``Δ = N⁺ r``, the pseudo-inverse of the stacked rows), so a face that already has the value barely moves, ``strength`` 1 reads as the
asked value, and the rows kept — gender and age when the hair changes — are projected out, as InterFaceGAN's
conditional manipulation does. ``Δ`` is added to the attribute's layers of the W+ code only (its *style
sites*: the layers where the attribute lives in the generator, measured when the rows were fitted; TediGAN's
attribute-specific layer mixing).

Saved as a model part: ``boundaries/model.safetensors`` (``normals`` ``[K, w_dim]``, ``offsets``, ``targets``,
``w_avg``) + ``boundaries/config.json`` (the row names, each attribute's layers and kept rows, the fit's
held-out accuracies).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from tedigan.editing.mixing import as_wplus, layer_mask

__all__ = ["AttributeBoundaries", "BoundaryError"]

#: the longest move, in multiples of the way to a value's median score: beyond it the generator leaves its
#: training distribution (strength 2 on a gain-3 attribute rendered noise on the grids)
MAX_GAIN = 4.0
#: singular values of the constraint rows below this share of the largest are one constraint counted twice
PINV_RTOL = 1e-4
CONFIG = "config.json"
WEIGHTS = "model.safetensors"


class BoundaryError(ValueError):
    """An asked attribute value has no boundary, or a boundary folder is malformed."""


@dataclass
class AttributeBoundaries:
    """Rows ``names[k]`` (``"hair_color=blond"``, ``"keep:age"``) with ``normals[k]`` ``[w_dim]``,
    ``offsets[k]`` and ``targets[k]``; ``layers[attribute]`` its style sites; ``keep[attribute]`` the rows held
    fixed while it changes (``"*"``: every other attribute's rows plus the ``keep:`` rows); ``gains`` (by
    ``"attribute=value"``, else by attribute) scale a move (measured on its layers: moving fewer layers takes a
    longer step to read as the value).

    ``value_targets[attribute]`` (``{"rows": [...], "values": {value: [target per row]}}``) moves the listed
    values, which lie along continuous statistics rather than on one side of a line — brown hair lies between
    black and blond — by setting those statistic rows (``"stat:hair_L"``...) to the value's targets (both ways,
    not only up to them); the attribute's other values move across their own boundaries."""

    names: list[str]
    normals: torch.Tensor
    offsets: torch.Tensor
    targets: torch.Tensor
    w_avg: torch.Tensor
    layers: dict[str, list[int]]
    gains: dict[str, float] = field(default_factory=dict)
    keep: dict[str, list[str]] = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    value_targets: dict[str, dict] = field(default_factory=dict)

    def __post_init__(self) -> None:
        k = len(self.names)
        if self.normals.shape[0] != k or self.offsets.shape != (k,) or self.targets.shape != (k,):
            raise BoundaryError(f"{k} row names for normals {tuple(self.normals.shape)}")

    # ------------------------------------------------------------------------------------------ queries
    @property
    def attribute_values(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for n in self.names:
            if "=" in n:
                a, v = n.split("=", 1)
                out.setdefault(a, []).append(v)
        return out

    def row(self, attribute: str, value: str) -> int:
        try:
            return self.names.index(f"{attribute}={value}")
        except ValueError:
            raise BoundaryError(f"no boundary for {attribute.replace('_', ' ')} = {value}") from None

    def covers(self, asked: Mapping[str, str]) -> bool:
        """Every asked value has a boundary."""
        return bool(asked) and all(f"{a}={v}" in self.names for a, v in asked.items())

    def layers_of(self, asked: Mapping[str, str], num_ws: int) -> list[int]:
        """The union of the asked attributes' layers (all ``num_ws`` for an attribute without its own)."""
        return sorted({i for a in asked for i in (self.layers.get(a) or range(num_ws))})

    def scores(self, w: torch.Tensor, layers: Sequence[int] | None = None) -> torch.Tensor:
        """``[B, K]`` row scores of codes ``w`` (``[B, w_dim]`` or W+ ``[B, num_ws, w_dim]``, averaged over
        ``layers`` or all)."""
        if w.ndim == 3:
            w = w[:, list(layers)].mean(1) if layers else w.mean(1)
        n = self.normals.to(w)
        return (w - self.w_avg.to(w)) @ n.T + self.offsets.to(w)

    # ------------------------------------------------------------------------------------------ the move
    def edit(
        self,
        w: torch.Tensor,
        asked: Mapping[str, str],
        strength: float = 1.0,
        layers: Sequence[int] | None = None,
        gains: bool = True,
    ) -> torch.Tensor:
        """``w`` (``[B, num_ws, w_dim]`` W+) moved so each asked value's score reaches its target
        (× ``strength`` × its measured gain; ``gains=False``: × ``strength`` alone) and the kept rows stay; on
        each attribute's own layers (or ``layers``)."""
        w = as_wplus(w, what="w")
        out = w.clone()
        for attribute, value in asked.items():
            k = self.row(attribute, value)
            sites = (
                list(layers) if layers is not None else self.layers.get(attribute) or list(range(w.shape[1]))
            )
            s = self.scores(out, sites)  # [B, K]
            measured = self.gains.get(f"{attribute}={value}", self.gains.get(attribute, 1.0))
            gain = min(float(strength) * (measured if gains else 1.0), MAX_GAIN)
            by_value = self.value_targets.get(attribute)
            if by_value is not None and value in by_value["values"]:
                moved = [self.names.index(r) for r in by_value["rows"]]
                goal = torch.tensor(by_value["values"][value], dtype=w.dtype, device=w.device)
                change = gain * (goal[None] - s[:, moved])  # [B, M]: toward the value, either way
            else:
                moved = [k]
                change = gain * (self.targets[k].to(w) - s[:, k]).clamp_min(0.0)[:, None]
            rows = [*moved, *self._kept_rows(attribute, value)]
            n = self.normals[rows].to(w)  # [R, d]
            r = torch.zeros(w.shape[0], len(rows), dtype=w.dtype, device=w.device)
            r[:, : len(moved)] = change
            # least norm, kept rows unchanged; the pseudo-inverse, because the two rows of a two-valued attribute
            # (hat / no hat) are one constraint
            delta = r @ torch.linalg.pinv(n.double(), rtol=PINV_RTOL).T.to(w)  # [B, d]
            mask = layer_mask(sites, w.shape[1], device=w.device)
            out = out + delta[:, None, :] * mask[None, :, None]
        return out

    def _kept_rows(self, attribute: str, value: str | None = None) -> list[int]:
        """Rows held fixed while ``attribute`` moves: every other row (or those ``keep[attribute]`` names),
        plus the rows ``keep["attribute=value"]`` names for that value, which may be the attribute's own (clear
        glasses hold the sunglasses score). An attribute asked earlier in the same prompt is then kept where
        its own move took it."""
        keep = self.keep.get(attribute, ["*"])
        also = set(self.keep.get(f"{attribute}={value}", [])) if value is not None else set()
        own = set(self.value_targets.get(attribute, {}).get("rows", []))
        rows = []
        for i, name in enumerate(self.names):
            owner = name.split("=", 1)[0]
            other = owner != attribute and name not in own and ("*" in keep or owner in keep or name in keep)
            if other or (name in also and name != f"{attribute}={value}"):
                rows.append(i)
        return rows

    # ------------------------------------------------------------------------------------------ files
    def save(self, folder: str | Path) -> Path:
        from safetensors.torch import save_file

        from tedigan.fs import atomic_write, atomic_write_text

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {
            "normals": self.normals.float().contiguous(),
            "offsets": self.offsets.float().contiguous(),
            "targets": self.targets.float().contiguous(),
            "w_avg": self.w_avg.float().contiguous(),
        }
        atomic_write(folder / WEIGHTS, lambda tmp: save_file(tensors, str(tmp)))
        config = {
            "names": self.names,
            "layers": self.layers,
            "gains": self.gains,
            "keep": self.keep,
            "value_targets": self.value_targets,
            "info": self.info,
        }
        atomic_write_text(folder / CONFIG, json.dumps(config, indent=1) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> AttributeBoundaries:
        from safetensors.torch import load_file

        folder = Path(folder)
        try:
            config = json.loads((folder / CONFIG).read_text())
            t = load_file(str(folder / WEIGHTS))
        except (OSError, ValueError) as err:
            raise BoundaryError(f"{folder}: not a boundaries folder ({err})") from None
        return cls(
            list(config["names"]),
            t["normals"],
            t["offsets"],
            t["targets"],
            t["w_avg"],
            {a: [int(i) for i in v] for a, v in config.get("layers", {}).items()},
            {a: float(g) for a, g in config.get("gains", {}).items()},
            dict(config.get("keep", {})),
            dict(config.get("info", {})),
            dict(config.get("value_targets", {})),
        )
