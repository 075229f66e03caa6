"""Linear separability of a latent space (Karras et al., "A Style-Based Generator Architecture for GANs",
CVPR 2019, section 4.2).

Sample z, map to w, generate, and label every image with the attribute classifier. Per binary attribute,
keep the most confident half of the samples, fit a linear SVM (``sklearn.svm.LinearSVC``) on the latent
codes against the classifier's labels, and measure the conditional entropy ``H(Y|X)`` of the classifier
label Y given the SVM side X (on the same samples, as in the paper). The score is ``exp(sum_i H(Y_i|X_i))``
with H in nats, identical to the paper's ``2 ** sum`` in bits: 1 is perfectly linearly separable, each
attribute adds at most a factor 2. Lower is better.

Binary attributes from the multi-class heads of :class:`~tedigan.models.classifier.AttributeClassifier`:

- ``mode="majority"`` (default): one problem per head, "the head's most frequent predicted value vs the
  rest". One term per attribute keeps the score comparable to the paper's one-term-per-attribute sum and
  independent of how many values a head happens to have.
- ``mode="each"``: one problem per (head, value), "value vs rest", for every value predicted at least once.

The binary posterior of "value v" is the softmax probability p(v); its label is ``p(v) >= 0.5`` and its
confidence ``max(p, 1 - p)``. When the kept half holds one class only, the label is constant and H = 0.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch

from tedigan.metrics import MetricContext, batch_sizes, eval_mode, progress, register, seeded

MODES = ("majority", "each")


def conditional_entropy(y: np.ndarray, x: np.ndarray) -> float:
    """``H(Y|X)`` in nats of two discrete label arrays (plug-in estimate, >= 0)."""
    y, x = np.asarray(y).reshape(-1), np.asarray(x).reshape(-1)
    if y.shape != x.shape or y.size == 0:
        raise ValueError(f"need two label arrays of one non-zero length, got {y.shape} and {x.shape}")
    n = y.size
    h = 0.0
    for xv in np.unique(x):
        ys = y[x == xv]
        _, counts = np.unique(ys, return_counts=True)
        p = counts / ys.size
        h += ys.size / n * float(-(p * np.log(p)).sum())
    return max(h, 0.0)


def binary_problems(probs: dict[str, np.ndarray], mode: str = "majority") -> dict[str, np.ndarray]:
    """``{"head=value": p(value) [N]}`` for the binary attributes derived from per-head probabilities."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    out = {}
    for head, p in probs.items():
        p = np.asarray(p, dtype=np.float64)
        if p.ndim != 2:
            raise ValueError(f"probabilities of {head!r} must be [N, num_values], got {p.shape}")
        counts = np.bincount(p.argmax(axis=1), minlength=p.shape[1])
        values = [int(counts.argmax())] if mode == "majority" else [int(v) for v in np.flatnonzero(counts)]
        for v in values:
            out[f"{head}={v}"] = p[:, v]
    return out


def separability_entropy(latents: np.ndarray, p: np.ndarray, keep: float = 0.5, seed: int = 0) -> float:
    """``H(Y|X)`` for one binary attribute: ``p [N]`` = classifier probability of the positive class."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    latents = np.asarray(latents, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    if latents.ndim != 2 or latents.shape[0] != p.size:
        raise ValueError(f"need latents [N, D] and p [N], got {latents.shape} and {p.shape}")
    confidence = np.maximum(p, 1.0 - p)
    num_keep = max(2, int(round(p.size * keep)))
    order = np.argsort(-confidence, kind="stable")[:num_keep]
    x, y = latents[order], (p[order] >= 0.5).astype(np.int64)
    if np.unique(y).size < 2:
        return 0.0  # a constant label is perfectly predicted by any side
    svm = LinearSVC(dual="auto", max_iter=5000, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the fitted side is still a linear separator
        svm.fit(x, y)
    return conditional_entropy(y, svm.predict(x))


def separability_score(
    latents: np.ndarray, probs: dict[str, np.ndarray], mode: str = "majority", seed: int = 0
) -> dict[str, Any]:
    """``{"value": exp(sum H), "sum_entropy": sum H, "per_attribute": {name: H}}`` from latents and
    per-head class probabilities ``{head: [N, num_values]}``."""
    per = {
        name: separability_entropy(latents, p, seed=seed) for name, p in binary_problems(probs, mode).items()
    }
    total = float(sum(per.values()))
    return {"value": math.exp(total), "sum_entropy": total, "per_attribute": per}


def _logits(classifier: Any, images: torch.Tensor) -> dict[str, torch.Tensor]:
    out = classifier(images)
    if not isinstance(out, dict):
        raise TypeError("the attribute classifier must return {attribute: logits [B, num_values]}")
    return out


@register("separability", needs=("generator", "classifier"))
def separability(ctx: MetricContext) -> dict[str, Any]:
    if ctx.sep_space not in ("w", "z"):
        raise ValueError(f"sep_space must be 'w' or 'z', got {ctx.sep_space!r}")
    G, clf, device = ctx.generator, ctx.classifier, ctx.torch_device
    n = ctx.sep_num or ctx.num
    if n < 4:
        raise ValueError(f"separability needs at least 4 samples, got {n}")
    latents, probs = [], {}
    with eval_mode(G, clf), torch.no_grad(), seeded(ctx.seed, device) as gen:
        for b in progress(batch_sizes(n, ctx.batch_size), ctx, "separability"):
            z = torch.randn(b, G.z_dim, generator=gen).to(device)
            ws = G.mapping(z, truncation_psi=ctx.truncation_psi)
            img = G.synthesis(ws, noise_mode="random").float().clamp(-1.0, 1.0)
            for head, logit in _logits(clf, img).items():
                probs.setdefault(head, []).append(torch.softmax(logit.float(), dim=1).cpu().numpy())
            latents.append((z if ctx.sep_space == "z" else ws[:, 0]).float().cpu().numpy())
    lat = np.concatenate(latents)
    result = separability_score(lat, {h: np.concatenate(p) for h, p in probs.items()}, ctx.sep_mode, ctx.seed)
    names = getattr(getattr(clf, "config", None), "heads", None)
    if isinstance(names, dict):  # "hair_color=2" -> "hair_color=blond"
        readable = {}
        for key, h in result["per_attribute"].items():
            head, idx = key.rsplit("=", 1)
            vals = names.get(head)
            readable[f"{head}={vals[int(idx)]}" if vals and int(idx) < len(vals) else key] = h
        result["per_attribute"] = readable
    result.update(
        {"num": n, "num_kept": max(2, round(n * 0.5)), "space": ctx.sep_space, "mode": ctx.sep_mode}
    )
    return result
