"""Instance-level optimisation of W+ codes: TediGAN's refinement step after inversion and mixing.

Xia et al., "TediGAN" (CVPR 2021), §3.4, following in-domain inversion (Zhu et al., "In-Domain GAN Inversion
for Real Image Editing", ECCV 2020): starting from the mixed code, Adam refines ``w`` so that ``G(w)``

* stays close to the source image — pixel L2 and LPIPS, optionally only *outside* what the text changes
  (a spatial ``mask``: 1 = keep like the source, 0 = free);
* stays in the encoder's domain — ``‖w − E(G(w))‖²`` (gradients through both ``w`` and ``E(G(w))``);
* follows the text — the distance to the text code on the selected layers (TediGAN's visual-linguistic
  term), and/or a CLIP loss ``1 − cos(CLIP_img(G(w)), CLIP_txt(prompt))`` when a CLIP model is given
  (as in StyleCLIP; Radford et al., "Learning Transferable Visual Models", 2021);
* optionally keeps the identity (``1 − cos`` of face-recognition embeddings, :class:`IdentityLoss`).

The learning rate follows the StyleGAN2 projector (Karras et al. 2020, Appendix D): linear warm-up over the
first ``lr_rampup`` share of the steps and a cosine ramp-down over the last ``lr_rampdown`` share.

Only ``w`` is optimised; generator, encoder, LPIPS and CLIP are used through ``torch.autograd.grad`` with
respect to ``w`` alone, so their parameters' ``.grad`` and ``requires_grad`` flags are never touched, and they
run in eval mode (restored afterwards). Per-pixel noise is ``const`` by default; with ``"random"`` the noise
comes from ``seed``, so a run is reproducible.

All loss terms are means: pixel L2 over (masked) pixels and channels in [-1, 1] units, latent terms over
layers and ``w_dim`` (so weights do not depend on the code size), LPIPS/identity/CLIP over the batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from tedigan.editing.mixing import LayerSpec, as_wplus, layer_mask
from tedigan.losses.identity import IdentityLoss
from tedigan.models.base import eval_mode

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "OptimizationConfig",
    "OptimizationResult",
    "CLIPLoss",
    "IdentityLoss",
    "change_mask",
    "clip_preprocess",
    "learning_rate",
    "optimize_latent",
]

#: CLIP's image normalisation (OpenAI CLIP and ``transformers.CLIPImageProcessor`` defaults).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

_NOISE_MODES = ("const", "random", "none")


@dataclass
class OptimizationConfig:
    """Settings of :func:`optimize_latent`. A term is active when its weight is > 0 *and* its input or
    module is given (``w_text``, ``encoder``, ``lpips``, ``identity``, ``clip``; pixel/LPIPS/identity need a
    target image). Defaults follow TediGAN/In-Domain inversion (lr 0.01, encoder weight 2) and StyleGAN2's
    projector ramps."""

    steps: int = 100
    lr: float = 0.01
    lr_rampup: float = 0.05  # share of steps for the linear warm-up
    lr_rampdown: float = 0.25  # share of steps for the cosine ramp-down
    betas: tuple[float, float] = (0.9, 0.999)
    pixel_weight: float = 1.0
    lpips_weight: float = 1.0
    encoder_weight: float = 2.0
    text_weight: float = 1.0  # latent distance to the text code on the selected layers
    identity_weight: float = 0.1
    clip_weight: float = 1.0
    freeze_unselected: bool = False  # True: only the selected layers move (others stay bit-identical)
    noise_mode: str = "const"
    seed: int = 0
    progress: bool = False

    def __post_init__(self) -> None:
        if int(self.steps) < 0:
            raise ValueError(f"steps must be >= 0, got {self.steps}")
        self.steps = int(self.steps)
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        for name in ("pixel", "lpips", "encoder", "text", "identity", "clip"):
            if getattr(self, f"{name}_weight") < 0:
                raise ValueError(f"{name}_weight must be >= 0")
        if self.noise_mode not in _NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {_NOISE_MODES}, got {self.noise_mode!r}")
        self.betas = (float(self.betas[0]), float(self.betas[1]))


@dataclass
class OptimizationResult:
    """``w`` ``[B, num_ws, w_dim]`` (detached), ``image = G.synthesis(w)`` ``[B, C, H, W]`` and the loss
    history: one dict per step with ``total``, ``lr`` and every active term (values before that step's
    update)."""

    w: torch.Tensor
    image: torch.Tensor
    losses: list[dict[str, float]] = field(default_factory=list)


def change_mask(
    before: torch.Tensor, after: torch.Tensor, threshold: float = 0.2, grow: int = 1
) -> torch.Tensor:
    """Where ``after`` keeps ``before``: ``[B, 1, H, W]`` in [0, 1], 1 = unchanged, 0 = changed.

    The per-pixel mean absolute difference (images in [-1, 1]) is grown by a ``2·grow+1`` max filter, so
    edges of a changed region count as changed, and mapped linearly: 0 difference -> 1, ``threshold`` or
    more -> 0.
    """
    d = (after - before).abs().mean(dim=1, keepdim=True)
    if grow > 0:
        d = F.max_pool2d(d, kernel_size=2 * grow + 1, stride=1, padding=grow)
    return (1.0 - d / threshold).clamp(0.0, 1.0)


def learning_rate(step: int, steps: int, base: float, rampup: float = 0.05, rampdown: float = 0.25) -> float:
    """StyleGAN2 projector schedule: ``base · cos-ramp-down(t) · min(1, t' / rampup)``, ``t = step / steps``.

    The warm-up uses ``t' = (step + 1) / steps`` (the projector uses ``t``), so the first step already moves
    and a 1-step run is not a no-op.
    """
    t = step / max(steps, 1)
    ramp = 1.0 if rampdown <= 0 else min(1.0, (1.0 - t) / rampdown)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    if rampup > 0:
        ramp *= min(1.0, (step + 1) / max(steps, 1) / rampup)
    return base * ramp


# ------------------------------------------------------------------------------------------------ CLIP


def clip_preprocess(
    images: torch.Tensor,
    image_size: int,
    mean: tuple[float, ...] = CLIP_MEAN,
    std: tuple[float, ...] = CLIP_STD,
) -> torch.Tensor:
    """Differentiable CLIP preprocessing of images in [-1, 1]: to [0, 1], bicubic resize to ``image_size``
    (square images, so no crop is needed), normalise with CLIP's mean/std. No clamping, so gradients reach
    pixels slightly outside the range too. Grey images are repeated to 3 channels."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected images [B, 3, H, W] (or 1 channel), got {tuple(images.shape)}")
    x = (images + 1) / 2
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    if tuple(x.shape[-2:]) != (image_size, image_size):
        x = F.interpolate(
            x, size=(image_size, image_size), mode="bicubic", align_corners=False, antialias=True
        )
    m = torch.tensor(mean, device=x.device, dtype=x.dtype).reshape(1, 3, 1, 1)
    s = torch.tensor(std, device=x.device, dtype=x.dtype).reshape(1, 3, 1, 1)
    return (x - m) / s


def _pooled(out: Any) -> torch.Tensor:
    # transformers < 5 returns the projected features, >= 5 a model output whose pooler_output holds them
    return out if isinstance(out, torch.Tensor) else out.pooler_output


class CLIPLoss(nn.Module):
    """``images [B, C, H, W] in [-1, 1] -> [B]``: ``1 − cos`` between CLIP image and text embeddings.

    ``model``: a ``transformers.CLIPModel`` (any hub id or local path the user loaded). ``text``: the
    tokenizer's output (a mapping with ``input_ids`` and optional ``attention_mask``), an ``input_ids``
    LongTensor ``[T, L]``, or precomputed text embeddings (a float tensor ``[T, D]``). One text broadcasts
    over the batch; ``T == B`` pairs texts with images. The text embedding is computed once, without grad.
    """

    def __init__(self, model: nn.Module, text: Any, image_size: int | None = None) -> None:
        super().__init__()
        self.model = model
        self.image_size = int(image_size or model.config.vision_config.image_size)
        with torch.no_grad():
            if isinstance(text, torch.Tensor) and text.dtype.is_floating_point:
                emb = text
            else:
                if isinstance(text, torch.Tensor):
                    text = {"input_ids": text}
                if not isinstance(text, Mapping) or "input_ids" not in text:
                    raise ValueError(
                        "text must be tokenizer output ({'input_ids', 'attention_mask'}), input_ids, or "
                        "text embeddings; tokenise prompts with the CLIP model's tokenizer"
                    )
                device = next(model.parameters()).device
                ids = torch.as_tensor(text["input_ids"]).to(device)
                ids = ids.unsqueeze(0) if ids.ndim == 1 else ids
                mask = text.get("attention_mask")
                if mask is not None:
                    mask = torch.as_tensor(mask).to(device)
                    mask = mask.unsqueeze(0) if mask.ndim == 1 else mask
                was = model.training
                model.eval()
                emb = _pooled(model.get_text_features(input_ids=ids, attention_mask=mask))
                model.train(was)
        self.register_buffer("text_embeds", F.normalize(emb.detach().float(), dim=-1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pixels = clip_preprocess(images, self.image_size).to(next(self.model.parameters()).dtype)
        img = F.normalize(_pooled(self.model.get_image_features(pixel_values=pixels)).float(), dim=-1)
        txt = self.text_embeds.to(img.device)
        if txt.shape[0] not in (1, img.shape[0]):
            raise ValueError(f"{txt.shape[0]} texts for {img.shape[0]} images: give 1 or one per image")
        return 1 - (img * txt).sum(dim=-1)


# -------------------------------------------------------------------------------------------- identity


# ---------------------------------------------------------------------------------------- optimisation


def _batch(x: torch.Tensor, b: int, what: str) -> torch.Tensor:
    if x.shape[0] == b:
        return x
    if x.shape[0] == 1:
        return x.expand(b, *x.shape[1:])
    raise ValueError(f"{what} has batch {x.shape[0]}, the codes have {b} (use 1 to broadcast)")


def optimize_latent(
    G: Any,
    w_init: torch.Tensor,
    target_image: torch.Tensor | None,
    *,
    encoder: Callable[[torch.Tensor], torch.Tensor] | None = None,
    w_text: torch.Tensor | None = None,
    layers: LayerSpec | None = None,
    mask: torch.Tensor | None = None,
    lpips: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    clip: Any = None,
    clip_text: Any = None,
    identity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    config: OptimizationConfig | None = None,
    callback: Callable[[int, torch.Tensor], None] | None = None,
) -> OptimizationResult:
    """Refine W+ codes with Adam (see the module docs for the losses). ``callback(step, image)`` sees each
    step's image (detached; e.g. the frames of a projection video).

    Args:
        G: generator with ``num_ws`` and ``synthesis(ws, noise_mode=...)``.
        w_init: start codes ``[B, num_ws, w_dim]`` (e.g. :func:`tedigan.editing.mixing.edit_codes`).
        target_image: source images ``[B or 1, C, H, W]`` in [-1, 1] at the generator's resolution, or None
            (no pixel/LPIPS/identity terms, e.g. text-to-image refinement).
        encoder: image → W+ (:class:`tedigan.models.encoder.Encoder`) for ``‖w − E(G(w))‖²``.
        w_text: the text code ``[B or 1, num_ws, w_dim]``; its distance counts on ``layers`` only.
        layers: the text-related layers (indices or a boolean mask); None = all layers.
        mask: ``[B or 1, 1 or C, h, w]`` in [0, 1] (resized to the image): where pixel/LPIPS apply.
        lpips: ``(x, y) -> [B]`` (:class:`tedigan.losses.perceptual.LPIPS`).
        clip: a ``transformers.CLIPModel`` (then ``clip_text`` is its tokenizer output or input_ids) or any
            ``images -> [B]`` loss such as :class:`CLIPLoss`.
        identity: ``(images, target) -> [B]`` (:class:`IdentityLoss`).
        config: :class:`OptimizationConfig` (defaults when None).

    ``steps = 0`` returns ``w_init`` unchanged (and its image).
    """
    cfg = config or OptimizationConfig()
    w_init = as_wplus(w_init, what="w_init").detach()
    b, num_ws, _ = w_init.shape
    if num_ws != int(G.num_ws):
        raise ValueError(f"w_init has {num_ws} layers, the generator has {int(G.num_ws)}")
    device = w_init.device
    sel = (
        layer_mask(layers, num_ws, device=device)
        if layers is not None
        else torch.ones(num_ws, dtype=torch.bool, device=device)
    )
    if w_text is not None:
        w_text = _batch(as_wplus(w_text, what="w_text"), b, "w_text").detach().to(w_init)
        if w_text.shape[1:] != w_init.shape[1:]:
            raise ValueError(f"w_text {tuple(w_text.shape)} and w_init {tuple(w_init.shape)} differ")
    target = None
    if target_image is not None:
        if target_image.ndim != 4:
            raise ValueError(f"target_image must be [B, C, H, W], got {tuple(target_image.shape)}")
        target = _batch(target_image.detach(), b, "target_image").to(device=device, dtype=w_init.dtype)
    if mask is not None and target is None:
        raise ValueError("a mask needs a target_image")
    if clip is not None and hasattr(clip, "get_image_features"):
        if clip_text is None:
            raise ValueError("a CLIP model needs clip_text (tokenizer output or input_ids of the prompt)")
        clip = CLIPLoss(clip, clip_text)

    use = {
        "pixel": target is not None and cfg.pixel_weight > 0,
        "lpips": target is not None and lpips is not None and cfg.lpips_weight > 0,
        "encoder": encoder is not None and cfg.encoder_weight > 0,
        "text": w_text is not None and cfg.text_weight > 0 and bool(sel.any()),
        "identity": target is not None and identity is not None and cfg.identity_weight > 0,
        "clip": clip is not None and cfg.clip_weight > 0,
    }
    weights = {k: float(getattr(cfg, f"{k}_weight")) for k in use}
    modules = [m for m in (G, encoder, lpips, clip, identity) if isinstance(m, nn.Module)]
    history: list[dict[str, float]] = []
    rng_devices = [device] if device.type == "cuda" else []

    with eval_mode(*modules), torch.random.fork_rng(devices=rng_devices):
        torch.manual_seed(cfg.seed)
        if cfg.steps == 0:
            with torch.no_grad():
                return OptimizationResult(w_init.clone(), G.synthesis(w_init, noise_mode=cfg.noise_mode), [])

        m = None
        if mask is not None:
            m = mask.to(device=device, dtype=w_init.dtype)
            m = m.unsqueeze(0) if m.ndim == 3 else m
            if m.ndim != 4 or m.shape[1] not in (1, target.shape[1]):
                raise ValueError(f"mask must be [B or 1, 1 or C, H, W], got {tuple(mask.shape)}")
            if tuple(m.shape[-2:]) != tuple(target.shape[-2:]):
                m = F.interpolate(m, size=target.shape[-2:], mode="bilinear", align_corners=False)
            m = _batch(m, b, "mask").expand(-1, target.shape[1], -1, -1)

        w_var = w_init.clone().requires_grad_(True)
        opt = torch.optim.Adam([w_var], lr=cfg.lr, betas=cfg.betas)
        freeze = cfg.freeze_unselected and not bool(sel.all())
        text_sel = sel[None, :, None]
        bar = tqdm(range(cfg.steps), desc="optimise", disable=not cfg.progress)
        for step in bar:
            lr = learning_rate(step, cfg.steps, cfg.lr, cfg.lr_rampup, cfg.lr_rampdown)
            for group in opt.param_groups:
                group["lr"] = lr
            w = torch.where(text_sel, w_var, w_init) if freeze else w_var
            img = G.synthesis(w, noise_mode=cfg.noise_mode)
            if target is not None and img.shape[1:] != target.shape[1:]:
                raise ValueError(
                    f"target_image {tuple(target.shape[1:])} does not match the generator's output "
                    f"{tuple(img.shape[1:])}: resize it first"
                )
            terms: dict[str, torch.Tensor] = {}
            if use["pixel"]:
                sq = (img - target) ** 2
                terms["pixel"] = sq.mean() if m is None else (sq * m).sum() / m.sum().clamp_min(1e-8)
            if use["lpips"]:
                x = img if m is None else m * img + (1 - m) * target  # outside the mask: no difference
                terms["lpips"] = lpips(x, target).mean()
            if use["encoder"]:
                terms["encoder"] = ((w - encoder(img)) ** 2).mean()
            if use["text"]:
                terms["text"] = ((w - w_text) ** 2)[:, sel].mean()
            if use["identity"]:
                terms["identity"] = identity(img, target).mean()
            if use["clip"]:
                terms["clip"] = clip(img).mean()
            if not terms:
                raise ValueError(
                    "no active loss: give a target image, encoder, w_text or clip with a weight > 0"
                )
            total = sum(weights[k] * v for k, v in terms.items())
            (grad,) = torch.autograd.grad(total, [w_var])
            opt.zero_grad(set_to_none=True)
            w_var.grad = grad
            opt.step()
            record = {k: float(v.detach()) for k, v in terms.items()}
            record.update(total=float(total.detach()), lr=lr)
            history.append(record)
            if callback is not None:
                callback(step, img.detach())
            if cfg.progress:
                bar.set_postfix(loss=f"{record['total']:.4f}")
        bar.close()
        with torch.no_grad():
            w = (torch.where(text_sel, w_var, w_init) if freeze else w_var).detach().clone()
            image = G.synthesis(w, noise_mode=cfg.noise_mode)
    return OptimizationResult(w, image, history)
