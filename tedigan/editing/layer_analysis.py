"""Layer-wise analysis: which W+ layers carry which attribute (TediGAN's attribute-specific layer control).

Xia et al., "TediGAN" (CVPR 2021) select, per attribute, the W+ layers that the text code may overwrite; the
paper chose them by inspecting style mixing (StyleGAN, Karras et al. 2019: coarse layers carry pose, shape and
eyewear, middle ones hair style and expression, fine ones colours). The selection was never released; here it
is *measured* with the attribute classifier:

1. sample ``pairs`` code pairs ``(w_A, w_B)`` from the mapping network (seeded, truncated);
2. for every layer group ``g`` build ``w_A`` with the layers of ``g`` taken from ``w_B`` (:func:`mix`),
   synthesise, and classify;
3. per attribute ``a`` and group ``g``, the **follow rate** is the share of pairs with ``pred_a(A) !=
   pred_a(B)`` whose swapped image is classified as B's value: ``P(pred_a(A ← B on g) = pred_a(B))``.
   1 means the group alone carries the attribute; ~0 means it has no say.

The attribute → layers map takes every group whose follow rate is at least ``threshold`` × the attribute's
best rate (default 0.5) and at least ``min_rate`` (default 0.1, a noise floor: swapping any layer sometimes
flips an uncertain prediction). This *relative* rule is the default because follow rates are not additive:
an attribute spread over two groups can be followed 60 % of the time from each, so "groups summing to X % of
the total effect" has no clean meaning; the rule ``"cumulative"`` (smallest set of groups whose rates add up to
``coverage`` of the attribute's total) is available for comparison. Attributes whose values never differ in
the sampled pairs (``support`` < ``min_support``) get no layers and fall back at use time.

``tedigan layer-analysis --generator DIR --classifier DIR --out DIR`` writes
``layer_map.json`` (attribute → layers, the raw matrices and every setting) and ``layer_map.png`` (heat map).
:func:`layers_for_attributes` turns the attributes a prompt names (read by the pipeline's
:class:`~tedigan.data.vocabulary.Vocabulary`) into layers: the union of theirs, or a fallback when there are
none; :func:`layers_for_prompt` reads the prompt first.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from tedigan.data.vocabulary import Vocabulary
from tedigan.editing.mixing import as_wplus, mix
from tedigan.fs import atomic_write_text
from tedigan.models.base import eval_mode
from tedigan.models.judge import judge_probs
from tedigan.models.latents import mapping_kwargs

__all__ = [
    "LayerGroup",
    "LayerMap",
    "layer_groups",
    "select_layers",
    "analyze_layers",
    "plot_heatmap",
    "top_moved_layers",
    "layers_for_attributes",
    "layers_for_prompt",
]

MAP_NAME = "layer_map.json"
PLOT_NAME = "layer_map.png"
RULES = ("relative", "cumulative")


@dataclass(frozen=True)
class LayerGroup:
    """A set of W+ layers swapped together, with a display name."""

    name: str
    layers: tuple[int, ...]


def layer_groups(num_ws: int, mode: str | Sequence[Sequence[int]] = "pairs") -> list[LayerGroup]:
    """Layer groups to swap.

    * ``"auto"``: ``"pairs"`` here; :func:`analyze_layers` takes the generator's own ``site_groups()`` first.
    * ``"pairs"``: W+ layers ``(2k, 2k+1)`` named by the resolution ``4·2^k`` they start at, the
      StyleGAN/TediGAN grouping ("layers 0-1 are 4x4"). In our StyleGAN2 synthesis ``w[2k]`` drives the
      second conv at ``4·2^k`` px and ``w[2k+1]`` that resolution's toRGB and the next up-conv.
    * ``"single"``: every layer on its own (finer, more pairs needed for the same precision).
    * a list of index lists: custom groups (may overlap).
    """
    if isinstance(mode, str):
        if mode == "auto":
            mode = "pairs"
        if mode == "pairs":
            return [
                LayerGroup(f"{4 * 2**k}px w{i}-{min(i + 1, num_ws - 1)}", tuple(range(i, min(i + 2, num_ws))))
                for k, i in enumerate(range(0, num_ws, 2))
            ]
        if mode == "single":
            return [LayerGroup(f"w{i}", (i,)) for i in range(num_ws)]
        raise ValueError(f"groups must be 'auto', 'pairs', 'single' or a list of layer lists, got {mode!r}")
    groups = []
    for g in mode:
        idx = tuple(sorted({int(i) for i in g}))
        if not idx or idx[0] < 0 or idx[-1] >= num_ws:
            raise ValueError(f"layer group {list(g)} must be non-empty indices in [0, {num_ws - 1}]")
        groups.append(LayerGroup("w" + ",".join(map(str, idx)), idx))
    if not groups:
        raise ValueError("no layer groups given")
    return groups


def select_layers(
    rates: Sequence[float | None],
    groups: Sequence[LayerGroup],
    *,
    rule: str = "relative",
    threshold: float = 0.5,
    min_rate: float = 0.1,
    coverage: float = 0.8,
) -> list[int]:
    """W+ layers of the groups chosen from one attribute's follow rates (``None``/NaN count as 0).

    ``"relative"``: groups with ``rate >= threshold * max(rates)`` and ``rate >= min_rate``.
    ``"cumulative"``: the fewest groups (highest rates first, each ``>= min_rate``) whose rates add up to
    ``coverage`` × the sum over all groups.
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    if len(rates) != len(groups):
        raise ValueError(f"{len(rates)} rates for {len(groups)} groups")
    r = [0.0 if (x is None or not math.isfinite(x)) else float(x) for x in rates]
    best = max(r, default=0.0)
    if best < min_rate:
        return []
    if rule == "relative":
        chosen = [g for g, x in zip(groups, r) if x >= threshold * best and x >= min_rate]
    else:
        total = sum(r)
        chosen, acc = [], 0.0
        for x, g in sorted(zip(r, groups), key=lambda t: -t[0]):
            if acc >= coverage * total or x < min_rate:
                break
            chosen.append(g)
            acc += x
    return sorted({i for g in chosen for i in g.layers})


class LayerMapError(ValueError):
    """A layer map file is malformed or does not fit the generator; the message says which and what to do."""


@dataclass
class LayerMap:
    """Result of :func:`analyze_layers`: the attribute → layers map plus the measurements behind it.

    ``follow_rate[a][g]``: share of pairs differing in attribute ``a`` whose swap of group ``g`` (B into A)
    is classified as B's value (``None`` where no pair differed). ``change_rate[a][g]``: share of *all* pairs
    whose prediction of ``a`` left A's value. ``support[a]``: number of pairs that differed in ``a``.
    ``confidence[a]``: the classifier's mean top softmax probability on the unswapped samples — low values
    flag generated images the classifier finds off-distribution (its rates are then less trustworthy).
    """

    attributes: list[str]
    groups: list[LayerGroup]
    follow_rate: list[list[float | None]]
    change_rate: list[list[float]]
    support: dict[str, int]
    layers: dict[str, list[int]]
    num_ws: int
    settings: dict[str, Any] = field(default_factory=dict)
    confidence: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "layers": self.layers,
            "num_ws": self.num_ws,
            "attributes": self.attributes,
            "groups": [{"name": g.name, "layers": list(g.layers)} for g in self.groups],
            "follow_rate": self.follow_rate,
            "change_rate": self.change_rate,
            "support": self.support,
            "confidence": self.confidence,
            "settings": self.settings,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LayerMap:
        """Rebuild from :meth:`to_dict`; a malformed or inconsistent map raises :class:`LayerMapError`."""
        try:
            lm = cls(
                attributes=[str(a) for a in d["attributes"]],
                groups=[LayerGroup(str(g["name"]), tuple(int(i) for i in g["layers"])) for g in d["groups"]],
                follow_rate=[list(r) for r in d["follow_rate"]],
                change_rate=[list(r) for r in d["change_rate"]],
                support={str(k): int(v) for k, v in dict(d["support"]).items()},
                layers={str(k): [int(i) for i in v] for k, v in dict(d["layers"]).items()},
                num_ws=int(d["num_ws"]),
                settings=dict(d.get("settings", {})),
                confidence=dict(d.get("confidence", {})),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise LayerMapError(f"malformed layer map ({type(err).__name__}: {err})") from None
        if lm.num_ws < 1:
            raise LayerMapError(f"malformed layer map: num_ws is {lm.num_ws}")
        for name, layers in [*lm.layers.items(), *((g.name, list(g.layers)) for g in lm.groups)]:
            bad = [i for i in layers if not 0 <= i < lm.num_ws]
            if bad:
                raise LayerMapError(f"layer map entry {name!r} names layers {bad} outside 0..{lm.num_ws - 1}")
        if len(lm.follow_rate) != len(lm.attributes) or len(lm.change_rate) != len(lm.attributes):
            raise LayerMapError("malformed layer map: one follow/change-rate row per attribute expected")
        return lm

    def save(self, folder: str | Path, plot: bool = True) -> Path:
        """Write ``layer_map.json`` (and ``layer_map.png`` when ``plot``) into ``folder``; returns the json."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if plot:
            plot_heatmap(self, folder / PLOT_NAME)
        # the json last and atomically: its presence means the analysis finished
        return atomic_write_text(folder / MAP_NAME, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> LayerMap:
        """From ``layer_map.json`` or the folder holding it."""
        path = Path(path)
        if path.is_dir():
            path = path / MAP_NAME
        if not path.is_file():
            raise FileNotFoundError(f"no {MAP_NAME} at {path}: run tedigan layer-analysis")
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise LayerMapError(f"{path} is not valid JSON ({err}): re-run the layer analysis") from None
        if not isinstance(data, dict):
            raise LayerMapError(f"{path} must hold a JSON object: re-run the layer analysis")
        try:
            return cls.from_dict(data)
        except LayerMapError as err:
            raise LayerMapError(f"{path}: {err}: re-run the layer analysis") from None

    def reselect(self, **kwargs: Any) -> LayerMap:
        """The same measurements with another selection rule (see :func:`select_layers`)."""
        sel = {**{k: self.settings[k] for k in _SELECT_KEYS if k in self.settings}, **kwargs}
        min_support = int(sel.pop("min_support", 1))
        layers = {
            a: select_layers(self.follow_rate[i], self.groups, **sel)
            if self.support[a] >= min_support
            else []
            for i, a in enumerate(self.attributes)
        }
        return LayerMap(
            self.attributes,
            self.groups,
            self.follow_rate,
            self.change_rate,
            self.support,
            layers,
            self.num_ws,
            {**self.settings, **sel, "min_support": min_support},
            self.confidence,
        )


_SELECT_KEYS = ("rule", "threshold", "min_rate", "coverage", "min_support")


def _classify(
    classifier: Any, images: torch.Tensor, attributes: Sequence[str] | None
) -> tuple[list[str], torch.Tensor]:
    out = judge_probs(classifier, images)  # any Judge (or a callable returning {attribute: logits})
    names = list(out) if attributes is None else list(attributes)
    missing = [a for a in names if a not in out]
    if missing:
        raise ValueError(f"the judge has no head for {missing}; it has {list(out)}")
    probs = [out[a].float().max(dim=1) for a in names]
    pred = torch.stack([p.indices for p in probs], dim=1).cpu()
    conf = torch.stack([p.values for p in probs], dim=1).cpu()
    return names, pred, conf


@torch.no_grad()
def analyze_layers(
    G: Any,
    classifier: Any,
    *,
    pairs: int = 200,
    seed: int = 0,
    batch_size: int = 16,
    groups: str | Sequence[Sequence[int]] = "auto",
    truncation_psi: float = 0.7,
    noise_mode: str = "const",
    attributes: Sequence[str] | None = None,
    rule: str = "relative",
    threshold: float = 0.5,
    min_rate: float = 0.1,
    coverage: float = 0.8,
    min_support: int = 5,
    device: torch.device | str | None = None,
    progress: bool = False,
    codes: torch.Tensor | None = None,
) -> LayerMap:
    """Measure follow rates [attributes × groups] and select each attribute's layers (see module docs).

    ``codes``: a pool of W+ codes ``[N, num_ws, w_dim]`` to draw the pairs from (seeded, with replacement),
    e.g. the inverted codes ``E(x)`` of held-out images — the codes editing works on, and images the
    classifier reads more reliably than random samples. Default: ``G.mapping`` of seeded ``z`` (truncated).

    ``G``: ``mapping(z, truncation_psi=...) -> ws`` and ``synthesis(ws, noise_mode=...) -> images`` in
    [-1, 1] (clamped before classification); ``classifier(images) -> {attribute: logits}``. Both run in eval
    mode (restored afterwards). ``noise_mode="const"`` keeps per-pixel noise out of the comparison. Costs
    ``pairs × (2 + len(groups))`` syntheses and classifications.
    """
    if pairs < 1 or batch_size < 1:
        raise ValueError("pairs and batch_size must be >= 1")
    num_ws = int(G.num_ws)
    if groups == "auto" and hasattr(G, "site_groups"):  # the generator's own blocks (e.g. MobileStyleGAN's)
        group_list = [LayerGroup(name, tuple(idx)) for name, idx in G.site_groups()]
    else:
        group_list = layer_groups(num_ws, groups)
    if device is None:
        device = (
            next((p.device for p in G.parameters()), torch.device("cpu"))
            if hasattr(G, "parameters")
            else "cpu"
        )
    gen = torch.Generator().manual_seed(int(seed))
    if codes is not None:
        codes = as_wplus(codes, what="codes").detach()
        if codes.shape[1] != num_ws or codes.shape[0] < 2:
            raise ValueError(f"codes must be [N >= 2, {num_ws}, w_dim], got {tuple(codes.shape)}")
        idx_a = torch.randint(codes.shape[0], (pairs,), generator=gen)
        idx_b = (idx_a + torch.randint(1, codes.shape[0], (pairs,), generator=gen)) % codes.shape[0]
    else:
        z_a = torch.randn(pairs, int(G.z_dim), generator=gen)
        z_b = torch.randn(pairs, int(G.z_dim), generator=gen)
    map_kwargs = mapping_kwargs(G)

    def pair_codes(start: int) -> tuple[torch.Tensor, torch.Tensor]:
        if codes is not None:
            sl = slice(start, start + batch_size)
            return codes[idx_a[sl]].to(device), codes[idx_b[sl]].to(device)
        za, zb = z_a[start : start + batch_size].to(device), z_b[start : start + batch_size].to(device)
        return (
            G.mapping(za, truncation_psi=truncation_psi, **map_kwargs),
            G.mapping(zb, truncation_psi=truncation_psi, **map_kwargs),
        )

    def predict(ws: torch.Tensor) -> tuple[list[str], torch.Tensor, torch.Tensor]:
        img = G.synthesis(ws, noise_mode=noise_mode).clamp(-1, 1)
        return _classify(classifier, img, attributes)

    names: list[str] = []
    differ = follow = change = conf_sum = None
    with eval_mode(G, classifier):
        bar = tqdm(total=pairs, desc="layer analysis", unit="pair", disable=not progress)
        for start in range(0, pairs, batch_size):
            ws_a, ws_b = pair_codes(start)
            names, pa, ca = predict(ws_a)
            _, pb, cb = predict(ws_b)
            if differ is None:
                differ = torch.zeros(len(names), dtype=torch.long)
                conf_sum = torch.zeros(len(names), dtype=torch.float64)
                follow = torch.zeros(len(names), len(group_list), dtype=torch.long)
                change = torch.zeros(len(names), len(group_list), dtype=torch.long)
            conf_sum += ca.double().sum(0) + cb.double().sum(0)
            diff = pa != pb  # [b, A]
            differ += diff.sum(0)
            for j, g in enumerate(group_list):
                _, pm, _ = predict(mix(ws_b, ws_a, g.layers))
                follow[:, j] += ((pm == pb) & diff).sum(0)
                change[:, j] += (pm != pa).sum(0)
            bar.update(ws_a.shape[0])
        bar.close()
    follow_rate = [
        [follow[i, j].item() / differ[i].item() if differ[i] > 0 else None for j in range(len(group_list))]
        for i in range(len(names))
    ]
    change_rate = [[change[i, j].item() / pairs for j in range(len(group_list))] for i in range(len(names))]
    support = {a: int(differ[i]) for i, a in enumerate(names)}
    confidence = {a: round(float(conf_sum[i]) / (2 * pairs), 4) for i, a in enumerate(names)}
    settings = {
        "pairs": pairs,
        "seed": seed,
        "truncation_psi": truncation_psi if codes is None else None,
        "codes": "given" if codes is not None else "mapping",
        "noise_mode": noise_mode,
        "groups": groups if isinstance(groups, str) else [list(g.layers) for g in group_list],
        "rule": rule,
        "threshold": threshold,
        "min_rate": min_rate,
        "coverage": coverage,
        "min_support": min_support,
    }
    result = LayerMap(names, group_list, follow_rate, change_rate, support, {}, num_ws, settings, confidence)
    return result.reselect()


def plot_heatmap(layer_map: LayerMap, path: str | Path, title: str | None = None) -> Path:
    """Heat map of follow rates (attributes × layer groups); selected cells outlined. Returns ``path``."""
    import numpy as np
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    m = np.array(
        [[np.nan if x is None else x for x in row] for row in layer_map.follow_rate], dtype=float
    ).reshape(len(layer_map.attributes), len(layer_map.groups))
    n_a, n_g = m.shape
    fig = Figure(figsize=(2.5 + 0.85 * n_g, 1.6 + 0.5 * max(n_a, 1)), dpi=120)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(np.ma.masked_invalid(m), vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    ax.set_xticks(range(n_g), [g.name for g in layer_map.groups], rotation=45, ha="right", fontsize=8)
    ax.set_yticks(
        range(n_a), [f"{a} (n={layer_map.support.get(a, 0)})" for a in layer_map.attributes], fontsize=8
    )
    ax.set_xlabel("W+ layer group swapped from B into A")
    for i, a in enumerate(layer_map.attributes):
        chosen = set(layer_map.layers.get(a, []))
        for j, g in enumerate(layer_map.groups):
            v = m[i, j]
            text = "-" if np.isnan(v) else f"{v:.2f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color="white" if v < 0.6 else "black")
            if chosen and set(g.layers) <= chosen:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="follow rate")
    s = layer_map.settings
    ax.set_title(
        title
        or f"P(prediction follows B) — {s.get('pairs', '?')} pairs, psi={s.get('truncation_psi', '?')}, "
        f"{s.get('rule', 'relative')} rule (red: selected)",
        fontsize=9,
    )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def top_moved_layers(w_text: torch.Tensor, w_ref: torch.Tensor, k: int) -> list[int]:
    """The ``k`` W+ layers the text code moves most from ``w_ref`` (``w_avg [w_dim]`` or an image code
    ``[B, num_ws, w_dim]``/``[num_ws, w_dim]``), by ``‖w_text − w_ref‖`` per layer averaged over the batch."""
    w_text = as_wplus(w_text, what="w_text")
    if w_ref.ndim == 1:
        w_ref = w_ref.reshape(1, 1, -1)
    elif w_ref.ndim == 2:
        w_ref = w_ref.unsqueeze(0)
    delta = (w_text - w_ref.to(w_text)).norm(dim=-1).mean(dim=0)  # [num_ws]
    k = max(0, min(int(k), delta.numel()))
    return sorted(torch.topk(delta, k).indices.tolist())


def layers_for_attributes(
    attributes: Iterable[str],
    layer_map: LayerMap | Mapping[str, Sequence[int]],
    fallback: Sequence[int] | Callable[[], Sequence[int]] | None = None,
    *,
    w_text: torch.Tensor | None = None,
    w_ref: torch.Tensor | None = None,
    top_k: int = 4,
) -> list[int]:
    """W+ layers to take from the text code for ``attributes`` (those a prompt names, as the pipeline's
    vocabulary read them): the union of their layers in ``layer_map`` (attributes the map has no layers for
    add none).

    When that is empty (nothing named, or only unmapped attributes) the fallback decides: a layer list, or a
    callable returning one; with ``fallback=None`` and ``w_text``/``w_ref`` given, the ``top_k`` layers the text
    code moves most (:func:`top_moved_layers`); otherwise all layers.
    """
    attributes = list(attributes)
    if isinstance(layer_map, LayerMap):
        table, num_ws = layer_map.layers, layer_map.num_ws
    else:
        table = dict(layer_map.get("layers", layer_map)) if isinstance(layer_map, Mapping) else {}
        num_ws = layer_map.get("num_ws") if isinstance(layer_map, Mapping) else None
        if not isinstance(num_ws, int):
            num_ws = None
    chosen = sorted({int(i) for a in attributes for i in table.get(a, [])})
    if chosen:
        return chosen
    if callable(fallback):
        return sorted({int(i) for i in fallback()})
    if fallback is not None:
        return sorted({int(i) for i in fallback})
    if w_text is not None and w_ref is not None:
        return top_moved_layers(w_text, w_ref, top_k)
    if num_ws is None and w_text is not None:
        num_ws = as_wplus(w_text).shape[1]
    if num_ws is None:
        raise ValueError(
            f"none of the attributes {attributes} is in the layer map, and no fallback was given"
        )
    return list(range(num_ws))


def layers_for_prompt(
    text: str,
    layer_map: LayerMap | Mapping[str, Sequence[int]],
    fallback: Sequence[int] | Callable[[], Sequence[int]] | None = None,
    *,
    vocabulary: Vocabulary | None = None,
    w_text: torch.Tensor | None = None,
    w_ref: torch.Tensor | None = None,
    top_k: int = 4,
) -> list[int]:
    """:func:`layers_for_attributes` of the attributes ``vocabulary`` reads in ``text`` (no vocabulary reads
    nothing). A caller that has read the prompt already passes its attributes there instead."""
    named = vocabulary.read(text).values if vocabulary is not None else {}
    return layers_for_attributes(named, layer_map, fallback, w_text=w_text, w_ref=w_ref, top_k=top_k)


# -------------------------------------------------------------------------- codes of real images


@torch.no_grad()
def inverted_codes(
    encoder: str, kind: str, root: str, split: str, resolution: int, device: torch.device
) -> torch.Tensor:
    """E(x) of every image of a data set split, ``[N, num_ws, w_dim]`` on the CPU."""
    from tedigan.data import collate_samples, make_dataset
    from tedigan.models.encoder import Encoder

    E = Encoder.from_pretrained(encoder, map_location=device).eval()
    ds = make_dataset(kind, root, split=split, resolution=resolution)
    loader = torch.utils.data.DataLoader(ds, batch_size=100, collate_fn=collate_samples)
    return torch.cat([E(batch["image"].to(device)).cpu() for batch in loader])
