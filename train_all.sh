#!/usr/bin/env bash
# Train every tedigan stage in order, each stage's output feeding the next, then assemble the pipeline and
# run the ground-truth edit benchmark.
#
#   bash train_all.sh                       # preset avatars32: the default CPU preset (about 2 h on 2 cores)
#   bash train_all.sh avatars64             # the 64 px preset (needs ~10x the generator compute to shine)
#   bash train_all.sh tiny                  # smoke run of every stage on tiny networks (about 2 min on CPU)
#   bash train_all.sh faces256              # photo-real faces on the packaged FFHQ generator (see below)
#   OUT=outputs/run2 bash train_all.sh      # another output folder
#   LAUNCH="tedigan launch --multi_gpu" bash train_all.sh   # multi-GPU / multi-node through accelerate
#       (any accelerate launch options; "accelerate launch ..." is read as "tedigan launch ...", which keeps
#       a stage's one-line error and exit status through the launcher)
#   EXTRA="--train.max_steps=20" bash train_all.sh # overrides appended to every training stage (smoke runs)
#   GENERATOR=DIR bash train_all.sh avatars64     # use a generator trained elsewhere instead of the generator
#       stage: DIR holds generator/ (and optionally discriminator/), e.g. from tedigan export
#       or scripts/device_generator.sh; it is copied into OUT/generator
#
# Every step is a tedigan command (tedigan <command> --help), run as python -m tedigan with the python on
# PATH; training stages are tedigan train (or tedigan launch ... pipelines/train_stage.py with LAUNCH).
# Stages: data (procedural avatars, rendered at 64 px; the 32 px preset resizes on load) -> classifier
#   (attribute judge) -> generator (StyleGAN2) -> inversion (image encoder) -> sketch and label encoders
#   -> text -> layer analysis -> pipeline (OUT/pipeline, loadable with TediGANPipeline.from_pretrained)
#   -> benchmark (OUT/benchmark: benchmark.json, report.md, grids).
# A finished stage is skipped: training stages write OUT/<stage>/complete.json last, the data set info.json,
# the layer analysis layer_map.json, the pipeline model_index.json and the benchmark benchmark.json, each
# only once everything else of the stage is in place. An interrupted training stage resumes from its newest
# complete checkpoint-N (safetensors + JSON); a kill at any point leaves nothing that looks finished but is
# not. Every stage writes its resolved config.yaml, metrics.jsonl, eval.json and grids into its folder
# under OUT; OUT/train_all.log.jsonl records each stage's wall time. Relative OUT and DATA are taken from
# the folder you run the script in.
# Preset faces256 (research / non-commercial: the FFHQ MobileStyleGAN of the random-face package): generated face
#   data with their W+ codes (tedigan face-data; NUM faces, resumable) -> inversion (latent loss on the
#   stored codes) -> text -> layer analysis (face-api judge, the generator's site blocks) -> pipeline (the
#   generator named, not stored) -> faces benchmark (independent judge: human).
# For FFHQ / CelebA-HQ run the stages yourself: tedigan train --stage generator --config configs/generator_ffhq256.yaml
#   --data.kind=folder --data.root=YOUR_DATA (see README.md, "Train on your own data").
set -euo pipefail
PRESET="${1:-${PRESET:-avatars32}}"
abspath() { case "$1" in /*) printf '%s' "$1" ;; *) printf '%s/%s' "$PWD" "$1" ;; esac; }
OUT="$(abspath "${OUT:-outputs/$PRESET}")"
if [ "$PRESET" = faces256 ]; then
  DATA="$(abspath "${DATA:-data/faces256}")"
  NUM="${NUM:-10000}"
  PAIRS="${PAIRS:-96}"
elif [ "$PRESET" = tiny ]; then
  DATA="$(abspath "${DATA:-outputs/tiny/avatars}")"
  NUM="${NUM:-60}"
  BENCH_ARGS="${BENCH_ARGS:---num-sources 3 --num-optimized 1 --steps 2 --samples-per-prompt 2 --fid-num 0}"
  PAIRS="${PAIRS:-16}"
else
  DATA="$(abspath "${DATA:-data/avatars64}")"
  NUM="${NUM:-10000}"
  PAIRS="${PAIRS:-300}"
fi
cd "$(dirname "$0")"
LAUNCH="${LAUNCH:-}"
case "$LAUNCH" in
  ""|python) LAUNCH="" ;;
  "accelerate launch"*|"tedigan launch"*) LAUNCH_OPTS="${LAUNCH#* launch}" ;;
  *)
    echo "LAUNCH must be empty (tedigan train), \"tedigan launch [accelerate options]\" or \"accelerate launch" \
         "[options]\", got \"$LAUNCH\"" >&2
    exit 2 ;;
esac
EXTRA="${EXTRA:-}"
tedigan() { python -m tedigan "$@"; }  # the tedigan command, with the python on PATH (installed or not)
BENCH_ARGS="${BENCH_ARGS:-}"
log() { printf '\n[train_all %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

case "$PRESET" in
  avatars32|avatars64|tiny|faces256) ;;
  *)
    echo "train_all.sh knows the presets avatars32 (default), avatars64, tiny and faces256; for ffhq256/ffhq1024 run the stages" \
         "with tedigan train --config configs/generator_PRESET.yaml --data.kind=folder --data.root=YOUR_DATA" >&2
    exit 2 ;;
esac
GENERATOR="${GENERATOR:-}"
if [ -n "$GENERATOR" ]; then
  GENERATOR="$(abspath "$GENERATOR")"
  if [ ! -f "$GENERATOR/generator/config.json" ]; then
    echo "GENERATOR=$GENERATOR holds no generator/config.json: point it at a folder with generator/ (and" \
         "discriminator/), e.g. one written by tedigan export RUN --out DIR" >&2
    exit 2
  fi
fi
mkdir -p "$OUT"

# timed NAME DONE_MARKER COMMAND...: skip when DONE_MARKER exists, else run and record the wall time
timed() {
  local name="$1" done_marker="$2"
  shift 2
  log "stage $name"
  # a run stopped by --train.max_minutes says "time_limited": true in its complete.json: it goes on
  if [ -e "$done_marker" ] && ! grep -q '"time_limited": true' "$done_marker"; then
    log "  finished earlier ($done_marker), skipping; to train it further run its tedigan train command" \
        "with --resume_from_checkpoint latest and a larger --train.max_steps, or delete its folder"
    return
  fi
  local start=$SECONDS
  "$@"
  printf '{"stage": "%s", "seconds": %d, "finished": "%s"}\n' "$name" $((SECONDS - start)) \
    "$(date -u +%FT%TZ)" >> "$OUT/train_all.log.jsonl"
}

# stage NAME CONFIG DONE_MARKER [overrides...]: a training stage: tedigan train, or through accelerate
stage() {
  local name="$1" config="$2" done_marker="$3"
  shift 3
  local run=(tedigan train)
  # shellcheck disable=SC2206  # the launcher's options are words
  [ -n "$LAUNCH" ] && run=(tedigan launch $LAUNCH_OPTS pipelines/train_stage.py)
  # shellcheck disable=SC2086
  timed "$name ($config)" "$done_marker" "${run[@]}" --stage "$name" --config "$config" \
    --data.root="$DATA" --resume_from_checkpoint latest "$@" $EXTRA
}

if [ "$PRESET" = faces256 ]; then
  PHOTO="$(python -c 'import matplotlib.cbook as c; print(c.get_sample_data("grace_hopper.jpg", asfileobj=False))')"
  timed "data: $NUM generated faces at 256 px -> $DATA" "$DATA/info.json" \
    tedigan face-data --num "$NUM" --out "$DATA"
  stage inversion configs/inversion_faces256.yaml "$OUT/inversion/complete.json" --train.output_dir="$OUT/inversion"
  stage text configs/text_faces256.yaml "$OUT/text/complete.json" --encoder_path="$OUT/inversion/encoder" \
    --train.output_dir="$OUT/text"
  timed "layer analysis -> $OUT/layer_analysis" "$OUT/layer_analysis/layer_map.json" \
    tedigan layer-analysis --generator mobilestylegan --classifier faceapi --pairs "$PAIRS" \
      --out "$OUT/layer_analysis" --overwrite
  timed "pipeline -> $OUT/pipeline" "$OUT/pipeline/model_index.json" \
    tedigan assemble --stages "$OUT" --out "$OUT/pipeline" --generator mobilestylegan --fp16 --overwrite \
      --vocabulary faces
  timed "benchmark -> $OUT/benchmark" "$OUT/benchmark/face_benchmark.json" \
    tedigan face-benchmark --model "$OUT/pipeline" --data "$DATA" --out "$OUT/benchmark" \
      --photo "$PHOTO"
  log "done: the pipeline is $OUT/pipeline, the benchmark report $OUT/benchmark/face_benchmark.md"
  exit 0
fi

timed "data: $NUM avatars at 64 px -> $DATA" "$DATA/info.json" \
  tedigan avatars --num "$NUM" --resolution 64 --out "$DATA" --overwrite
stage classifier "configs/classifier_$PRESET.yaml" "$OUT/classifier/complete.json" \
  --train.output_dir="$OUT/classifier"
if [ -n "$GENERATOR" ]; then
  copy_generator() {  # into a fresh folder first, renamed into place, complete.json last
    rm -rf "$OUT/generator.tmp" && mkdir -p "$OUT/generator.tmp"
    cp -r "$GENERATOR/generator" "$OUT/generator.tmp/"
    [ -d "$GENERATOR/discriminator" ] && cp -r "$GENERATOR/discriminator" "$OUT/generator.tmp/"
    rm -rf "$OUT/generator" && mv "$OUT/generator.tmp" "$OUT/generator"
    printf '{"stage": "generator", "copied_from": "%s"}\n' "$GENERATOR" > "$OUT/generator/complete.json"
  }
  timed "generator (copied from $GENERATOR)" "$OUT/generator/complete.json" copy_generator
else
  stage generator "configs/generator_$PRESET.yaml" "$OUT/generator/complete.json" \
    --train.output_dir="$OUT/generator"
fi
for modality in image sketch label; do
  suffix=""
  [ "$modality" != image ] && suffix="_$modality"
  stage inversion "configs/inversion_$PRESET$suffix.yaml" "$OUT/inversion$suffix/complete.json" \
    --generator_path="$OUT/generator/generator" --classifier_path="$OUT/classifier/model" \
    --train.output_dir="$OUT/inversion$suffix"
done
stage text "configs/text_$PRESET.yaml" "$OUT/text/complete.json" \
  --encoder_path="$OUT/inversion/encoder" --generator_path="$OUT/generator/generator" \
  --classifier_path="$OUT/classifier/model" --train.output_dir="$OUT/text"
timed "layer analysis -> $OUT/layer_analysis" "$OUT/layer_analysis/layer_map.json" \
  tedigan layer-analysis --generator "$OUT/generator/generator" \
    --classifier "$OUT/classifier/model" --encoder "$OUT/inversion/encoder" --data-root "$DATA" --data-kind avatars \
    --split val \
    --pairs "$PAIRS" --out "$OUT/layer_analysis" --overwrite
timed "pipeline -> $OUT/pipeline" "$OUT/pipeline/model_index.json" \
  tedigan assemble --stages "$OUT" --out "$OUT/pipeline" --fp16 --overwrite --vocabulary avatars
# shellcheck disable=SC2086
timed "benchmark -> $OUT/benchmark" "$OUT/benchmark/benchmark.json" \
  tedigan benchmark --model "$OUT/pipeline" --out "$OUT/benchmark" --data-root "$DATA" \
    --overwrite $BENCH_ARGS

log "done: the pipeline is $OUT/pipeline, the benchmark report $OUT/benchmark/report.md, stage times in $OUT/train_all.log.jsonl"
