// The one interface every layer quantizer implements, and the registry the pipeline and CLI
// look methods up in: "rtn", "gptq", "gptq_lora" (with spec.refine_iters > 0, gptq_lora is
// followed by that many Bid-Up / OLrC rounds).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/quant/quant_spec.h"
#include "core/quant/quantized_linear.h"
#include "core/tensor/matrix.h"

namespace caliber {

class LinearQuantizer {
 public:
  virtual ~LinearQuantizer() = default;
  virtual std::string_view name() const = 0;
  // W [out x in], H [in x in] (HessianAccumulator::Finalize). Validates shapes, finiteness and
  // the spec (InvalidArgument), and fills the report: method, seconds, damp, retries, and the
  // objective tr(E H Eᵀ) with E = W - Reconstruct(), relative to tr(W H Wᵀ).
  virtual absl::StatusOr<QuantizedLinear> Quantize(const MatrixF& W, const MatrixF& H,
                                                   const QuantSpec& spec) const = 0;
};

// nullptr for an unknown name; callers turn that into an InvalidArgument listing
// QuantizerNames().
const LinearQuantizer* FindQuantizer(std::string_view name);
std::vector<std::string> QuantizerNames();

}  // namespace caliber
