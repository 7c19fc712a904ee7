#include "core/formats/peft_adapter.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace caliber {
namespace {

namespace fs = std::filesystem;
constexpr std::string_view kPrefix = "base_model.model.";

// "model.layers.3.self_attn.q_proj" -> (3, kQ).
absl::StatusOr<std::pair<int, LinearModule>> ParseModule(std::string_view base, int num_layers) {
  constexpr std::string_view kLayers = "model.layers.";
  if (base.starts_with(kLayers)) {
    const std::string_view rest = base.substr(kLayers.size());
    const size_t dot = rest.find('.');
    int layer = -1;
    if (dot != std::string_view::npos &&
        absl::SimpleAtoi(absl::string_view(rest.data(), dot), &layer) && layer >= 0 &&
        layer < num_layers) {
      const std::string_view module = rest.substr(dot + 1);
      for (const LinearModule m : kAllLinearModules) {
        if (module == LinearModuleName(m)) return std::make_pair(layer, m);
      }
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("adapter module '", std::string(base), "' is not a linear of this model"));
}

}  // namespace

absl::Status PeftAdapterBuilder::Add(const std::string& base, const MatrixF& lora_a,
                                     const MatrixF& lora_b) {
  const int r = static_cast<int>(lora_a.rows());
  if (r == 0 || lora_b.cols() != r) {
    return absl::InvalidArgumentError(absl::StrCat(base, ": LoRA factors ", lora_b.rows(), "x",
                                                   lora_b.cols(), " and ", lora_a.rows(), "x",
                                                   lora_a.cols(), " do not form B·A"));
  }
  if (rank_ != 0 && r != rank_) {
    return absl::InvalidArgumentError(
        absl::StrCat(base, ": LoRA rank ", r, " differs from the adapter's rank ", rank_));
  }
  rank_ = r;
  const std::string name = absl::StrCat(std::string(kPrefix), base);
  if (absl::Status s = tensors_.AddFloat(name + ".lora_A.weight", DType::kF32,
                                         {lora_a.rows(), lora_a.cols()},
                                         absl::MakeConstSpan(lora_a.data(), lora_a.size()));
      !s.ok()) {
    return s;
  }
  if (absl::Status s = tensors_.AddFloat(name + ".lora_B.weight", DType::kF32,
                                         {lora_b.rows(), lora_b.cols()},
                                         absl::MakeConstSpan(lora_b.data(), lora_b.size()));
      !s.ok()) {
    return s;
  }
  target_modules_.insert(base.substr(base.rfind('.') + 1));
  return absl::OkStatus();
}

absl::Status PeftAdapterBuilder::Write(const std::string& dir, const std::string& base_model) const {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  if (absl::Status s = tensors_.WriteFile((fs::path(dir) / "adapter_model.safetensors").string());
      !s.ok()) {
    return s;
  }
  const nlohmann::json config = {
      {"peft_type", "LORA"},
      {"task_type", "CAUSAL_LM"},
      {"r", rank_},
      {"lora_alpha", rank_},
      {"lora_dropout", 0.0},
      {"bias", "none"},
      {"fan_in_fan_out", false},
      {"use_rslora", false},
      {"use_dora", false},
      {"inference_mode", true},
      {"init_lora_weights", true},
      {"target_modules", target_modules_},
      {"base_model_name_or_path", base_model},
  };
  std::ofstream out(fs::path(dir) / "adapter_config.json");
  out << config.dump(2) << "\n";
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", dir, "/adapter_config.json"));
  return absl::OkStatus();
}

absl::Status ApplyPeftAdapter(const std::string& dir, const ModelConfig& config,
                              ModelWeights& weights) {
  std::ifstream in(fs::path(dir) / "adapter_config.json");
  if (!in) return absl::NotFoundError(absl::StrCat(dir, "/adapter_config.json: cannot be read"));
  const nlohmann::json cfg = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (cfg.is_discarded() || !cfg.is_object() || !cfg.contains("r") ||
      !cfg["r"].is_number_integer() || cfg["r"].get<int>() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(dir, "/adapter_config.json: not a LoRA config with a positive integer r"));
  }
  const int r = cfg["r"].get<int>();
  const double alpha = cfg.contains("lora_alpha") && cfg["lora_alpha"].is_number()
                           ? cfg["lora_alpha"].get<double>()
                           : r;
  const bool rslora = cfg.value("use_rslora", false);
  const float scaling = static_cast<float>(rslora ? alpha / std::sqrt(double(r)) : alpha / r);

  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file =
      SafetensorsFile::Open((fs::path(dir) / "adapter_model.safetensors").string());
  if (!file.ok()) return file.status();
  std::map<std::string, const TensorInfo*> a_by_base, b_by_base;
  for (const TensorInfo& t : (*file)->tensors()) {
    std::string_view name = t.name;
    if (!name.starts_with(kPrefix)) {
      return absl::InvalidArgumentError(absl::StrCat(dir, ": adapter tensor '", t.name,
                                                     "' does not start with ", std::string(kPrefix)));
    }
    name.remove_prefix(kPrefix.size());
    constexpr std::string_view kA = ".lora_A.weight", kB = ".lora_B.weight";
    if (name.ends_with(kA)) {
      a_by_base[std::string(name.substr(0, name.size() - kA.size()))] = &t;
    } else if (name.ends_with(kB)) {
      b_by_base[std::string(name.substr(0, name.size() - kB.size()))] = &t;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(dir, ": unexpected adapter tensor '", t.name, "'"));
    }
  }
  for (const auto& [base, a_info] : a_by_base) {
    const auto b_it = b_by_base.find(base);
    if (b_it == b_by_base.end()) {
      return absl::InvalidArgumentError(absl::StrCat(dir, ": ", base, " has lora_A but no lora_B"));
    }
    absl::StatusOr<std::pair<int, LinearModule>> module = ParseModule(base, config.num_hidden_layers);
    if (!module.ok()) return module.status();
    MatrixF& W = weights.layers[module->first].linear(module->second).weight;
    const TensorInfo* b_info = b_it->second;
    if (a_info->shape != std::vector<int64_t>{r, W.cols()} ||
        b_info->shape != std::vector<int64_t>{W.rows(), r} || !IsFloatingPoint(a_info->dtype) ||
        !IsFloatingPoint(b_info->dtype)) {
      return absl::InvalidArgumentError(absl::StrCat(
          dir, ": ", base, " needs floating-point lora_A [", r, ", ", W.cols(), "] and lora_B [",
          W.rows(), ", ", r, "]"));
    }
    MatrixF A(r, W.cols()), B(W.rows(), r);
    ConvertToFloat(a_info->dtype, (*file)->Bytes(*a_info).data(), A.size(), A.data());
    ConvertToFloat(b_info->dtype, (*file)->Bytes(*b_info).data(), B.size(), B.data());
    W.noalias() += scaling * (B * A);
  }
  for (const auto& [base, b_info] : b_by_base) {
    if (!a_by_base.contains(base)) {
      return absl::InvalidArgumentError(absl::StrCat(dir, ": ", base, " has lora_B but no lora_A"));
    }
  }
  return absl::OkStatus();
}

}  // namespace caliber
