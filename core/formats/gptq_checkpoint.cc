#include "core/formats/gptq_checkpoint.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "absl/strings/str_cat.h"
#include "core/formats/gptq_pack.h"
#include "core/formats/peft_adapter.h"

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
  for (const ModuleQuantResult& m : layer.modules) {
    const std::string base = LayerTensorName(layer.layer, LinearModuleName(m.module));
    absl::StatusOr<GptqTensors> packed = PackGptq(m.quantized);
    if (!packed.ok()) {
      return absl::Status(packed.status().code(),
                          absl::StrCat(base, ": ", std::string(packed.status().message())));
    }
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
    if (absl::Status s = adapter_.Write((partial / "adapter").string(), source_dir_); !s.ok()) {
      return s;
    }
  }
  staged_ = partial.string();
  return staged_;
}

absl::Status GptqCheckpointWriter::Commit(const nlohmann::json& report) {
  if (staged_.empty()) return absl::FailedPreconditionError("Commit() before Stage()");
  if (absl::Status s = WriteText(fs::path(staged_) / "report.json", report.dump(2) + "\n"); !s.ok()) {
    return s;
  }
  std::error_code ec;
  fs::rename(staged_, out_dir_, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot rename ", staged_, " to ", out_dir_, ": ", ec.message()));
  }
  return absl::OkStatus();
}

}  // namespace caliber
