#!/usr/bin/env bash
# The main job on embedded defaults: install dependencies, build, then quantize the shipped
# model (testdata/tinyllama-en) with GPTQ-intrinsic LoRA at W4 g128 on its shipped calibration
# set, and report the held-out perplexity before and after. The checkpoint (GPTQ layout that
# vLLM/transformers load, PEFT adapter, report.json) lands in out/demo-<time>/.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
BUILD_DIR=${CALIBER_BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCALIBER_CUDA=AUTO >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)" --target caliber

MODEL=testdata/tinyllama-en
OUT_DIR=out/demo-$(date +%Y%m%d-%H%M%S)
mkdir -p out
echo "== held-out perplexity of $MODEL, all 459 windows (its README says 86.46)"
"$BUILD_DIR/cli/caliber" eval --model "$MODEL" --tokens "$MODEL/heldout/heldout_tokens.i32"
echo "== quantize: GPTQ-intrinsic LoRA, 4 bits, groups of 128, rank 8, 128 calibration segments"
"$BUILD_DIR/cli/caliber" quantize --model "$MODEL" --calib "$MODEL/calib/calib_tokens.i32" \
  --method gptq_lora --bits 4 --group-size 128 --lora-rank 8 --nsamples 128 --seq-len 256 \
  --eval-tokens "$MODEL/heldout/heldout_tokens.i32" --eval-windows 128 --out "$OUT_DIR"
echo "== the stored checkpoint, evaluated as written (base + adapter), first 128 windows"
"$BUILD_DIR/cli/caliber" eval --model "$OUT_DIR" --adapter "$OUT_DIR/adapter" \
  --tokens "$MODEL/heldout/heldout_tokens.i32" --max-windows 128
