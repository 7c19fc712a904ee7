// Folding HeRo-Q's transforms into a model's weights, so the transformed model has the
// original architecture and computes the same function (up to float rounding):
//   - RMSNorm weights fold into the linears that read the norm's output (W ← W·diag(g)); the
//     norm then only normalizes, which commutes with the residual rotation R1;
//   - each module gets W̃ = L W T (transform_matrices.h), biases b̃ = L b;
//   - the norm weights become D⁻¹ of the diagonal at their input (1/exp θ);
//   - embeddings become E·R1, lm_head W_lm·diag(g_final)·R1 with a unit final norm.
#pragma once

#include "core/model/config.h"
#include "core/model/weights.h"
#include "core/transform/transform_params.h"

namespace caliber {

// input_layernorm into q/k/v, post_attention_layernorm into gate/up; both norms become 1.
void FoldLayerNorms(LayerWeights& w);

// FoldLayerNorms, then the layer's transform with the model rotation `r1`.
void ApplyLayerTransform(const ModelConfig& config, const MatrixD& r1, const LayerTransform& t,
                         LayerWeights& w);

// Embedding rows h ← h·R1 (the residual stream in the rotated basis).
void ApplyEmbeddingTransform(const MatrixD& r1, MatrixF& embed_tokens);

// lm_head ← lm_head·diag(final_norm)·R1 and final_norm ← 1.
void ApplyHeadTransform(const MatrixD& r1, VectorF& final_norm, MatrixF& lm_head);

// Every layer, the embeddings and the head of a whole model (tied embeddings are untied:
// embeddings and head no longer share a matrix).
void ApplyModelTransform(const ModelConfig& config, const ModelTransform& t, ModelWeights& w);

}  // namespace caliber
