"""Reconstruction quality of an inversion encoder: ``x -> E(x) -> G.synthesis(E(x))`` on held-out images.

The measures TediGAN (Xia et al., CVPR 2021) and In-Domain GAN Inversion (Zhu et al., ECCV 2020) report for
an inversion module: pixel MSE, LPIPS (Zhang et al., CVPR 2018; real VGG16 trunk) and identity similarity
(cosine of FaceNet embeddings, Schroff et al., CVPR 2015), plus *attribute preservation*: the attribute
classifier's prediction on the input and on the reconstruction agree.

=====================  ====================================================================================
``recon_mse``          mean squared error in [-1, 1] pixel units between the target image and G(E(x))
``recon_lpips``        LPIPS-VGG between the target image and G(E(x))
``recon_identity``     cosine similarity of InceptionResnetV1 embeddings (only when its weights are found;
                       otherwise reported with ``"available": false`` and the reason)
``recon_attributes``   per attribute and mean: ``preservation`` = classifier(target) == classifier(G(E(x)));
                       ``agreement`` = true attribute labels of the data set == classifier(G(E(x)))
=====================  ====================================================================================

For image encoders the input *is* the target. Sketch and label-map encoders (``encoder.config.modality``)
read the sample's ``sketch``/``label`` and are compared with its paired RGB ``image``; their headline
attribute value is the agreement with the record's true attributes.

The encoder travels in the context as ``ctx.encoder`` (``compute(..., encoder=E)``). Images are the first ``min(num, len(dataset))`` of the data set (pass
the held-out split). All four metrics share one pass over the data (memoised for one :func:`compute` call).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tedigan.losses.identity import FaceIdentity
from tedigan.metrics import MetricContext, eval_mode, progress, register
from tedigan.metrics.ppl import get_lpips
from tedigan.models.judge import judge_probs, values_of

__all__ = ["FaceIdentity", "get_encoder", "identity_model", "reconstruction_stats"]

_INPUT_KEY = {"image": "image", "sketch": "sketch", "label": "label"}


def identity_model(ctx: MetricContext, path: Any = None) -> tuple[FaceIdentity | None, str]:
    """The identity network: ``ctx.identity`` when given, else FaceNet when its weights are on this machine (a
    user's file; built once per context), else ``(None, reason)``. dlib's descriptor reads FFHQ-aligned photos,
    so face domains pass it as ``identity=`` explicitly."""
    if ctx.identity is not None:
        return ctx.identity, ""
    if "identity" in ctx.memo:
        return ctx.memo["identity"]
    try:
        found: tuple[FaceIdentity | None, str] = (
            FaceIdentity(path, kind="facenet", download=False if path is None else None).to(ctx.torch_device),
            "",
        )
    except (FileNotFoundError, ImportError) as err:  # MissingWeightsError is a FileNotFoundError
        found = (None, f"{type(err).__name__}: {err}")
    ctx.memo["identity"] = found
    return found


def get_encoder(ctx: MetricContext) -> Any:
    if ctx.encoder is None:
        raise ValueError(
            "reconstruction metrics need an encoder: pass encoder=E (E from "
            "tedigan.models.encoder.Encoder.from_pretrained) together with generator= and dataset="
        )
    return ctx.encoder


def _modality(encoder: Any) -> str:
    cfg = getattr(encoder, "config", None)
    return getattr(cfg, "modality", "image")


@torch.no_grad()
def reconstruction_stats(ctx: MetricContext) -> dict[str, Any]:
    """One pass over the first ``min(num, len(dataset))`` samples: per-image MSE, LPIPS, identity similarity
    and classifier predictions (target and reconstruction). Memoised per :func:`~tedigan.metrics.compute`."""
    from torch.utils.data import DataLoader, Subset

    from tedigan.data import collate_samples

    if ctx.generator is None or ctx.dataset is None:
        raise ValueError("reconstruction metrics need generator= and dataset= (the held-out split)")
    E, G = get_encoder(ctx), ctx.generator
    n = min(ctx.num, len(ctx.dataset))
    key = ("generated", "reconstruction", id(E), id(ctx.dataset), n)
    if key in ctx.memo:
        return ctx.memo[key]
    if n == 0:
        raise ValueError("reconstruction metrics got an empty data set")
    modality = _modality(E)
    in_key = _INPUT_KEY[modality]
    device = ctx.torch_device
    lpips = get_lpips(ctx)
    ident, ident_reason = identity_model(ctx)
    clf = ctx.classifier
    loader = DataLoader(
        Subset(ctx.dataset, range(n)),
        batch_size=ctx.batch_size,
        num_workers=ctx.num_workers,
        collate_fn=collate_samples,
    )
    out: dict[str, list] = {
        "mse": [],
        "lpips": [],
        "identity": [],
        "identity_distance": [],
        "pred_target": [],
        "pred_recon": [],
        "true": [],
    }
    with eval_mode(E, G, clf, lpips):
        for batch in progress(loader, ctx, "reconstruction"):
            if in_key not in batch:
                raise ValueError(
                    f"a {modality} encoder reads the samples' {in_key!r}, which this data set does not provide"
                )
            target = batch["image"].to(device)
            recon = G.synthesis(E(batch[in_key].to(device)), noise_mode="const").clamp(-1, 1)
            out["mse"].append((recon - target).square().flatten(1).mean(1).cpu())
            out["lpips"].append(lpips(recon, target).reshape(-1).cpu())
            if ident is not None:
                a, b = ident.embed(recon), ident.embed(target)
                out["identity"].append(F.cosine_similarity(a, b, dim=-1).cpu())
                if getattr(ident, "same_person_threshold", None) is not None:
                    out["identity_distance"].append(ident.distance_of(a, b).cpu())
            if clf is not None:
                out["pred_target"].append(_predict(clf, target))
                out["pred_recon"].append(_predict(clf, recon))
                if "attributes" in batch:
                    out["true"].append(batch["attributes"].cpu())
    stats: dict[str, Any] = {k: torch.cat(v).numpy() for k, v in out.items() if v}
    stats.update(num=n, modality=modality, identity_reason=ident_reason)
    if clf is not None:
        stats["heads"] = _heads(clf, stats["pred_target"].shape[1])
    ctx.memo[key] = stats
    return stats


def _predict(clf: Any, images: torch.Tensor) -> torch.Tensor:
    probs = judge_probs(clf, images)  # any Judge (or a callable returning {attribute: logits})
    return torch.stack([v.argmax(dim=1) for v in probs.values()], dim=1).cpu()


def _heads(clf: Any, count: int) -> list[str]:
    heads = values_of(clf)
    return list(heads) if heads and len(heads) == count else [f"attr{i}" for i in range(count)]


def _summary(values: np.ndarray) -> dict[str, float]:
    values = np.asarray(values, dtype=np.float64)
    return {
        "value": float(values.mean()),
        "std": float(values.std()),
        "sem": float(values.std() / math.sqrt(max(1, values.size))),
    }


@register("recon_mse", needs=("generator", "dataset"))
def recon_mse(ctx: MetricContext) -> dict[str, Any]:
    s = reconstruction_stats(ctx)
    return {**_summary(s["mse"]), "num": s["num"], "modality": s["modality"]}


@register("recon_lpips", needs=("generator", "dataset"))
def recon_lpips(ctx: MetricContext) -> dict[str, Any]:
    s = reconstruction_stats(ctx)
    return {**_summary(s["lpips"]), "num": s["num"], "modality": s["modality"], "net": "vgg"}


@register("recon_identity", needs=("generator", "dataset"))
def recon_identity(ctx: MetricContext) -> dict[str, Any]:
    s = reconstruction_stats(ctx)
    if "identity" not in s:
        return {"value": None, "available": False, "reason": s["identity_reason"], "num": s["num"]}
    res = {**_summary(s["identity"]), "available": True, "num": s["num"], "measure": "cosine similarity"}
    if "identity_distance" in s:  # the net's own distance and how often it still says "same person"
        threshold = float(identity_model(ctx)[0].same_person_threshold)
        d = s["identity_distance"]
        res.update(
            distance=_summary(d), same_person_threshold=threshold, same_person=float((d < threshold).mean())
        )
    return res


@register("recon_attributes", needs=("generator", "dataset", "classifier"))
def recon_attributes(ctx: MetricContext) -> dict[str, Any]:
    """Per-attribute and mean preservation (classifier on target vs reconstruction) and, when the data set
    carries true labels in the classifier's head order, agreement of the reconstruction with them."""
    s = reconstruction_stats(ctx)
    heads = s["heads"]
    keep = s["pred_target"] == s["pred_recon"]
    res: dict[str, Any] = {
        "preservation": {h: float(keep[:, j].mean()) for j, h in enumerate(heads)},
        "num": s["num"],
        "modality": s["modality"],
    }
    res["preservation_mean"] = float(keep.mean())
    res["all_preserved"] = float(keep.all(axis=1).mean())
    true = s.get("true")
    if true is not None and true.shape == s["pred_recon"].shape:
        agree = true == s["pred_recon"]
        res["agreement"] = {h: float(agree[:, j].mean()) for j, h in enumerate(heads)}
        res["agreement_mean"] = float(agree.mean())
        # how often the classifier is right on the true images: the ceiling of the agreement
        res["classifier_accuracy_on_targets"] = float((true == s["pred_target"]).mean())
    image = s["modality"] == "image" or "agreement_mean" not in res
    res["value"] = res["preservation_mean"] if image else res["agreement_mean"]
    res["headline"] = "preservation_mean" if image else "agreement_mean"
    return res
