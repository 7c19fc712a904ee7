#!/usr/bin/env bash
# Installs dependencies, configures and builds Caliber from scratch, and runs the whole test
# suite with CTest. Usage: scripts/test.sh [extra ctest args, e.g. -L core]
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

BUILD_DIR=${CALIBER_BUILD_DIR:-build}
JOBS=${CALIBER_JOBS:-$(nproc)}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCALIBER_CUDA=AUTO
cmake --build "$BUILD_DIR" -j "$JOBS"
# Tests run one at a time: several use both cores through OpenBLAS.
ctest --test-dir "$BUILD_DIR" --output-on-failure --timeout 900 --parallel "$JOBS" "$@"
