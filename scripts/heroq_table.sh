#!/usr/bin/env bash
# HeRo-Q next to its single-ingredient baselines, all through `caliber quantize`: GPTQ alone,
# QuaRot-style rotations + GPTQ, SmoothQuant-style diagonals + GPTQ, HeRo-Q + GPTQ and HeRo-Q +
# GPTQ-intrinsic LoRA (rank 32), at W3A16 g128, W4A16 g128 and W4A8 g128 (--act-bits 8) on both
# fixtures. Calibrated on the first 128 rows of calib_tokens.i32 (seq-len 256) and evaluated on
# the first 400 held-out windows of 256 tokens, as scripts/quality_table.sh and
# scripts/w4a8_table.sh. Writes a markdown table of perplexities and one of seconds (the
# transform, its learning part, GPTQ; from each report.json) to bench/results/heroq_quality.md,
# the exact commands at its top; every run's checkpoint, report and log stay under $WORK.
# ~1.5 min per run, 30 runs: ~45 min on 2 cores with one BLAS thread.
# Usage: scripts/heroq_table.sh [fixture ...]   (CALIBER, WORK, OUT, OPENBLAS_NUM_THREADS override)
set -euo pipefail
cd "$(dirname "$0")/.."
CALIBER=${CALIBER:-build/cli/caliber}
WORK=${WORK:-$(mktemp -d /tmp/caliber-heroq.XXXXXX)}
mkdir -p "$WORK"
OUT=${OUT:-bench/results/heroq_quality.md}
# A run's numbers depend on OpenBLAS's thread count (README, Known limits): pin it. One thread,
# as the benches time with: seconds that background load barely moves, and perplexities next to
# bench/results/quality_table.md's (GPTQ W3 g128 on tinyllama-en: 89.39 with 1 thread, 89.29 with 2).
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
FIXTURES=("$@")
[ ${#FIXTURES[@]} -gt 0 ] || FIXTURES=(tinyllama-en-outliers tinyllama-en)

# key|label|flags
CONFIGS=("w3a16|W3A16 g128|--bits 3 --group-size 128"
         "w4a16|W4A16 g128|--bits 4 --group-size 128"
         "w4a8|W4A8 g128|--bits 4 --group-size 128 --act-bits 8")
METHODS=("gptq|GPTQ|--method gptq"
         "quarot|QuaRot + GPTQ|--method gptq --transform quarot"
         "smoothquant|SmoothQuant + GPTQ|--method gptq --transform smoothquant"
         "heroq_gptq|HeRo-Q + GPTQ|--method heroq_gptq"
         "heroq_gptq_lora|HeRo-Q + GPTQ-LoRA r32|--method heroq_gptq_lora --lora-rank 32")
field() { cut -d'|' -f"$2" <<< "$1"; }

COMMANDS="$WORK/commands.txt"
PPL_ROWS="$WORK/ppl_rows.md"
SEC_ROWS="$WORK/seconds_rows.md"
: > "$COMMANDS"; : > "$PPL_ROWS"; : > "$SEC_ROWS"

# Prints the command, records it, runs it.
run() {
  echo "$*" >> "$COMMANDS"
  echo "+ $*" >&2
  "$@"
}
ppl_of() { python3 -c 'import json,sys; print("%.3f" % json.load(sys.stdin)["ppl"])'; }
# "ppl|transform s|learning s|GPTQ s" of a report.json ("" for what it lacks).
summary_of() {
  python3 - "$1" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
t = r.get("transform")
print("%.3f|%s|%s|%.1f" % (r["eval"]["quantized"]["ppl"],
                           "%.1f" % t["seconds"]["total"] if t else "",
                           "%.1f" % t["seconds"]["learning"] if t else "",
                           r["totals"]["seconds"]))
EOF
}

for fx in "${FIXTURES[@]}"; do
  M=testdata/$fx
  EVAL=(--tokens "$M/heldout/heldout_tokens.i32" --max-windows 400 --json)
  fp16=$(run "$CALIBER" eval --model "$M" "${EVAL[@]}" --act-bits 16 | ppl_of)
  fp8=$(run "$CALIBER" eval --model "$M" "${EVAL[@]}" --act-bits 8 | ppl_of)
  echo "$fx fp: A16 $fp16, A8 $fp8" >&2
  for c in "${CONFIGS[@]}"; do
    ckey=$(field "$c" 1)
    [ "$ckey" = w4a8 ] && fp=$fp8 || fp=$fp16
    ppl_row="| $fx | $(field "$c" 2) | $fp |"
    sec_row="| $fx | $(field "$c" 2) |"
    for m in "${METHODS[@]}"; do
      dir="$WORK/$fx-$ckey-$(field "$m" 1)"
      rm -rf "$dir" "$dir.transformed-partial"
      # shellcheck disable=SC2046
      if run "$CALIBER" quantize --model "$M" --calib "$M/calib/calib_tokens.i32" --calib-sampling first \
           --nsamples 128 --seq-len 256 $(field "$c" 3) $(field "$m" 3) --out "$dir" \
           --eval-tokens "$M/heldout/heldout_tokens.i32" --eval-windows 400 --eval-baseline=false \
           --json > "$dir.log" 2>&1; then
        IFS='|' read -r ppl tsec lsec gsec <<< "$(summary_of "$dir/report.json")"
        [ -n "$tsec" ] && secs="$tsec ($lsec) / $gsec" || secs="- / $gsec"
      else
        ppl="failed"; secs="failed"
        echo "$dir: failed, see $dir.log" >&2
      fi
      echo "$fx $ckey $(field "$m" 1): ppl $ppl, seconds $secs" >&2
      ppl_row="$ppl_row $ppl |"
      sec_row="$sec_row $secs |"
    done
    echo "$ppl_row" >> "$PPL_ROWS"
    echo "$sec_row" >> "$SEC_ROWS"
  done
done

labels() { for m in "${METHODS[@]}"; do printf ' %s |' "$(field "$m" 2)"; done; }
aligns() { for _ in "${METHODS[@]}"; do printf -- '---:|'; done; }
mkdir -p "$(dirname "$OUT")"
{
  echo "# HeRo-Q through \`caliber quantize\` (scripts/heroq_table.sh)"
  echo
  echo "$(date -u +%Y-%m-%d), $(nproc)-core machine, OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS."
  echo "Calibration: first 128 rows of \`calib/calib_tokens.i32\` (\`--calib-sampling first --nsamples 128"
  echo "--seq-len 256\`); perplexity of the written checkpoint on the first 400 held-out windows of 256"
  echo "tokens (report.json's eval.quantized; W4A8 at INT8 activations). Symmetric grids, damp 0.01,"
  echo "quantized propagation; HeRo-Q with its defaults (start best, 100 iterations, lambda 0.05,"
  echo "steps 0.05, seed 0, alpha 0.5). fp: the unquantized model (A16, or A8 for the W4A8 rows)."
  echo
  echo "Exact commands (\`$CALIBER\` is the binary the run used):"
  echo
  echo '```sh'
  cat "$COMMANDS"
  echo '```'
  echo
  echo "## Perplexity"
  echo
  echo "| fixture | config | fp |$(labels)"
  echo "|---|---|---:|$(aligns)"
  cat "$PPL_ROWS"
  echo
  echo "## Seconds: transform (of which learning) / GPTQ"
  echo
  echo "From report.json: transform.seconds.total (transform.seconds.learning) / totals.seconds."
  echo "The transform's total includes its own fp calibration pass for the Hessians."
  echo
  echo "| fixture | config |$(labels)"
  echo "|---|---|$(aligns)"
  cat "$SEC_ROWS"
} > "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
cat "$OUT"
