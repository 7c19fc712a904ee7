#!/usr/bin/env bash
# Out-of-domain check of the transforms (issue 14): each run is `caliber quantize` calibrated on
# calibration rows of the fixture, then the written checkpoint's perplexity on the fixture's
# held-out set (first 400 windows of 256) and on the WSJ sample (../shared/fixtures/ood, first
# 400 windows of 256; used only to check). Prints one line per run:
#   name | held-out ppl | WSJ ppl | transform s | total s | chosen candidate (validated selection)
# Usage: scripts/heroq_ood.sh FIXTURE "BASE FLAGS" "name|flags" ...
#   (CALIBER, WORK, OPENBLAS_NUM_THREADS override; WSJ tokens from OOD)
set -euo pipefail
cd "$(dirname "$0")/.."
CALIBER=${CALIBER:-build/cli/caliber}
WORK=${WORK:-$(mktemp -d /tmp/caliber-ood.XXXXXX)}
OOD=${OOD:-../shared/fixtures/ood/wsj_ptb_sample.tokens.i32}
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
mkdir -p "$WORK"
fx=$1; base=$2; shift 2
M=testdata/$fx
for spec in "$@"; do
  name=${spec%%|*}; flags=${spec#*|}
  dir="$WORK/$fx-$name"
  rm -rf "$dir" "$dir.transformed-partial"
  start=$(date +%s.%N)
  # shellcheck disable=SC2086
  if ! "$CALIBER" quantize --model "$M" --calib "$M/calib/calib_tokens.i32" --nsamples 128 --seq-len 256 \
      $base $flags --out "$dir" --eval-tokens "$M/heldout/heldout_tokens.i32" --eval-windows 400 \
      --eval-baseline=false --json > "$dir.log" 2>&1; then
    echo "$name | failed (see $dir.log)"; continue
  fi
  adapter=(); [ -d "$dir/adapter" ] && adapter=(--adapter "$dir/adapter")  # gptq_lora's B·A part
  wsj=$("$CALIBER" eval --model "$dir" "${adapter[@]}" --tokens "$OOD" --seq-len 256 --max-windows 400 --json |
        python3 -c 'import json,sys; print("%.3f" % json.load(sys.stdin)["ppl"])')
  end=$(date +%s.%N)
  python3 - "$dir/report.json" "$name" "$wsj" "$start" "$end" "$base $flags" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
t = r.get("transform") or {}
sel = (t.get("selection") or {}).get("chosen", "")
print("%s | %.3f | %s | %s | %.0f | %s | %s" % (sys.argv[2], r["eval"]["quantized"]["ppl"], sys.argv[3],
      "%.1f" % t["seconds"]["total"] if t else "-", float(sys.argv[5]) - float(sys.argv[4]), sel, sys.argv[6]))
PY
done
