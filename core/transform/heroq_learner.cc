#include "core/transform/heroq_learner.h"

#include <algorithm>
#include <chrono>

#include "core/transform/orthogonal.h"

namespace caliber {
namespace {

constexpr double kMinStep = 1.0 / 4096;

// θ − scale·step·g/‖g‖∞: the largest entry moves by scale·step.
void DiagonalStep(VectorD& theta, const VectorD& g, double step) {
  const double n = g.cwiseAbs().maxCoeff();
  if (n > 0) theta -= (step / n) * g;
}

// A Cayley step whose skew generator has Frobenius length `step`.
MatrixD RotationStep(const MatrixD& r, const MatrixD& g, double step) {
  const double n = RiemannianGradientNorm(r, g);
  return n > 0 ? CayleyStep(r, g, step / n) : r;
}

}  // namespace

LocalTransformShare::LocalTransformShare(const ModelConfig& config, std::vector<const LayerProblem*> problems,
                                         std::vector<LayerTransform> start, const HeroqLearnOptions& options)
    : config_(config), problems_(std::move(problems)), options_(options), current_(std::move(start)) {
  grads_.resize(current_.size());
  seconds_.assign(current_.size(), 0.0);
}

ShareValue LocalTransformShare::Evaluate(const MatrixD& r1) {
  const std::vector<LayerTransform>& at = proposing_ ? proposed_ : current_;
  ShareValue v;
  v.g_r1 = MatrixD::Zero(r1.rows(), r1.cols());
  for (size_t i = 0; i < problems_.size(); ++i) {
    const auto start = std::chrono::steady_clock::now();
    LayerObjectiveValue o = EvaluateLayerObjective(config_, *problems_[i], r1, at[i], options_.objective, true);
    seconds_[i] += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    v.loss += o.loss;
    v.g_r1 += o.g_r1;
    if (proposing_) {
      pending_grads_.resize(problems_.size());
      pending_grads_[i] = std::move(o.grad);
    } else {
      grads_[i] = std::move(o.grad);
    }
  }
  return v;
}

void LocalTransformShare::Propose(double scale) {
  proposed_ = current_;
  for (size_t i = 0; i < current_.size(); ++i) {
    LayerTransform& t = proposed_[i];
    const LayerTransform& g = grads_[i];
    if (options_.learn_r2) t.r2 = RotationStep(t.r2, g.r2, scale * options_.rotation_step);
    if (options_.learn_diagonals) {
      const double s = scale * options_.diagonal_step;
      DiagonalStep(t.log_attn, g.log_attn, s);
      DiagonalStep(t.log_mlp, g.log_mlp, s);
      DiagonalStep(t.log_vo, g.log_vo, s);
      DiagonalStep(t.log_ud, g.log_ud, s);
    }
  }
  proposing_ = true;
}

void LocalTransformShare::Resolve(bool accept) {
  if (accept) {
    current_ = std::move(proposed_);
    grads_ = std::move(pending_grads_);
  }
  proposed_.clear();
  pending_grads_.clear();
  proposing_ = false;
}

absl::StatusOr<MatrixD> LearnTransforms(const MatrixD& r1_start, const std::vector<TransformShare*>& shares,
                                        ShareReducer* reducer, const HeroqLearnOptions& options,
                                        HeroqLearnHistory* history, const LearnStepCallback& after_step) {
  int round = 0;
  auto evaluate = [&](const MatrixD& r1) -> absl::StatusOr<ShareValue> {
    ShareValue total;
    total.g_r1 = MatrixD::Zero(r1.rows(), r1.cols());
    for (TransformShare* s : shares) {  // a fixed order: the same sum on every run
      ShareValue v = s->Evaluate(r1);
      total.loss += v.loss;
      total.g_r1 += v.g_r1;
    }
    if (reducer == nullptr) return total;
    return reducer->Sum(round++, total);
  };
  MatrixD r1 = r1_start;
  absl::StatusOr<ShareValue> first = evaluate(r1);
  if (!first.ok()) return first.status();
  ShareValue now = *std::move(first);
  HeroqLearnHistory h;
  h.loss.push_back(now.loss);
  double scale = 1.0;
  for (int it = 0; it < options.iterations && scale >= kMinStep; ++it) {
    const MatrixD r1_next = options.learn_r1 ? RotationStep(r1, now.g_r1, scale * options.rotation_step) : r1;
    for (TransformShare* s : shares) s->Propose(scale);
    absl::StatusOr<ShareValue> next = evaluate(r1_next);
    if (!next.ok()) return next.status();
    const bool accept = next->loss < now.loss;
    for (TransformShare* s : shares) s->Resolve(accept);
    if (accept) {
      r1 = r1_next;
      now = *std::move(next);
      h.loss.push_back(now.loss);
      ++h.accepted;
      scale = std::min(1.0, scale * 1.25);
    } else {
      ++h.rejected;
      scale *= 0.5;
    }
    if (after_step) after_step(it + 1, r1);
  }
  if (history != nullptr) *history = std::move(h);
  return r1;
}

}  // namespace caliber
