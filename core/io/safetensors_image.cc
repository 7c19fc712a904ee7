#include "core/io/safetensors_image.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace caliber {

absl::StatusOr<SafetensorsImage> ParseSafetensorsBytes(std::string_view bytes, std::string_view label) {
  const absl::Span<const uint8_t> span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  absl::StatusOr<SafetensorsHeader> header = ParseSafetensorsImage(span, label);
  if (!header.ok()) return header.status();
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), sizeof(header_len));  // validated by the parse above
  return SafetensorsImage{*std::move(header), bytes.substr(8 + header_len)};
}

const TensorInfo* FindTensor(const SafetensorsImage& image, std::string_view name) {
  for (const TensorInfo& t : image.header.tensors) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

absl::Status ReadImageTensor(const SafetensorsImage& image, std::string_view label, const std::string& name,
                             DType dtype, const std::vector<int64_t>& shape, void* out) {
  const TensorInfo* t = FindTensor(image, name);
  if (t == nullptr) return absl::DataLossError(absl::StrCat(std::string(label), " lacks tensor ", name));
  if (t->dtype != dtype || t->shape != shape) {
    return absl::DataLossError(absl::StrCat(std::string(label), " tensor ", name, " has the wrong dtype or shape"));
  }
  if (t->nbytes() > 0) std::memcpy(out, image.data.data() + t->begin, t->nbytes());
  return absl::OkStatus();
}

}  // namespace caliber
