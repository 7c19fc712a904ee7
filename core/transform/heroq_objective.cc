#include "core/transform/heroq_objective.h"

#include <algorithm>
#include <cmath>

#include "core/model/decoder_layer.h"
#include "core/transform/spectrum.h"
#include "core/transform/transform_matrices.h"

namespace caliber {
namespace {

// One side of W̃ = L·W·T: nothing, a dense matrix or a diagonal.
struct Side {
  const MatrixD* dense = nullptr;
  const VectorD* diag = nullptr;
};

MatrixD Left(const Side& L, const MatrixD& W) {
  if (L.dense != nullptr) return *L.dense * W;
  if (L.diag != nullptr) return L.diag->asDiagonal() * W;
  return W;
}

MatrixD Right(const MatrixD& W, const Side& T) {
  if (T.dense != nullptr) return W * *T.dense;
  if (T.diag != nullptr) return W * T.diag->asDiagonal();
  return W;
}

// Where a group's scale comes from: ds/dw at one entry of the row.
struct ScaleSource {
  int row, col, group_begin, group_end;
  double ds_dw;
};

struct RtnError {
  MatrixD e;  // Q(W̃) − W̃
  MatrixD c;  // code − zero: the integers each entry is held at
  std::vector<ScaleSource> sources;
};

// The GPTQ reference's min-max grid (quant.py find_params, perchannel, no MSE) per row and
// group, in double.
RtnError Rtn(const MatrixD& w, const HeroqObjectiveOptions& o) {
  const double maxq = static_cast<double>((1 << o.bits) - 1);
  const int cols = static_cast<int>(w.cols());
  const int gs = o.group_size <= 0 ? cols : o.group_size;
  RtnError r{MatrixD(w.rows(), cols), MatrixD(w.rows(), cols), {}};
  for (int i = 0; i < w.rows(); ++i) {
    for (int g0 = 0; g0 < cols; g0 += gs) {
      const int g1 = std::min(cols, g0 + gs);
      double xmin = 0, xmax = 0;
      int jmin = -1, jmax = -1;
      for (int j = g0; j < g1; ++j) {
        if (w(i, j) < xmin) xmin = w(i, j), jmin = j;
        if (w(i, j) > xmax) xmax = w(i, j), jmax = j;
      }
      double lo = xmin, hi = xmax, zero = 0, scale = 0;
      if (o.sym) {
        const bool neg_wins = -xmin > xmax;
        const double a = neg_wins ? -xmin : xmax;
        lo = xmin < 0 ? -a : 0;
        hi = a;
        if (a > 0) {
          const int ja = neg_wins ? jmin : jmax;
          const double dscale_da = (xmin < 0 ? 2.0 : 1.0) / maxq;
          r.sources.push_back({i, ja, g0, g1, dscale_da * (w(i, ja) < 0 ? -1.0 : 1.0)});
        }
      } else {
        if (xmax > 0) r.sources.push_back({i, jmax, g0, g1, 1.0 / maxq});
        if (xmin < 0) r.sources.push_back({i, jmin, g0, g1, -1.0 / maxq});
      }
      if (lo == 0 && hi == 0) lo = -1, hi = 1;
      scale = (hi - lo) / maxq;
      zero = o.sym ? (maxq + 1) / 2 : std::nearbyint(-lo / scale);
      for (int j = g0; j < g1; ++j) {
        const double code = std::clamp(std::nearbyint(w(i, j) / scale) + zero, 0.0, maxq);
        r.c(i, j) = code - zero;
      }
      // In exact arithmetic the symmetric grid's range-setting entry sits at ±maxq/2, a
      // rounding tie (half to even: the lowest code for a negative one, the clamped highest for
      // a positive one). Set it exactly, so float noise in x/scale cannot flip its code.
      if (o.sym && !r.sources.empty() && r.sources.back().row == i && r.sources.back().group_begin == g0) {
        const ScaleSource& src = r.sources.back();
        r.c(i, src.col) = w(i, src.col) < 0 ? -zero : maxq - zero;
      }
      for (int j = g0; j < g1; ++j) r.e(i, j) = scale * r.c(i, j) - w(i, j);
    }
  }
  return r;
}

struct ModuleSpec {
  LinearModule module;
  int group;
  Side L, T;
};

}  // namespace

MatrixD RoundToNearestGrid(const MatrixD& w, const HeroqObjectiveOptions& options) {
  RtnError r = Rtn(w, options);
  return w + r.e;
}

void ComputeEnergies(LayerProblem& p) {
  static constexpr int kGroupOf[7] = {0, 0, 0, 1, 2, 2, 3};
  for (int m = 0; m < 7; ++m) {
    const MatrixD& W = p.w[m];
    p.energy[m] = (W.cwiseProduct(W * p.h[kGroupOf[m]])).sum();
  }
}

LayerObjectiveValue EvaluateLayerObjective(const ModelConfig& config, const LayerProblem& p,
                                           const MatrixD& r1, const LayerTransform& t,
                                           const HeroqObjectiveOptions& options, bool gradients) {
  const LayerTransformMatrices m = BuildTransformMatrices(config, r1, t);
  const MatrixD r1t = r1.transpose();
  const VectorD inv_du = m.d_u.cwiseInverse();

  // Transformed Hessians H̃ = M H Mᵀ.
  std::array<MatrixD, 4> ht;
  ht[0] = m.m_attn * p.h[0] * m.m_attn.transpose();
  ht[1] = m.m_o * p.h[1] * m.m_o.transpose();
  ht[2] = m.m_mlp * p.h[2] * m.m_mlp.transpose();
  ht[3] = inv_du.asDiagonal() * p.h[3] * inv_du.asDiagonal();

  const ModuleSpec modules[7] = {
      {LinearModule::kQ, 0, {}, {&m.t_attn, nullptr}},
      {LinearModule::kK, 0, {}, {&m.t_attn, nullptr}},
      {LinearModule::kV, 0, {&m.l_v, nullptr}, {&m.t_attn, nullptr}},
      {LinearModule::kO, 1, {&r1t, nullptr}, {&m.t_o, nullptr}},
      {LinearModule::kGate, 2, {}, {&m.t_mlp, nullptr}},
      {LinearModule::kUp, 2, {nullptr, &inv_du}, {&m.t_mlp, nullptr}},
      {LinearModule::kDown, 3, {&r1t, nullptr}, {nullptr, &m.d_u}},
  };

  // The activation term's smooth max of each group's channel energies and its gradient.
  const bool act = options.act_bits < 16;
  const double act_q = act ? std::ldexp(1.0, options.act_bits - 1) - 1 : 1;
  std::array<double, 4> smax{};
  std::array<VectorD, 4> smax_grad;  // ∂S/∂H̃_jj
  if (act) {
    constexpr double kP = 8;
    for (int g = 0; g < 4; ++g) {
      const VectorD h = ht[g].diagonal().cwiseMax(0.0);
      const double top = h.maxCoeff();
      if (top <= 0) {
        smax_grad[g] = VectorD::Zero(h.size());
        continue;
      }
      const VectorD r = h / top;  // scaled for range: S = top · ‖r‖_p
      const double norm = std::pow(r.array().pow(kP).sum(), 1.0 / kP);
      smax[g] = top * norm;
      smax_grad[g] = (r / norm).array().pow(kP - 1);
    }
  }

  LayerObjectiveValue out;
  std::array<MatrixD, 4> g_ht;  // ∂loss/∂H̃ per group
  std::array<MatrixD, 7> g_left, g_right;  // ∂loss/∂L, ∂loss/∂T per module (dense or diag)
  for (int g = 0; g < 4; ++g) g_ht[g] = MatrixD::Zero(ht[g].rows(), ht[g].cols());

  for (int k = 0; k < 7; ++k) {
    const ModuleSpec& s = modules[k];
    const int mi = static_cast<int>(s.module);
    const MatrixD LW = Left(s.L, p.w[mi]);
    const MatrixD Wt = Right(LW, s.T);
    const RtnError r = Rtn(Wt, options);
    const MatrixD EH = r.e * ht[s.group];
    const double inv_energy = p.energy[mi] > 0 ? 1.0 / p.energy[mi] : 0.0;
    out.quant[mi] = r.e.cwiseProduct(EH).sum() * inv_energy;
    out.loss += out.quant[mi];
    const double act_coef = act ? inv_energy / (12.0 * act_q * act_q) : 0.0;
    const double wt_norm2 = act ? Wt.squaredNorm() : 0.0;
    out.act[mi] = act_coef * smax[s.group] * wt_norm2;
    out.loss += out.act[mi];
    if (!gradients) continue;
    // ∂/∂E = 2 E H̃ / energy; E = s(W̃)·c − W̃.
    const MatrixD g_e = (2.0 * inv_energy) * EH;
    MatrixD g_w = -g_e;
    if (act) {
      g_w += (2.0 * act_coef * smax[s.group]) * Wt;
      g_ht[s.group].diagonal() += (act_coef * wt_norm2) * smax_grad[s.group];
    }
    for (const ScaleSource& src : r.sources) {
      double coef = 0;
      for (int j = src.group_begin; j < src.group_end; ++j) coef += g_e(src.row, j) * r.c(src.row, j);
      g_w(src.row, src.col) += coef * src.ds_dw;
    }
    g_ht[s.group] += inv_energy * (r.e.transpose() * r.e);
    // W̃ = L·(W·T) = (L·W)·T.
    if (s.T.dense != nullptr) {
      g_right[k] = LW.transpose() * g_w;
    } else if (s.T.diag != nullptr) {
      g_right[k] = LW.cwiseProduct(g_w).colwise().sum().transpose();  // diag((LW)ᵀ G)
    }
    if (s.L.dense != nullptr) {
      g_left[k] = g_w * Right(p.w[mi], s.T).transpose();
    } else if (s.L.diag != nullptr) {
      g_left[k] = g_w.cwiseProduct(Right(p.w[mi], s.T)).rowwise().sum();  // diag(G (WT)ᵀ)
    }
  }

  for (int g = 0; g < 4; ++g) {
    out.trace[g] = ht[g].trace();
    out.top_eigenvalue[g] = TopEigenpair(ht[g], p.top_vector[g]);
    out.spectral[g] = out.trace[g] > 0 ? out.top_eigenvalue[g] / out.trace[g] : 0;
    out.loss += options.lambda * out.spectral[g];
    if (gradients && out.trace[g] > 0) {
      const VectorD& v = p.top_vector[g];
      g_ht[g] += (options.lambda / out.trace[g]) * (v * v.transpose());
      g_ht[g].diagonal().array() -= options.lambda * out.top_eigenvalue[g] / (out.trace[g] * out.trace[g]);
    }
  }
  if (!gradients) return out;

  // H̃ = M H Mᵀ, M = T⁻¹: ∂/∂M = 2 G M H, ∂/∂T = −Mᵀ (∂/∂M) Mᵀ.
  auto t_from_h = [&](const MatrixD& M, const MatrixD& H, const MatrixD& G) -> MatrixD {
    const MatrixD g_m = 2.0 * G * M * H;
    return -M.transpose() * g_m * M.transpose();
  };
  const MatrixD g_t_attn = g_right[0] + g_right[1] + g_right[2] + t_from_h(m.m_attn, p.h[0], g_ht[0]);
  const MatrixD g_t_o = g_right[3] + t_from_h(m.m_o, p.h[1], g_ht[1]);
  const MatrixD g_t_mlp = g_right[4] + g_right[5] + t_from_h(m.m_mlp, p.h[2], g_ht[2]);
  // Down's T = diag(d_u), M = diag(1/d_u): ∂/∂T_ii = −m_i² (2 G M H)_ii.
  VectorD g_t_down = g_right[6];
  for (int i = 0; i < g_t_down.size(); ++i) {
    const double gm_ii = 2.0 * (g_ht[3].row(i).transpose().cwiseProduct(inv_du).cwiseProduct(p.h[3].col(i))).sum();
    g_t_down[i] -= inv_du[i] * inv_du[i] * gm_ii;
  }

  const int hd = config.head_dim;
  const VectorD da = t.log_attn.array().exp();
  const VectorD dm = t.log_mlp.array().exp();
  const VectorD dv = t.log_vo.array().exp();
  LayerTransform& gr = out.grad;
  gr = IdentityLayerTransform(config);
  gr.r2.setZero();
  // T_a = R1 D_a, T_m = R1 D_m; o and down have rows R1ᵀ.
  out.g_r1 = g_t_attn * da.asDiagonal() + g_t_mlp * dm.asDiagonal() + g_left[3].transpose() +
             g_left[6].transpose();
  gr.log_attn = da.cwiseProduct((r1.transpose() * g_t_attn).diagonal());
  gr.log_mlp = dm.cwiseProduct((r1.transpose() * g_t_mlp).diagonal());
  // L_v blocks D⁻¹ R2ᵀ: ∂R2 += Bᵀ D⁻¹, ∂θ = −e ⊙ diag(B R2) with e = 1/d.
  for (int j = 0; j < config.num_key_value_heads; ++j) {
    const MatrixD B = g_left[2].block(j * hd, j * hd, hd, hd);
    const VectorD e = dv.segment(j * hd, hd).cwiseInverse();
    gr.r2 += B.transpose() * e.asDiagonal();
    gr.log_vo.segment(j * hd, hd) -= e.cwiseProduct((B * t.r2).diagonal());
  }
  // T_o blocks R2 D: ∂R2 += C D, ∂θ += d ⊙ diag(R2ᵀ C).
  for (int h = 0; h < config.num_attention_heads; ++h) {
    const int j = KvHeadOf(config, h);
    const MatrixD C = g_t_o.block(h * hd, h * hd, hd, hd);
    const VectorD d = dv.segment(j * hd, hd);
    gr.r2 += C * d.asDiagonal();
    gr.log_vo.segment(j * hd, hd) += d.cwiseProduct((t.r2.transpose() * C).diagonal());
  }
  // up rows diag(1/d_u), down columns diag(d_u).
  gr.log_ud = -inv_du.cwiseProduct(g_left[5].col(0)) + m.d_u.cwiseProduct(g_t_down);
  return out;
}

}  // namespace caliber
