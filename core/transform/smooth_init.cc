#include "core/transform/smooth_init.h"

#include <algorithm>
#include <cmath>

#include "core/transform/transform_matrices.h"

namespace caliber {
namespace {

constexpr double kTiny = 1e-12;

VectorD Balance(const VectorD& act, const VectorD& weight, double alpha) {
  VectorD log_s(act.size());
  for (int j = 0; j < act.size(); ++j) {
    log_s[j] = alpha * std::log(std::max(act[j], kTiny)) - (1 - alpha) * std::log(std::max(weight[j], kTiny));
  }
  log_s.array() -= log_s.mean();
  return log_s;
}

VectorD ColumnAbsMax(const MatrixD& w) { return w.cwiseAbs().colwise().maxCoeff().transpose(); }

}  // namespace

void SmoothQuantInit(const ModelConfig& config, const LayerProblem& p, const MatrixD& r1,
                     double alpha, LayerTransform& t) {
  const MatrixD r1t = r1.transpose();
  // Attention input: q, k, v read it.
  {
    const VectorD act = (r1t * p.h[0] * r1).diagonal().cwiseMax(0).cwiseSqrt();
    const VectorD w = ColumnAbsMax(p.w[0] * r1).cwiseMax(ColumnAbsMax(p.w[1] * r1)).cwiseMax(ColumnAbsMax(p.w[2] * r1));
    t.log_attn = Balance(act, w, alpha);
  }
  {
    const VectorD act = (r1t * p.h[2] * r1).diagonal().cwiseMax(0).cwiseSqrt();
    const VectorD w = ColumnAbsMax(p.w[4] * r1).cwiseMax(ColumnAbsMax(p.w[5] * r1));
    t.log_mlp = Balance(act, w, alpha);
  }
  // Value channels: o's input in the R2 basis, pooled over the heads sharing a kv head.
  {
    const int hd = config.head_dim;
    LayerTransform rot_only = IdentityLayerTransform(config);
    rot_only.r2 = t.r2;
    const LayerTransformMatrices m = BuildTransformMatrices(config, r1, rot_only);
    const VectorD act_h = (m.m_o * p.h[1] * m.m_o.transpose()).diagonal().cwiseMax(0);
    const VectorD w_h = ColumnAbsMax(p.w[3] * m.t_o);
    VectorD act = VectorD::Zero(config.kv_dim()), w = VectorD::Zero(config.kv_dim());
    const int per_kv = config.num_attention_heads / config.num_key_value_heads;
    for (int h = 0; h < config.num_attention_heads; ++h) {
      const int j = KvHeadOf(config, h);
      act.segment(j * hd, hd) += act_h.segment(h * hd, hd) / per_kv;
      w.segment(j * hd, hd) = w.segment(j * hd, hd).cwiseMax(w_h.segment(h * hd, hd));
    }
    t.log_vo = Balance(act.cwiseSqrt(), w, alpha);
  }
  {
    const VectorD act = p.h[3].diagonal().cwiseMax(0).cwiseSqrt();
    t.log_ud = Balance(act, ColumnAbsMax(p.w[6]), alpha);
  }
}

}  // namespace caliber
