// A safetensors image held in memory (an object read from the store, not a file): parsed and
// validated like a file, then tensors copied out with their dtype and shape checked. The
// codecs that hand results between processes (layer results, activations, transforms) use it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/io/safetensors.h"

namespace caliber {

struct SafetensorsImage {
  SafetensorsHeader header;
  std::string_view data;  // the data section (views the parsed bytes)
};

// `label` names the object in errors ("layer result", "activations", ...).
absl::StatusOr<SafetensorsImage> ParseSafetensorsBytes(std::string_view bytes, std::string_view label);

const TensorInfo* FindTensor(const SafetensorsImage& image, std::string_view name);

// Copies tensor `name` into `out` (numel(shape) elements of the dtype's width) after checking
// its dtype and shape; a missing or mismatching tensor is DataLoss naming `label` and `name`.
absl::Status ReadImageTensor(const SafetensorsImage& image, std::string_view label, const std::string& name,
                             DType dtype, const std::vector<int64_t>& shape, void* out);

}  // namespace caliber
