// Learning HeRo-Q's transforms: Cayley SGD on the rotations, gradient steps on the diagonals'
// θ, with a shared step size that only moves when the total loss goes down (a rejected step is
// undone and the step halved), so the objective never increases.
//
// R1 is shared by all layers: its gradient is the sum of every layer's share. The layers are
// split into TransformShares (a contiguous range each: one process, or one stage of a
// distributed job); the learner sums the shares' losses and R1 gradients and tells each share
// how far to move its own layers' R2 and diagonals. No share needs another's layers.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "core/transform/heroq_objective.h"

namespace caliber {

struct HeroqLearnOptions {
  int iterations = 100;
  double rotation_step = 0.05;  // Frobenius length of a full Cayley step (≈ radians)
  double diagonal_step = 0.05;  // largest |Δθ| of a full diagonal step
  bool learn_r1 = true;
  bool learn_r2 = true;
  bool learn_diagonals = true;
  HeroqObjectiveOptions objective;
};

struct ShareValue {
  double loss = 0;
  MatrixD g_r1;  // Σ of the share's layers' R1 gradients
};

// The layers one process holds, with their current transforms.
class TransformShare {
 public:
  virtual ~TransformShare() = default;
  // Loss and R1 gradient of the share's layers at R1 = r1 and their current (or, after
  // Propose, proposed) transforms; keeps the per-layer gradients for Propose.
  virtual ShareValue Evaluate(const MatrixD& r1) = 0;
  // Moves the layers' own parameters by `scale` times a full step against their last
  // gradients (tentatively).
  virtual void Propose(double scale) = 0;
  // Keeps (accept) or undoes the proposal.
  virtual void Resolve(bool accept) = 0;
};

class LocalTransformShare final : public TransformShare {
 public:
  LocalTransformShare(const ModelConfig& config, std::vector<const LayerProblem*> problems,
                      std::vector<LayerTransform> start, const HeroqLearnOptions& options);
  ShareValue Evaluate(const MatrixD& r1) override;
  void Propose(double scale) override;
  void Resolve(bool accept) override;
  const std::vector<LayerTransform>& transforms() const { return current_; }
  // Seconds spent evaluating each layer's objective and gradients, summed over the run.
  const std::vector<double>& layer_seconds() const { return seconds_; }

 private:
  const ModelConfig& config_;
  std::vector<const LayerProblem*> problems_;
  HeroqLearnOptions options_;
  std::vector<LayerTransform> current_, proposed_;
  std::vector<LayerTransform> grads_, pending_grads_;
  std::vector<double> seconds_;
  bool proposing_ = false;
};

struct HeroqLearnHistory {
  std::vector<double> loss;  // after every accepted step, starting with the initial loss
  int accepted = 0;
  int rejected = 0;
};

// Sums one evaluation round's values over every process of a distributed job (an
// all-reduce: each process passes its own sum and gets the job's total). The learner's
// decisions depend only on the totals, so every process takes the same steps and ends with
// the same R1; the sum's order is fixed (by stage), so the result is deterministic for a
// given stage plan. Rounds are numbered 0, 1, 2, ... in the order the learner evaluates.
class ShareReducer {
 public:
  virtual ~ShareReducer() = default;
  virtual absl::StatusOr<ShareValue> Sum(int round, const ShareValue& mine) = 0;
};

// Runs options.iterations steps from `r1` over `shares` (this process's layers; with a
// `reducer`, the other processes' shares are added by it, null: `shares` are all there is);
// returns the learned R1. Fails only when the reducer does. `after_step`, when set, is called
// after every step (accepted or undone) with the number of steps taken so far and the current
// R1; the shares then hold their current transforms (early-stopping checkpoints).
using LearnStepCallback = std::function<void(int steps, const MatrixD& r1)>;
absl::StatusOr<MatrixD> LearnTransforms(const MatrixD& r1, const std::vector<TransformShare*>& shares,
                                        ShareReducer* reducer, const HeroqLearnOptions& options,
                                        HeroqLearnHistory* history, const LearnStepCallback& after_step = {});

}  // namespace caliber
