// Which transform runs before quantization, and with what settings: the four kinds compared
// in docs/methods/heroq.md and the options of each.
//   none         the model as it is;
//   fold         RMSNorm folding only: the identity transform (the baseline every transform
//                must beat, and the first candidate of the validated selection);
//   quarot       randomized Hadamard R1 and R2, no diagonals, no learning (QuaRot-style);
//   smoothquant  SmoothQuant-style diagonals only, no rotations, no learning;
//   heroq        Hadamard R1/R2 and SmoothQuant diagonals as the start, then learned
//                (heroq_learner.h) against the objective of heroq_objective.h.
#pragma once

#include <cstdint>
#include <string_view>

#include "absl/status/statusor.h"
#include "core/quant/quant_spec.h"
#include "core/transform/heroq_learner.h"

namespace caliber {

enum class TransformKind { kNone, kQuaRot, kSmoothQuant, kHeroq, kFold };
absl::StatusOr<TransformKind> ParseTransformKind(std::string_view name);
std::string_view TransformKindName(TransformKind kind);

// Where heroq's learning starts: the Hadamard R1/R2 with SmoothQuant diagonals, or the better
// (by the objective, summed over every layer) of that and the SmoothQuant diagonals alone.
enum class HeroqStart { kHadamard, kBest };
absl::StatusOr<HeroqStart> ParseHeroqStart(std::string_view name);
std::string_view HeroqStartName(HeroqStart start);

// How the transform that is folded in is chosen (validated_selection.h):
//   start      the kind's own transform: its start, learned on every calibration segment for heroq;
//   validated  a seeded part of the calibration segments is held out, and the candidate with the
//              lowest objective on it wins: identity (always), the kind's fixed transforms
//              (heroq: QuaRot, SmoothQuant at several α, Hadamard + SmoothQuant) and, for heroq,
//              the learned transform at checkpoints of its learning (early stopping).
enum class TransformSelection { kStart, kValidated };
absl::StatusOr<TransformSelection> ParseTransformSelection(std::string_view name);
std::string_view TransformSelectionName(TransformSelection selection);

// What the validated selection compares on the held-out segments:
//   learner  the learner's own objective (round-to-nearest error + spectral term);
//   gptq     GPTQ's output error with the quantizer's spec (gptq_validation.h);
//   nll      end to end: the model quantized with each candidate (the job's method and spec, on
//            the training segments only), its mean token NLL on the held-out segments. Needs a
//            scorer from the caller (BuildModelTransform's HeldoutNllScorer; one process only).
enum class SelectionObjective { kLearner, kGptq, kNll };
absl::StatusOr<SelectionObjective> ParseSelectionObjective(std::string_view name);
std::string_view SelectionObjectiveName(SelectionObjective objective);

// Bound of the validated selection's spare validation windows (--validation-windows).
inline constexpr int kMaxValidationWindows = 4096;

struct TransformOptions {
  TransformKind kind = TransformKind::kNone;
  HeroqStart start = HeroqStart::kBest;
  uint64_t seed = 0;          // of the Hadamard signs / random rotations
  double smooth_alpha = 0.5;  // SmoothQuant's migration strength
  HeroqLearnOptions learn;    // objective.bits/group_size/sym: the quantization target
  TransformSelection selection = TransformSelection::kStart;
  double validation_fraction = 0.125;  // validated: the held-out part of the segments (≥ 1 segment)
  int checkpoint_every = 10;           // validated heroq: a candidate every this many steps, and the last
  SelectionObjective selection_objective = SelectionObjective::kLearner;
  double selection_margin = 2.0;  // nll: standard errors a gain over identity must exceed (heldout_margin.h)
  QuantSpec selection_spec;  // gptq selection objective: the quantizer's spec
};

// Range checks with messages naming the option (iterations >= 0, steps and λ finite and
// >= 0, 0 <= smooth_alpha <= 1, 0 < validation_fraction <= 0.5, checkpoint_every >= 1,
// 0 <= selection_margin <= 10).
absl::Status ValidateTransformOptions(const TransformOptions& options);

}  // namespace caliber
