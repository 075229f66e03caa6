"""tedigan: text-guided multimodal face generation and editing (TediGAN, CVPR 2021) on StyleGAN2.

Every stage is trainable: backbone (StyleGAN2 / StyleGAN1-AdaIN / SWAGAN), image→W+ inversion encoder,
text encoder aligned to W+ by visual-linguistic similarity, and the layer-wise control used for editing.
"""

__version__ = "0.1.0"

from typing import Any

__all__ = ["TediGANPipeline", "TediGANOutput", "__version__"]


def __getattr__(name: str) -> Any:  # PEP 562: `import tedigan` stays light; torch loads on first use
    if name in ("TediGANPipeline", "TediGANOutput"):
        from tedigan import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'tedigan' has no attribute {name!r}")
