#!/usr/bin/env bash
# Train every tedigan stage in order, each stage's output feeding the next.
#
#   bash train_all.sh                  # preset avatars64 (CPU): data -> classifier -> ...
#   PRESET=avatars64 OUT=outputs/avatars64 bash train_all.sh
#   LAUNCH="accelerate launch" bash train_all.sh   # multi-GPU / multi-node through accelerate
#
# A stage whose final model folder exists is skipped; an interrupted stage resumes from its latest
# checkpoint-N. Every stage writes its resolved config.yaml, metrics.jsonl and grids into its folder.
#
# Stages: data (procedural avatars) -> classifier (attribute judge) -> generator (StyleGAN2 backbone)
#   -> inversion (+ sketch, label encoders) -> text -> layer analysis -> evaluation.
# Stages after `classifier` are added by the backbone, inversion and text milestones; until they land
# this script stops after the last available stage and says so.
set -euo pipefail
cd "$(dirname "$0")"
PRESET="${PRESET:-avatars64}"
OUT="${OUT:-outputs/$PRESET}"
DATA="${DATA:-data/$PRESET}"
NUM="${NUM:-10000}"
LAUNCH="${LAUNCH:-python}"
log() { printf '\n[train_all %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

if [ "$PRESET" != "avatars64" ]; then
  echo "preset '$PRESET' needs a user data set: see README (ffhq presets arrive with the backbone stage)" >&2
  exit 2
fi

log "stage data: $NUM avatars at 64 px -> $DATA"
if [ -f "$DATA/info.json" ]; then
  log "  found $DATA/info.json, skipping"
else
  python -m tedigan.data.avatars --num "$NUM" --resolution 64 --out "$DATA"
fi

log "stage classifier -> $OUT/classifier"
if [ -f "$OUT/classifier/model/model.safetensors" ]; then
  log "  found $OUT/classifier/model, skipping"
else
  $LAUNCH pipelines/train_stage.py --stage classifier --config "configs/classifier_$PRESET.yaml" \
    --data.root="$DATA" --train.output_dir="$OUT/classifier" --resume_from_checkpoint latest
fi

log "done: the stages available in this version have run (generator, inversion, text and editing follow)."
