// Quantized checkpoints in the compressed-tensors "pack-quantized" format that vLLM's
// compressed-tensors integration and transformers read, the format of W·A8 jobs: per linear
// weight_packed / weight_scale / weight_shape (+ weight_zero_point for asymmetric grids,
// weight_g_idx for act-order groups; compressed_tensors_pack.h), everything else copied in the
// source dtype, and config.json with
//   quantization_config {quant_method "compressed-tensors", format "pack-quantized",
//     quantization_status "compressed", ignore ["lm_head"],
//     config_groups {group_0 {targets ["Linear"],
//       weights {num_bits, type int, symmetric, strategy group|channel, group_size, actorder},
//       input_activations {num_bits 8, type int, symmetric, strategy token, dynamic}}}}
// (input_activations null for act_bits 16). weight_scale is stored in the model dtype
// (config.json's torch_dtype, else the source weights' dtype): vLLM creates it in the dtype it
// serves the model in. Caliber's own settings go to quantization_config.meta, which
// compressed-tensors' QuantizationConfig ignores (extra="ignore").
//
// vLLM (compressed_tensors.py, 2025) dispatches this config to CompressedTensorsW4A8Fp8 on
// SM90 (its _is_fp8_w4a8 check does not look at the activation type, so activations then run
// in FP8) and refuses it elsewhere; its INT8 W4A8 scheme (CompressedTensorsW4A8Int) only
// matches activation-quantization formats (int-quantized, one int8 per weight). The lifecycle
// is checkpoint_writer.h's.
#pragma once

#include <string>
#include <vector>

#include "core/formats/checkpoint_writer.h"
#include "core/quant/quant_spec.h"

namespace caliber {

// InvalidArgument when a job with `spec` and `act_bits` cannot be written in this format for
// `config`: compressed-tensors groups must all have group_size columns, so group_size must
// divide every linear's input width (hidden_size, num_heads·head_dim, intermediate_size).
// Checked when a job starts, before any calibration.
absl::Status CheckCompressedTensorsFormat(const QuantSpec& spec, int act_bits,
                                          const ModelConfig& config);

class CompressedTensorsCheckpointWriter : public QuantizedCheckpointWriter {
 public:
  // act_bits 8: input_activations are per-token dynamic symmetric INT8; 16: none (W·A16).
  CompressedTensorsCheckpointWriter(const ModelConfig& config, const Checkpoint& source,
                                    std::string source_dir, std::string out_dir,
                                    const QuantSpec& spec, int act_bits, nlohmann::json meta);

 private:
  absl::Status CheckFormat() const override;
  absl::StatusOr<std::vector<PackedTensor>> PackModule(const std::string& base,
                                                       const QuantizedLinear& q,
                                                       DType source_dtype) const override;
  nlohmann::json QuantizationConfig() const override;
  // Whether modules store weight_g_idx (actorder "group"): act-order with groups formed in
  // quantization order, i.e. not static groups.
  bool StoresGIdx() const;

  QuantSpec spec_;
  int act_bits_;
  nlohmann::json meta_;
};

}  // namespace caliber
