#!/usr/bin/env bash
# The main job on embedded defaults: install dependencies, build, start a local coordinator and
# two workers (object store: the local filesystem under this checkout), submit a
# GPTQ-intrinsic-LoRA W4 g128 job on the shipped model (testdata/tinyllama-en) and its shipped
# calibration set, follow it to the end, and print its quality report (held-out perplexity
# before and after). The checkpoint (GPTQ layout that vLLM/transformers load, PEFT adapter,
# report.json, caliber_manifest.json) lands in out/demo-<time>/.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
BUILD_DIR=${CALIBER_BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCALIBER_CUDA=AUTO >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)" --target caliber caliber-coordinator caliber-worker

MODEL=testdata/tinyllama-en
STAMP=$(date +%Y%m%d-%H%M%S)
OUT_DIR=out/demo-$STAMP
RUN_DIR=out/demo-$STAMP.run
mkdir -p "$RUN_DIR"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

echo "== coordinator and 2 workers on 127.0.0.1 (logs in $RUN_DIR)"
"$BUILD_DIR/coordinator/caliber-coordinator" --listen 127.0.0.1:0 --port-file "$RUN_DIR/coordinator.port" \
  --state-dir "$RUN_DIR/state" --metrics-listen 127.0.0.1:0 2>"$RUN_DIR/coordinator.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$RUN_DIR/coordinator.port" ] && break; sleep 0.1; done
PORT=$(cut -d' ' -f1 "$RUN_DIR/coordinator.port")
for w in worker-1 worker-2; do
  "$BUILD_DIR/workers/caliber-worker" --coordinator "127.0.0.1:$PORT" --worker-id "$w" \
    --work-dir "$RUN_DIR/$w" 2>"$RUN_DIR/$w.log" &
  pids+=($!)
done

echo "== submit: GPTQ-intrinsic LoRA, 4 bits, groups of 128, rank 8, 128 calibration segments of 256"
"$BUILD_DIR/cli/caliber" submit --coordinator "127.0.0.1:$PORT" --wait \
  --model "$MODEL" --calib "$MODEL/calib/calib_tokens.i32" --out "$OUT_DIR" \
  --method gptq_lora --bits 4 --group-size 128 --lora-rank 8 --nsamples 128 --seq-len 256 \
  --eval-tokens "$MODEL/heldout/heldout_tokens.i32" --eval-windows 128
echo "== wrote $OUT_DIR:"
ls "$OUT_DIR"
