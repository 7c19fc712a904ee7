// The calibration forward pass of one decoder layer, shared by quantization (layer_quantizer)
// and HeRo-Q's transform learning (core/transform/layer_problem): calibration samples run
// through the layer in batches, and a tap accumulates the Hessian of each wanted linear
// group's input.
#pragma once

#include <array>
#include <optional>

#include "core/model/decoder_layer.h"
#include "core/quant/hessian.h"

namespace caliber {

// Accumulates the Hessian of the input of the groups it was asked for.
class HessianTaps : public LayerTaps {
 public:
  void Want(LinearGroup g, int in_features, HessianAccumulator::Precision precision) {
    acc_[static_cast<int>(g)].emplace(in_features, precision);
  }
  void set_batch_sequences(int n) { batch_sequences_ = n; }
  void OnLinearInput(LinearGroup g, MatrixF& x) override {
    if (auto& a = acc_[static_cast<int>(g)]) a->AddBatch(x, batch_sequences_);
  }
  const HessianAccumulator& Get(LinearGroup g) const { return *acc_[static_cast<int>(g)]; }

 private:
  std::array<std::optional<HessianAccumulator>, 4> acc_;
  int batch_sequences_ = 1;
};

// Width of the input of the linears of group `g`.
int LinearGroupInputWidth(const ModelConfig& c, LinearGroup g);

// Runs the calibration samples through the layer in batches of `batch_seqs` sequences, linear
// inputs fake-quantized at `act_bits` (before `taps` sees them); writes the outputs to `out`
// when given (`out` may be `&in`: each batch reads its rows of `in` before writing them).
void RunCalibrationBatches(const ModelConfig& config, int layer, const LayerWeights& weights,
                           const RopeTable& rope, const SequenceBatch& samples, int batch_seqs,
                           int act_bits, const MatrixF& in, MatrixF* out, HessianTaps* taps);

}  // namespace caliber
