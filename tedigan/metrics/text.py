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

Inputs travel in ``ctx.memo`` (the context has no text fields):

- ``memo["text_eval"]``: ``{"captions": list[str] (M), "image_index": LongTensor [M] (row of each caption's
  image in image_codes), "image_codes": [N, num_ws, w_dim], "caption_rank": LongTensor [M] (optional: the
  caption's position among its image's captions), "attribute_captions_per_image": int (optional, default 1:
  captions of rank < this are used for attribute accuracy), "mentions": list[dict] (optional: the attributes
  each caption mentions), or "vocabulary": a :class:`~tedigan.data.vocabulary.Vocabulary` to read them}``;
- the text codes: ``memo["text_codes"]`` ``[M, num_ws, w_dim]``, or ``memo["text_encoder"]`` (anything with
  ``encode_text(list[str], batch_size)``) to compute them.

``ctx.num`` caps the captions used for attribute accuracy (each costs three generated images).
"""

from __future__ import annotations

from typing import Any

import torch

from tedigan.metrics import MetricContext, batch_sizes, eval_mode, register, seeded
from tedigan.models.judge import judge_probs, values_of

__all__ = ["attribute_hits", "retrieval_ranks", "text_codes", "text_eval_inputs"]


def text_eval_inputs(ctx: MetricContext) -> dict[str, Any]:
    ev = ctx.memo.get("text_eval")
    if not isinstance(ev, dict) or not {"captions", "image_index", "image_codes"} <= set(ev):
        raise ValueError(
            "text metrics need memo['text_eval'] = {'captions': [...], 'image_index': LongTensor, "
            "'image_codes': [N, num_ws, w_dim]} (held-out captions and the inverted codes of their images)"
        )
    if len(ev["captions"]) != len(ev["image_index"]):
        raise ValueError(
            f"text_eval: {len(ev['captions'])} captions but {len(ev['image_index'])} image indices"
        )
    if len(ev["captions"]) == 0:
        raise ValueError("text_eval: no held-out captions")
    return ev


def text_codes(ctx: MetricContext) -> torch.Tensor:
    """Codes of the held-out captions ``[M, num_ws, w_dim]`` on the CPU (memoised per compute call)."""
    ev = text_eval_inputs(ctx)
    key = ("generated", "text_codes", len(ev["captions"]))
    if key in ctx.memo:
        return ctx.memo[key]
    codes = ctx.memo.get("text_codes")
    if codes is None:
        enc = ctx.memo.get("text_encoder")
        if enc is None:
            raise ValueError("text metrics need memo['text_codes'] or memo['text_encoder'] (a TextEncoder)")
        with eval_mode(enc):
            codes = enc.encode_text(list(ev["captions"]), batch_size=max(ctx.batch_size, 64))
    codes = codes.detach().float().cpu()
    if codes.shape[0] != len(ev["captions"]) or codes.shape[1:] != ev["image_codes"].shape[1:]:
        raise ValueError(
            f"text codes {tuple(codes.shape)} do not fit {len(ev['captions'])} captions and image codes "
            f"{tuple(ev['image_codes'].shape)}"
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


@register("text_l2")
def text_l2(ctx: MetricContext) -> dict[str, Any]:
    ev = text_eval_inputs(ctx)
    codes = text_codes(ctx)
    target = ev["image_codes"].float().cpu()[ev["image_index"].long()]
    per_layer = (codes - target).square().mean(dim=(0, 2))
    mean_code = ev["image_codes"].float().cpu().mean(0, keepdim=True)
    baseline = (mean_code - target).square().mean().item()
    value = per_layer.mean().item()
    return {
        "value": value,
        "per_layer": per_layer.tolist(),
        "mean_code_baseline": baseline,
        "explained": 1.0 - value / baseline if baseline > 0 else None,
        "num_captions": int(codes.shape[0]),
    }


@register("text_retrieval")
def text_retrieval(ctx: MetricContext) -> dict[str, Any]:
    ev = text_eval_inputs(ctx)
    codes = text_codes(ctx)
    images = ev["image_codes"].float().cpu()
    ranks = retrieval_ranks(codes, images, ev["image_index"])
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


@register("text_attribute_accuracy", needs=("generator", "classifier"))
def text_attribute_accuracy(ctx: MetricContext) -> dict[str, Any]:
    ev = text_eval_inputs(ctx)
    codes = text_codes(ctx)
    per_image = int(ev.get("attribute_captions_per_image", 1))
    rank = ev.get("caption_rank")
    rows = [i for i in range(len(ev["captions"])) if rank is None or int(rank[i]) < per_image]
    vocabulary = ev.get("vocabulary")
    if not ev.get("mentions") and vocabulary is None:
        return {"value": None, "reason": "no mentions and no vocabulary to read the captions with"}
    all_mentions = ev.get("mentions") or [vocabulary.read(c).values for c in ev["captions"]]
    heads = values_of(ctx.classifier) or {}
    rows = [i for i in rows if any(a in heads for a in all_mentions[i])][: ctx.num]
    if not rows:
        return {"value": None, "reason": "no held-out caption mentions an attribute the classifier judges"}
    G, clf, device = ctx.generator, ctx.classifier, ctx.torch_device
    mentions = [all_mentions[i] for i in rows]
    image_codes = ev["image_codes"].float()
    idx = torch.tensor(rows)
    sources = {
        "text": codes[idx],
        "inverted": image_codes[ev["image_index"].long()[idx]],
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
        mentions_from="memo" if ev.get("mentions") else f"vocabulary:{vocabulary.domain}",
    )
    return res
