#include "core/transform/layer_problem.h"

#include <array>
#include <optional>

#include "core/model/weights.h"
#include "core/quant/hessian.h"
#include "core/transform/fold.h"

namespace caliber {
namespace {

class AllInputHessians : public LayerTaps {
 public:
  explicit AllInputHessians(const ModelConfig& c) {
    const int widths[4] = {c.hidden_size, c.q_dim(), c.hidden_size, c.intermediate_size};
    for (int g = 0; g < 4; ++g) acc_[g].emplace(widths[g], HessianAccumulator::Precision::kFloat64);
  }
  void set_batch_sequences(int n) { n_ = n; }
  void OnLinearInput(LinearGroup g, MatrixF& x) override { acc_[static_cast<int>(g)]->AddBatch(x, n_); }
  MatrixD Get(int g) const { return acc_[g]->FinalizeDouble(); }

 private:
  std::array<std::optional<HessianAccumulator>, 4> acc_;
  int n_ = 1;
};

}  // namespace

absl::StatusOr<LayerProblem> BuildLayerProblem(const ModelConfig& config, const RopeTable& rope,
                                               const Checkpoint& checkpoint, int layer,
                                               const SequenceBatch& samples, int batch_seqs,
                                               MatrixF& hidden) {
  absl::StatusOr<LayerWeights> w = LoadLayerWeights(config, checkpoint, layer);
  if (!w.ok()) return w.status();
  FoldLayerNorms(*w);  // the same function: the norm now only normalizes
  AllInputHessians taps(config);
  batch_seqs = std::max(1, batch_seqs);
  for (int s0 = 0; s0 < samples.num_seqs; s0 += batch_seqs) {
    const int n = std::min(batch_seqs, samples.num_seqs - s0);
    const Eigen::Index r0 = static_cast<Eigen::Index>(s0) * samples.seq_len;
    const Eigen::Index rows = static_cast<Eigen::Index>(n) * samples.seq_len;
    MatrixF h = hidden.middleRows(r0, rows);
    taps.set_batch_sequences(n);
    DecoderLayerForward(config, layer, *w, rope, {n, samples.seq_len}, h, &taps);
    hidden.middleRows(r0, rows) = h;
  }
  LayerProblem p;
  p.layer = layer;
  for (const LinearModule m : kAllLinearModules) {
    p.w[static_cast<int>(m)] = w->linear(m).weight.cast<double>();
  }
  for (int g = 0; g < 4; ++g) p.h[g] = taps.Get(g);
  ComputeEnergies(p);
  return p;
}

}  // namespace caliber
