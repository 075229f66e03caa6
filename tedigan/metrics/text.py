"""Text-to-W+ metrics: how well a text encoder's codes match images (TediGAN, Xia et al., CVPR 2021).

=============================  ===========================================================================
``text_l2``                    mean squared error (per element) between the text code of each held-out
                               caption and the inverted code ``E(x)`` of its image; with the error of the
                               best caption-blind guess (the mean image code) for scale
``text_retrieval``             text → image retrieval by L2 in W+: each held-out caption ranks ``N`` held-out
                               image codes; top-1 / top-5 accuracy (chance ``k / N``), median rank, MRR
``text_attribute_accuracy``    text → image: ``G.synthesis(text code)`` judged by the attribute classifier
                               against the attributes the caption mentions (read by the data set's
                               vocabulary); with two references: random codes from the mapping network
                               (what chance looks like) and ``G(E(x))`` of the paired image (the ceiling the
                               inversion allows)
=============================  ===========================================================================

Inputs travel in ``ctx.text``, a :class:`TextEval`: the held-out captions, the row of each caption's image in
``image_codes`` (the inverted codes of the held-out images), optionally each caption's rank among its image's
captions and what each caption mentions (or a vocabulary to read it), and the captions' text codes or a text
encoder to compute them.

``ctx.num`` caps the captions used for attribute accuracy (each costs three generated images).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from tedigan.metrics import MetricContext, batch_sizes, eval_mode, register, seeded
from tedigan.models.judge import judge_probs, values_of

__all__ = ["TextEval", "attribute_hits", "retrieval_ranks", "text_codes", "text_eval_inputs"]


@dataclass
class TextEval:
    """The inputs of the text metrics (``MetricContext.text``).

    ``captions`` (M) with ``image_index`` ``[M]`` (the row of each caption's image in ``image_codes``
    ``[N, num_ws, w_dim]``); ``caption_rank`` ``[M]``: the caption's position among its image's captions
    (captions of rank < ``attribute_captions_per_image`` are judged for attribute accuracy; None: all);
    ``mentions``: the attributes each caption names, or a ``vocabulary`` to read them; ``codes`` ``[M, num_ws,
    w_dim]``: the captions' text codes, or a ``text_encoder`` (``encode_text(list[str], batch_size)``)."""

    captions: list[str]
    image_index: torch.Tensor
    image_codes: torch.Tensor
    caption_rank: torch.Tensor | None = None
    attribute_captions_per_image: int = 1
    mentions: list[dict[str, str]] | None = None
    vocabulary: Any = None
    codes: torch.Tensor | None = None
    text_encoder: Any = None

    def __post_init__(self) -> None:
        if len(self.captions) != len(self.image_index):
            raise ValueError(
                f"text eval: {len(self.captions)} captions but {len(self.image_index)} image indices"
            )
        if len(self.captions) == 0:
            raise ValueError("text eval: no held-out captions")
        if self.codes is None and self.text_encoder is None:
            raise ValueError("text eval needs codes= (the captions' text codes) or text_encoder=")


def text_eval_inputs(ctx: MetricContext) -> TextEval:
    if not isinstance(ctx.text, TextEval):
        raise ValueError(
            "text metrics need text=TextEval(captions, image_index, image_codes, codes=... or text_encoder=...)"
        )
    return ctx.text


def text_codes(ctx: MetricContext) -> torch.Tensor:
    """Codes of the held-out captions ``[M, num_ws, w_dim]`` on the CPU (computed once per compute call)."""
    ev = text_eval_inputs(ctx)
    key = ("generated", "text_codes", len(ev.captions))
    if key in ctx.memo:
        return ctx.memo[key]
    codes = ev.codes
    if codes is None:
        with eval_mode(ev.text_encoder):
            codes = ev.text_encoder.encode_text(list(ev.captions), batch_size=max(ctx.batch_size, 64))
    codes = codes.detach().float().cpu()
    if codes.shape[0] != len(ev.captions) or codes.shape[1:] != ev.image_codes.shape[1:]:
        raise ValueError(
            f"text codes {tuple(codes.shape)} do not fit {len(ev.captions)} captions and image codes "
            f"{tuple(ev.image_codes.shape)}"
        )
    ctx.memo[key] = codes
    return codes


def retrieval_ranks(
    text: torch.Tensor, images: torch.Tensor, target: torch.Tensor, chunk: int = 1024
) -> torch.Tensor:
    """0-based rank of each text's true image among all images by L2 distance of flattened codes.

    Ties count against the text (an image at the same distance as the true one ranks before it), so a
    constant prediction scores chance, not perfection.
    """
    images = images.flatten(1).double()
    ranks = []
    for i in range(0, text.shape[0], chunk):
        t = text[i : i + chunk].flatten(1).double()
        d = torch.cdist(t, images)  # [m, N]
        idx = target[i : i + chunk].long()
        true = d.gather(1, idx[:, None])
        closer_or_equal = (d <= true).sum(1) - 1  # minus the true image itself
        ranks.append(closer_or_equal)
    return torch.cat(ranks)


@register("text_l2", needs=("text",))
def text_l2(ctx: MetricContext) -> dict[str, Any]:
    ev = text_eval_inputs(ctx)
    codes = text_codes(ctx)
    target = ev.image_codes.float().cpu()[ev.image_index.long()]
    per_layer = (codes - target).square().mean(dim=(0, 2))
    mean_code = ev.image_codes.float().cpu().mean(0, keepdim=True)
    baseline = (mean_code - target).square().mean().item()
    value = per_layer.mean().item()
    return {
        "value": value,
        "per_layer": per_layer.tolist(),
        "mean_code_baseline": baseline,
        "explained": 1.0 - value / baseline if baseline > 0 else None,
        "num_captions": int(codes.shape[0]),
    }


@register("text_retrieval", needs=("text",))
def text_retrieval(ctx: MetricContext) -> dict[str, Any]:
    ev = text_eval_inputs(ctx)
    codes = text_codes(ctx)
    images = ev.image_codes.float().cpu()
    ranks = retrieval_ranks(codes, images, ev.image_index)
    n = images.shape[0]
    top = {k: (ranks < k).double().mean().item() for k in (1, 5, 10)}
    return {
        "value": top[1],
        "top1": top[1],
        "top5": top[5],
        "top10": top[10],
        "chance_top1": 1.0 / n,
        "chance_top5": min(1.0, 5.0 / n),
        "median_rank": float(ranks.double().median().item()) + 1.0,  # 1-based
        "mrr": (1.0 / (ranks.double() + 1)).mean().item(),
        "num_captions": int(codes.shape[0]),
        "num_images": n,
        "distance": "L2 over flattened W+ codes",
    }


def attribute_hits(clf: Any, images: torch.Tensor, mentions: list[dict[str, str]]) -> list[dict[str, bool]]:
    """Per image, ``{attribute: judge's prediction == mentioned value}`` for the mentioned attributes the
    judge (:class:`~tedigan.models.judge.Judge`) reads."""
    heads = values_of(clf) or {}
    probs = judge_probs(clf, images)
    pred = {name: probs[name].argmax(1).tolist() for name in heads}
    out = []
    for i, m in enumerate(mentions):
        out.append({a: heads[a][pred[a][i]] == v for a, v in m.items() if a in heads and v in heads[a]})
    return out


def _summarise(hits: list[dict[str, bool]]) -> dict[str, Any]:
    per: dict[str, list[bool]] = {}
    for h in hits:
        for a, ok in h.items():
            per.setdefault(a, []).append(ok)
    flat = [ok for h in hits for ok in h.values()]
    return {
        "value": sum(flat) / len(flat) if flat else None,
        "per_attribute": {a: sum(v) / len(v) for a, v in per.items()},
        "mentions_per_attribute": {a: len(v) for a, v in per.items()},
        "all_mentioned_correct": sum(all(h.values()) for h in hits if h) / max(1, sum(1 for h in hits if h)),
    }


@register("text_attribute_accuracy", needs=("text", "generator", "classifier"))
def text_attribute_accuracy(ctx: MetricContext) -> dict[str, Any]:
    ev = text_eval_inputs(ctx)
    codes = text_codes(ctx)
    per_image, rank = int(ev.attribute_captions_per_image), ev.caption_rank
    rows = [i for i in range(len(ev.captions)) if rank is None or int(rank[i]) < per_image]
    vocabulary = ev.vocabulary
    if not ev.mentions and vocabulary is None:
        return {"value": None, "reason": "no mentions and no vocabulary to read the captions with"}
    all_mentions = ev.mentions or [vocabulary.read(c).values for c in ev.captions]
    heads = values_of(ctx.classifier) or {}
    rows = [i for i in rows if any(a in heads for a in all_mentions[i])][: ctx.num]
    if not rows:
        return {"value": None, "reason": "no held-out caption mentions an attribute the classifier judges"}
    G, clf, device = ctx.generator, ctx.classifier, ctx.torch_device
    mentions = [all_mentions[i] for i in rows]
    image_codes = ev.image_codes.float()
    idx = torch.tensor(rows)
    sources = {
        "text": codes[idx],
        "inverted": image_codes[ev.image_index.long()[idx]],
    }
    with seeded(ctx.seed, device) as gen:
        z = torch.randn(len(rows), G.z_dim, generator=gen)
    hits: dict[str, list[dict[str, bool]]] = {k: [] for k in ("text", "random", "inverted")}
    with torch.no_grad(), eval_mode(G, clf):
        start = 0
        for b in batch_sizes(len(rows), ctx.batch_size):
            part = mentions[start : start + b]
            random_ws = G.mapping(z[start : start + b].to(device), truncation_psi=ctx.truncation_psi)
            batch_codes = {
                "text": sources["text"][start : start + b].to(device),
                "inverted": sources["inverted"][start : start + b].to(device),
                "random": random_ws,
            }
            for name, ws in batch_codes.items():
                images = G.synthesis(ws, noise_mode="const").clamp(-1, 1)
                hits[name] += attribute_hits(clf, images, part)
            start += b
    res = _summarise(hits["text"])
    res.update(
        num_captions=len(rows),
        num_mentions=sum(len(h) for h in hits["text"]),
        random_codes=_summarise(hits["random"]),
        inverted_ceiling=_summarise(hits["inverted"]),
        mentions_from="given" if ev.mentions else f"vocabulary:{vocabulary.domain}",
    )
    return res
