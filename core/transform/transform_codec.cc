#include "core/transform/transform_codec.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/io/safetensors_image.h"

namespace caliber {
namespace {

constexpr char kLabel[] = "stage transform";

absl::Span<const uint8_t> BytesOf(const double* data, Eigen::Index n) {
  return {reinterpret_cast<const uint8_t*>(data), static_cast<size_t>(n) * sizeof(double)};
}

std::string LayerKey(int layer, const char* what) { return absl::StrCat("layers.", layer, ".", what); }

}  // namespace

std::string EncodeStageTransform(const StageTransform& stage) {
  SafetensorsWriter w;
  // Adds cannot fail: names are unique and sizes match the shapes by construction.
  (void)w.Add("r1", DType::kF64, {stage.r1.rows(), stage.r1.cols()}, BytesOf(stage.r1.data(), stage.r1.size()));
  for (size_t i = 0; i < stage.layers.size(); ++i) {
    const int l = stage.first_layer + static_cast<int>(i);
    const LayerTransform& t = stage.layers[i];
    (void)w.Add(LayerKey(l, "r2"), DType::kF64, {t.r2.rows(), t.r2.cols()}, BytesOf(t.r2.data(), t.r2.size()));
    const std::pair<const char*, const VectorD*> vectors[] = {
        {"log_attn", &t.log_attn}, {"log_mlp", &t.log_mlp}, {"log_vo", &t.log_vo}, {"log_ud", &t.log_ud}};
    for (const auto& [name, v] : vectors) {
      (void)w.Add(LayerKey(l, name), DType::kF64, {v->size()}, BytesOf(v->data(), v->size()));
    }
  }
  w.SetMetadata("first_layer", std::to_string(stage.first_layer));
  w.SetMetadata("layers", std::to_string(stage.layers.size()));
  w.SetMetadata("report", stage.report.dump());
  return w.Serialize();
}

absl::StatusOr<StageTransform> DecodeStageTransform(std::string_view bytes, const ModelConfig& config) {
  absl::StatusOr<SafetensorsImage> image = ParseSafetensorsBytes(bytes, kLabel);
  if (!image.ok()) return image.status();
  const std::map<std::string, std::string>& meta = image->header.metadata;
  auto number = [&](const char* key, int& out) -> absl::Status {
    auto it = meta.find(key);
    if (it == meta.end() || !absl::SimpleAtoi(it->second, &out)) {
      return absl::DataLossError(absl::StrCat(kLabel, " lacks a valid '", key, "' entry"));
    }
    return absl::OkStatus();
  };
  StageTransform out;
  int count = 0;
  if (absl::Status s = number("first_layer", out.first_layer); !s.ok()) return s;
  if (absl::Status s = number("layers", count); !s.ok()) return s;
  if (out.first_layer < 0 || count < 1 || out.first_layer + count > config.num_hidden_layers) {
    return absl::DataLossError(absl::StrCat(kLabel, " covers layers [", out.first_layer, ", ",
                                            out.first_layer + count, ") of a ", config.num_hidden_layers,
                                            "-layer model"));
  }
  auto report = meta.find("report");
  if (report == meta.end()) return absl::DataLossError(absl::StrCat(kLabel, " lacks its report"));
  out.report = nlohmann::json::parse(report->second, nullptr, /*allow_exceptions=*/false);
  if (out.report.is_discarded() || !out.report.is_object()) {
    return absl::DataLossError(absl::StrCat(kLabel, " report is not a JSON object"));
  }
  const int64_t d = config.hidden_size, hd = config.head_dim;
  out.r1.resize(d, d);
  if (absl::Status s = ReadImageTensor(*image, kLabel, "r1", DType::kF64, {d, d}, out.r1.data()); !s.ok()) return s;
  const int64_t sizes[4] = {d, d, static_cast<int64_t>(config.num_key_value_heads) * hd, config.intermediate_size};
  for (int i = 0; i < count; ++i) {
    const int l = out.first_layer + i;
    LayerTransform t;
    t.r2.resize(hd, hd);
    if (absl::Status s = ReadImageTensor(*image, kLabel, LayerKey(l, "r2"), DType::kF64, {hd, hd}, t.r2.data());
        !s.ok()) {
      return s;
    }
    VectorD* vectors[4] = {&t.log_attn, &t.log_mlp, &t.log_vo, &t.log_ud};
    const char* names[4] = {"log_attn", "log_mlp", "log_vo", "log_ud"};
    for (int k = 0; k < 4; ++k) {
      vectors[k]->resize(sizes[k]);
      if (absl::Status s = ReadImageTensor(*image, kLabel, LayerKey(l, names[k]), DType::kF64, {sizes[k]},
                                           vectors[k]->data());
          !s.ok()) {
        return s;
      }
    }
    out.layers.push_back(std::move(t));
  }
  return out;
}

}  // namespace caliber
