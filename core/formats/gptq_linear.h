// Reading one linear layer stored in the GPTQ v1 layout (qweight / qzeros / scales / g_idx).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/formats/tensor_spec.h"
#include "core/io/safetensors.h"
#include "core/model/config.h"
#include "core/tensor/matrix.h"

namespace caliber {

// The tensor names and shapes a GPTQ linear stores.
std::vector<TensorSpec> GptqLinearTensors(const std::string& base, int out_features,
                                          int in_features, const GptqQuantization& q);

// Dequantizes GPTQ linear `base` ("model.layers.3.mlp.down_proj") to float32 W [out x in],
// validating every tensor's dtype and shape and every g_idx entry.
absl::StatusOr<MatrixF> ReadGptqLinear(const Checkpoint& checkpoint, const std::string& base,
                                       int out_features, int in_features,
                                       const GptqQuantization& q);

}  // namespace caliber
