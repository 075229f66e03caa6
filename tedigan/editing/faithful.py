"""Faithful inversion of a real photo on the faces model, fast enough for a CPU: optimise on a cheap route, render
with the full generator.

Why: the encoder alone returns a relative of the person (issue #25), and full-resolution optimisation and pivotal
tuning cost seconds a step on a CPU: LPIPS-VGG at 256 px and the 256/512 px blocks dominate a step. Here every
step runs the *route* (:mod:`tedigan.models.proxy_head`): the synthesis up to an intermediate block (64 px
features) and a small distilled head giving a 128 px image; losses are computed at the route's resolution.

Default recipe: ``use_head=False`` (see :class:`FaithfulConfig`): the same stages at full resolution; the route
recipe below (``use_head=True``) is the fast route's.

Route recipe (each stage keeps its best step by loss, stops early after ``patience`` steps without improvement, and
when a step's loss rises above the best by ``revert_tolerance`` it reverts to the best state and halves its lr):

1. start: the encoder's W+ code; its mean over the 23 sites is the start w;
2. W: optimise one shared w (the space the released student was trained on);
3. W+: optimise the 23 site codes, with a penalty on their spread around their mean (``spread_weight``);
4. pivotal tuning: a copy of the generator whose blocks up to the route's block (the ones the route runs) are
   tuned at a PTI-scale lr (3e-4) around the W+ code; the head stays frozen by default, so it keeps standing in
   for the untouched high blocks, and the full generator (tuned low blocks feeding the original high blocks)
   renders the result.

Losses: LPIPS (VGG) + pixel L2 + dlib identity distance (:class:`~tedigan.losses.identity.IdentityLoss`), all
against the photo downsampled to the route's resolution. Without a head (``head=None``) the same recipe runs on
the full generator at ``config.full_resolution`` (the plain, slow route, for comparisons; it also serves
generators without a head, such as the avatar StyleGAN2s, through :func:`render`).
"""

from __future__ import annotations

import copy
import inspect
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tedigan.models.proxy_head import ProxyHead, route_features

__all__ = [
    "FaithfulConfig",
    "faithful_invert",
    "render",
    "Route",
    "polish_parameters",
    "spread_penalty",
    "tunable_low_parameters",
]


@dataclass
class FaithfulConfig:
    """Settings of :func:`faithful_invert` (steps are maxima: every stage may stop early)."""

    # The default recipe (settled on budget-equal runs over real photos and held-out generated faces): no route;
    # W, W+ and tuning of every synthesis weight at full resolution (256 px, LPIPS-Alex + pixel + dlib identity),
    # ~47 s of steps on 2 quiet CPU threads (W/W+ step ~0.58 s, tuning step ~0.73 s) and a time budget as a guard.
    use_head: bool = False  # True: W / W+ / low-block tuning on the route (head given), then optional polish
    w_steps: int = 12
    wplus_steps: int = 12
    pti_steps: int = 40
    w_lr: float = 0.02
    wplus_lr: float = 0.01
    pti_lr: float = 1e-4
    polish_steps: int = (
        0  # > 0: then tune the synthesis at full resolution (slow steps; fixes the high blocks)
    )
    polish_lr: float = 1e-4
    polish_from_block: int = 0  # 0: every synthesis weight; k > 0: blocks k.. and the to-image layer only
    time_budget_s: float | None = (
        50.0  # stops each stage at its share of this (best step kept); None: steps only
    )
    route_step_cost: float = 0.27  # a route step's cost relative to a full-resolution step (for the shares)
    tune_head: bool = (
        False  # True: the head is tuned with the low blocks (the route fits better, the full less)
    )
    lpips_weight: float = 1.0
    pixel_weight: float = 1.0
    identity_weight: float = 0.5
    spread_weight: float = 0.05  # mean squared distance of the 23 site codes from their mean (per dimension)
    patience: int = 10
    revert_tolerance: float = 0.05  # a step whose loss exceeds best * (1 + this) reverts to the best state
    max_reverts: int = 4  # a stage stops after this many reverts (each halves its lr)
    full_resolution: int = 256  # loss resolution without a head, and the resolution of the final render

    def __post_init__(self) -> None:
        for name in ("w_steps", "wplus_steps", "pti_steps", "polish_steps", "patience"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0")
        for name in ("w_lr", "wplus_lr", "pti_lr", "polish_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")
        for name in ("lpips_weight", "pixel_weight", "identity_weight", "spread_weight", "revert_tolerance"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0")


def spread_penalty(ws: torch.Tensor) -> torch.Tensor:
    """Mean squared distance of the site codes ``[B, L, D]`` from their shared mean (0 for a W code)."""
    return (ws - ws.mean(1, keepdim=True)).square().mean()


def polish_parameters(synthesis: nn.Module, from_block: int = 0) -> list[nn.Parameter]:
    """The synthesis parameters the polish tunes: all (``from_block = 0``) or blocks ``from_block..`` and the
    to-image layer (the gradient then stops at that block: cheaper steps)."""
    if from_block <= 0:
        return list(synthesis.parameters())
    low = {id(p) for p in tunable_low_parameters(synthesis, from_block - 1)}
    return [p for p in synthesis.parameters() if id(p) not in low and p is not synthesis.input]


def tunable_low_parameters(synthesis: nn.Module, block: int) -> list[nn.Parameter]:
    """The synthesis parameters the route runs through: the 4 px conv and blocks ``0..block``."""
    params = [synthesis.conv1_style.mod_weight, synthesis.conv1_style.mod_bias]
    params += [synthesis.conv1_weight, synthesis.conv1_bias]
    for i in range(block + 1):
        params += list(synthesis.layers[i].parameters())
    return params


def render(synthesis: nn.Module, ws: torch.Tensor, resolution: int) -> torch.Tensor:
    """``synthesis(ws)`` at ``resolution`` with constant noise: MobileStyleGAN renders there (pooled from 1024 px);
    a generator without a ``resolution`` argument (StyleGAN2) renders its own size, area-pooled when larger."""
    if "resolution" in inspect.signature(synthesis.forward).parameters:
        return synthesis(ws, noise_mode="const", resolution=resolution)
    img = synthesis(ws, noise_mode="const")
    return img if img.shape[-1] == resolution else F.interpolate(img, size=(resolution,) * 2, mode="area")


class Route:
    """Renders codes for the losses: the route (synthesis to ``head.config.block`` + head) or, without a head,
    the full synthesis at ``resolution``."""

    def __init__(self, head: ProxyHead | None, resolution: int) -> None:
        self.head = head
        self.resolution = head.config.resolution if head is not None else int(resolution)

    def __call__(self, synthesis: nn.Module, ws: torch.Tensor) -> torch.Tensor:
        if self.head is None:
            return render(synthesis, ws, self.resolution)
        return self.head(route_features(synthesis, ws, self.head.config.block), ws)


class _Losses:
    def __init__(self, target: torch.Tensor, cfg: FaithfulConfig, lpips: Any, identity: Any) -> None:
        self.target, self.cfg, self.lpips, self.identity = target, cfg, lpips, identity
        self.target_id = None
        if identity is not None and cfg.identity_weight > 0:
            with torch.no_grad():
                self.target_id = identity.embed(target)

    def __call__(self, img: torch.Tensor, ws: torch.Tensor | None = None, spread: float = 0.0):
        cfg, terms = self.cfg, {}
        terms["pixel"] = (img - self.target).square().mean()
        total = cfg.pixel_weight * terms["pixel"]
        if self.lpips is not None and cfg.lpips_weight > 0:
            terms["lpips"] = self.lpips(img, self.target).mean()
            total = total + cfg.lpips_weight * terms["lpips"]
        if self.target_id is not None:
            terms["identity"] = self.identity.distance_of(self.identity.embed(img), self.target_id).mean()
            total = total + cfg.identity_weight * terms["identity"]
        if spread > 0 and ws is not None:
            terms["spread"] = spread_penalty(ws)
            total = total + spread * terms["spread"]
        return total, terms


def _run_stage(
    name: str,
    params: list[torch.Tensor],
    lr: float,
    steps: int,
    loss_fn: Callable[[], tuple[torch.Tensor, dict]],
    cfg: FaithfulConfig,
    progress: Callable[[str, int, dict], None] | None,
    deadline: float | None = None,
) -> dict:
    """Adam on ``params`` with best-step keeping, early stop and revert-on-rise; leaves the best state in place.
    Past ``deadline`` (a ``time.perf_counter()`` value) the stage stops after the step it is in."""
    report = {"stage": name, "steps": 0, "reverts": 0, "history": [], "out_of_time": False}
    if steps <= 0 or not params:
        return report
    opt = torch.optim.Adam(params, lr=lr)
    best_loss, best_state, since_best = float("inf"), [p.detach().clone() for p in params], 0
    start = time.perf_counter()
    for step in range(steps):
        total, terms = loss_fn()
        value = float(total.detach())
        if not torch.isfinite(total.detach()):
            value = float("inf")
        rec = {
            "step": step,
            "total": value,
            **{k: float(v.detach()) for k, v in terms.items()},
            "lr": opt.param_groups[0]["lr"],
        }
        report["history"].append(rec)
        if progress is not None:
            progress(name, step, rec)
        if value < best_loss:
            best_loss, since_best = value, 0
            best_state = [p.detach().clone() for p in params]
        else:
            since_best += 1
            if value > best_loss * (1 + cfg.revert_tolerance):  # a rise: back to the best, smaller steps
                with torch.no_grad():
                    for p, b in zip(params, best_state):
                        p.copy_(b)
                for group in opt.param_groups:
                    group["lr"] *= 0.5
                opt.state.clear()
                report["reverts"] += 1
                report["steps"] = step + 1
                if report["reverts"] > cfg.max_reverts:
                    break
                since_best = 0  # a fresh start at the smaller lr gets its own patience
                continue
            if since_best >= cfg.patience:
                report["steps"] = step + 1
                break
        report["steps"] = step + 1
        if step == steps - 1:  # the last scored step: an update now would never be scored
            break
        if deadline is not None and time.perf_counter() > deadline:
            report["out_of_time"] = True
            break
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
    with torch.no_grad():
        for p, b in zip(params, best_state):
            p.copy_(b)
    report.update(best=best_loss, seconds=time.perf_counter() - start)
    return report


def faithful_invert(
    generator: Any,
    encoder: nn.Module | None,
    image: torch.Tensor,
    config: FaithfulConfig | None = None,
    *,
    head: ProxyHead | None = None,
    lpips: Any = None,
    identity: Any = None,
    w_init: torch.Tensor | None = None,
    progress: Callable[[str, int, dict], None] | None = None,
    polish_lpips: Any = None,
) -> tuple[torch.Tensor, Any, dict]:
    """Invert one aligned photo ``image [1, 3, H, W]`` in [-1, 1] (see the module docs).

    Returns ``(w_plus [1, 23, 512], tuned_generator, report)``: the tuned generator is a copy (the given one is
    never modified) to render ``w_plus`` and edits of it; ``report`` holds the config, each stage's history,
    steps, reverts and seconds, the final losses at full resolution and, with a head, the LPIPS between the full
    render and the route's image (how well the route stood in). ``progress(stage, step, record)`` sees each step.
    """
    cfg = config or FaithfulConfig()
    start = time.perf_counter()
    if not cfg.use_head:
        head = None
    if image.ndim != 4 or image.shape[0] != 1:
        raise ValueError(f"faithful_invert takes one image [1, 3, H, W], got {tuple(image.shape)}")
    image = image.detach().float()
    route = Route(head, cfg.full_resolution)
    target = (
        F.interpolate(image, size=(route.resolution,) * 2, mode="area")
        if image.shape[-1] != route.resolution
        else image
    )
    losses = _Losses(target, cfg, lpips, identity)
    G = generator
    report: dict[str, Any] = {"config": asdict(cfg), "route_resolution": route.resolution, "stages": []}

    # 1. start code
    with torch.no_grad():
        if w_init is None:
            if encoder is None:
                raise ValueError("give an encoder or w_init")
            enc_in = F.interpolate(image, size=(256, 256), mode="area") if image.shape[-1] != 256 else image
            w_init = encoder(enc_in)
        w_init = w_init.detach().float()
        if w_init.ndim == 2:
            w_init = w_init[:, None].expand(-1, G.num_ws, -1)
    frozen_head = head
    if head is not None:
        head.requires_grad_(False)
    route_cost = cfg.route_step_cost if head is not None else 1.0
    costs = [
        cfg.w_steps * route_cost,
        cfg.wplus_steps * route_cost,
        cfg.pti_steps * route_cost,
        cfg.polish_steps * 1.0 if head is not None else 0.0,
    ]
    deadlines: list[float | None] = [None] * 4
    if cfg.time_budget_s is not None and sum(costs) > 0:
        spent, total_cost = 0.0, sum(costs)
        for i, c in enumerate(costs):  # each stage ends at its cumulative share (time left over passes on)
            spent += c
            deadlines[i] = start + cfg.time_budget_s * spent / total_cost

    # 2. W: one shared w
    w = w_init.mean(1).clone().requires_grad_(True)

    def w_loss():
        ws = w[:, None].expand(-1, G.num_ws, -1)
        return losses(route(G.synthesis, ws))

    report["stages"].append(_run_stage("w", [w], cfg.w_lr, cfg.w_steps, w_loss, cfg, progress, deadlines[0]))

    # 3. W+ with the spread penalty
    ws = w.detach()[:, None].repeat(1, G.num_ws, 1).requires_grad_(True)

    def wplus_loss():
        return losses(route(G.synthesis, ws), ws, cfg.spread_weight)

    report["stages"].append(
        _run_stage("wplus", [ws], cfg.wplus_lr, cfg.wplus_steps, wplus_loss, cfg, progress, deadlines[1])
    )
    ws = ws.detach()

    # 4. pivotal tuning of the low blocks (+ optionally the head) on a copy
    tuned = copy.deepcopy(G).float().eval().requires_grad_(False)
    if cfg.pti_steps > 0:
        if head is not None:
            block = head.config.block
            params = tunable_low_parameters(tuned.synthesis, block)
            if cfg.tune_head:
                head = copy.deepcopy(head)
                params += list(head.parameters())
                route = Route(head, cfg.full_resolution)
        else:
            params = list(tuned.synthesis.parameters())
        for p in params:
            p.requires_grad_(True)

        def pti_loss():
            return losses(route(tuned.synthesis, ws))

        report["stages"].append(
            _run_stage("pti", params, cfg.pti_lr, cfg.pti_steps, pti_loss, cfg, progress, deadlines[2])
        )
        tuned.requires_grad_(False)
        if head is not None:
            head.requires_grad_(False)

    # 5. optional polish: every synthesis weight, losses at full resolution
    if cfg.polish_steps > 0 and head is not None:
        full_route = Route(None, cfg.full_resolution)
        full_target = (
            F.interpolate(image, size=(cfg.full_resolution,) * 2, mode="area")
            if image.shape[-1] != cfg.full_resolution
            else image
        )
        full_losses = _Losses(full_target, cfg, polish_lpips if polish_lpips is not None else lpips, identity)
        params = polish_parameters(tuned.synthesis, cfg.polish_from_block)
        for p in params:
            p.requires_grad_(True)

        def polish_loss():
            return full_losses(full_route(tuned.synthesis, ws))

        report["stages"].append(
            _run_stage(
                "polish", params, cfg.polish_lr, cfg.polish_steps, polish_loss, cfg, progress, deadlines[3]
            )
        )
        tuned.requires_grad_(False)

    # final: full render by the (tuned) generator, never worse (by the full-resolution loss) than the start
    with torch.no_grad():
        full = render(tuned.synthesis, ws, cfg.full_resolution)
        full_target = (
            F.interpolate(image, size=full.shape[-2:], mode="area")
            if image.shape[-1] != full.shape[-1]
            else image
        )
        score = _Losses(full_target, cfg, lpips, identity)
        final_total = float(score(full)[0])
        start_img = render(G.synthesis, w_init, cfg.full_resolution)
        start_total = float(score(start_img)[0])
        report["final_full"], report["start_full"] = final_total, start_total
        report["fell_back"] = not final_total <= start_total
        if report["fell_back"]:
            ws, full = w_init.clone(), start_img
            tuned = copy.deepcopy(G).float().eval().requires_grad_(False)
        full_lo = (
            F.interpolate(full, size=(route.resolution,) * 2, mode="area")
            if full.shape[-1] != route.resolution
            else full
        )
        total, terms = losses(full_lo)
        report["final_full_at_route_resolution"] = {
            "total": float(total),
            **{k: float(v) for k, v in terms.items()},
        }
        if frozen_head is not None:
            route_img = route(tuned.synthesis, ws)
            report["route_vs_full_psnr"] = float(10 * torch.log10(4 / (route_img - full_lo).square().mean()))
            if lpips is not None:
                report["route_vs_full_lpips"] = float(
                    lpips(route_img.clamp(-1, 1), full_lo.clamp(-1, 1)).mean()
                )
    report["spread"] = float(spread_penalty(ws))
    report["seconds"] = time.perf_counter() - start
    report["image"] = full.clamp(-1, 1)
    return ws, tuned, report
