#!/usr/bin/env bash
# Train a generator preset for a fixed time on a lent accelerator machine, and leave in $OUT what the later
# stages (run on CPU afterwards) need. Run it there from the repository root, e.g.
#
#   OUT=/somewhere MINUTES=7 bash scripts/device_generator.sh
#   OUT=/somewhere MINUTES=7 CONFIG=configs/generator_avatars64.yaml EXTRA="--train.batch_size=64" \
#       bash scripts/device_generator.sh
#   OUT=/somewhere MINUTES=7 RESUME=/folder/with/a/previous/OUT bash scripts/device_generator.sh
#
# It renders the avatar data set there (PIL and numpy only: nothing to install), trains with
# train.max_minutes (the run stops on a log step once the time is up and saves as if it had finished), and
# copies eight files into $OUT: generator/ and discriminator/ (model.safetensors + config.json each),
# samples.png (the last grid), metrics.jsonl, complete.json (steps, kimg, img/s) and train.log.
# RESUME continues from such a folder's generator and discriminator (G_ema seeds G too; the optimiser
# states start afresh, as they do not come back; the seed becomes the images trained so far). FID is measured
# afterwards where the FID Inception package is installed:
#   tedigan metrics --model $OUT --metrics fid --data-root DATA --data-kind avatars
set -euo pipefail
: "${OUT:?set OUT to the folder whose files come back}"
MINUTES="${MINUTES:-7}"
CONFIG="${CONFIG:-configs/generator_avatars64.yaml}"
NUM="${NUM:-10000}"
EXTRA="${EXTRA:-}"
RESUME="${RESUME:-}"
PY="${PYTHON:-python3}"
WORK="${WORK:-/tmp/tedigan_device}"
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TQDM_MININTERVAL=30

res=$("$PY" -c "import sys; from tedigan.config import GeneratorStageConfig as C, load_config
print(load_config(C, sys.argv[1]).data.resolution)" "$CONFIG")
mkdir -p "$OUT" "$WORK"
log="$OUT/train.log"
{
  echo "[device_generator] $(date -u +%FT%TZ) config $CONFIG, $NUM avatars at $res px, $MINUTES min, extra: $EXTRA"
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
  [ -f "$WORK/data/info.json" ] || "$PY" -m tedigan.data.avatars --num "$NUM" --resolution "$res" --out "$WORK/data" --no-hf
  init=()
  if [ -n "$RESUME" ]; then
    # a new seed per continuation (the images seen so far): not the first session's data order and latents again
    seed=$("$PY" -c "import json, sys; e = json.load(open(sys.argv[1])).get('_extra') or {}
print(round(1000 * e.get('kimg_total', e.get('kimg', 0))))" "$RESUME/generator/config.json")
    init=(--init_from="$RESUME" --train.seed="$seed")
  fi
  # shellcheck disable=SC2086  # EXTRA is a list of --key=value overrides
  "$PY" pipelines/train_stage.py --stage generator --config "$CONFIG" --data.root="$WORK/data" \
    --train.output_dir="$WORK/gen" --train.max_minutes="$MINUTES" --train.max_steps=100000000 \
    ${init[@]+"${init[@]}"} $EXTRA
} >"$log" 2>&1 || { tail -n 20 "$log"; exit 1; }

mkdir -p "$OUT/generator" "$OUT/discriminator"
cp "$WORK/gen/generator/"{model.safetensors,config.json} "$OUT/generator/"
cp "$WORK/gen/discriminator/"{model.safetensors,config.json} "$OUT/discriminator/"
cp "$WORK/gen/metrics.jsonl" "$WORK/gen/complete.json" "$OUT/"
cp "$(ls -v "$WORK/gen/samples"/step-*.png | tail -n 1)" "$OUT/samples.png"
tail -n 3 "$log"
cat "$OUT/complete.json"
