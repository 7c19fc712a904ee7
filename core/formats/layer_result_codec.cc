#include "core/formats/layer_result_codec.h"

#include <cstring>
#include <map>

#include "absl/strings/str_cat.h"
#include "core/io/safetensors_image.h"
#include "nlohmann/json.hpp"

namespace caliber {
namespace {

template <typename T>
absl::Span<const uint8_t> BytesOf(const T* data, size_t n) {
  return {reinterpret_cast<const uint8_t*>(data), n * sizeof(T)};
}

using Image = SafetensorsImage;

// Copies tensor `name` into `out` (rows*cols elements of T) after checking dtype and shape.
template <typename T>
absl::Status ReadTensor(const Image& image, const std::string& name, DType dtype,
                        std::vector<int64_t> shape, T* out) {
  return ReadImageTensor(image, "layer result", name, dtype, shape, out);
}

absl::StatusOr<Image> ParseImage(std::string_view bytes, std::string_view label) {
  return ParseSafetensorsBytes(bytes, label);
}

absl::StatusOr<LinearModule> ModuleByName(const std::string& name) {
  for (const LinearModule m : kAllLinearModules) {
    if (LinearModuleName(m) == name) return m;
  }
  return absl::DataLossError(absl::StrCat("layer result names unknown module '", name, "'"));
}

}  // namespace

std::string EncodeLayerResult(const LayerQuantResult& layer) {
  SafetensorsWriter w;
  nlohmann::json modules = nlohmann::json::array();
  for (const ModuleQuantResult& m : layer.modules) {
    const QuantizedLinear& q = m.quantized;
    const std::string p(LinearModuleName(m.module));
    const int64_t out = q.out_features, in = q.in_features, g = q.num_groups(), r = q.lora_rank();
    // Adds cannot fail: names are unique and sizes match the shapes by construction.
    (void)w.Add(p + ".codes", DType::kU8, {out, in}, BytesOf(q.codes.data(), q.codes.size()));
    (void)w.Add(p + ".scales", DType::kF32, {g, out}, BytesOf(q.scales.data(), q.scales.size()));
    (void)w.Add(p + ".zeros", DType::kI32, {g, out}, BytesOf(q.zeros.data(), q.zeros.size()));
    (void)w.Add(p + ".g_idx", DType::kI32, {in}, BytesOf(q.g_idx.data(), q.g_idx.size()));
    if (r > 0) {
      (void)w.Add(p + ".lora_a", DType::kF32, {r, in}, BytesOf(q.lora_a.data(), q.lora_a.size()));
      (void)w.Add(p + ".lora_b", DType::kF32, {out, r}, BytesOf(q.lora_b.data(), q.lora_b.size()));
    }
    const QuantReport& rep = q.report;
    modules.push_back({{"module", p},
                       {"out_features", out},
                       {"in_features", in},
                       {"bits", q.bits},
                       {"group_size", q.group_size},
                       {"sym", q.sym},
                       {"groups", g},
                       {"lora_rank", r},
                       {"hessian_trace", m.hessian_trace},
                       {"hessian_top_eigenvalue", m.hessian_top_eigenvalue},
                       {"hessian_tokens", m.hessian_tokens},
                       {"report",
                        {{"method", rep.method},
                         {"damp_used", rep.damp_used},
                         {"cholesky_retries", rep.cholesky_retries},
                         {"dead_columns", rep.dead_columns},
                         {"output_energy", rep.output_energy},
                         {"objective_after", rep.objective_after},
                         {"relative_error", rep.relative_error},
                         {"refine_objectives", rep.refine_objectives},
                         {"seconds", rep.seconds}}}});
  }
  w.SetMetadata("caliber.layer_result",
                nlohmann::json{{"layer", layer.layer}, {"seconds", layer.seconds}, {"modules", modules}}.dump());
  return w.Serialize();
}

absl::StatusOr<LayerQuantResult> DecodeLayerResult(std::string_view bytes) {
  absl::StatusOr<Image> image = ParseImage(bytes, "layer result");
  if (!image.ok()) return image.status();
  auto meta_it = image->header.metadata.find("caliber.layer_result");
  if (meta_it == image->header.metadata.end()) {
    return absl::DataLossError("layer result lacks its caliber.layer_result metadata");
  }
  const nlohmann::json meta = nlohmann::json::parse(meta_it->second, nullptr, false);
  if (meta.is_discarded() || !meta.is_object()) {
    return absl::DataLossError("layer result metadata is not a JSON object");
  }
  LayerQuantResult layer;
  try {
    layer.layer = meta.at("layer").get<int>();
    layer.seconds = meta.at("seconds").get<double>();
    for (const nlohmann::json& j : meta.at("modules")) {
      absl::StatusOr<LinearModule> module = ModuleByName(j.at("module").get<std::string>());
      if (!module.ok()) return module.status();
      ModuleQuantResult m;
      m.module = *module;
      m.hessian_trace = j.at("hessian_trace").get<double>();
      m.hessian_top_eigenvalue = j.at("hessian_top_eigenvalue").get<double>();
      m.hessian_tokens = j.at("hessian_tokens").get<int64_t>();
      QuantizedLinear& q = m.quantized;
      q.out_features = j.at("out_features").get<int>();
      q.in_features = j.at("in_features").get<int>();
      q.bits = j.at("bits").get<int>();
      q.group_size = j.at("group_size").get<int>();
      q.sym = j.at("sym").get<bool>();
      const int64_t out = q.out_features, in = q.in_features;
      const int64_t g = j.at("groups").get<int64_t>(), r = j.at("lora_rank").get<int64_t>();
      if (out < 1 || in < 1 || g < 1 || r < 0 || g > in || r > std::min(in, out)) {
        return absl::DataLossError("layer result has impossible module dimensions");
      }
      const std::string p(LinearModuleName(m.module));
      q.codes.resize(out, in);
      q.scales.resize(g, out);
      q.zeros.resize(g, out);
      q.g_idx.resize(static_cast<size_t>(in));
      for (absl::Status s : {ReadTensor(*image, p + ".codes", DType::kU8, {out, in}, q.codes.data()),
                             ReadTensor(*image, p + ".scales", DType::kF32, {g, out}, q.scales.data()),
                             ReadTensor(*image, p + ".zeros", DType::kI32, {g, out}, q.zeros.data()),
                             ReadTensor(*image, p + ".g_idx", DType::kI32, {in}, q.g_idx.data())}) {
        if (!s.ok()) return s;
      }
      for (const int32_t gi : q.g_idx) {
        if (gi < 0 || gi >= g) return absl::DataLossError("layer result g_idx out of range");
      }
      if (r > 0) {
        q.lora_a.resize(r, in);
        q.lora_b.resize(out, r);
        for (absl::Status s : {ReadTensor(*image, p + ".lora_a", DType::kF32, {r, in}, q.lora_a.data()),
                               ReadTensor(*image, p + ".lora_b", DType::kF32, {out, r}, q.lora_b.data())}) {
          if (!s.ok()) return s;
        }
      }
      const nlohmann::json& rep = j.at("report");
      q.report.method = rep.at("method").get<std::string>();
      q.report.damp_used = rep.at("damp_used").get<double>();
      q.report.cholesky_retries = rep.at("cholesky_retries").get<int>();
      q.report.dead_columns = rep.at("dead_columns").get<int>();
      q.report.output_energy = rep.at("output_energy").get<double>();
      q.report.objective_after = rep.at("objective_after").get<double>();
      q.report.relative_error = rep.at("relative_error").get<double>();
      q.report.refine_objectives = rep.at("refine_objectives").get<std::vector<double>>();
      q.report.seconds = rep.at("seconds").get<double>();
      layer.modules.push_back(std::move(m));
    }
  } catch (const nlohmann::json::exception& e) {
    return absl::DataLossError(absl::StrCat("layer result metadata is malformed: ", e.what()));
  }
  return layer;
}

std::string EncodeActivations(int after_layer, const MatrixF& hidden) {
  SafetensorsWriter w;
  (void)w.Add("hidden", DType::kF32, {hidden.rows(), hidden.cols()},
              BytesOf(hidden.data(), static_cast<size_t>(hidden.size())));
  w.SetMetadata("caliber.after_layer", std::to_string(after_layer));
  return w.Serialize();
}

absl::StatusOr<MatrixF> DecodeActivations(std::string_view bytes, int expected_after_layer,
                                          Eigen::Index expected_rows, Eigen::Index expected_cols) {
  absl::StatusOr<Image> image = ParseImage(bytes, "activations");
  if (!image.ok()) return image.status();
  auto it = image->header.metadata.find("caliber.after_layer");
  if (it == image->header.metadata.end() || it->second != std::to_string(expected_after_layer)) {
    return absl::DataLossError(absl::StrCat("activations are not those after layer ", expected_after_layer));
  }
  MatrixF hidden(expected_rows, expected_cols);
  if (absl::Status s = ReadTensor(*image, "hidden", DType::kF32, {expected_rows, expected_cols}, hidden.data());
      !s.ok()) {
    return s;
  }
  return hidden;
}

}  // namespace caliber
