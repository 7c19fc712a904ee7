#include "core/formats/compressed_tensors_checkpoint.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "core/formats/compressed_tensors_pack.h"
#include "core/quant/act_quant.h"

namespace caliber {
namespace {

// The dtype vLLM serves the model in (config.json's torch_dtype), else the source weights'.
DType ScaleDType(const ModelConfig& config, DType source_dtype) {
  if (config.torch_dtype == "bfloat16") return DType::kBF16;
  if (config.torch_dtype == "float16") return DType::kF16;
  if (config.torch_dtype == "float32") return DType::kF32;
  if (source_dtype == DType::kBF16 || source_dtype == DType::kF16) return source_dtype;
  return DType::kF32;
}

}  // namespace

absl::Status CheckCompressedTensorsFormat(const QuantSpec& spec, int act_bits,
                                          const ModelConfig& config) {
  if (absl::Status s = ValidateActBits(act_bits); !s.ok()) return s;
  if (spec.group_size > 0) {
    const std::pair<const char*, int> widths[] = {{"hidden_size", config.hidden_size},
                                                  {"num_heads·head_dim", config.q_dim()},
                                                  {"intermediate_size", config.intermediate_size}};
    for (const auto& [name, width] : widths) {
      if (width % spec.group_size != 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "group_size ", spec.group_size, " does not divide ", name, " ", width,
            ": the compressed-tensors format of W·A8 checkpoints needs every group to have "
            "group_size columns (use -1 or a divisor of every linear's input width)"));
      }
    }
  }
  return absl::OkStatus();
}

CompressedTensorsCheckpointWriter::CompressedTensorsCheckpointWriter(
    const ModelConfig& config, const Checkpoint& source, std::string source_dir,
    std::string out_dir, const QuantSpec& spec, int act_bits, nlohmann::json meta)
    : QuantizedCheckpointWriter(config, source, std::move(source_dir), std::move(out_dir)),
      spec_(spec),
      act_bits_(act_bits),
      meta_(std::move(meta)) {}

bool CompressedTensorsCheckpointWriter::StoresGIdx() const {
  return spec_.act_order && !spec_.static_groups && spec_.group_size > 0;
}

absl::Status CompressedTensorsCheckpointWriter::CheckFormat() const {
  return CheckCompressedTensorsFormat(spec_, act_bits_, config());
}

absl::StatusOr<std::vector<QuantizedCheckpointWriter::PackedTensor>>
CompressedTensorsCheckpointWriter::PackModule(const std::string& base, const QuantizedLinear& q,
                                              DType source_dtype) const {
  if (absl::Status s = CheckMatchesSpec(base, q, spec_); !s.ok()) return s;
  absl::StatusOr<CompressedTensorsTensors> packed = PackCompressedTensors(q, StoresGIdx());
  if (!packed.ok()) {
    return absl::Status(packed.status().code(),
                        absl::StrCat(base, ": ", std::string(packed.status().message())));
  }
  absl::StatusOr<PackedTensor> scale =
      FloatTensor(base, ".weight_scale", ScaleDType(config(), source_dtype), packed->weight_scale,
                  "weight_scale (output channels x groups)");
  if (!scale.ok()) return scale.status();
  std::vector<PackedTensor> tensors;
  tensors.push_back(IntTensor(".weight_packed", packed->weight_packed));
  tensors.push_back(*std::move(scale));
  tensors.push_back(Int64Tensor(".weight_shape", {packed->weight_shape[0], packed->weight_shape[1]}));
  if (!q.sym) tensors.push_back(IntTensor(".weight_zero_point", packed->weight_zero_point));
  if (StoresGIdx()) tensors.push_back(IntTensor(".weight_g_idx", packed->weight_g_idx));
  return tensors;
}

nlohmann::json CompressedTensorsCheckpointWriter::QuantizationConfig() const {
  // Only keys every compressed-tensors release knows: its QuantizationArgs forbids extra keys.
  const bool channel = spec_.group_size == -1;
  nlohmann::json weights = {
      {"num_bits", spec_.bits},
      {"type", "int"},
      {"symmetric", spec_.sym},
      {"strategy", channel ? "channel" : "group"},
      {"group_size", channel ? nlohmann::json(nullptr) : nlohmann::json(spec_.group_size)},
      {"block_structure", nullptr},
      {"dynamic", false},
      {"actorder", StoresGIdx() ? nlohmann::json("group")
                   : spec_.act_order ? nlohmann::json("weight")
                                     : nlohmann::json(nullptr)},
  };
  nlohmann::json input_activations = nullptr;
  if (act_bits_ != kActBitsFloat) {
    input_activations = {
        {"num_bits", act_bits_},
        {"type", "int"},
        {"symmetric", true},
        {"strategy", "token"},
        {"group_size", nullptr},
        {"block_structure", nullptr},
        {"dynamic", true},
        {"actorder", nullptr},
    };
  }
  return {
      {"quant_method", "compressed-tensors"},
      {"format", "pack-quantized"},
      {"quantization_status", "compressed"},
      {"config_groups",
       {{"group_0",
         {{"targets", nlohmann::json::array({"Linear"})},
          {"weights", weights},
          {"input_activations", input_activations},
          {"output_activations", nullptr}}}}},
      {"ignore", nlohmann::json::array({"lm_head"})},
      {"kv_cache_scheme", nullptr},
      {"global_compression_ratio", nullptr},
      {"meta", meta_},
  };
}

}  // namespace caliber
