#!/usr/bin/env bash
# The GPU check of the CUDA backend, to run on a machine with an NVIDIA GPU (issue 6): configure
# with CUDA, build the backend with its tests and bench (target caliber_gpu_check), run the GPU
# tests (ctest -L gpu) and the no-device tests (ctest -L cuda), run bench/cuda_ops_bench, and
# write everything to bench/results/gpu_check.txt (also copied to $OUT when that is set).
#
# Environment: CALIBER_BUILD_DIR (build-gpu), CALIBER_JOBS (nproc), CALIBER_CUDA_ARCHS (native:
# only this machine's GPU, to build fast; the default build covers 80/90/90a),
# CALIBER_BENCH_ARGS (e.g. "--quick --repeats 1").
# Exit status 0 only when the build succeeds, every test passes and no GPU test was skipped
# (a skip on a GPU machine means the device was not usable).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

BUILD_DIR=${CALIBER_BUILD_DIR:-build-gpu}
JOBS=${CALIBER_JOBS:-$(nproc)}
ARCHS=${CALIBER_CUDA_ARCHS:-native}
BENCH_ARGS=${CALIBER_BENCH_ARGS:-}
RESULT=bench/results/gpu_check.txt

check() {
  local status=0
  echo "== gpu_check $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
       "$(git diff --quiet HEAD 2>/dev/null || echo '(with local changes)')"
  if command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader
  else
    echo "nvidia-smi not found"
  fi
  nvcc --version 2>/dev/null | tail -1 || true

  echo "== configure + build (log: $BUILD_DIR/gpu_check_build.log)"
  mkdir -p "$BUILD_DIR"
  local t0=$SECONDS
  if ! { cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCALIBER_CUDA=ON \
           -DCMAKE_CUDA_ARCHITECTURES="$ARCHS" -DCALIBER_FUZZ=OFF &&
         cmake --build "$BUILD_DIR" -j "$JOBS" --target caliber_gpu_check; } > "$BUILD_DIR/gpu_check_build.log" 2>&1; then
    tail -60 "$BUILD_DIR/gpu_check_build.log"
    echo "== BUILD FAILED"
    return 1
  fi
  echo "built in $((SECONDS - t0)) s"

  echo "== ctest -L gpu"
  local log="$BUILD_DIR/gpu_check_ctest.log"
  ctest --test-dir "$BUILD_DIR" -L gpu --output-on-failure --timeout 600 > "$log" 2>&1 || status=1
  cat "$log"
  local skipped
  skipped=$(grep -c '\*\*\*Skipped' "$log" || true)
  if [ "$skipped" -gt 0 ]; then
    echo "== $skipped GPU test(s) SKIPPED: no usable device here, so nothing was checked"
    status=1
  fi

  echo "== ctest -L cuda (the no-device path, GPUs hidden)"
  ctest --test-dir "$BUILD_DIR" -L cuda --output-on-failure --timeout 120 || status=1

  echo "== bench/cuda_ops_bench $BENCH_ARGS"
  # shellcheck disable=SC2086
  "$BUILD_DIR/bench/cuda_ops_bench" $BENCH_ARGS || status=1

  if [ "$status" -eq 0 ]; then echo "== GPU CHECK PASSED"; else echo "== GPU CHECK FAILED"; fi
  return "$status"
}

mkdir -p bench/results
check 2>&1 | tee "$RESULT"
rc=${PIPESTATUS[0]}
if [ -n "${OUT:-}" ] && [ -d "$OUT" ]; then cp "$RESULT" "$OUT/gpu_check.txt"; fi
exit "$rc"
