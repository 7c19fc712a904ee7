#include "core/formats/checkpoint_writer.h"

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/io/model_files.h"

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

template <typename T>
std::vector<uint8_t> RawBytes(const T* data, size_t count) {
  std::vector<uint8_t> bytes(count * sizeof(T));
  if (count > 0) std::memcpy(bytes.data(), data, bytes.size());
  return bytes;
}

}  // namespace

QuantizedCheckpointWriter::QuantizedCheckpointWriter(const ModelConfig& config,
                                                     const Checkpoint& source,
                                                     std::string source_dir, std::string out_dir)
    : config_(config),
      source_(source),
      source_dir_(std::move(source_dir)),
      out_dir_(std::move(out_dir)),
      layer_done_(config.num_hidden_layers, false) {}

QuantizedCheckpointWriter::PackedTensor QuantizedCheckpointWriter::IntTensor(std::string suffix,
                                                                             const IntMatrix& m) {
  return {std::move(suffix), DType::kI32, {m.rows(), m.cols()},
          RawBytes(m.data(), static_cast<size_t>(m.size()))};
}

QuantizedCheckpointWriter::PackedTensor QuantizedCheckpointWriter::IntTensor(
    std::string suffix, const std::vector<int32_t>& v) {
  return {std::move(suffix), DType::kI32, {static_cast<int64_t>(v.size())}, RawBytes(v.data(), v.size())};
}

QuantizedCheckpointWriter::PackedTensor QuantizedCheckpointWriter::Int64Tensor(
    std::string suffix, const std::vector<int64_t>& v) {
  return {std::move(suffix), DType::kI64, {static_cast<int64_t>(v.size())}, RawBytes(v.data(), v.size())};
}

absl::Status QuantizedCheckpointWriter::CheckMatchesSpec(const std::string& base,
                                                        const QuantizedLinear& q,
                                                        const QuantSpec& spec) {
  if (q.bits != spec.bits || q.group_size != spec.group_size || q.sym != spec.sym) {
    return absl::InvalidArgumentError(absl::StrCat(
        base, ": quantized with bits ", q.bits, ", group_size ", q.group_size, ", sym ", q.sym,
        " but the checkpoint's quantization_config says bits ", spec.bits, ", group_size ",
        spec.group_size, ", sym ", spec.sym));
  }
  return absl::OkStatus();
}

absl::StatusOr<QuantizedCheckpointWriter::PackedTensor> QuantizedCheckpointWriter::FloatTensor(
    const std::string& base, std::string suffix, DType dtype, const MatrixF& m,
    std::string_view what) {
  PackedTensor t{std::move(suffix), dtype, {m.rows(), m.cols()}, {}};
  t.bytes.resize(static_cast<size_t>(m.size()) * DTypeSize(dtype));
  ConvertFromFloat(dtype, absl::MakeConstSpan(m.data(), static_cast<size_t>(m.size())), t.bytes.data());
  std::vector<float> back(static_cast<size_t>(m.size()));
  ConvertToFloat(dtype, t.bytes.data(), back.size(), back.data());
  for (Eigen::Index k = 0; k < m.size(); ++k) {
    const float s = m.data()[k];
    const float h = back[static_cast<size_t>(k)];
    if (!std::isfinite(h) || (h == 0.0f && s != 0.0f)) {
      return absl::InvalidArgumentError(absl::StrCat(
          base, ": ", std::string(what), " [", k / m.cols(), ", ", k % m.cols(), "] = ", s,
          " is not representable in ", std::string(DTypeName(dtype)), ", the dtype it is stored in"));
    }
  }
  return t;
}

absl::Status QuantizedCheckpointWriter::CheckOutput() const {
  std::error_code ec;
  if (fs::exists(out_dir_, ec)) {
    return absl::AlreadyExistsError(absl::StrCat("output ", out_dir_, " already exists"));
  }
  const fs::path parent = fs::absolute(fs::path(out_dir_)).parent_path();
  if (!fs::is_directory(parent, ec)) {
    return absl::NotFoundError(absl::StrCat("output parent directory ", parent.string(),
                                            " does not exist"));
  }
  return CheckFormat();
}

absl::Status QuantizedCheckpointWriter::AddLayer(const LayerQuantResult& layer) {
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
  std::vector<std::vector<PackedTensor>> packed_layer;
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
    absl::StatusOr<std::vector<PackedTensor>> packed =
        PackModule(base, m.quantized, (*source_weight)->dtype);
    if (!packed.ok()) return packed.status();
    packed_layer.push_back(*std::move(packed));
  }
  for (size_t k = 0; k < layer.modules.size(); ++k) {
    const ModuleQuantResult& m = layer.modules[k];
    const std::string base = LayerTensorName(layer.layer, LinearModuleName(m.module));
    for (PackedTensor& t : packed_layer[k]) {
      if (absl::Status s = model_.Add(base + t.suffix, t.dtype, std::move(t.shape), t.bytes); !s.ok()) {
        return s;
      }
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

absl::StatusOr<std::string> QuantizedCheckpointWriter::Stage() {
  for (int l = 0; l < config_.num_hidden_layers; ++l) {
    if (!layer_done_[l]) return absl::FailedPreconditionError(absl::StrCat("layer ", l, " was never added"));
  }
  if (absl::Status s = CheckOutput(); !s.ok()) return s;
  // Everything that is not a quantized linear (or its bias) is copied through unchanged.
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
    absl::StatusOr<nlohmann::json> read = ReadConfigJson(source_dir_);
    if (!read.ok()) return read.status();
    nlohmann::json& config = *read;
    config["quantization_config"] = QuantizationConfig();
    if (absl::Status s = WriteText(partial / "config.json", config.dump(2) + "\n"); !s.ok()) return s;

    if (absl::Status s = CopyTokenizerFiles(source_dir_, partial.string()); !s.ok()) return s;
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

absl::Status QuantizedCheckpointWriter::Commit(const nlohmann::json& report) {
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
