// Element-type conversion on the GPU: checkpoint BF16/F16 weights to float32 on upload.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace caliber::cuda {

// Host BF16 bit patterns -> device conversion -> host float32 (round trip used by tests and
// by weight upload). Bit-exact with caliber::BF16ToFloat.
absl::StatusOr<std::vector<float>> Bf16ToFloatOnDevice(absl::Span<const uint16_t> bits);

}  // namespace caliber::cuda
