// The dense matrices a LayerTransform stands for, for one decoder layer (float64):
//   attention input  T_a = R1·D_a            (q, k, v:  W̃ = W T_a; v also gets rows L_v)
//   value channels   L_v = ⊕_j D_vj⁻¹ R2ᵀ     (v rows, one block per key/value head)
//   o input          T_o = ⊕_h R2 D_v(kv(h)) (o:  W̃ = R1ᵀ W T_o)
//   MLP input        T_m = R1·D_m            (gate, up:  W̃ = W T_m; up also gets rows D_u⁻¹)
//   down input       T_d = D_u               (down:  W̃ = R1ᵀ W D_u)
// and the inverses M = T⁻¹ that map a module's inputs (x̃ = M x) and Hessians (H̃ = M H Mᵀ).
#pragma once

#include "core/model/config.h"
#include "core/transform/transform_params.h"

namespace caliber {

struct LayerTransformMatrices {
  MatrixD t_attn, m_attn;  // [hidden x hidden]
  MatrixD l_v;             // [kv_dim x kv_dim]
  MatrixD t_o, m_o;        // [q_dim x q_dim]
  MatrixD t_mlp, m_mlp;    // [hidden x hidden]
  VectorD d_u;             // [intermediate]: T_d = diag(d_u), up rows diag(1/d_u)
};

LayerTransformMatrices BuildTransformMatrices(const ModelConfig& config, const MatrixD& r1,
                                              const LayerTransform& t);

// Which key/value head attention head `h` reads.
inline int KvHeadOf(const ModelConfig& config, int h) {
  return h / (config.num_attention_heads / config.num_key_value_heads);
}

}  // namespace caliber
