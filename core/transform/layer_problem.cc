#include "core/transform/layer_problem.h"

#include <algorithm>

#include "core/calib/layer_hessians.h"
#include "core/model/weights.h"
#include "core/transform/fold.h"

namespace caliber {

absl::StatusOr<LayerProblem> BuildLayerProblem(const ModelConfig& config, const RopeTable& rope,
                                               const Checkpoint& checkpoint, int layer,
                                               const SequenceBatch& samples, int batch_seqs,
                                               MatrixF& hidden) {
  absl::StatusOr<LayerWeights> w = LoadLayerWeights(config, checkpoint, layer);
  if (!w.ok()) return w.status();
  FoldLayerNorms(*w);  // the same function: the norm now only normalizes
  HessianTaps taps;
  for (const LinearGroup g : kAllLinearGroups) {
    taps.Want(g, LinearGroupInputWidth(config, g), HessianAccumulator::Precision::kFloat64);
  }
  // Float activations: the transform is learned from the unquantized model's statistics.
  RunCalibrationBatches(config, layer, *w, rope, samples, std::max(1, batch_seqs), /*act_bits=*/16, hidden,
                        &hidden, &taps);
  LayerProblem p;
  p.layer = layer;
  for (const LinearModule m : kAllLinearModules) {
    p.w[static_cast<int>(m)] = w->linear(m).weight.cast<double>();
  }
  for (const LinearGroup g : kAllLinearGroups) p.h[static_cast<int>(g)] = taps.Get(g).FinalizeDouble();
  ComputeEnergies(p);
  return p;
}

}  // namespace caliber
