// Element-type conversion on the GPU: checkpoint BF16/F16 weights to float32 on upload.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/cuda/context.h"
#include "core/cuda/device_buffer.h"

namespace caliber::cuda {

// BF16 bit patterns -> float32 on the device, enqueued on ctx's stream; out.size() must equal
// bits.size(). Bit-exact with caliber::BF16ToFloat.
absl::Status Bf16ToFloat(CudaContext& ctx, const DeviceBuffer<uint16_t>& bits, DeviceBuffer<float>& out);

// Host BF16 bit patterns -> device conversion -> host float32 (round trip used by tests and
// by weight upload), on the default stream. Bit-exact with caliber::BF16ToFloat.
absl::StatusOr<std::vector<float>> Bf16ToFloatOnDevice(absl::Span<const uint16_t> bits);

}  // namespace caliber::cuda
