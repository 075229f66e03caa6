"""tedigan: text-guided multimodal face generation and editing (TediGAN, CVPR 2021) on StyleGAN2.

Every stage is trainable: backbone (StyleGAN2 / StyleGAN1-AdaIN / SWAGAN), image→W+ inversion encoder,
text encoder aligned to W+ by visual-linguistic similarity, and the layer-wise control used for editing.
"""

__version__ = "0.1.0"
