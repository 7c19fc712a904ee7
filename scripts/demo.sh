#!/usr/bin/env bash
# The main job on embedded defaults: install dependencies, build, and evaluate the shipped
# model (testdata/tinyllama-en) on its shipped held-out set, as token ids and as raw text.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
BUILD_DIR=${CALIBER_BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCALIBER_CUDA=AUTO >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)" --target caliber

MODEL=testdata/tinyllama-en
echo "== perplexity of $MODEL on its held-out token stream (fixture README: 86.46)"
"$BUILD_DIR/cli/caliber" eval --model "$MODEL" --tokens "$MODEL/heldout/heldout_tokens.i32" --seq-len 256
echo "== perplexity of $MODEL on held-out raw text (tokenized by Caliber, BOS prepended once)"
"$BUILD_DIR/cli/caliber" eval --model "$MODEL" --text testdata/text/heldout_sample.txt --seq-len 256 --json
