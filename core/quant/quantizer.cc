#include "core/quant/quantizer.h"

#include <chrono>
#include <cmath>

#include "absl/strings/str_format.h"
#include "core/quant/bidup.h"
#include "core/quant/gptq.h"
#include "core/quant/gptq_lora.h"
#include "core/quant/linalg.h"
#include "core/quant/rtn.h"

namespace caliber {
namespace {

absl::Status CheckInputs(std::string_view method, const MatrixF& W, const MatrixF& H,
                         const QuantSpec& spec) {
  if (W.rows() == 0 || W.cols() == 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: W is empty (%dx%d)", method, W.rows(), W.cols()));
  }
  if (H.rows() != W.cols() || H.cols() != W.cols()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: H must be %dx%d for W %dx%d, got %dx%d", method, W.cols(), W.cols(), W.rows(),
        W.cols(), H.rows(), H.cols()));
  }
  if (!W.allFinite()) {
    return absl::InvalidArgumentError(absl::StrFormat("%s: W has NaN or Inf entries", method));
  }
  if (!H.allFinite()) {
    return absl::InvalidArgumentError(absl::StrFormat("%s: H has NaN or Inf entries", method));
  }
  if (absl::Status s = Validate(spec, static_cast<int>(W.cols())); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrFormat("%s: %s", method, s.message()));
  }
  const bool low_rank = method == "gptq_lora";
  if (!low_rank && (spec.lora_rank != 0 || spec.refine_iters != 0 || spec.lora_a_bits != 0)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: lora_rank, lora_a_bits and refine_iters apply to gptq_lora only (got %d, %d, %d)",
        method, spec.lora_rank, spec.lora_a_bits, spec.refine_iters));
  }
  if (low_rank && spec.lora_rank <= 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: needs lora_rank > 0, got %d", method, spec.lora_rank));
  }
  return absl::OkStatus();
}

// Objective, relative error and total time, common to every method.
void FinishReport(const MatrixF& W, const MatrixF& H,
                  std::chrono::steady_clock::time_point start, QuantizedLinear& q) {
  QuantReport& r = q.report;
  r.objective_after = LayerObjective(W, q.Reconstruct(), H);
  r.output_energy = TraceQuadratic(W, H);  // float Gram: no cancellation to guard against
  r.relative_error = r.output_energy > 0 ? r.objective_after / r.output_energy : 0.0;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

class RtnQuantizer final : public LinearQuantizer {
 public:
  std::string_view name() const override { return "rtn"; }
  absl::StatusOr<QuantizedLinear> Quantize(const MatrixF& W, const MatrixF& H,
                                           const QuantSpec& spec) const override {
    const auto start = std::chrono::steady_clock::now();
    if (absl::Status s = CheckInputs(name(), W, H, spec); !s.ok()) return s;
    absl::StatusOr<QuantizedLinear> q = RtnQuantize(W, spec);
    if (!q.ok()) return q.status();
    FinishReport(W, H, start, *q);
    return q;
  }
};

class GptqQuantizer final : public LinearQuantizer {
 public:
  std::string_view name() const override { return "gptq"; }
  absl::StatusOr<QuantizedLinear> Quantize(const MatrixF& W, const MatrixF& H,
                                           const QuantSpec& spec) const override {
    const auto start = std::chrono::steady_clock::now();
    if (absl::Status s = CheckInputs(name(), W, H, spec); !s.ok()) return s;
    absl::StatusOr<QuantizedLinear> q = GptqQuantize(W, H, spec);
    if (!q.ok()) return q.status();
    FinishReport(W, H, start, *q);
    return q;
  }
};

class GptqLoraQuantizer final : public LinearQuantizer {
 public:
  std::string_view name() const override { return "gptq_lora"; }
  absl::StatusOr<QuantizedLinear> Quantize(const MatrixF& W, const MatrixF& H,
                                           const QuantSpec& spec) const override {
    const auto start = std::chrono::steady_clock::now();
    if (absl::Status s = CheckInputs(name(), W, H, spec); !s.ok()) return s;
    absl::StatusOr<QuantizedLinear> q = GptqLoraQuantize(W, H, spec);
    if (!q.ok()) return q.status();
    if (spec.refine_iters > 0) {
      if (absl::Status s = RefineGptqLora(W, H, spec, *q); !s.ok()) return s;
    }
    FinishReport(W, H, start, *q);
    return q;
  }
};

const RtnQuantizer kRtn{};
const GptqQuantizer kGptq{};
const GptqLoraQuantizer kGptqLora{};
const LinearQuantizer* const kAll[] = {&kRtn, &kGptq, &kGptqLora};

}  // namespace

const LinearQuantizer* FindQuantizer(std::string_view name) {
  for (const LinearQuantizer* q : kAll) {
    if (q->name() == name) return q;
  }
  return nullptr;
}

std::vector<std::string> QuantizerNames() {
  std::vector<std::string> names;
  for (const LinearQuantizer* q : kAll) names.emplace_back(q->name());
  return names;
}

}  // namespace caliber
