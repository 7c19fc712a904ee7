#!/usr/bin/env bash
# The quality table of the README: every method at W4 g128, W3 g128, W3 per-channel and W2 g64
# on both fixtures, calibrated on the first 128 rows of calib_tokens.i32 (as REFERENCE.md) and
# evaluated on the first 400 held-out windows of 256 tokens. Writes a markdown table to
# bench/results/quality_table.md (and each run's report under $WORK). ~1 min per run on 2 cores.
# Usage: scripts/quality_table.sh [fixture ...]
set -euo pipefail
cd "$(dirname "$0")/.."
CALIBER=${CALIBER:-build/cli/caliber}
WORK=${WORK:-$(mktemp -d /tmp/caliber-quality.XXXXXX)}
mkdir -p "$WORK"
OUT=${OUT:-bench/results/quality_table.md}
FIXTURES=("$@")
[ ${#FIXTURES[@]} -gt 0 ] || FIXTURES=(tinyllama-en tinyllama-en-outliers)

CONFIGS=("w4_g128:--bits 4 --group-size 128" "w3_g128:--bits 3 --group-size 128"
         "w3_g-1:--bits 3 --group-size -1" "w2_g64:--bits 2 --group-size 64")
METHODS=("rtn:--method rtn" "gptq:--method gptq" "gptq_act:--method gptq --act-order"
         "lora_r8:--method gptq_lora --lora-rank 8" "lora_r32:--method gptq_lora --lora-rank 32"
         "lora_r32_refine2:--method gptq_lora --lora-rank 32 --refine-iters 2")

mkdir -p "$(dirname "$OUT")"
{
  echo "| fixture | method | $(for c in "${CONFIGS[@]}"; do printf '%s | ' "${c%%:*}"; done)"
  echo "|---|---|$(for c in "${CONFIGS[@]}"; do printf -- '---:|'; done)"
} > "$OUT.tmp"
for fx in "${FIXTURES[@]}"; do
  M=testdata/$fx
  fp=$("$CALIBER" eval --model "$M" --tokens "$M/heldout/heldout_tokens.i32" --max-windows 400 --json |
       python3 -c 'import json,sys; print("%.3f" % json.load(sys.stdin)["ppl"])')
  echo "| $fx | fp | $(for c in "${CONFIGS[@]}"; do printf '%s | ' "$fp"; done)" >> "$OUT.tmp"
  for m in "${METHODS[@]}"; do
    row="| $fx | ${m%%:*} |"
    for c in "${CONFIGS[@]}"; do
      dir="$WORK/$fx-${m%%:*}-${c%%:*}"
      rm -rf "$dir"
      # shellcheck disable=SC2086
      "$CALIBER" quantize --model "$M" --calib "$M/calib/calib_tokens.i32" --calib-sampling first \
        --nsamples 128 --seq-len 256 ${m#*:} ${c#*:} --out "$dir" \
        --eval-tokens "$M/heldout/heldout_tokens.i32" --eval-windows 400 --eval-baseline=false \
        --json > "$dir.log" 2>&1
      ppl=$(python3 -c 'import json,sys; print("%.3f" % json.load(open(sys.argv[1]))["eval"]["quantized"]["ppl"])' "$dir/report.json")
      echo "$fx ${m%%:*} ${c%%:*}: $ppl" >&2
      row="$row $ppl |"
    done
    echo "$row" >> "$OUT.tmp"
  done
done
mv "$OUT.tmp" "$OUT"
cat "$OUT"
