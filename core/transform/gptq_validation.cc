#include "core/transform/gptq_validation.h"

#include <array>

#include "core/quant/gptq.h"
#include "core/transform/transform_matrices.h"

namespace caliber {
namespace {

// H̃ of the four inputs (qkv, o, gate_up, down) for one part, as the objective forms them.
std::array<MatrixD, 4> Transformed(const LayerTransformMatrices& m, const LayerProblem& p) {
  const VectorD inv_du = m.d_u.cwiseInverse();
  return {m.m_attn * p.h[0] * m.m_attn.transpose(), m.m_o * p.h[1] * m.m_o.transpose(),
          m.m_mlp * p.h[2] * m.m_mlp.transpose(), inv_du.asDiagonal() * p.h[3] * inv_du.asDiagonal()};
}

double Relative(const MatrixD& e, const MatrixD& h, double energy) {
  return energy > 0 ? e.cwiseProduct(e * h).sum() / energy : 0.0;
}

}  // namespace

absl::StatusOr<std::vector<GptqLayerObjective>> GptqLayerObjectives(const ModelConfig& config,
                                                                    const std::vector<LayerProblem>& train,
                                                                    const std::vector<LayerProblem>& validation,
                                                                    const MatrixD& r1,
                                                                    const std::vector<LayerTransform>& layers,
                                                                    const QuantSpec& spec) {
  static constexpr int kGroupOf[7] = {0, 0, 0, 1, 2, 2, 3};
  std::vector<GptqLayerObjective> out;
  out.reserve(train.size());
  const MatrixD r1t = r1.transpose();
  for (size_t i = 0; i < train.size(); ++i) {
    const LayerTransformMatrices m = BuildTransformMatrices(config, r1, layers[i]);
    const std::array<MatrixD, 4> ht = Transformed(m, train[i]);
    const std::array<MatrixD, 4> hv = Transformed(m, validation[i]);
    const VectorD inv_du = m.d_u.cwiseInverse();
    GptqLayerObjective o;
    for (int k = 0; k < 7; ++k) {
      const MatrixD& w = train[i].w[k];
      MatrixD wt;  // W̃ = L·W·T (transform_matrices.h)
      switch (k) {
        case 2: wt = m.l_v * w * m.t_attn; break;
        case 3: wt = r1t * w * m.t_o; break;
        case 4: wt = w * m.t_mlp; break;
        case 5: wt = inv_du.asDiagonal() * (w * m.t_mlp); break;
        case 6: wt = r1t * w * m.d_u.asDiagonal(); break;
        default: wt = w * m.t_attn; break;  // q, k
      }
      const int g = kGroupOf[k];
      absl::StatusOr<QuantizedLinear> q = GptqQuantize(wt.cast<float>(), ht[g].cast<float>(), spec);
      if (!q.ok()) return q.status();
      const MatrixD e = q->Dequantize().cast<double>() - wt;
      o.train += Relative(e, ht[g], train[i].energy[k]);
      o.validation += Relative(e, hv[g], validation[i].energy[k]);
    }
    out.push_back(o);
  }
  return out;
}

}  // namespace caliber
