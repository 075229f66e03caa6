#!/usr/bin/env bash
# Train every tedigan stage in order, each stage's output feeding the next, then assemble the pipeline and
# run the ground-truth edit benchmark.
#
#   bash train_all.sh                       # preset avatars32: the default CPU preset (about 2 h on 2 cores)
#   bash train_all.sh avatars64             # the 64 px preset (needs ~10x the generator compute to shine)
#   OUT=outputs/run2 bash train_all.sh      # another output folder
#   LAUNCH="accelerate launch" bash train_all.sh   # multi-GPU / multi-node through accelerate
#   EXTRA="--train.max_steps=20" bash train_all.sh # overrides appended to every training stage (smoke runs)
#
# Stages: data (procedural avatars, rendered at 64 px; the 32 px preset resizes on load) -> classifier
#   (attribute judge) -> generator (StyleGAN2) -> inversion (image encoder) -> sketch and label encoders
#   -> text -> layer analysis -> pipeline (OUT/pipeline, loadable with TediGANPipeline.from_pretrained)
#   -> benchmark (OUT/benchmark: benchmark.json, report.md, grids).
# A stage whose output exists is skipped; an interrupted training stage resumes from its latest
# checkpoint-N. Every stage writes its resolved config.yaml, metrics.jsonl, eval.json and grids into its
# folder under OUT; OUT/train_all.log.jsonl records each stage's wall time.
# For FFHQ / CelebA-HQ run the stages yourself: pipelines/train_stage.py --config configs/generator_ffhq256.yaml
#   --data.kind=folder --data.root=YOUR_DATA (see README.md, "Train on your own data").
set -euo pipefail
cd "$(dirname "$0")"
PRESET="${1:-${PRESET:-avatars32}}"
OUT="${OUT:-outputs/$PRESET}"
DATA="${DATA:-data/avatars64}"
NUM="${NUM:-10000}"
LAUNCH="${LAUNCH:-python}"
EXTRA="${EXTRA:-}"
BENCH_ARGS="${BENCH_ARGS:-}"
log() { printf '\n[train_all %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

case "$PRESET" in
  avatars32|avatars64) ;;
  *)
    echo "train_all.sh knows the presets avatars32 (default) and avatars64; for ffhq256/ffhq1024 run the stages" \
         "with pipelines/train_stage.py --config configs/generator_PRESET.yaml --data.kind=folder --data.root=YOUR_DATA" >&2
    exit 2 ;;
esac
mkdir -p "$OUT"

# timed NAME DONE_MARKER COMMAND...: skip when DONE_MARKER exists, else run and record the wall time
timed() {
  local name="$1" done_marker="$2"
  shift 2
  log "stage $name"
  if [ -e "$done_marker" ]; then
    log "  $done_marker exists, skipping"
    return
  fi
  local start=$SECONDS
  "$@"
  printf '{"stage": "%s", "seconds": %d, "finished": "%s"}\n' "$name" $((SECONDS - start)) \
    "$(date -u +%FT%TZ)" >> "$OUT/train_all.log.jsonl"
}

# stage NAME CONFIG DONE_MARKER [overrides...]: a training stage through pipelines/train_stage.py
stage() {
  local name="$1" config="$2" done_marker="$3"
  shift 3
  # shellcheck disable=SC2086
  timed "$name ($config)" "$done_marker" $LAUNCH pipelines/train_stage.py --stage "$name" --config "$config" \
    --data.root="$DATA" --resume_from_checkpoint latest "$@" $EXTRA
}

timed "data: $NUM avatars at 64 px -> $DATA" "$DATA/info.json" \
  python -m tedigan.data.avatars --num "$NUM" --resolution 64 --out "$DATA"
stage classifier "configs/classifier_$PRESET.yaml" "$OUT/classifier/model/model.safetensors" \
  --train.output_dir="$OUT/classifier"
stage generator "configs/generator_$PRESET.yaml" "$OUT/generator/generator/model.safetensors" \
  --train.output_dir="$OUT/generator"
for modality in image sketch label; do
  suffix=""; dir="encoder"
  [ "$modality" != image ] && suffix="_$modality" && dir="${modality}_encoder"
  stage inversion "configs/inversion_$PRESET$suffix.yaml" "$OUT/inversion$suffix/$dir/model.safetensors" \
    --generator_path="$OUT/generator/generator" --classifier_path="$OUT/classifier/model" \
    --train.output_dir="$OUT/inversion$suffix"
done
stage text "configs/text_$PRESET.yaml" "$OUT/text/text_encoder/model.safetensors" \
  --encoder_path="$OUT/inversion/encoder" --generator_path="$OUT/generator/generator" \
  --classifier_path="$OUT/classifier/model" --train.output_dir="$OUT/text"
timed "layer analysis -> $OUT/layer_analysis" "$OUT/layer_analysis/layer_map.json" \
  python -m tedigan.editing.layer_analysis --generator "$OUT/generator/generator" \
    --classifier "$OUT/classifier/model" --encoder "$OUT/inversion/encoder" --data-root "$DATA" --split val \
    --pairs 300 --out "$OUT/layer_analysis"
timed "pipeline -> $OUT/pipeline" "$OUT/pipeline/model_index.json" \
  python -m tedigan.pipeline --stages "$OUT" --out "$OUT/pipeline" --fp16
# shellcheck disable=SC2086
timed "benchmark -> $OUT/benchmark" "$OUT/benchmark/benchmark.json" \
  python -m tedigan.metrics.edit_benchmark --model "$OUT/pipeline" --out "$OUT/benchmark" --data-root "$DATA" $BENCH_ARGS

log "done: the pipeline is $OUT/pipeline, the benchmark report $OUT/benchmark/report.md, stage times in $OUT/train_all.log.jsonl"
