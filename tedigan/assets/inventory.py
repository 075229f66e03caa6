"""What was found: one line per asset, with where it lives or what to install. Never downloads."""

from __future__ import annotations

from pathlib import Path

from tedigan.assets.faces import facenet_weights_path, mobilestylegan_ir_dir, mtcnn_weights_dir
from tedigan.assets.fid import fid_inception_path
from tedigan.assets.lpips import lpips_backbone_path, lpips_heads_path
from tedigan.assets.npm import NPM_MODELS, npm_model_dir
from tedigan.assets.resolve import MissingWeightsError
from tedigan.assets.text import text_model_path

__all__ = ["report"]


def report() -> None:
    """Print one line per asset: where it was found, or what to install. Never downloads."""
    checks = [
        ("text model", lambda: text_model_path()),
        ("LPIPS VGG16 backbone", lambda: lpips_backbone_path("vgg", download=False)),
        ("LPIPS AlexNet backbone", lambda: lpips_backbone_path("alex", download=False)),
        ("LPIPS heads (vgg)", lambda: lpips_heads_path("vgg")),
        ("LPIPS heads (alex)", lambda: lpips_heads_path("alex")),
        ("FID Inception", lambda: fid_inception_path(download=False)),
        ("MTCNN", lambda: mtcnn_weights_dir()),
        ("InceptionResnetV1", lambda: facenet_weights_path(download=False)),
        ("MobileStyleGAN IR", lambda: mobilestylegan_ir_dir()),
        *((f"{pkg} weights", (lambda pkg=pkg: npm_model_dir(pkg))) for pkg in NPM_MODELS),
    ]
    width = max(len(name) for name, _ in checks)
    for name, resolve in checks:
        try:
            where = resolve()
            if isinstance(where, str) and not Path(where).is_dir():
                where = f"hub id {where} (downloads on first use)"
            print(f"{name:<{width}}  found    {where}")
        except MissingWeightsError as e:
            print(f"{name:<{width}}  MISSING  {e}")
