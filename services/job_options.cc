#include "services/job_options.h"

#include "core/transform/model_transform.h"

namespace caliber {

CalibrationOptions CalibrationOptionsFromProto(const v1::QuantMethod& m, v1::Propagation propagation,
                                               int batch_seqs) {
  CalibrationOptions o;
  absl::StatusOr<MethodPlan> plan = PlanMethod(m.name(), m.transform());
  o.method = plan.ok() ? plan->quantizer : m.name();  // a bad name fails FindQuantizer later
  o.spec.bits = m.bits();
  o.spec.group_size = m.group_size();
  o.spec.sym = !m.asym();
  o.spec.act_order = m.act_order();
  o.spec.static_groups = m.static_groups();
  o.spec.mse = m.mse();
  o.spec.damp = m.damp();
  o.spec.lora_rank = m.lora_rank();
  o.spec.lora_a_bits = m.lora_a_bits();
  o.spec.refine_iters = m.refine_iters();
  o.propagation = propagation == v1::PIPELINED ? Propagation::kFp : Propagation::kQuantized;
  o.batch_seqs = batch_seqs;
  o.act_bits = m.act_bits() == 0 ? 16 : m.act_bits();
  return o;
}

absl::StatusOr<TransformOptions> TransformOptionsFromProto(const v1::QuantMethod& m) {
  absl::StatusOr<MethodPlan> plan = PlanMethod(m.name(), m.transform());
  if (!plan.ok()) return plan.status();
  TransformOptions o;
  o.kind = plan->transform;
  const v1::TransformOptions& t = m.transform_options();
  o.seed = t.seed();
  if (t.has_smooth_alpha()) o.smooth_alpha = t.smooth_alpha();
  if (!t.start().empty()) {
    absl::StatusOr<HeroqStart> start = ParseHeroqStart(t.start());
    if (!start.ok()) return start.status();
    o.start = *start;
  }
  if (t.has_iterations()) o.learn.iterations = t.iterations();
  if (t.has_rotation_step()) o.learn.rotation_step = t.rotation_step();
  if (t.has_diagonal_step()) o.learn.diagonal_step = t.diagonal_step();
  if (t.has_lambda()) o.learn.objective.lambda = t.lambda();
  o.learn.objective.bits = m.bits() == 0 ? 4 : m.bits();
  o.learn.objective.group_size = m.group_size() == 0 ? 128 : m.group_size();
  o.learn.objective.sym = !m.asym();
  o.learn.objective.act_bits = m.act_bits() == 0 ? 16 : m.act_bits();
  return o;
}

}  // namespace caliber
