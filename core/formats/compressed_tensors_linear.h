// Reading one linear layer stored in the compressed-tensors pack-quantized layout
// (weight_packed / weight_scale / weight_shape, + weight_zero_point, weight_g_idx; see
// core/formats/compressed_tensors_pack.h), dequantized as compressed-tensors and vLLM compute it.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/formats/tensor_spec.h"
#include "core/io/safetensors.h"
#include "core/model/config.h"
#include "core/tensor/matrix.h"

namespace caliber {

// The tensor names and shapes a compressed-tensors linear stores (weight_scale in any float
// dtype; the others int32, weight_shape int64).
std::vector<TensorSpec> CompressedTensorsLinearTensors(const std::string& base, int out_features,
                                                       int in_features,
                                                       const CompressedTensorsQuantization& q);

// Dequantizes linear `base` ("model.layers.3.mlp.down_proj") to float32 W [out x in],
// validating every tensor's dtype and shape, weight_shape's values and every g_idx entry.
absl::StatusOr<MatrixF> ReadCompressedTensorsLinear(const Checkpoint& checkpoint,
                                                    const std::string& base, int out_features,
                                                    int in_features,
                                                    const CompressedTensorsQuantization& q);

}  // namespace caliber
