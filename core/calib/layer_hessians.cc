#include "core/calib/layer_hessians.h"

#include <algorithm>

#include "core/quant/act_quant.h"

namespace caliber {

int LinearGroupInputWidth(const ModelConfig& c, LinearGroup g) {
  switch (g) {
    case LinearGroup::kQkv:
    case LinearGroup::kGateUp: return c.hidden_size;
    case LinearGroup::kO: return c.q_dim();
    case LinearGroup::kDown: return c.intermediate_size;
  }
  return 0;
}

void RunCalibrationBatches(const ModelConfig& config, int layer, const LayerWeights& weights,
                           const RopeTable& rope, const SequenceBatch& samples, int batch_seqs,
                           int act_bits, const MatrixF& in, MatrixF* out, HessianTaps* taps) {
  std::optional<ActQuantTaps> act_quant;
  LayerTaps* layer_taps = WithActivationQuantization(act_bits, taps, act_quant);
  for (int s0 = 0; s0 < samples.num_seqs; s0 += batch_seqs) {
    const int n = std::min(batch_seqs, samples.num_seqs - s0);
    const Eigen::Index r0 = static_cast<Eigen::Index>(s0) * samples.seq_len;
    const Eigen::Index rows = static_cast<Eigen::Index>(n) * samples.seq_len;
    MatrixF h = in.middleRows(r0, rows);
    if (taps != nullptr) taps->set_batch_sequences(n);
    DecoderLayerForward(config, layer, weights, rope, {n, samples.seq_len}, h, layer_taps);
    if (out != nullptr) out->middleRows(r0, rows) = h;
  }
}

}  // namespace caliber
