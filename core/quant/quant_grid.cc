#include "core/quant/quant_grid.h"

#include <limits>
#include <vector>

namespace caliber {
namespace {

// quant.py's MSE search constants.
constexpr float kNorm = 2.4f;
constexpr int kGrid = 100;
constexpr double kMaxShrink = 0.8;

}  // namespace

GridParams FindParams(const ConstChannelBlock& x, int bits, bool sym, bool mse) {
  const int rows = static_cast<int>(x.rows());
  const int cols = static_cast<int>(x.cols());
  const float maxq = static_cast<float>(MaxQ(bits));

  // Column-wise so that every access is contiguous for the [in x out] GPTQ layout.
  Eigen::VectorXf xmin = Eigen::VectorXf::Zero(rows);
  Eigen::VectorXf xmax = Eigen::VectorXf::Zero(rows);
  for (int c = 0; c < cols; ++c) {
    for (int r = 0; r < rows; ++r) {
      xmin[r] = std::min(xmin[r], x(r, c));
      xmax[r] = std::max(xmax[r], x(r, c));
    }
  }

  GridParams p{Eigen::VectorXf(rows), Eigen::VectorXf(rows)};
  for (int r = 0; r < rows; ++r) {
    if (sym) {
      xmax[r] = std::max(std::abs(xmin[r]), xmax[r]);
      if (xmin[r] < 0) xmin[r] = -xmax[r];
    }
    if (xmin[r] == 0 && xmax[r] == 0) {
      xmin[r] = -1;
      xmax[r] = +1;
    }
    p.scale[r] = (xmax[r] - xmin[r]) / maxq;
    p.zero[r] = sym ? (maxq + 1) / 2 : std::nearbyint(-xmin[r] / p.scale[r]);
  }
  if (!mse) return p;

  std::vector<double> best(rows, std::numeric_limits<double>::infinity());
  const int steps = static_cast<int>(kMaxShrink * kGrid);
  for (int i = 0; i < steps; ++i) {
    // Python computes p = 1 - i/grid in double; torch casts that scalar to float32.
    const float shrink = static_cast<float>(1.0 - static_cast<double>(i) / kGrid);
    for (int r = 0; r < rows; ++r) {
      float xmin1 = shrink * xmin[r];
      float xmax1 = shrink * xmax[r];
      RoundHere(xmin1);
      RoundHere(xmax1);
      const float scale1 = (xmax1 - xmin1) / maxq;
      const float zero1 = sym ? p.zero[r] : std::nearbyint(-xmin1 / scale1);
      double err = 0;
      for (int c = 0; c < cols; ++c) {
        const float v = x(r, c);
        const float d = Dequant(QuantCode(v, scale1, zero1, maxq), scale1, zero1) - v;
        err += std::pow(std::abs(d), kNorm);
      }
      if (err < best[r]) {
        best[r] = err;
        p.scale[r] = scale1;
        p.zero[r] = zero1;
      }
    }
  }
  return p;
}

}  // namespace caliber
