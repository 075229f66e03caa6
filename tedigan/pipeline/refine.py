"""Instance-level refinement of the pipeline's codes: TediGAN's optimisation (pixel + LPIPS + the encoder
regulariser, :func:`tedigan.editing.optimization.optimize_latent`), pivotal tuning (Roich et al. 2022,
:mod:`tedigan.editing.pivotal`) and the faithful inversion of photos (:mod:`tedigan.editing.faithful`).

:class:`Refinement` holds these steps as methods of :class:`~tedigan.pipeline.pipeline.TediGANPipeline` (its base
class): they read the pipeline's parts (generator, encoder, defaults, proxy head) and its loss cache.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict
from typing import Any

import torch
from tqdm.auto import tqdm

from tedigan.editing.optimization import OptimizationConfig, optimize_latent
from tedigan.pipeline.outputs import EditOptions, edit_optimization, faithful_recipe

__all__ = ["Refinement"]

#: what the faithful inversion's progress bars call its stages
_STAGES = {"w": "W", "wplus": "W+", "pti": "tuning", "polish": "polish"}


class _StageBars:
    """The progress callback of :func:`~tedigan.editing.faithful.faithful_invert`: one bar per stage (its step
    maximum as the total: a stage may stop early), the loss beside it; nothing when not ``enabled``."""

    def __init__(self, cfg: Any, enabled: bool, prefix: str = "") -> None:
        self.totals = {
            "w": cfg.w_steps,
            "wplus": cfg.wplus_steps,
            "pti": cfg.pti_steps,
            "polish": cfg.polish_steps,
        }
        self.enabled, self.prefix = enabled, prefix
        self.stage: str | None = None
        self.bar: Any = None

    def __call__(self, stage: str, step: int, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        if stage != self.stage:
            self.close()
            self.stage = stage
            desc = f"faithful {self.prefix}{_STAGES.get(stage, stage)}"
            self.bar = tqdm(total=self.totals.get(stage), desc=desc, unit="step", leave=False)
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{record['total']:.4f}", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class Refinement:
    """The refinement steps of the pipeline (a base class of :class:`TediGANPipeline`)."""

    def _lpips_loss(self, net: str = "vgg") -> Any:
        if net not in self._losses:
            from tedigan.losses.perceptual import LPIPS

            self._losses[net] = LPIPS(net=net).to(self.device)
        return self._losses[net]

    def _identity_loss(self) -> Any:
        """The dlib face descriptor for the faithful inversion of faces (None for other domains, or with a
        warning when its weights are not installed)."""
        if self.domain != "faces":
            return None
        if "identity" not in self._losses:
            from tedigan.assets import MissingWeightsError
            from tedigan.losses.identity import IdentityLoss

            try:
                self._losses["identity"] = IdentityLoss().to(self.device)
            except MissingWeightsError as err:
                warnings.warn(
                    f"faithful inversion without its identity loss (the face-api weights are missing: {err}); "
                    "bash scripts/install.sh fetches them",
                    stacklevel=4,
                )
                self._losses["identity"] = None
        return self._losses["identity"]

    def _faithful(
        self, x: torch.Tensor, w_enc: torch.Tensor, opts: EditOptions
    ) -> tuple[torch.Tensor, list[Any], torch.Tensor, list[dict[str, Any]]]:
        """Faithful inversion of each image (:func:`~tedigan.editing.faithful.faithful_invert` from its encoder
        code ``w_enc``): its W+ codes, one tuned generator copy per image, their renders of the codes and the
        per-step losses (``stage``, ``image`` and the loss terms). A recipe with ``use_head=True`` runs on the
        fast route of the pipeline's proxy head; without a head it runs every step at full resolution (slower)."""
        from tedigan.editing.faithful import FaithfulConfig, faithful_invert

        cfg = opts.faithful or faithful_recipe(self.defaults.pti_lr, self.resolution)
        cfg = FaithfulConfig(
            **{
                **asdict(cfg),
                "full_resolution": self.resolution,
                **({"pti_steps": opts.pti_steps} if opts.pti_steps > 0 else {}),
            }
        )
        lpips = self._lpips_loss("alex") if cfg.lpips_weight > 0 else None
        identity = self._identity_loss() if cfg.identity_weight > 0 else None
        codes, tuned, images, losses = [], [], [], []
        for i in range(len(x)):
            bars = _StageBars(cfg, opts.progress, f"{i + 1}/{len(x)} " if len(x) > 1 else "")
            try:
                ws, g, report = faithful_invert(
                    self.generator,
                    None,
                    x[i : i + 1].float(),
                    cfg,
                    head=self.proxy_head,
                    lpips=lpips,
                    identity=identity,
                    w_init=w_enc[i : i + 1].float(),
                    progress=bars,
                )
            finally:
                bars.close()
            codes.append(ws.to(self.dtype))
            tuned.append(g)
            images.append(report["image"])
            losses += [{"stage": s["stage"], "image": i, **r} for s in report["stages"] for r in s["history"]]
        return torch.cat(codes), tuned, torch.cat(images), losses

    def _render(self, codes: torch.Tensor, tuned: list[Any] | None = None) -> torch.Tensor:
        """``codes`` rendered by the pipeline's generator, or image by image by the ``tuned`` copies."""
        with torch.no_grad():
            if tuned is None:
                return self.generator.synthesis(codes, noise_mode="const")
            return torch.cat(
                [g.synthesis(codes[i : i + 1].float(), noise_mode="const") for i, g in enumerate(tuned)]
            )

    def _optimise(
        self,
        w: torch.Tensor,
        target: torch.Tensor | None,
        w_keep: torch.Tensor,
        layers: list[int],
        mask: torch.Tensor | None,
        opts: EditOptions,
        default: OptimizationConfig | None = None,
        generator: Any = None,
    ) -> Any:
        cfg = opts.optimization or default or edit_optimization()
        cfg = OptimizationConfig(
            **{**asdict(cfg), "steps": opts.steps, "seed": opts.seed, "progress": opts.progress}
        )
        lpips = self._lpips_loss() if target is not None and cfg.lpips_weight > 0 else None
        return optimize_latent(
            generator if generator is not None else self.generator,
            w,
            target,
            encoder=self.encoder,
            w_text=w_keep,
            layers=layers,
            mask=mask,
            lpips=lpips,
            config=cfg,
            callback=opts.callback,
        )

    def _pivotal(
        self, pivots: torch.Tensor, targets: torch.Tensor, codes: torch.Tensor, opts: EditOptions
    ) -> tuple[torch.Tensor, list[Any]]:
        """Tune one generator copy per image around its pivot code (:mod:`tedigan.editing.pivotal`, at the
        model's ``defaults.pti_lr``, best step kept); render ``codes`` (one per image) with it. Returns the images
        and the tuned copies."""
        from tedigan.editing.pivotal import PivotalTuningConfig, pivotal_tuning

        cfg = PivotalTuningConfig(
            steps=opts.pti_steps, lr=self.defaults.pti_lr, seed=opts.seed, progress=opts.progress
        )
        images, tuned = [], []
        for i in range(len(pivots)):
            g, _ = pivotal_tuning(
                self.generator, pivots[i : i + 1], targets[i : i + 1], self._lpips_loss(), cfg
            )
            with torch.no_grad():
                images.append(g.synthesis(codes[i : i + 1].float(), noise_mode="const"))
            tuned.append(g)
        return torch.cat(images), tuned

    def _refine(
        self,
        w: torch.Tensor,
        target: torch.Tensor | None,
        w_keep: torch.Tensor,
        layers: list[int],
        mask: torch.Tensor | None,
        opts: EditOptions,
        tuned: list[Any] | None,
    ) -> tuple[torch.Tensor, torch.Tensor, list[dict[str, Any]]]:
        """Instance-level optimisation of ``w`` (:meth:`_optimise`): on the pipeline's generator, or image by
        image on the ``tuned`` copies. Returns the codes, their images and the losses."""
        if tuned is None:
            result = self._optimise(w, target, w_keep, layers, mask, opts)
            return result.w.detach(), result.image, result.losses
        codes, images, losses = [], [], []
        for i, g in enumerate(tuned):
            one = slice(i, i + 1)
            result = self._optimise(
                w[one],
                target[one] if target is not None else None,
                w_keep[one],
                layers,
                mask[one] if mask is not None else None,
                opts,
                generator=g,
            )
            codes.append(result.w.detach())
            images.append(result.image)
            losses += [{**r, "image": i} for r in result.losses]
        return torch.cat(codes), torch.cat(images), losses
