#include "core/formats/gptq_checkpoint.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "core/formats/gptq_pack.h"

namespace caliber {
namespace {

// Zero points that v1 kernels read back unchanged: what the v1 format can say about `q`
// exactly besides its settings (CheckMatchesSpec) and fp16 scales (checked when encoded).
absl::Status CheckV1ZeroPoints(const std::string& base, const QuantizedLinear& q) {
  const int32_t sym_zero = int32_t{1} << (q.bits - 1);
  int bad = 0, first_g = -1, first_o = -1, first_zero = 0;
  for (Eigen::Index g = 0; g < q.zeros.rows(); ++g) {
    for (Eigen::Index o = 0; o < q.zeros.cols(); ++o) {
      const int32_t z = q.zeros(g, o);
      if (q.sym ? z != sym_zero : z == 0) {
        if (bad++ == 0) {
          first_g = static_cast<int>(g);
          first_o = static_cast<int>(o);
          first_zero = z;
        }
      }
    }
  }
  if (bad > 0 && q.sym) {
    // Kernels for symmetric GPTQ (vLLM's gptq_marlin) ignore qzeros and assume 2^(bits-1).
    return absl::InvalidArgumentError(absl::StrCat(
        base, ": symmetric layer with zero point ", first_zero, " (group ", first_g,
        ", output channel ", first_o, ", ", bad, " in all) instead of ", sym_zero,
        "; symmetric GPTQ kernels assume ", sym_zero));
  }
  if (bad > 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        base, ": zero point 0 (group ", first_g, ", output channel ", first_o, "; ", bad,
        " such (group, channel) pair(s) in this module) cannot be stored in the GPTQ v1 format: "
        "it stores zero - 1 and v1 kernels (AutoGPTQ, vLLM gptq) add the 1 back without wrapping, so they "
        "would dequantize with zero ",
        int32_t{1} << q.bits, " instead of 0. Quantize symmetrically (--sym) for a v1 checkpoint"));
  }
  return absl::OkStatus();
}

}  // namespace

GptqCheckpointWriter::GptqCheckpointWriter(const ModelConfig& config, const Checkpoint& source,
                                           std::string source_dir, std::string out_dir,
                                           const QuantSpec& spec, nlohmann::json meta)
    : QuantizedCheckpointWriter(config, source, std::move(source_dir), std::move(out_dir)),
      spec_(spec),
      meta_(std::move(meta)) {}

// Every setting the quantizers accept has a v1 encoding; what v1 cannot hold (zero point 0 of
// asymmetric grids) depends on the weights and is refused per module.
absl::Status GptqCheckpointWriter::CheckFormat() const { return absl::OkStatus(); }

absl::StatusOr<std::vector<QuantizedCheckpointWriter::PackedTensor>> GptqCheckpointWriter::PackModule(
    const std::string& base, const QuantizedLinear& q, DType /*source_dtype*/) const {
  if (absl::Status s = CheckMatchesSpec(base, q, spec_); !s.ok()) return s;
  if (absl::Status s = CheckV1ZeroPoints(base, q); !s.ok()) return s;
  absl::StatusOr<GptqTensors> packed = PackGptq(q);
  if (!packed.ok()) {
    return absl::Status(packed.status().code(),
                        absl::StrCat(base, ": ", std::string(packed.status().message())));
  }
  absl::StatusOr<PackedTensor> scales =
      FloatTensor(base, ".scales", DType::kF16, packed->scales, "scales (groups x output channels)");
  if (!scales.ok()) return scales.status();
  std::vector<PackedTensor> tensors;
  tensors.push_back(IntTensor(".qweight", packed->qweight));
  tensors.push_back(IntTensor(".qzeros", packed->qzeros));
  tensors.push_back(*std::move(scales));
  tensors.push_back(IntTensor(".g_idx", packed->g_idx));
  return tensors;
}

nlohmann::json GptqCheckpointWriter::QuantizationConfig() const {
  return {
      {"quant_method", "gptq"},
      {"bits", spec_.bits},
      {"group_size", spec_.group_size},
      {"desc_act", spec_.act_order},
      {"sym", spec_.sym},
      {"damp_percent", spec_.damp},
      {"true_sequential", true},
      {"static_groups", spec_.static_groups},
      {"checkpoint_format", "gptq"},
      {"model_name_or_path", nullptr},
      {"model_file_base_name", "model"},
      {"meta", meta_},
  };
}

}  // namespace caliber
