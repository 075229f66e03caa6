"""Pivotal tuning: fit the generator to one image around its inverted code, so edits start from a faithful
reconstruction.

Roich et al., "Pivotal Tuning for Latent-based Editing of Real Images" (ACM TOG 2022): invert the image to a
*pivot* code ``w_p`` (here the encoder's, optionally refined by instance-level optimisation), then fine-tune a
copy of the generator's weights for a few steps so that ``G(w_p)`` reproduces the image (LPIPS + pixel L2).
Edits move the code as before (layer mixing or a text direction) and are rendered by the tuned copy; the
image's own details survive that the code alone could not express.

Locality regularisation (the paper's ``L_R``): codes at distance ``alpha`` from the pivot, towards codes drawn
from the mapping network (``w_r = w_p + alpha (w_z - w_p) / |w_z - w_p|`` per layer; ``alpha`` in the paper's
units of a 512-d W, scaled by ``sqrt(w_dim / 512)``), must render as the original generator rendered them
(L2 + LPIPS), so tuning for one image does not bend the rest of the space an edit walks through. Each step
draws ``locality_samples`` codes from ``seed``: a run is reproducible.

Only the copy is trained (Adam at a constant learning rate, as in the paper); the generator that is passed in
is never modified. Per-pixel noise is ``const`` throughout. A step is never worse than the start: the copy
returned is the one at the step of lowest loss, tuning stops after ``patience`` steps without a new best, and a
step whose loss rises above the best by ``revert_tolerance`` goes back to the best weights at half the learning
rate (after ``max_reverts`` of those it stops). So a learning rate too high for the generator (3e-3 on the
1024 px face generator) ends as the untouched copy, not as a destroyed one.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

__all__ = ["PivotalTuningConfig", "pivotal_tuning"]


@dataclass
class PivotalTuningConfig:
    """Pivotal tuning of one image's generator copy."""

    steps: int = 100  # at most: tuning may stop early (patience, max_reverts)
    # the paper's 3e-4 is for 1024 px generators; on the small CPU ones 3e-3 fits ~3x closer in 100 steps (the
    # pipeline passes its model's ``defaults.pti_lr``)
    lr: float = 3e-3
    lpips_weight: float = 1.0
    l2_weight: float = 1.0
    locality_weight: float = 0.0  # > 0: locality regularisation (about twice the cost of a step)
    locality_alpha: float = 30.0  # how far from the pivot the regularised codes lie (in |w| units of W)
    locality_samples: int = 1
    seed: int = 0
    progress: bool = False
    patience: int = 20  # stop after this many steps without a new best loss (0: never)
    revert_tolerance: float = 0.1  # a loss above best * (1 + this) reverts to the best weights, lr halved
    max_reverts: int = 4

    def __post_init__(self) -> None:
        if self.steps < 0 or self.locality_samples < 1 or self.patience < 0 or self.max_reverts < 0:
            raise ValueError(
                "pivotal tuning: steps, patience and max_reverts must be >= 0 and locality_samples >= 1"
            )
        for name in (
            "lr",
            "lpips_weight",
            "l2_weight",
            "locality_weight",
            "locality_alpha",
            "revert_tolerance",
        ):
            value = getattr(self, name)
            if not value >= 0 or value == float("inf"):
                raise ValueError(f"pivotal tuning: {name} must be finite and >= 0, got {value}")
        if self.lr == 0:
            raise ValueError("pivotal tuning: lr must be > 0")


def _locality_codes(G: Any, pivot: torch.Tensor, n: int, alpha: float, gen: torch.Generator) -> torch.Tensor:
    """``n`` W+ codes at distance ``alpha`` (paper units) from ``pivot [1, L, D]`` towards mapped codes."""
    z = torch.randn(n, G.z_dim, generator=gen).to(pivot.device, pivot.dtype)
    with torch.no_grad():
        w = G.mapping(z, update_w_avg=False)  # [n, L, D]
    direction = w - pivot
    step = alpha * (pivot.shape[-1] / 512) ** 0.5
    return pivot + step * direction / direction.norm(dim=-1, keepdim=True).clamp_min(1e-8)


def _state(params: list[torch.Tensor]) -> list[torch.Tensor]:
    return [p.detach().clone() for p in params]


def _load(params: list[torch.Tensor], state: list[torch.Tensor]) -> None:
    with torch.no_grad():
        for p, s in zip(params, state):
            p.copy_(s)


def pivotal_tuning(
    G: Any,
    pivot: torch.Tensor,
    target: torch.Tensor,
    lpips: Any | None,
    config: PivotalTuningConfig | None = None,
) -> tuple[Any, list[dict[str, float]]]:
    """A copy of ``G`` tuned so that ``G(pivot [1, L, D])`` reproduces ``target [1, 3, R, R]`` (in [-1, 1]);
    returns it (eval mode, no gradients; its weights of the step with the lowest loss) and the per-step losses
    (one dict per scored step, ``total`` included). ``lpips`` may be None when ``config.lpips_weight`` is 0."""
    cfg = config or PivotalTuningConfig()
    if pivot.ndim != 3 or pivot.shape[0] != 1 or target.ndim != 4 or target.shape[0] != 1:
        raise ValueError(
            f"pivotal tuning takes one image: pivot {tuple(pivot.shape)}, target {tuple(target.shape)}"
        )
    if cfg.lpips_weight > 0 and lpips is None:
        raise ValueError("pivotal tuning: lpips_weight > 0 needs the LPIPS network")
    tuned = copy.deepcopy(G).float().train().requires_grad_(True)
    tuned.mapping.requires_grad_(False)  # the codes stay where they are: only the synthesis is tuned
    params = [p for p in tuned.synthesis.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.lr)
    pivot = pivot.detach().float()
    target = target.detach().float()
    gen = torch.Generator().manual_seed(cfg.seed)
    frozen = G if cfg.locality_weight > 0 else None
    losses: list[dict[str, float]] = []
    best, best_state, since_best, reverts = float("inf"), _state(params), 0, 0
    bar = tqdm(range(cfg.steps), desc="pivotal tuning", disable=not cfg.progress, leave=False)
    for step in bar:
        image = tuned.synthesis(pivot, noise_mode="const")
        parts: dict[str, torch.Tensor] = {"l2": F.mse_loss(image, target)}
        total = cfg.l2_weight * parts["l2"]
        if cfg.lpips_weight > 0:
            parts["lpips"] = lpips(image, target).mean()
            total = total + cfg.lpips_weight * parts["lpips"]
        if frozen is not None:
            w_r = _locality_codes(frozen, pivot, cfg.locality_samples, cfg.locality_alpha, gen)
            with torch.no_grad():
                ref = frozen.synthesis(w_r, noise_mode="const").float()
            out = tuned.synthesis(w_r, noise_mode="const")
            parts["locality"] = F.mse_loss(out, ref) + (lpips(out, ref).mean() if lpips is not None else 0.0)
            total = total + cfg.locality_weight * parts["locality"]
        value = float(total.detach())
        value = value if math.isfinite(value) else float("inf")
        losses.append({k: float(v.detach()) for k, v in {**parts, "total": total}.items()})
        bar.set_postfix(loss=f"{value:.4f}", refresh=False)
        if value < best:  # these weights (before this step's update) are the best so far
            best, best_state, since_best = value, _state(params), 0
        elif value > best * (1 + cfg.revert_tolerance):  # a rise: back to the best, smaller steps
            reverts += 1
            _load(params, best_state)
            if reverts > cfg.max_reverts:
                break
            for group in opt.param_groups:
                group["lr"] *= 0.5
            opt.state.clear()
            since_best = 0
            continue
        else:
            since_best += 1
            if cfg.patience and since_best >= cfg.patience:
                break
        if step == cfg.steps - 1:  # the last scored step: an update now would never be scored
            break
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
    _load(params, best_state)
    return tuned.eval().requires_grad_(False), losses
