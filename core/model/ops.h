// The elementary operations of a decoder layer, one function each, on row-major float32
// activations [tokens x features]. Semantics follow Hugging Face transformers exactly.
#pragma once

#include <optional>

#include "core/tensor/matrix.h"

namespace caliber {

// y = weight * (x / sqrt(mean(x^2) + eps)), per row of width weight.size(); x may be a
// multiple of that width (Qwen3's per-head q/k norm), each chunk normalized on its own.
MatrixF RmsNorm(const MatrixF& x, const VectorF& weight, float eps);
void RmsNormInPlace(MatrixF& x, const VectorF& weight, float eps);

// y = x Wᵀ (+ bias), W stored [out x in] as in checkpoints.
MatrixF Linear(const MatrixF& x, const MatrixF& weight, const VectorF* bias = nullptr);

// silu(gate) * up, element-wise, written into gate.
void SiluMulInPlace(MatrixF& gate, const MatrixF& up);

struct AttentionShape {
  int num_seqs = 0;
  int seq_len = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  std::optional<int> sliding_window;  // a query attends to at most this many latest keys
};

// Causal softmax(q kᵀ / sqrt(head_dim)) v with grouped-query heads: query head h reads
// key/value head h / (num_heads / num_kv_heads). q [T x H*d], k and v [T x KV*d], result
// [T x H*d], where T = num_seqs * seq_len and every sequence starts at position 0.
MatrixF CausalAttention(const MatrixF& q, const MatrixF& k, const MatrixF& v,
                        const AttentionShape& shape);

}  // namespace caliber
