#include "core/formats/peft_adapter.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/model/config.h"
#include "nlohmann/json.hpp"

namespace caliber {
namespace {

namespace fs = std::filesystem;
constexpr std::string_view kPrefix = "base_model.model.";

// "model.layers.3.self_attn.q_proj" -> (3, kQ). The layer index is plain decimal as PEFT and
// vLLM spell it (no sign, no leading zeros), so "model.layers.+3..." or "...layers.03..." is not
// silently taken for layer 3.
absl::StatusOr<std::pair<int, LinearModule>> ParseModule(std::string_view base, int num_layers) {
  constexpr std::string_view kLayers = "model.layers.";
  if (base.starts_with(kLayers)) {
    const std::string_view rest = base.substr(kLayers.size());
    const size_t dot = rest.find('.');
    const std::string_view digits = rest.substr(0, dot);
    const bool decimal = !digits.empty() && digits.size() <= 9 &&
                         digits.find_first_not_of("0123456789") == std::string_view::npos &&
                         (digits.size() == 1 || digits[0] != '0');
    int layer = -1;
    if (dot != std::string_view::npos && decimal &&
        absl::SimpleAtoi(absl::string_view(digits.data(), digits.size()), &layer) && layer >= 0 &&
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

// PEFT's LoraConfig default for a missing lora_alpha.
constexpr double kPeftDefaultLoraAlpha = 8.0;

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
  const std::string config_path = (fs::path(dir) / "adapter_config.json").string();
  std::ifstream in(config_path);
  if (!in) return absl::NotFoundError(absl::StrCat(config_path, ": cannot be read"));
  const nlohmann::json cfg = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  const auto invalid = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat(config_path, ": ", what));
  };
  if (cfg.is_discarded() || !cfg.is_object()) return invalid("not a JSON object");
  if (cfg.contains("peft_type") && cfg["peft_type"] != "LORA") {
    return invalid(absl::StrCat("peft_type ", cfg["peft_type"].dump(), " is not supported (LORA)"));
  }
  // r must fit an int exactly (get<int>() would silently truncate 2^32 + 2 to 2).
  if (!cfg.contains("r") || !cfg["r"].is_number_integer() || cfg["r"].get<int64_t>() <= 0 ||
      cfg["r"].get<int64_t>() > kMaxModelDim) {
    return invalid(absl::StrCat("not a LoRA config with a positive integer r (r = ",
                                cfg.contains("r") ? cfg["r"].dump() : "missing", ")"));
  }
  const int r = static_cast<int>(cfg["r"].get<int64_t>());
  // Every field below is type-checked first: nlohmann's value()/get() throw on a mismatch.
  if (cfg.contains("lora_alpha") && !cfg["lora_alpha"].is_number()) {
    return invalid(absl::StrCat("lora_alpha must be a number, got ", cfg["lora_alpha"].dump()));
  }
  const double alpha =
      cfg.contains("lora_alpha") ? cfg["lora_alpha"].get<double>() : kPeftDefaultLoraAlpha;
  if (cfg.contains("use_rslora") && !cfg["use_rslora"].is_boolean()) {
    return invalid(absl::StrCat("use_rslora must be true or false, got ", cfg["use_rslora"].dump()));
  }
  const bool rslora = cfg.value("use_rslora", false);
  if (cfg.contains("use_dora") && cfg["use_dora"] != false) {
    return invalid(absl::StrCat("use_dora ", cfg["use_dora"].dump(), " is not supported"));
  }
  // Per-module ranks / alphas would change B·A's scaling module by module.
  for (const char* pattern : {"rank_pattern", "alpha_pattern"}) {
    if (cfg.contains(pattern) && !cfg[pattern].is_null() &&
        !(cfg[pattern].is_object() && cfg[pattern].empty())) {
      return invalid(absl::StrCat(pattern, " ", cfg[pattern].dump(), " is not supported"));
    }
  }
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
  for (const auto& [base, b_info] : b_by_base) {
    if (!a_by_base.contains(base)) {
      return absl::InvalidArgumentError(absl::StrCat(dir, ": ", base, " has lora_B but no lora_A"));
    }
  }
  const auto read = [&](const TensorInfo& info, MatrixF& m) -> absl::Status {
    ConvertToFloat(info.dtype, (*file)->Bytes(info).data(), static_cast<size_t>(m.size()), m.data());
    for (Eigen::Index i = 0; i < m.size(); ++i) {
      if (!std::isfinite(m.data()[i])) {
        return absl::InvalidArgumentError(absl::StrCat(
            dir, ": adapter tensor '", info.name, "' has a non-finite value at index ", i));
      }
    }
    return absl::OkStatus();
  };
  // Everything is validated and decoded before the first weight changes, so a bad adapter
  // leaves `weights` as they were.
  struct Update {
    MatrixF* W;
    MatrixF A, B;
  };
  std::vector<Update> updates;
  for (const auto& [base, a_info] : a_by_base) {
    const auto b_it = b_by_base.find(base);
    if (b_it == b_by_base.end()) {
      return absl::InvalidArgumentError(absl::StrCat(dir, ": ", base, " has lora_A but no lora_B"));
    }
    absl::StatusOr<std::pair<int, LinearModule>> module = ParseModule(base, config.num_hidden_layers);
    if (!module.ok()) {
      return absl::Status(module.status().code(),
                          absl::StrCat(dir, ": ", std::string(module.status().message())));
    }
    MatrixF& W = weights.layers[module->first].linear(module->second).weight;
    const TensorInfo* b_info = b_it->second;
    if (a_info->shape != std::vector<int64_t>{r, W.cols()} ||
        b_info->shape != std::vector<int64_t>{W.rows(), r} || !IsFloatingPoint(a_info->dtype) ||
        !IsFloatingPoint(b_info->dtype)) {
      return absl::InvalidArgumentError(absl::StrCat(
          dir, ": ", base, " needs floating-point lora_A [", r, ", ", W.cols(), "] and lora_B [",
          W.rows(), ", ", r, "]"));
    }
    Update u{&W, MatrixF(r, W.cols()), MatrixF(W.rows(), r)};
    if (absl::Status s = read(*a_info, u.A); !s.ok()) return s;
    if (absl::Status s = read(*b_info, u.B); !s.ok()) return s;
    updates.push_back(std::move(u));
  }
  for (Update& u : updates) u.W->noalias() += scaling * (u.B * u.A);
  return absl::OkStatus();
}

}  // namespace caliber
