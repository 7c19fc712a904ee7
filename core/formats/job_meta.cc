#include "core/formats/job_meta.h"

namespace caliber {

nlohmann::json QuantizationMeta(const CalibrationOptions& o, const CalibrationDraw& draw) {
  const QuantSpec& s = o.spec;
  return {{"method", o.method},
          {"bits", s.bits},
          {"group_size", s.group_size},
          {"sym", s.sym},
          {"act_order", s.act_order},
          {"static_groups", s.static_groups},
          {"mse", s.mse},
          {"damp", s.damp},
          {"lora_rank", s.lora_rank},
          {"lora_a_bits", s.lora_a_bits},
          {"refine_iters", s.refine_iters},
          {"propagation", std::string(PropagationName(o.propagation))},
          {"act_bits", o.act_bits},
          {"calib",
           {{"nsamples", draw.nsamples},
            {"seq_len", draw.seq_len},
            {"seed", draw.seed},
            {"sampling", draw.sampling}}}};
}

namespace {

// Only the options the kind reads: rotations are seeded, diagonals start at smooth_alpha, and
// heroq learns.
nlohmann::json TransformMeta(const TransformOptions& t) {
  nlohmann::json j = {{"kind", std::string(TransformKindName(t.kind))}};
  const bool rotates = t.kind == TransformKind::kQuaRot || t.kind == TransformKind::kHeroq;
  const bool smooths = t.kind == TransformKind::kSmoothQuant || t.kind == TransformKind::kHeroq;
  if (rotates) j["seed"] = t.seed;
  if (smooths) j["smooth_alpha"] = t.smooth_alpha;
  if (t.kind == TransformKind::kHeroq) {
    j["start"] = std::string(HeroqStartName(t.start));
    j["iterations"] = t.learn.iterations;
    j["lambda"] = t.learn.objective.lambda;
    j["rotation_step"] = t.learn.rotation_step;
    j["diagonal_step"] = t.learn.diagonal_step;
    // Only when not the default, so default checkpoints keep their bytes.
    if (!t.learn.learn_r1 || !t.learn.learn_r2) j["learn_rotations"] = false;
    if (!t.learn.learn_diagonals) j["learn_diagonals"] = false;
    if (t.selection == TransformSelection::kValidated) j["checkpoint_every"] = t.checkpoint_every;
  }
  if (t.selection == TransformSelection::kValidated) {
    j["selection"] = std::string(TransformSelectionName(t.selection));
    j["validation_fraction"] = t.validation_fraction;
    j["selection_objective"] = std::string(SelectionObjectiveName(t.selection_objective));
    j["seed"] = t.seed;  // seeds the hold-out too
  }
  return j;
}

}  // namespace

nlohmann::json QuantizationMeta(const CalibrationOptions& options, const CalibrationDraw& draw,
                                std::string_view method, const TransformOptions& transform) {
  nlohmann::json meta = QuantizationMeta(options, draw);
  meta["method"] = std::string(method);
  if (transform.kind != TransformKind::kNone) meta["transform"] = TransformMeta(transform);
  return meta;
}

}  // namespace caliber
