// What every quantized-checkpoint writer does the same way, whatever the layout of its packed
// linears (GPTQ v1: gptq_checkpoint.h; compressed-tensors: compressed_tensors_checkpoint.h):
// collect the quantized layers as they finish (each layer validated and packed whole, so a
// rejected layer adds nothing and the writer stays usable), copy every other tensor through in
// its source dtype, write config.json with the format's quantization_config, the tokenizer
// files and, for a low-rank part, a PEFT LoRA adapter under adapter/ (peft_adapter.h).
// The directory appears atomically: everything is written under OUT.partial-<pid> (Stage) and
// renamed to OUT last (Commit, after report.json), so a reader never sees a partial
// checkpoint. OUT must not exist.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/calib/layer_quantizer.h"
#include "core/formats/peft_adapter.h"
#include "core/io/safetensors.h"
#include "core/model/config.h"
#include "core/quant/quant_spec.h"
#include "core/tensor/dtype.h"
#include "nlohmann/json.hpp"

namespace caliber {

class QuantizedCheckpointWriter {
 public:
  virtual ~QuantizedCheckpointWriter() = default;
  QuantizedCheckpointWriter(const QuantizedCheckpointWriter&) = delete;
  QuantizedCheckpointWriter& operator=(const QuantizedCheckpointWriter&) = delete;

  // The adapter's base_model_name_or_path (default: the source directory's name, so the same
  // model staged from different places gives the same bytes).
  void set_base_model_name(std::string name) { base_model_name_ = std::move(name); }

  // Fails early if OUT exists or its parent does not, or if the format cannot hold what the
  // job will produce (so a job never computes what it cannot write).
  absl::Status CheckOutput() const;
  absl::Status AddLayer(const LayerQuantResult& layer);
  // Writes the checkpoint (all but report.json) into the staging directory and returns its
  // path, so the caller can evaluate exactly what was written before committing.
  absl::StatusOr<std::string> Stage();
  // Writes `report` as report.json and renames the staging directory to OUT.
  absl::Status Commit(const nlohmann::json& report);

 protected:
  // One encoded tensor of a packed linear; its name is the module's name + `suffix`.
  struct PackedTensor {
    std::string suffix;  // ".qweight", ".weight_scale", ...
    DType dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;  // little-endian, numel(shape) · DTypeSize(dtype)
  };

  QuantizedCheckpointWriter(const ModelConfig& config, const Checkpoint& source,
                            std::string source_dir, std::string out_dir);

  // InvalidArgument when the job's settings cannot be stored in this format for this model.
  virtual absl::Status CheckFormat() const = 0;
  // Validates and encodes the quantized module `base` ("model.layers.3.mlp.down_proj"), whose
  // source weight has `source_dtype`; errors name `base`.
  virtual absl::StatusOr<std::vector<PackedTensor>> PackModule(const std::string& base,
                                                               const QuantizedLinear& q,
                                                               DType source_dtype) const = 0;
  // config.json's "quantization_config".
  virtual nlohmann::json QuantizationConfig() const = 0;

  const ModelConfig& config() const { return config_; }

  // InvalidArgument naming `base` unless `q` has the bits / group_size / sym the checkpoint's
  // quantization_config (written from `spec`) declares.
  static absl::Status CheckMatchesSpec(const std::string& base, const QuantizedLinear& q,
                                       const QuantSpec& spec);
  // Encoding helpers for PackModule.
  static PackedTensor IntTensor(std::string suffix, const IntMatrix& m);
  static PackedTensor IntTensor(std::string suffix, const std::vector<int32_t>& v);
  static PackedTensor Int64Tensor(std::string suffix, const std::vector<int64_t>& v);
  // `m` rounded to `dtype` (F16/BF16/F32); InvalidArgument naming `base`, the entry and the
  // dtype when a value overflows or a non-zero value underflows to zero there.
  static absl::StatusOr<PackedTensor> FloatTensor(const std::string& base, std::string suffix,
                                                  DType dtype, const MatrixF& m,
                                                  std::string_view what);

 private:
  const ModelConfig& config_;
  const Checkpoint& source_;
  std::string source_dir_;
  std::string out_dir_;
  SafetensorsWriter model_;
  PeftAdapterBuilder adapter_;
  std::vector<bool> layer_done_;
  std::string base_model_name_;
  std::string staged_;  // the staging directory once Stage() succeeded
};

}  // namespace caliber
