#include "core/formats/tensor_spec.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace caliber {
namespace {

template <typename T>
absl::StatusOr<std::vector<T>> ReadIntTensor(const Checkpoint& ckpt, const TensorSpec& spec, DType dtype) {
  absl::StatusOr<const TensorInfo*> info = ckpt.Info(spec.name);
  if (!info.ok()) return info.status();
  if ((*info)->dtype != dtype || (*info)->shape != spec.shape) {
    return absl::InvalidArgumentError(absl::StrCat(ckpt.dir(), ": tensor '", spec.name, "' must be ",
                                                   std::string(DTypeName(dtype)), " [",
                                                   absl::StrJoin(spec.shape, ", "), "]"));
  }
  absl::StatusOr<absl::Span<const uint8_t>> bytes = ckpt.Bytes(spec.name);
  if (!bytes.ok()) return bytes.status();
  std::vector<T> values(static_cast<size_t>((*info)->numel()));
  std::memcpy(values.data(), bytes->data(), bytes->size());
  return values;
}

}  // namespace

absl::StatusOr<std::vector<int32_t>> ReadI32Tensor(const Checkpoint& checkpoint, const TensorSpec& spec) {
  return ReadIntTensor<int32_t>(checkpoint, spec, DType::kI32);
}

absl::StatusOr<std::vector<int64_t>> ReadI64Tensor(const Checkpoint& checkpoint, const TensorSpec& spec) {
  return ReadIntTensor<int64_t>(checkpoint, spec, DType::kI64);
}

}  // namespace caliber
