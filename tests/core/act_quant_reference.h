// Test helper: an independent transcription of vLLM's dynamic per-token INT8 quantization
// reference loop (csrc/quantization/.../dynamic_scaled_int8_quant_reference), generalized to
// `bits`: absmax per row, scale = absmax / qmax, the product x · (qmax / absmax) in float,
// rounded half to even by hand (floor and remainder, not the FPU rounding mode), saturated to
// [-qmax-1, qmax], times the scale. Rows of zeros are left as they are.
#pragma once

#include <cmath>

#include "core/tensor/matrix.h"

namespace caliber {

inline double RoundHalfEvenByHand(double v) {
  const double f = std::floor(v);
  const double frac = v - f;
  if (frac < 0.5) return f;
  if (frac > 0.5) return f + 1;
  return std::fmod(f, 2.0) == 0.0 ? f : f + 1;
}

inline MatrixF ReferenceActQuantize(const MatrixF& x, int bits) {
  const int qmax = (1 << (bits - 1)) - 1;
  MatrixF out = x;
  for (Eigen::Index t = 0; t < x.rows(); ++t) {
    float absmax = 0;
    for (Eigen::Index i = 0; i < x.cols(); ++i) {
      const float v = x(t, i) > 0 ? x(t, i) : -x(t, i);
      if (v > absmax) absmax = v;
    }
    if (absmax == 0) continue;
    const float scale = absmax / static_cast<float>(qmax);
    const float inv = static_cast<float>(qmax) / absmax;
    for (Eigen::Index i = 0; i < x.cols(); ++i) {
      const float product = x(t, i) * inv;  // one float rounding, as the kernel does
      double q = RoundHalfEvenByHand(static_cast<double>(product));
      if (q > qmax) q = qmax;
      if (q < -qmax - 1) q = -qmax - 1;
      out(t, i) = static_cast<float>(q) * scale;
    }
  }
  return out;
}

}  // namespace caliber
