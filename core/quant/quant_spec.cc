#include "core/quant/quant_spec.h"

#include <cmath>

#include "absl/strings/str_format.h"

namespace caliber {
namespace {

bool IsSupportedBits(int bits) { return bits == 2 || bits == 3 || bits == 4 || bits == 8; }

}  // namespace

absl::Status Validate(const QuantSpec& spec, int in_features) {
  if (in_features <= 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("in_features must be positive, got %d", in_features));
  }
  if (!IsSupportedBits(spec.bits)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("bits must be 2, 3, 4 or 8, got %d", spec.bits));
  }
  const int g = spec.group_size;
  const bool standard_group = g == 32 || g == 64 || g == 128;
  if (g != -1 && !standard_group && (g <= 0 || in_features % g != 0)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "group_size must be -1 (per channel), 32, 64, 128 or a positive divisor of "
        "in_features=%d, got %d",
        in_features, g));
  }
  if (!(spec.damp > 0.0) || !std::isfinite(spec.damp)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("damp must be positive and finite, got %g", spec.damp));
  }
  if (spec.block_size <= 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("block_size must be positive, got %d", spec.block_size));
  }
  if (spec.max_damp_retries < 0 || spec.max_damp_retries > 30) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "max_damp_retries must be in [0, 30], got %d", spec.max_damp_retries));
  }
  if (spec.lora_rank < 0 || spec.lora_rank >= in_features) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "lora_rank must be in [0, in_features=%d), got %d", in_features, spec.lora_rank));
  }
  if (spec.lora_a_bits != 0 && !IsSupportedBits(spec.lora_a_bits)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "lora_a_bits must be 0 (float A), 2, 3, 4 or 8, got %d", spec.lora_a_bits));
  }
  if (spec.refine_iters < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("refine_iters must be >= 0, got %d", spec.refine_iters));
  }
  return absl::OkStatus();
}

}  // namespace caliber
