#include "core/transform/transform_matrices.h"

namespace caliber {

LayerTransformMatrices BuildTransformMatrices(const ModelConfig& config, const MatrixD& r1,
                                              const LayerTransform& t) {
  const int hd = config.head_dim;
  LayerTransformMatrices m;
  const VectorD da = t.log_attn.array().exp();
  const VectorD dm = t.log_mlp.array().exp();
  const VectorD dv = t.log_vo.array().exp();
  m.t_attn = r1 * da.asDiagonal();
  m.m_attn = da.cwiseInverse().asDiagonal() * r1.transpose();
  m.t_mlp = r1 * dm.asDiagonal();
  m.m_mlp = dm.cwiseInverse().asDiagonal() * r1.transpose();
  m.l_v = MatrixD::Zero(config.kv_dim(), config.kv_dim());
  for (int j = 0; j < config.num_key_value_heads; ++j) {
    m.l_v.block(j * hd, j * hd, hd, hd) =
        dv.segment(j * hd, hd).cwiseInverse().asDiagonal() * t.r2.transpose();
  }
  m.t_o = MatrixD::Zero(config.q_dim(), config.q_dim());
  m.m_o = MatrixD::Zero(config.q_dim(), config.q_dim());
  for (int h = 0; h < config.num_attention_heads; ++h) {
    const auto d = dv.segment(KvHeadOf(config, h) * hd, hd);
    m.t_o.block(h * hd, h * hd, hd, hd) = t.r2 * d.asDiagonal();
    m.m_o.block(h * hd, h * hd, hd, hd) = d.cwiseInverse().asDiagonal() * t.r2.transpose();
  }
  m.d_u = t.log_ud.array().exp();
  return m;
}

}  // namespace caliber
