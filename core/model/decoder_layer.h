// One decoder layer, hidden states in -> hidden states out. This is the unit calibration
// drives: taps see (and may rewrite) the input of every linear module group.
#pragma once

#include "core/model/config.h"
#include "core/model/rope.h"
#include "core/model/weights.h"
#include "core/tensor/matrix.h"

namespace caliber {

// Linear modules that share one input: (q, k, v), o, (gate, up), down. GPTQ's "true
// sequential" order quantizes them group by group in this order.
enum class LinearGroup { kQkv, kO, kGateUp, kDown };
inline constexpr LinearGroup kAllLinearGroups[] = {LinearGroup::kQkv, LinearGroup::kO,
                                                   LinearGroup::kGateUp, LinearGroup::kDown};
std::string_view LinearGroupName(LinearGroup g);  // "qkv", "o", "gate_up", "down"

class LayerTaps {
 public:
  virtual ~LayerTaps() = default;
  // `x` [tokens x in_features] is about to enter the linears of `group`. A tap may read it
  // (Hessian accumulation) or rewrite it in place (fake activation quantization).
  virtual void OnLinearInput(LinearGroup group, MatrixF& x) = 0;
};

struct SequenceBatch {
  int num_seqs = 0;
  int seq_len = 0;  // every sequence starts at position 0
};

// Runs decoder layer number `layer` (which selects per-layer behaviour such as Qwen's
// sliding-window layers). hidden [num_seqs * seq_len x hidden_size] is updated in place.
// `taps` may be null.
void DecoderLayerForward(const ModelConfig& config, int layer, const LayerWeights& weights,
                         const RopeTable& rope, const SequenceBatch& batch, MatrixF& hidden,
                         LayerTaps* taps);

}  // namespace caliber
