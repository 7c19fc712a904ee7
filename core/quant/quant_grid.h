// The uniform affine grid of the GPTQ reference quantizer (IST-DASLab quant.py), bit-exact in
// float32: for one row with parameters (scale, zero),
//   code = clamp(round(x / scale) + zero, 0, maxq),   q = scale * (code - zero),
// with torch.round's round-half-to-even. Codes are integers 0..maxq = 2^bits - 1; zero is an
// integer kept in float, as quant.py keeps it.
#pragma once

#include <algorithm>
#include <cmath>

#include <Eigen/Dense>

namespace caliber {

inline constexpr int MaxQ(int bits) { return (1 << bits) - 1; }

// Makes `x` a rounded float at this point. GCC contracts a*b+c into one FMA across statements
// by default (-ffp-contract=fast), which would skip a rounding PyTorch performs.
inline void RoundHere(float& x) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  __asm__("" : "+x"(x));
#elif defined(__GNUC__) && defined(__aarch64__)
  __asm__("" : "+w"(x));
#else
  volatile float v = x;
  x = v;
#endif
}

// std::nearbyint under the default rounding mode is torch.round (half to even).
inline float QuantCode(float x, float scale, float zero, float maxq) {
  return std::clamp(std::nearbyint(x / scale) + zero, 0.0f, maxq);
}

inline float Dequant(float code, float scale, float zero) {
  float q = scale * (code - zero);
  RoundHere(q);
  return q;
}

// Per-row grid parameters of one [rows x cols] slice.
struct GridParams {
  Eigen::VectorXf scale;
  Eigen::VectorXf zero;
};

// A view of a slice whose rows are output channels; columns need not be contiguous, so a
// transposed block of a [in x out] buffer binds without a copy.
using ConstChannelBlock = Eigen::Ref<const Eigen::MatrixXf, 0, Eigen::OuterStride<>>;

// quant.py Quantizer.find_params(x, weight=True) with perchannel=True: per row,
// xmin = min(min x, 0), xmax = max(max x, 0); sym: xmax = max(|xmin|, xmax) and xmin = -xmax
// where xmin < 0; both zero -> [-1, +1]; scale = (xmax - xmin) / maxq;
// zero = sym ? (maxq + 1) / 2 : round(-xmin / scale).
// mse: quant.py's grid search (norm 2.4, grid 100, maxshrink 0.8) over shrunken ranges
// p * [xmin, xmax], keeping per row the lowest sum |q - x|^2.4. That sum is accumulated in
// double, so exact ties may resolve differently from torch's float32 reduction.
GridParams FindParams(const ConstChannelBlock& x, int bits, bool sym, bool mse);

}  // namespace caliber
