#include "core/quant/rtn.h"

#include <algorithm>

#include "core/quant/quant_grid.h"

namespace caliber {

absl::StatusOr<QuantizedLinear> RtnQuantize(const MatrixF& W, const QuantSpec& spec) {
  const int out = static_cast<int>(W.rows());
  const int in = static_cast<int>(W.cols());
  if (absl::Status s = Validate(spec, in); !s.ok()) return s;
  const int group = spec.group_size == -1 ? in : spec.group_size;
  const int num_groups = (in + group - 1) / group;
  const float maxq = static_cast<float>(MaxQ(spec.bits));

  QuantizedLinear q;
  q.out_features = out;
  q.in_features = in;
  q.bits = spec.bits;
  q.group_size = spec.group_size;
  q.sym = spec.sym;
  q.codes.resize(out, in);
  q.scales.resize(num_groups, out);
  q.zeros.resize(num_groups, out);
  q.g_idx.resize(static_cast<size_t>(in));
  q.report.method = "rtn";

  for (int g = 0; g < num_groups; ++g) {
    const int begin = g * group;
    const int width = std::min(group, in - begin);
    const GridParams p = FindParams(W.middleCols(begin, width), spec.bits, spec.sym, spec.mse);
    for (int r = 0; r < out; ++r) {
      for (int i = begin; i < begin + width; ++i) {
        q.codes(r, i) = static_cast<uint8_t>(QuantCode(W(r, i), p.scale[r], p.zero[r], maxq));
      }
    }
    q.scales.row(g) = p.scale.transpose();
    q.zeros.row(g) = p.zero.cast<int32_t>().transpose();
    for (int i = begin; i < begin + width; ++i) q.g_idx[static_cast<size_t>(i)] = g;
  }
  return q;
}

}  // namespace caliber
