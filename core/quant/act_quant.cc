#include "core/quant/act_quant.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace caliber {

absl::Status ValidateActBits(int act_bits) {
  if (act_bits == kActBitsFloat || act_bits == kActBitsInt8) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "act_bits must be 16 (float activations) or 8 (per-token dynamic INT8), got ", act_bits));
}

void FakeQuantizePerToken(MatrixF& x, int bits) {
  const float qmax = static_cast<float>((1 << (bits - 1)) - 1);
  const float qmin = -qmax - 1.0f;
  for (Eigen::Index t = 0; t < x.rows(); ++t) {
    auto row = x.row(t);
    float absmax = 0.0f;
    for (Eigen::Index i = 0; i < row.size(); ++i) absmax = std::max(absmax, std::fabs(row(i)));
    if (absmax == 0.0f) continue;  // all zeros: stays zero
    const float scale = absmax / qmax;
    const float inv_scale = qmax / absmax;
    for (Eigen::Index i = 0; i < row.size(); ++i) {
      // Through an integer, as the int8 code is: -0.0 becomes +0.0.
      const int q = static_cast<int>(std::clamp(std::nearbyint(row(i) * inv_scale), qmin, qmax));
      row(i) = static_cast<float>(q) * scale;
    }
  }
}

void ActQuantTaps::OnLinearInput(LinearGroup group, MatrixF& x) {
  FakeQuantizePerToken(x, bits_);
  if (inner_ != nullptr) inner_->OnLinearInput(group, x);
}

LayerTaps* WithActivationQuantization(int act_bits, LayerTaps* inner,
                                      std::optional<ActQuantTaps>& storage) {
  if (act_bits == kActBitsFloat) return inner;
  storage.emplace(act_bits, inner);
  return &*storage;
}

}  // namespace caliber
