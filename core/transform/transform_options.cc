#include "core/transform/transform_options.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace caliber {

absl::StatusOr<TransformKind> ParseTransformKind(std::string_view name) {
  if (name == "none") return TransformKind::kNone;
  if (name == "quarot") return TransformKind::kQuaRot;
  if (name == "smoothquant") return TransformKind::kSmoothQuant;
  if (name == "heroq") return TransformKind::kHeroq;
  if (name == "fold") return TransformKind::kFold;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown transform '", std::string(name), "' (none, quarot, smoothquant, heroq, fold)"));
}

std::string_view TransformKindName(TransformKind kind) {
  switch (kind) {
    case TransformKind::kNone: return "none";
    case TransformKind::kQuaRot: return "quarot";
    case TransformKind::kSmoothQuant: return "smoothquant";
    case TransformKind::kHeroq: return "heroq";
    case TransformKind::kFold: return "fold";
  }
  return "none";
}

absl::StatusOr<HeroqStart> ParseHeroqStart(std::string_view name) {
  if (name == "hadamard") return HeroqStart::kHadamard;
  if (name == "best") return HeroqStart::kBest;
  return absl::InvalidArgumentError(absl::StrCat("unknown heroq start '", std::string(name), "' (hadamard, best)"));
}

std::string_view HeroqStartName(HeroqStart start) { return start == HeroqStart::kBest ? "best" : "hadamard"; }

absl::StatusOr<TransformSelection> ParseTransformSelection(std::string_view name) {
  if (name == "start") return TransformSelection::kStart;
  if (name == "validated") return TransformSelection::kValidated;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown transform selection '", std::string(name), "' (start, validated)"));
}

std::string_view TransformSelectionName(TransformSelection selection) {
  return selection == TransformSelection::kValidated ? "validated" : "start";
}

absl::StatusOr<SelectionObjective> ParseSelectionObjective(std::string_view name) {
  if (name == "learner") return SelectionObjective::kLearner;
  if (name == "gptq") return SelectionObjective::kGptq;
  if (name == "nll") return SelectionObjective::kNll;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown selection objective '", std::string(name), "' (learner, gptq, nll)"));
}

std::string_view SelectionObjectiveName(SelectionObjective objective) {
  switch (objective) {
    case SelectionObjective::kGptq:
      return "gptq";
    case SelectionObjective::kNll:
      return "nll";
    case SelectionObjective::kLearner:
      break;
  }
  return "learner";
}

absl::Status ValidateTransformOptions(const TransformOptions& o) {
  auto bad = [](const char* what, double v, const char* rule) {
    return absl::InvalidArgumentError(absl::StrCat(what, " must be ", rule, ", got ", v));
  };
  if (o.learn.iterations < 0) return bad("transform iterations", o.learn.iterations, ">= 0");
  const std::pair<const char*, double> nonneg[] = {{"transform lambda", o.learn.objective.lambda},
                                                   {"transform rotation_step", o.learn.rotation_step},
                                                   {"transform diagonal_step", o.learn.diagonal_step}};
  for (const auto& [what, v] : nonneg) {
    if (!std::isfinite(v) || v < 0) return bad(what, v, "finite and >= 0");
  }
  if (!(o.smooth_alpha >= 0 && o.smooth_alpha <= 1)) return bad("smooth_alpha", o.smooth_alpha, "in [0, 1]");
  if (!(o.validation_fraction > 0 && o.validation_fraction <= 0.5)) {
    return bad("validation_fraction", o.validation_fraction, "in (0, 0.5]");
  }
  if (o.checkpoint_every < 1) return bad("checkpoint_every", o.checkpoint_every, ">= 1");
  if (!(o.selection_margin >= 0 && o.selection_margin <= 10)) {
    return bad("selection_margin", o.selection_margin, "in [0, 10]");
  }
  return absl::OkStatus();
}

}  // namespace caliber
