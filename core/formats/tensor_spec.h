// The name and exact shape of one stored tensor, and typed reads of integer tensors checked
// against it: what the readers of packed linear layouts (GPTQ v1, compressed-tensors) share.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/io/safetensors.h"

namespace caliber {

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
};

// An I32 (I64) tensor of exactly `spec.shape`, as a flat row-major vector; InvalidArgument
// naming the checkpoint, the tensor and the expected dtype and shape otherwise.
absl::StatusOr<std::vector<int32_t>> ReadI32Tensor(const Checkpoint& checkpoint, const TensorSpec& spec);
absl::StatusOr<std::vector<int64_t>> ReadI64Tensor(const Checkpoint& checkpoint, const TensorSpec& spec);

}  // namespace caliber
