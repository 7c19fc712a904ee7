// Activation fake quantization for W·A8 models: every linear input is quantized per token (per
// row) with a dynamic symmetric INT-b grid and dequantized again, exactly as vLLM's dynamic
// per-token int8 quantization computes it at serving time (csrc dynamic_scaled_int8_quant):
//   absmax = max |x[t, :]|,  scale = absmax / qmax,  q = clamp(nearbyint(x · (qmax / absmax)),
//   -qmax - 1, qmax),  x := q · scale,  with qmax = 2^(b-1) - 1 (127 for 8 bits),
// rounding half to even (nearbyint under the default rounding mode). vLLM multiplies by the
// reciprocal qmax / absmax rather than dividing by the scale, and so does this file, so ties
// land where vLLM's kernel puts them. An all-zero row stays zero (vLLM would divide by zero).
// Calibration runs the same fake quantization so Hessians see the inputs the served model sees.
#pragma once

#include <optional>

#include "absl/status/status.h"
#include "core/model/decoder_layer.h"
#include "core/tensor/matrix.h"

namespace caliber {

// Activation bits of a job or an evaluation: 16 keeps activations in float (W·A16), 8 is
// per-token dynamic INT8 at every linear input (W·A8).
inline constexpr int kActBitsFloat = 16;
inline constexpr int kActBitsInt8 = 8;

// OK for 16 and 8; InvalidArgument naming the value otherwise.
absl::Status ValidateActBits(int act_bits);

// Fake-quantizes every row of `x` [tokens x features] in place with `bits` in [2, 8].
void FakeQuantizePerToken(MatrixF& x, int bits);

// A LayerTaps that fake-quantizes each linear group's input in place, then hands the quantized
// input to `inner` (when not null), e.g. Hessian accumulation.
class ActQuantTaps : public LayerTaps {
 public:
  ActQuantTaps(int bits, LayerTaps* inner) : bits_(bits), inner_(inner) {}
  void OnLinearInput(LinearGroup group, MatrixF& x) override;

 private:
  int bits_;
  LayerTaps* inner_;
};

// The taps a forward pass at `act_bits` (already validated) runs with: `inner` itself at 16
// bits, otherwise an ActQuantTaps over `inner` constructed in `storage`.
LayerTaps* WithActivationQuantization(int act_bits, LayerTaps* inner,
                                      std::optional<ActQuantTaps>& storage);

}  // namespace caliber
