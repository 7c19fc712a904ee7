#include "core/model/rope.h"

#include <cassert>
#include <cmath>
#include <numbers>

namespace caliber {

std::vector<float> RopeInverseFrequencies(const ModelConfig& config) {
  const int half = config.head_dim / 2;
  std::vector<float> inv_freq(half);
  for (int i = 0; i < half; ++i) {
    // transformers: 1 / base ** (arange(0, dim, 2).float() / dim), in float32.
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(config.head_dim);
    inv_freq[i] = static_cast<float>(1.0 / std::pow(config.rope_theta, static_cast<double>(exponent)));
  }
  const RopeScaling& s = config.rope_scaling;
  if (s.type == RopeScaling::Type::kLlama3) {
    // Llama 3.1: long wavelengths are slowed by `factor`, short ones kept, and the band in
    // between interpolated smoothly (transformers' _compute_llama3_parameters).
    const double old_context = s.original_max_position_embeddings;
    const double low_freq_wavelen = old_context / s.low_freq_factor;
    const double high_freq_wavelen = old_context / s.high_freq_factor;
    for (float& f : inv_freq) {
      const double wavelen = 2.0 * std::numbers::pi / f;
      if (wavelen > low_freq_wavelen) {
        f = static_cast<float>(f / s.factor);
      } else if (wavelen >= high_freq_wavelen) {
        const double smooth = (old_context / wavelen - s.low_freq_factor) /
                              (s.high_freq_factor - s.low_freq_factor);
        f = static_cast<float>((1.0 - smooth) * f / s.factor + smooth * f);
      }
    }
  }
  return inv_freq;
}

RopeTable::RopeTable(const ModelConfig& config, int max_positions) {
  const std::vector<float> inv_freq = RopeInverseFrequencies(config);
  const int half = static_cast<int>(inv_freq.size());
  cos_.resize(max_positions, half);
  sin_.resize(max_positions, half);
  for (int p = 0; p < max_positions; ++p) {
    for (int i = 0; i < half; ++i) {
      // freqs = position (float32) * inv_freq (float32), then cos/sin in float32 as torch does.
      const float angle = static_cast<float>(p) * inv_freq[i];
      cos_(p, i) = std::cos(angle);
      sin_(p, i) = std::sin(angle);
    }
  }
}

void RopeTable::Apply(MatrixF& x, int num_seqs, int seq_len, int num_heads, int head_dim) const {
  assert(seq_len <= max_positions());
  assert(x.rows() == static_cast<Eigen::Index>(num_seqs) * seq_len);
  (void)num_seqs;  // only checked: row r sits at position r % seq_len
  assert(x.cols() == static_cast<Eigen::Index>(num_heads) * head_dim);
  const int half = head_dim / 2;
  for (Eigen::Index row = 0; row < x.rows(); ++row) {
    const int pos = static_cast<int>(row % seq_len);
    const float* c = cos_.row(pos).data();
    const float* s = sin_.row(pos).data();
    float* r = x.row(row).data();
    for (int h = 0; h < num_heads; ++h) {
      float* x1 = r + h * head_dim;
      float* x2 = x1 + half;
      for (int i = 0; i < half; ++i) {
        const float a = x1[i];
        const float b = x2[i];
        x1[i] = a * c[i] - b * s[i];
        x2[i] = b * c[i] + a * s[i];
      }
    }
  }
}

}  // namespace caliber
