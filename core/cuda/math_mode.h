// Which arithmetic a cuBLAS product ran in, so callers can report it: plain float32, or TF32
// tensor cores (inputs rounded to a 10-bit mantissa, float32 accumulation; ~8x the float32
// throughput on A100/H100). TF32 is opt-in per call and never the default.
#pragma once

#include <cstdlib>
#include <cstring>

namespace caliber::cuda {

enum class MathMode { kFloat32, kTf32 };

inline const char* MathModeName(MathMode m) { return m == MathMode::kTf32 ? "tf32" : "float32"; }

struct MatmulOptions {
  // Lets cuBLAS round inputs to TF32. Honoured only on compute capability >= 8.0 and unless
  // NVIDIA_TF32_OVERRIDE=0 is set; the MathMode a call returns says what actually ran.
  bool allow_tf32 = false;
};

// What a product with `options` runs in on a device of compute capability `compute_major`.
inline MathMode ResolveMathMode(const MatmulOptions& options, int compute_major) {
  if (!options.allow_tf32 || compute_major < 8) return MathMode::kFloat32;
  const char* override_env = std::getenv("NVIDIA_TF32_OVERRIDE");
  if (override_env != nullptr && std::strcmp(override_env, "0") == 0) return MathMode::kFloat32;
  return MathMode::kTf32;
}

}  // namespace caliber::cuda
