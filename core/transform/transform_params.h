// The parameters of HeRo-Q's exact, foldable transforms of a decoder-only model (see
// docs/methods/heroq.md). Each linear y = W x gets an invertible T with W̃ = W T and
// x̃ = T⁻¹ x; T is an orthogonal rotation times a positive diagonal, placed only where the
// model can absorb it without an architecture change:
//   r1        one rotation of the residual stream, shared by every layer: inputs of
//             q/k/v/gate/up/lm_head (T ∋ R1) and outputs of o/down (rows Rᵀ), embeddings;
//   r2        per layer, one head_dim rotation between v_proj and o_proj, the same in
//             every head;
//   log_attn  per layer, θ of D = diag(exp θ) at the attention input (D⁻¹ is carried by
//             input_layernorm's weight);
//   log_mlp   the same at the MLP input (post_attention_layernorm);
//   log_vo    between v_proj's rows and o_proj's columns, one per value channel (so heads
//             sharing a key/value head share it: grouped-query attention);
//   log_ud    between up_proj's rows and down_proj's columns.
#pragma once

#include <vector>

#include "core/model/config.h"
#include "core/tensor/matrix.h"

namespace caliber {

struct LayerTransform {
  MatrixD r2;        // [head_dim x head_dim], orthogonal
  VectorD log_attn;  // [hidden_size]
  VectorD log_mlp;   // [hidden_size]
  VectorD log_vo;    // [kv_dim]
  VectorD log_ud;    // [intermediate_size]
};

struct ModelTransform {
  MatrixD r1;  // [hidden_size x hidden_size], orthogonal
  std::vector<LayerTransform> layers;
};

// Identity rotations and unit diagonals for `config`.
LayerTransform IdentityLayerTransform(const ModelConfig& config);
ModelTransform IdentityModelTransform(const ModelConfig& config);

}  // namespace caliber
