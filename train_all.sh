#!/usr/bin/env bash
# Train every tedigan stage in order, each stage's output feeding the next.
#
#   bash train_all.sh                                  # preset avatars64 on CPU
#   OUT=outputs/run2 DATA=data/avatars64 bash train_all.sh
#   LAUNCH="accelerate launch" bash train_all.sh       # multi-GPU / multi-node through accelerate
#   EXTRA="--train.max_steps=20" bash train_all.sh     # overrides appended to every stage (smoke runs)
#
# Stages: data (procedural avatars) -> classifier (attribute judge) -> generator (StyleGAN2 backbone)
#   -> inversion (image encoder) -> sketch and label encoders -> text -> layer analysis.
# A stage whose final model folder exists is skipped; an interrupted stage resumes from its latest
# checkpoint-N. Every stage writes its resolved config.yaml, metrics.jsonl, eval.json and grids into its
# folder under $OUT. The pipeline object, edit benchmark and evaluation stage are added by later milestones.
set -euo pipefail
cd "$(dirname "$0")"
PRESET="${PRESET:-avatars64}"
OUT="${OUT:-outputs/$PRESET}"
DATA="${DATA:-data/$PRESET}"
NUM="${NUM:-10000}"
LAUNCH="${LAUNCH:-python}"
EXTRA="${EXTRA:-}"
log() { printf '\n[train_all %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

if [ "$PRESET" != "avatars64" ]; then
  echo "train_all.sh knows the avatars64 preset; for ffhq256/ffhq1024 run the stages with" \
       "pipelines/train_stage.py --config configs/generator_$PRESET.yaml --data.kind=folder --data.root=YOUR_DATA" >&2
  exit 2
fi

# stage NAME CONFIG DONE_MARKER [overrides...]
stage() {
  local name="$1" config="$2" done_marker="$3"
  shift 3
  log "stage $name ($config)"
  if [ -e "$done_marker" ]; then
    log "  $done_marker exists, skipping"
    return
  fi
  # shellcheck disable=SC2086
  $LAUNCH pipelines/train_stage.py --stage "$name" --config "$config" --data.root="$DATA" \
    --resume_from_checkpoint latest "$@" $EXTRA
}

log "stage data: $NUM avatars at 64 px -> $DATA"
if [ -f "$DATA/info.json" ]; then
  log "  $DATA/info.json exists, skipping"
else
  python -m tedigan.data.avatars --num "$NUM" --resolution 64 --out "$DATA"
fi

stage classifier configs/classifier_avatars64.yaml "$OUT/classifier/model/model.safetensors" \
  --train.output_dir="$OUT/classifier"
stage generator configs/generator_avatars64.yaml "$OUT/generator/generator/model.safetensors" \
  --train.output_dir="$OUT/generator"
for modality in image sketch label; do
  suffix=""; dir="encoder"
  [ "$modality" != image ] && suffix="_$modality" && dir="${modality}_encoder"
  stage inversion "configs/inversion_avatars64$suffix.yaml" "$OUT/inversion$suffix/$dir/model.safetensors" \
    --generator_path="$OUT/generator/generator" --classifier_path="$OUT/classifier/model" \
    --train.output_dir="$OUT/inversion$suffix"
done
stage text configs/text_avatars64.yaml "$OUT/text/text_encoder/model.safetensors" \
  --encoder_path="$OUT/inversion/encoder" --generator_path="$OUT/generator/generator" \
  --classifier_path="$OUT/classifier/model" --train.output_dir="$OUT/text"

log "stage layer analysis -> $OUT/layer_analysis"
if [ -f "$OUT/layer_analysis/layer_map.json" ]; then
  log "  $OUT/layer_analysis/layer_map.json exists, skipping"
else
  python -m tedigan.editing.layer_analysis --generator "$OUT/generator/generator" \
    --classifier "$OUT/classifier/model" --out "$OUT/layer_analysis"
fi

log "done: every stage of this version has run; results are under $OUT"
