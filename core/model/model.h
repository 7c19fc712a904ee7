// A whole decoder-only causal LM on the CPU: embeddings, decoder layers, final norm, LM head.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/model/config.h"
#include "core/model/decoder_layer.h"
#include "core/model/rope.h"
#include "core/model/weights.h"

namespace caliber {

class Model {
 public:
  // Reads DIR/config.json and the checkpoint's tensors (validated against the config).
  static absl::StatusOr<std::unique_ptr<Model>> Load(const std::string& dir);
  Model(ModelConfig config, ModelWeights weights);

  const ModelConfig& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }
  ModelWeights& mutable_weights() { return weights_; }
  const RopeTable& rope() const { return rope_; }

  // Token ids (all in [0, vocab)) -> hidden states [ids.size() x hidden].
  absl::StatusOr<MatrixF> Embed(absl::Span<const int32_t> ids) const;
  void RunLayer(int layer, const SequenceBatch& batch, MatrixF& hidden,
                LayerTaps* taps = nullptr) const;
  // Final norm + LM head: hidden [tokens x hidden] -> logits [tokens x vocab].
  MatrixF Logits(const MatrixF& hidden) const;
  // Full forward of num_seqs sequences of equal length, concatenated in `ids`. `act_bits` 8
  // fake-quantizes every decoder linear's input per token as a W·A8 deployment computes it
  // (core/quant/act_quant.h; lm_head stays in float); 16 keeps activations in float.
  absl::StatusOr<MatrixF> Forward(absl::Span<const int32_t> ids, int num_seqs,
                                  int act_bits = 16) const;

 private:
  ModelConfig config_;
  ModelWeights weights_;
  RopeTable rope_;
};

}  // namespace caliber
