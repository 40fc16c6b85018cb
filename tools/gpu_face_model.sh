#!/usr/bin/env bash
# The shipped model's whole recipe on one GPU, from the compact bundle (tools/face_model_bundle.py),
# for a machine without ../shared. Prepared for the device tool:
#
#   python tools/face_model_bundle.py pack build/face-model-bundle      # here, once (35 MiB)
#   (wheels of albumentations and its needs for Python 3.12 in .whl/: see docs/BENCHMARKS.md)
#   device run: command "bash tools/gpu_face_model.sh", carry ["build/face-model-bundle", ".whl"], timeout_s 600
#
# Writes the model, its record, the training log and the report into $OUT (or build/gpu-run).
set -euo pipefail
BUNDLE=${BUNDLE:-build/face-model-bundle}
OUT=${OUT:-build/gpu-run}
EPOCHS=${EPOCHS:-40}
WORK=$(mktemp -d)
mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export NO_ALBUMENTATIONS_UPDATE=1 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python3 tools/face_model_bundle.py unpack "$BUNDLE" "$WORK"
start=$(date +%s)
python3 tools/train_face_model.py --data "$WORK/lfw" --orl "$WORK/orl" --teacher-dir "$WORK/teacher" \
  --cache "$WORK/cache" --out "$WORK/run" --device cuda --model vit-face-hybrid12 --teachers sface \
  --epochs "$EPOCHS" --batch-size 256 --lr 1e-3 --quiet --json > "$OUT/report.json"
echo "recipe: $(( $(date +%s) - start )) s"
cp "$WORK/run/model.safetensors" "$WORK/run/model.json" "$WORK/run/log.jsonl" "$OUT/"
