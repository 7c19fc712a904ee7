#include "core/formats/gptq_checkpoint.h"

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/formats/gptq_pack.h"
#include "core/formats/peft_adapter.h"
#include "core/tensor/dtype.h"

namespace caliber {
namespace {

namespace fs = std::filesystem;

absl::Status WriteText(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path.string()));
  return absl::OkStatus();
}

// What the v1 format (and the config.json written next to it) can say about `q` exactly:
// the writer's bits / group_size / sym, zero points that v1 kernels read back unchanged, and
// scales that survive the conversion to fp16.
absl::Status CheckV1Representable(const std::string& base, const QuantizedLinear& q,
                                  const QuantSpec& spec) {
  if (q.bits != spec.bits || q.group_size != spec.group_size || q.sym != spec.sym) {
    return absl::InvalidArgumentError(absl::StrCat(
        base, ": quantized with bits ", q.bits, ", group_size ", q.group_size, ", sym ", q.sym,
        " but the checkpoint's quantization_config says bits ", spec.bits, ", group_size ",
        spec.group_size, ", sym ", spec.sym));
  }
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
  for (Eigen::Index g = 0; g < q.scales.rows(); ++g) {
    for (Eigen::Index o = 0; o < q.scales.cols(); ++o) {
      const float s = q.scales(g, o);
      const float h = F16ToFloat(FloatToF16(s));
      if (!std::isfinite(h) || (h == 0.0f && s != 0.0f)) {
        return absl::InvalidArgumentError(absl::StrCat(
            base, ": scale ", s, " (group ", g, ", output channel ", o,
            ") is not representable in fp16, the dtype of GPTQ scales"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

GptqCheckpointWriter::GptqCheckpointWriter(const ModelConfig& config, const Checkpoint& source,
                                           std::string source_dir, std::string out_dir,
                                           const QuantSpec& spec, nlohmann::json meta)
    : config_(config),
      source_(source),
      source_dir_(std::move(source_dir)),
      out_dir_(std::move(out_dir)),
      spec_(spec),
      meta_(std::move(meta)),
      layer_done_(config.num_hidden_layers, false) {}

absl::Status GptqCheckpointWriter::CheckOutput() const {
  std::error_code ec;
  if (fs::exists(out_dir_, ec)) {
    return absl::AlreadyExistsError(absl::StrCat("output ", out_dir_, " already exists"));
  }
  const fs::path parent = fs::absolute(fs::path(out_dir_)).parent_path();
  if (!fs::is_directory(parent, ec)) {
    return absl::NotFoundError(absl::StrCat("output parent directory ", parent.string(),
                                            " does not exist"));
  }
  return absl::OkStatus();
}

absl::Status GptqCheckpointWriter::AddLayer(const LayerQuantResult& layer) {
  if (layer.layer < 0 || layer.layer >= config_.num_hidden_layers || layer_done_[layer.layer]) {
    return absl::InvalidArgumentError(absl::StrCat("layer ", layer.layer, " added twice or out of range"));
  }
  // Validate and pack the whole layer first, so a rejected layer adds no tensors (and the
  // writer stays usable for a corrected retry).
  std::set<LinearModule> modules;
  for (const ModuleQuantResult& m : layer.modules) modules.insert(m.module);
  if (modules.size() != std::size(kAllLinearModules) || layer.modules.size() != modules.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "layer ", layer.layer, ": needs each of the ", std::size(kAllLinearModules),
        " linear modules exactly once, got ", layer.modules.size(), " modules"));
  }
  std::vector<GptqTensors> packed_layer;
  for (const ModuleQuantResult& m : layer.modules) {
    const std::string base = LayerTensorName(layer.layer, LinearModuleName(m.module));
    absl::StatusOr<const TensorInfo*> source_weight = source_.Info(base + ".weight");
    if (!source_weight.ok()) return source_weight.status();
    if ((*source_weight)->shape !=
        std::vector<int64_t>{m.quantized.out_features, m.quantized.in_features}) {
      return absl::InvalidArgumentError(absl::StrCat(
          base, ": quantized as [", m.quantized.out_features, " x ", m.quantized.in_features,
          "], which is not the source weight's shape"));
    }
    if (absl::Status s = CheckV1Representable(base, m.quantized, spec_); !s.ok()) return s;
    absl::StatusOr<GptqTensors> packed = PackGptq(m.quantized);
    if (!packed.ok()) {
      return absl::Status(packed.status().code(),
                          absl::StrCat(base, ": ", std::string(packed.status().message())));
    }
    packed_layer.push_back(*std::move(packed));
  }
  for (size_t k = 0; k < layer.modules.size(); ++k) {
    const ModuleQuantResult& m = layer.modules[k];
    const std::string base = LayerTensorName(layer.layer, LinearModuleName(m.module));
    const GptqTensors* packed = &packed_layer[k];
    const auto as_bytes = [](const auto& matrix) {
      return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(matrix.data()),
                                 matrix.size() * sizeof(*matrix.data()));
    };
    if (absl::Status s = model_.Add(base + ".qweight", DType::kI32,
                                    {packed->qweight.rows(), packed->qweight.cols()},
                                    as_bytes(packed->qweight));
        !s.ok()) {
      return s;
    }
    if (absl::Status s = model_.Add(base + ".qzeros", DType::kI32,
                                    {packed->qzeros.rows(), packed->qzeros.cols()},
                                    as_bytes(packed->qzeros));
        !s.ok()) {
      return s;
    }
    if (absl::Status s = model_.AddFloat(base + ".scales", DType::kF16,
                                         {packed->scales.rows(), packed->scales.cols()},
                                         absl::MakeConstSpan(packed->scales.data(), packed->scales.size()));
        !s.ok()) {
      return s;
    }
    if (absl::Status s = model_.Add(base + ".g_idx", DType::kI32,
                                    {static_cast<int64_t>(packed->g_idx.size())},
                                    as_bytes(Eigen::Map<const Eigen::VectorXi>(
                                        packed->g_idx.data(), packed->g_idx.size())));
        !s.ok()) {
      return s;
    }
    // Biases of quantized linears stay in the source dtype, next to the packed weight.
    const std::string bias = base + ".bias";
    if (source_.Contains(bias)) {
      absl::StatusOr<const TensorInfo*> info = source_.Info(bias);
      absl::StatusOr<absl::Span<const uint8_t>> bytes = source_.Bytes(bias);
      if (!info.ok()) return info.status();
      if (!bytes.ok()) return bytes.status();
      if (absl::Status s = model_.Add(bias, (*info)->dtype, (*info)->shape, *bytes); !s.ok()) return s;
    }
    if (m.quantized.lora_rank() > 0) {
      if (absl::Status s = adapter_.Add(base, m.quantized.lora_a, m.quantized.lora_b); !s.ok()) {
        return s;
      }
    }
  }
  layer_done_[layer.layer] = true;
  return absl::OkStatus();
}

absl::StatusOr<std::string> GptqCheckpointWriter::Stage() {
  for (int l = 0; l < config_.num_hidden_layers; ++l) {
    if (!layer_done_[l]) return absl::FailedPreconditionError(absl::StrCat("layer ", l, " was never added"));
  }
  if (absl::Status s = CheckOutput(); !s.ok()) return s;
  // Everything that is not a quantized linear (or its bias) is copied through unchanged.
  std::set<std::string> quantized_prefixes;
  for (const std::string& name : source_.TensorNames()) {
    bool is_linear = false;
    for (int l = 0; l < config_.num_hidden_layers && !is_linear; ++l) {
      for (const LinearModule m : kAllLinearModules) {
        const std::string base = LayerTensorName(l, LinearModuleName(m));
        if (name == base + ".weight" || name == base + ".bias") {
          is_linear = true;
          break;
        }
      }
    }
    if (is_linear) continue;
    absl::StatusOr<const TensorInfo*> info = source_.Info(name);
    absl::StatusOr<absl::Span<const uint8_t>> bytes = source_.Bytes(name);
    if (!info.ok()) return info.status();
    if (!bytes.ok()) return bytes.status();
    if (absl::Status s = model_.Add(name, (*info)->dtype, (*info)->shape, *bytes); !s.ok()) return s;
  }
  model_.SetMetadata("format", "pt");
  model_.SetMetadata("quantized_by", "caliber");

  const fs::path partial = absl::StrCat(out_dir_, ".partial-", getpid());
  std::error_code ec;
  fs::remove_all(partial, ec);
  if (!fs::create_directories(partial, ec)) {
    return absl::InternalError(absl::StrCat("cannot create ", partial.string(), ": ", ec.message()));
  }
  // Everything but report.json; any error removes the staging directory again.
  const auto write = [&]() -> absl::Status {
    if (absl::Status s = model_.WriteFile((partial / "model.safetensors").string()); !s.ok()) return s;

    // config.json: the source config with quantization_config added.
    std::ifstream in(fs::path(source_dir_) / "config.json");
    nlohmann::json config = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (config.is_discarded() || !config.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(source_dir_, "/config.json: not a JSON object"));
    }
    config["quantization_config"] = {
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
    if (absl::Status s = WriteText(partial / "config.json", config.dump(2) + "\n"); !s.ok()) return s;

    for (const char* file : {"tokenizer.model", "tokenizer.json", "tokenizer_config.json",
                             "special_tokens_map.json", "generation_config.json"}) {
      const fs::path src = fs::path(source_dir_) / file;
      if (fs::exists(src, ec) && !fs::copy_file(src, partial / file, ec)) {
        return absl::InternalError(absl::StrCat("cannot copy ", src.string(), ": ", ec.message()));
      }
    }
    if (!adapter_.empty()) {
      fs::path source = fs::absolute(source_dir_).lexically_normal();
      if (!source.has_filename()) source = source.parent_path();  // "dir/"
      if (absl::Status s = adapter_.Write((partial / "adapter").string(),
                                            base_model_name_.empty() ? source.filename().string()
                                                                     : base_model_name_); !s.ok()) {
        return s;
      }
    }
    return absl::OkStatus();
  };
  if (absl::Status s = write(); !s.ok()) {
    fs::remove_all(partial, ec);  // a failed Stage() leaves nothing behind
    return s;
  }
  staged_ = partial.string();
  return staged_;
}

absl::Status GptqCheckpointWriter::Commit(const nlohmann::json& report) {
  if (staged_.empty()) return absl::FailedPreconditionError("Commit() before Stage()");
  const std::string staged = std::exchange(staged_, std::string());
  std::error_code ec;
  const auto fail = [&](absl::Status s) {
    fs::remove_all(staged, ec);  // a failed Commit() leaves nothing behind either
    return s;
  };
  if (absl::Status s = WriteText(fs::path(staged) / "report.json", report.dump(2) + "\n"); !s.ok()) {
    return fail(s);
  }
  // rename(2) silently replaces an empty directory: OUT may have appeared since Stage().
  if (fs::exists(out_dir_, ec)) {
    return fail(absl::AlreadyExistsError(absl::StrCat("output ", out_dir_, " already exists")));
  }
  fs::rename(staged, out_dir_, ec);
  if (ec) {
    return fail(absl::InternalError(
        absl::StrCat("cannot rename ", staged, " to ", out_dir_, ": ", ec.message())));
  }
  return absl::OkStatus();
}

}  // namespace caliber
