#!/usr/bin/env bash
# W4A8 next to W4A16 on both fixtures: perplexity of the unquantized model with float and with
# per-token dynamic INT8 activations (`caliber eval --act-bits 8`), and RTN / GPTQ at W4 g128
# with float activations (GPTQ v1 checkpoints) and with INT8 activations (--act-bits 8:
# W·A8 calibration, compressed-tensors checkpoints, evaluated at 8 activation bits).
# Calibrated on the first 128 rows of calib_tokens.i32 (seq-len 256), evaluated on the first 400
# held-out windows of 256 tokens, as scripts/quality_table.sh. ~1 min per run on 2 cores.
# Usage: scripts/w4a8_table.sh [fixture ...]   (CALIBER, WORK, OUT override the defaults)
set -euo pipefail
cd "$(dirname "$0")/.."
CALIBER=${CALIBER:-build/cli/caliber}
WORK=${WORK:-$(mktemp -d /tmp/caliber-w4a8.XXXXXX)}
mkdir -p "$WORK"
OUT=${OUT:-$WORK/w4a8_table.md}
FIXTURES=("$@")
[ ${#FIXTURES[@]} -gt 0 ] || FIXTURES=(tinyllama-en tinyllama-en-outliers)

ppl_of() { python3 -c 'import json,sys; print("%.3f" % json.load(sys.stdin)["ppl"])'; }
{
  echo "| fixture | method | W4A16 g128 | W4A8 g128 |"
  echo "|---|---|---:|---:|"
} > "$OUT.tmp"
for fx in "${FIXTURES[@]}"; do
  M=testdata/$fx
  EVAL=(--tokens "$M/heldout/heldout_tokens.i32" --max-windows 400 --json)
  fp16=$("$CALIBER" eval --model "$M" "${EVAL[@]}" --act-bits 16 | ppl_of)
  fp8=$("$CALIBER" eval --model "$M" "${EVAL[@]}" --act-bits 8 | ppl_of)
  echo "$fx fp: A16 $fp16, A8 $fp8" >&2
  echo "| $fx | fp (no weight quantization) | $fp16 | $fp8 |" >> "$OUT.tmp"
  for method in rtn gptq; do
    row="| $fx | $method |"
    for act in 16 8; do
      dir="$WORK/$fx-$method-w4g128-a$act"
      rm -rf "$dir"
      "$CALIBER" quantize --model "$M" --calib "$M/calib/calib_tokens.i32" --calib-sampling first \
        --nsamples 128 --seq-len 256 --method "$method" --bits 4 --group-size 128 \
        --act-bits "$act" --out "$dir" \
        --eval-tokens "$M/heldout/heldout_tokens.i32" --eval-windows 400 --eval-baseline=false \
        --json > "$dir.log" 2>&1
      ppl=$(python3 -c 'import json,sys; print("%.3f" % json.load(open(sys.argv[1]))["eval"]["quantized"]["ppl"])' "$dir/report.json")
      # The checkpoint as written, through `caliber eval` (its act_bits come from config.json).
      again=$("$CALIBER" eval --model "$dir" "${EVAL[@]}" | ppl_of)
      [ "$again" = "$ppl" ] || { echo "$dir: caliber eval gives $again, report.json $ppl" >&2; exit 1; }
      echo "$fx $method w4 g128 a$act: $ppl" >&2
      row="$row $ppl |"
    done
    echo "$row" >> "$OUT.tmp"
  done
done
mv "$OUT.tmp" "$OUT"
cat "$OUT"
