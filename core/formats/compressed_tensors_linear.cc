#include "core/formats/compressed_tensors_linear.h"

#include "absl/strings/str_cat.h"
#include "core/formats/compressed_tensors_pack.h"

namespace caliber {
namespace {

int64_t PackedLength(int64_t n, int bits) { return (n + 32 / bits - 1) / (32 / bits); }

IntMatrix ToMatrix(const std::vector<int32_t>& v, const TensorSpec& spec) {
  return Eigen::Map<const IntMatrix>(v.data(), spec.shape[0], spec.shape[1]);
}

}  // namespace

std::vector<TensorSpec> CompressedTensorsLinearTensors(const std::string& base, int out, int in,
                                                       const CompressedTensorsQuantization& q) {
  const int64_t groups = q.group_size <= 0 ? 1 : int64_t{in} / q.group_size;
  std::vector<TensorSpec> specs = {{base + ".weight_packed", {out, PackedLength(in, q.bits)}},
                                   {base + ".weight_scale", {out, groups}},
                                   {base + ".weight_shape", {2}}};
  if (!q.sym) specs.push_back({base + ".weight_zero_point", {PackedLength(out, q.bits), groups}});
  if (q.g_idx) specs.push_back({base + ".weight_g_idx", {in}});
  return specs;
}

absl::StatusOr<MatrixF> ReadCompressedTensorsLinear(const Checkpoint& ckpt, const std::string& base,
                                                    int out, int in,
                                                    const CompressedTensorsQuantization& q) {
  if (q.group_size > 0 && in % q.group_size != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        ckpt.dir(), ": ", base, ": group_size ", q.group_size, " does not divide in_features ", in,
        " (compressed-tensors groups are equal)"));
  }
  const std::vector<TensorSpec> specs = CompressedTensorsLinearTensors(base, out, in, q);
  CompressedTensorsTensors t;
  t.bits = q.bits;
  t.group_size = q.group_size;
  absl::StatusOr<std::vector<int32_t>> packed = ReadI32Tensor(ckpt, specs[0]);
  if (!packed.ok()) return packed.status();
  t.weight_packed = ToMatrix(*packed, specs[0]);
  absl::StatusOr<std::vector<float>> scales = ckpt.ReadFloat(specs[1].name, specs[1].shape);
  if (!scales.ok()) return scales.status();
  t.weight_scale = ConstMapMatrixF(scales->data(), specs[1].shape[0], specs[1].shape[1]);
  absl::StatusOr<std::vector<int64_t>> shape = ReadI64Tensor(ckpt, specs[2]);
  if (!shape.ok()) return shape.status();
  if ((*shape)[0] != out || (*shape)[1] != in) {
    return absl::InvalidArgumentError(absl::StrCat(ckpt.dir(), ": tensor '", specs[2].name, "' is [",
                                                   (*shape)[0], ", ", (*shape)[1], "], the config says [",
                                                   out, ", ", in, "]"));
  }
  t.weight_shape = {out, in};
  size_t next = 3;
  if (!q.sym) {
    absl::StatusOr<std::vector<int32_t>> zp = ReadI32Tensor(ckpt, specs[next]);
    if (!zp.ok()) return zp.status();
    t.weight_zero_point = ToMatrix(*zp, specs[next]);
    ++next;
  }
  if (q.g_idx) {
    absl::StatusOr<std::vector<int32_t>> g_idx = ReadI32Tensor(ckpt, specs[next]);
    if (!g_idx.ok()) return g_idx.status();
    t.weight_g_idx = *std::move(g_idx);
  }
  absl::StatusOr<QuantizedLinear> unpacked = UnpackCompressedTensors(t, q.sym);
  if (!unpacked.ok()) {
    return absl::Status(unpacked.status().code(),
                        absl::StrCat(ckpt.dir(), ": ", base, ": ", std::string(unpacked.status().message())));
  }
  return unpacked->Dequantize();
}

}  // namespace caliber
