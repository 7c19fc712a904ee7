// Rotary position embeddings in Hugging Face's `rotate_half` convention: the head vector is
// split into halves (x1, x2) and rotated as (x1 cos - x2 sin, x2 cos + x1 sin), with
// inv_freq[i] = theta^(-2i/head_dim) and cos/sin = cat(freqs, freqs).
#pragma once

#include <vector>

#include "core/model/config.h"
#include "core/tensor/matrix.h"

namespace caliber {

// inv_freq as transformers computes it, including Llama 3.1's `llama3` frequency scaling.
std::vector<float> RopeInverseFrequencies(const ModelConfig& config);

// cos/sin for positions [0, max_positions), each row head_dim/2 wide (the two halves are equal).
class RopeTable {
 public:
  RopeTable(const ModelConfig& config, int max_positions);
  int max_positions() const { return static_cast<int>(cos_.rows()); }
  // The tables themselves, [max_positions x head_dim/2] (the CUDA backend uploads them).
  const MatrixF& cos() const { return cos_; }
  const MatrixF& sin() const { return sin_; }
  // Rotates every head of x in place; x is [num_seqs * seq_len x num_heads * head_dim] and
  // token t of each sequence sits at position t.
  void Apply(MatrixF& x, int num_seqs, int seq_len, int num_heads, int head_dim) const;

 private:
  MatrixF cos_;  // [positions x head_dim/2]
  MatrixF sin_;
};

}  // namespace caliber
