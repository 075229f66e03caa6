"""Distribution metrics on FID Inception features: FID, KID and improved precision/recall.

- FID: Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium"
  (NeurIPS 2017): ``|mu_r - mu_g|^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2))`` on 2048-d pool3 features, with
  ``scipy.linalg.sqrtm`` (the reference computation) when both sets have more samples than dimensions, and
  otherwise an exact SVD identity for the trace term that avoids a slow, ill-conditioned 2048-d sqrtm of a
  singular product (see :func:`fid_from_features`).
- KID: Bińkowski et al., "Demystifying MMD GANs" (ICLR 2018): unbiased MMD² with the cubic polynomial kernel
  ``k(x, y) = (x·y / d + 1)^3``, averaged over random subsets (default 100 subsets of up to 1000).
- Precision/recall: Kynkäänniemi et al., "Improved Precision and Recall Metric for Assessing Generative
  Models" (NeurIPS 2019): each set's manifold is the union of balls reaching every sample's k-th nearest
  neighbour (k = 3); precision = share of generated samples inside the real manifold, recall = share of real
  samples inside the generated one. The paper (and stylegan2-ada) embed with VGG16; here the same Inception
  features as FID are used, as the project has them offline (values are not comparable with VGG-based ones).

The network is the TorchScript FID Inception found by :func:`tedigan.assets.fid_inception_path` (the
pytorch-fid graph). Images in [-1, 1] are mapped to [0, 255], rounded to 8 bits as a saved image would be
(real data is 8-bit too, so both sides see the same quantisation), and resized to 299 px (bilinear,
antialiased). On 2 CPU cores it runs at roughly 10 images/s.

Real-image features are cached on disk (``.npz`` with ``features``, ``mu``, ``sigma`` and the cache key)
when the context names a ``cache_dir`` and a ``data_key`` (the CLI uses ``<data_root>/.fid_cache/``); the
key also holds the image count and the feature network, so a different subset or network never reuses them.
Note that FID is biased upwards for small sample counts (and the covariance is rank-deficient below 2048
samples): compare FIDs computed with the same counts only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F
from torch import nn

from tedigan import assets
from tedigan.metrics import MetricContext, batch_sizes, eval_mode, progress, register, seeded

logger = logging.getLogger(__name__)

INCEPTION_SIZE = 299
INCEPTION_CACHE_ID = "fid-inception-pool3-v1"  # names the feature network in cache keys


# ----------------------------------------------------------------------------------- feature network


class InceptionFeatures(nn.Module):
    """FID Inception pool3 features: images ``[B, C, H, W]`` in [-1, 1] (C = 1 or 3) → ``[B, 2048]``.

    Args:
        path: TorchScript file (default: :func:`tedigan.assets.fid_inception_path`).
        quantize: round to 8-bit levels before the network (default; generated images are then measured as
            the PNGs a user would save).
    """

    cache_id = INCEPTION_CACHE_ID

    def __init__(self, path: str | os.PathLike | None = None, quantize: bool = True) -> None:
        super().__init__()
        file = assets.fid_inception_path(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.load is deprecated"
            self.net = torch.jit.load(str(file), map_location="cpu")
        self.net.eval()
        self.quantize = quantize
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> InceptionFeatures:
        return super().train(False)  # a fixed feature extractor

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"expected images [B, 1 or 3, H, W] in [-1, 1], got {tuple(images.shape)}")
        x = (images.float() + 1.0) * 127.5
        x = x.clamp(0.0, 255.0)
        if self.quantize:
            x = x.round()
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-2:] != (INCEPTION_SIZE, INCEPTION_SIZE):
            x = F.interpolate(
                x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False, antialias=True
            )
        feats = self.net(x.contiguous())
        assert feats.shape == (images.shape[0], 2048), f"unexpected feature shape {tuple(feats.shape)}"
        return feats


def get_feature_extractor(ctx: MetricContext) -> Any:
    """The context's feature extractor, else the FID Inception network (built once per context)."""
    if ctx.feature_extractor is not None:
        return ctx.feature_extractor
    net = ctx.memo.get("inception")
    if net is None:
        net = InceptionFeatures().to(ctx.torch_device)
        ctx.memo["inception"] = net
    return net


def _extract(extractor: Any, images: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return extractor(images).detach().float().cpu().numpy().astype(np.float32)


# -------------------------------------------------------------------------------------- real images


def real_count(ctx: MetricContext) -> int:
    n = len(ctx.dataset)
    if n == 0:
        raise ValueError("the real data set is empty")
    return min(ctx.num_real or ctx.num, n)


def _cache_path(ctx: MetricContext, extractor: Any, n: int) -> tuple[Path, str] | None:
    ident = getattr(extractor, "cache_id", None)  # a stand-in extractor without one is never cached
    if ctx.cache_dir is None or ctx.data_key is None or ident is None:
        return None
    key = json.dumps({"data": ctx.data_key, "num": n, "features": ident}, sort_keys=True)
    digest = hashlib.sha1(key.encode()).hexdigest()[:20]
    return Path(ctx.cache_dir) / f"real-{digest}.npz", key


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[D]`` and covariance ``[D, D]`` (float64, unbiased) of ``features [N, D]``."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"need features [N >= 2, D], got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def real_features(ctx: MetricContext) -> np.ndarray:
    """Features ``[N, D]`` of the first ``N = min(num_real or num, len(dataset))`` real images."""
    n = real_count(ctx)
    memo_key = ("real_features", n, ctx.data_key, id(ctx.dataset))
    if memo_key in ctx.memo:
        return ctx.memo[memo_key]
    extractor = get_feature_extractor(ctx)
    cache = _cache_path(ctx, extractor, n)
    if cache is not None and cache[0].is_file():
        try:
            with np.load(cache[0], allow_pickle=False) as data:
                if str(data["key"]) == cache[1]:
                    feats = data["features"]
                    ctx.memo[memo_key] = feats
                    logger.info("real-image features read from %s", cache[0])
                    return feats
        except (OSError, KeyError, ValueError) as e:
            logger.warning("ignoring unreadable feature cache %s (%s)", cache[0], e)

    from torch.utils.data import DataLoader, Subset

    from tedigan.data import collate_samples

    loader = DataLoader(
        Subset(ctx.dataset, range(n)),
        batch_size=ctx.batch_size,
        shuffle=False,
        num_workers=ctx.num_workers,
        collate_fn=collate_samples,
    )
    chunks = []
    with eval_mode(extractor):
        for batch in progress(loader, ctx, "real features"):
            chunks.append(_extract(extractor, batch["image"].to(ctx.torch_device)))
    feats = np.concatenate(chunks)[:n]
    if cache is not None:
        path, key = cache
        mu, sigma = feature_stats(feats) if n >= 2 else (feats.mean(0), np.zeros((0, 0)))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}.npz")
        np.savez(tmp, features=feats, mu=mu, sigma=sigma, key=np.array(key))
        os.replace(tmp, path)  # atomic: a concurrent reader never sees half a file
    ctx.memo[memo_key] = feats
    return feats


# --------------------------------------------------------------------------------- generated images


def generate_images(ctx: MetricContext, n: int, noise_mode: str = "random"):
    """Yield ``(z, ws, images)`` batches of ``n`` seeded samples from the context's generator."""
    G = ctx.generator
    device = ctx.torch_device
    with eval_mode(G), torch.no_grad(), seeded(ctx.seed, device) as gen:
        for b in batch_sizes(n, ctx.batch_size):
            z = torch.randn(b, G.z_dim, generator=gen).to(device)
            ws = G.mapping(z, truncation_psi=ctx.truncation_psi)
            img = G.synthesis(ws, noise_mode=noise_mode)
            yield z, ws, img.float().clamp(-1.0, 1.0)


def generated_features(ctx: MetricContext) -> np.ndarray:
    """Features ``[num, D]`` of ``ctx.num`` generated images (shared by the metrics of one ``compute``)."""
    memo_key = ("generated_features", ctx.num, ctx.truncation_psi, ctx.seed)
    if memo_key in ctx.memo:
        return ctx.memo[memo_key]
    extractor = get_feature_extractor(ctx)
    chunks = []
    with eval_mode(extractor):
        batches = generate_images(ctx, ctx.num)
        for _, _, img in progress(batches, ctx, "generated features"):
            chunks.append(_extract(extractor, img))
    feats = np.concatenate(chunks)
    ctx.memo[memo_key] = feats
    return feats


# ------------------------------------------------------------------------------------------- maths


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """Fréchet distance between the Gaussians N(mu1, sigma1) and N(mu2, sigma2).

    Safeguards: float64 throughout; when ``sqrtm(sigma1 @ sigma2)`` is not finite (near-singular product)
    it is recomputed with ``eps`` added to both diagonals; a small imaginary part (round-off on a matrix
    with a zero eigenvalue) is dropped, a large one is reported; the result is clamped at 0.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shape mismatch: mu {mu1.shape} / {mu2.shape}, sigma {s1.shape} / {s2.shape}")
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        logger.warning("FID: sqrtm of the covariance product is not finite; adding %g to the diagonals", eps)
        offset = np.eye(s1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        imag = np.abs(np.diagonal(covmean).imag).max()
        if imag > 1e-3:
            logger.warning("FID: sqrtm has an imaginary component of %.3g; using the real part", imag)
        covmean = covmean.real
    value = diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean)
    return float(max(value, 0.0))


FID_METHODS = ("auto", "sqrtm", "svd")


def _centred_factor(features: np.ndarray) -> np.ndarray:
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"need features [N >= 2, D], got shape {f.shape}")
    return (f - f.mean(axis=0)) / np.sqrt(f.shape[0] - 1)  # sigma = A^T A


def fid_from_features(real: np.ndarray, fake: np.ndarray, method: str = "auto") -> float:
    """FID between two feature sets ``[N, D]``.

    ``"sqrtm"`` is the reference computation (:func:`frechet_distance` on the sample statistics). ``"svd"``
    is the same quantity computed exactly through the sample factors: with ``sigma_i = A_i^T A_i`` (A_i the
    centred features / sqrt(N_i - 1)) the non-zero eigenvalues of ``sigma_1 sigma_2`` are the squared
    singular values of ``A_1 A_2^T``, so ``Tr sqrt(sigma_1 sigma_2)`` is the sum of those singular values
    (an ``N_1 x N_2`` problem, real and well conditioned). ``"auto"`` (default) uses sqrtm when both sets
    have more samples than dimensions (the usual 50k-sample regime, full-rank covariances) and the SVD
    identity otherwise, where sqrtm of a singular 2048-d product is slow (~1 min on 2 CPU cores) and
    ill-conditioned.
    """
    if method not in FID_METHODS:
        raise ValueError(f"method must be one of {FID_METHODS}, got {method!r}")
    real, fake = np.asarray(real), np.asarray(fake)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"need feature arrays [N, D] of one D, got {real.shape} and {fake.shape}")
    dim = real.shape[1]
    if method == "sqrtm" or (method == "auto" and min(len(real), len(fake)) > dim):
        return frechet_distance(*feature_stats(real), *feature_stats(fake))
    a1, a2 = _centred_factor(real), _centred_factor(fake)
    diff = real.mean(axis=0, dtype=np.float64) - fake.mean(axis=0, dtype=np.float64)
    small = a1 @ a2.T if a1.shape[0] <= a2.shape[0] else a2 @ a1.T
    trace_sqrt = float(scipy.linalg.svdvals(small).sum())
    value = diff @ diff + (a1 * a1).sum() + (a2 * a2).sum() - 2.0 * trace_sqrt
    return float(max(value, 0.0))


def _cubic_kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # float64 throughout: the MMD is a small difference of large kernel means, and float32 dot products
    # over 2048 dimensions shift it by ~1e-4, the size of a typical KID.
    return (a.double() @ b.double().T).div_(a.shape[1]).add_(1.0).pow_(3)


def kernel_inception_distance(
    real: np.ndarray,
    fake: np.ndarray,
    num_subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """KID: mean and standard deviation over subsets of the unbiased MMD² (cubic polynomial kernel).

    Each subset draws ``m = min(subset_size, len(real), len(fake))`` samples of each set without
    replacement. When the full kernel matrices are small they are computed once and indexed per subset.
    """
    x = torch.as_tensor(np.asarray(fake), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(real), dtype=torch.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"need feature arrays [N, D] of one D, got {tuple(x.shape)} and {tuple(y.shape)}")
    m = min(subset_size, x.shape[0], y.shape[0])
    if m < 2:
        raise ValueError("KID needs at least 2 samples in each set")
    rng = np.random.default_rng(seed)
    nx, ny = x.shape[0], y.shape[0]
    ix = [rng.choice(nx, m, replace=False) for _ in range(num_subsets)]
    iy = [rng.choice(ny, m, replace=False) for _ in range(num_subsets)]
    if nx * nx + ny * ny + nx * ny <= 3 * 6000**2:
        # Kernel matrices once; a subset's kernel sum is u^T K v with 0/1 membership vectors u, v.
        kxx, kyy, kxy = _cubic_kernel(x, x), _cubic_kernel(y, y), _cubic_kernel(x, y)
        ux = torch.zeros(num_subsets, nx, dtype=torch.float64)
        uy = torch.zeros(num_subsets, ny, dtype=torch.float64)
        for s in range(num_subsets):
            ux[s, torch.from_numpy(ix[s])] = 1.0
            uy[s, torch.from_numpy(iy[s])] = 1.0
        sxx = ((ux @ kxx) * ux).sum(1) - ux @ kxx.diagonal()
        syy = ((uy @ kyy) * uy).sum(1) - uy @ kyy.diagonal()
        sxy = ((ux @ kxy) * uy).sum(1)
        values = ((sxx + syy) / (m * (m - 1)) - 2.0 * sxy / (m * m)).tolist()
    else:  # too many samples for full kernel matrices: one subset at a time
        values = []
        for a_idx, b_idx in zip(ix, iy):
            xa, yb = x[torch.from_numpy(a_idx)], y[torch.from_numpy(b_idx)]
            a, b, c = _cubic_kernel(xa, xa), _cubic_kernel(yb, yb), _cubic_kernel(xa, yb)
            off_diag = (a.sum() - a.diagonal().sum() + b.sum() - b.diagonal().sum()) / (m * (m - 1))
            values.append(float(off_diag - 2.0 * c.mean()))
    v = np.asarray(values)
    return float(v.mean()), float(v.std())


def _sq_dists(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    d = (a * a).sum(1, keepdim=True) + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return d.clamp_min_(0.0)


def knn_radii(features: torch.Tensor, k: int = 3, row_batch: int = 4096) -> torch.Tensor:
    """Squared distance from every sample to its k-th nearest neighbour in the same set (itself excluded)."""
    if features.shape[0] <= k:
        raise ValueError(f"k-NN radii need more than k = {k} samples, got {features.shape[0]}")
    out = []
    for i in range(0, features.shape[0], row_batch):
        d = _sq_dists(features[i : i + row_batch], features)
        out.append(d.topk(k + 1, dim=1, largest=False).values[:, k])  # index 0 is the sample itself
    return torch.cat(out)


def manifold_coverage(
    manifold: torch.Tensor, radii: torch.Tensor, queries: torch.Tensor, row_batch: int = 4096
) -> float:
    """Share of ``queries`` inside at least one ball ``|q - manifold_i|^2 <= radii_i``."""
    hits = 0
    for i in range(0, queries.shape[0], row_batch):
        d = _sq_dists(queries[i : i + row_batch], manifold)
        hits += int((d <= radii[None, :]).any(dim=1).sum())
    return hits / queries.shape[0]


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al., 2019) of ``fake`` against ``real``."""
    r = torch.as_tensor(np.asarray(real), dtype=torch.float64)
    f = torch.as_tensor(np.asarray(fake), dtype=torch.float64)
    if r.ndim != 2 or f.ndim != 2 or r.shape[1] != f.shape[1]:
        raise ValueError(f"need feature arrays [N, D] of one D, got {tuple(r.shape)} and {tuple(f.shape)}")
    precision = manifold_coverage(r, knn_radii(r, k), f)
    recall = manifold_coverage(f, knn_radii(f, k), r)
    return precision, recall


# ------------------------------------------------------------------------------------------ metrics


@register("fid", needs=("generator", "dataset"))
def fid(ctx: MetricContext) -> dict[str, Any]:
    real, fake = real_features(ctx), generated_features(ctx)
    value = fid_from_features(real, fake, ctx.fid_method)
    return {"value": value, "num_real": len(real), "num_fake": len(fake), "method": ctx.fid_method}


@register("kid", needs=("generator", "dataset"))
def kid(ctx: MetricContext) -> dict[str, Any]:
    real, fake = real_features(ctx), generated_features(ctx)
    mean, std = kernel_inception_distance(real, fake, ctx.kid_subsets, ctx.kid_subset_size, ctx.seed)
    return {
        "value": mean,
        "std": std,
        "subsets": ctx.kid_subsets,
        "subset_size": min(ctx.kid_subset_size, len(real), len(fake)),
        "num_real": len(real),
        "num_fake": len(fake),
    }


@register("pr", needs=("generator", "dataset"))
def pr(ctx: MetricContext) -> dict[str, Any]:
    real, fake = real_features(ctx), generated_features(ctx)
    precision, recall = precision_recall(real, fake, ctx.pr_k)
    return {
        "precision": precision,
        "recall": recall,
        "k": ctx.pr_k,
        "num_real": len(real),
        "num_fake": len(fake),
    }
