#include "core/formats/gptq_linear.h"

#include "absl/strings/str_cat.h"
#include "core/formats/gptq_pack.h"

namespace caliber {
namespace {

int NumGroups(int in_features, int group_size) {
  return group_size <= 0 ? 1 : (in_features + group_size - 1) / group_size;
}

IntMatrix ToMatrix(const std::vector<int32_t>& v, const TensorSpec& spec) {
  return Eigen::Map<const IntMatrix>(v.data(), spec.shape[0], spec.shape[1]);
}

}  // namespace

std::vector<TensorSpec> GptqLinearTensors(const std::string& base, int out, int in,
                                          const GptqQuantization& q) {
  const int64_t groups = NumGroups(in, q.group_size);
  return {{base + ".qweight", {int64_t(in) * q.bits / 32, out}},
          {base + ".qzeros", {groups, int64_t(out) * q.bits / 32}},
          {base + ".scales", {groups, out}},
          {base + ".g_idx", {in}}};
}

absl::StatusOr<MatrixF> ReadGptqLinear(const Checkpoint& ckpt, const std::string& base, int out,
                                       int in, const GptqQuantization& q) {
  const std::vector<TensorSpec> specs = GptqLinearTensors(base, out, in, q);
  GptqTensors t;
  t.bits = q.bits;
  t.group_size = q.group_size;
  absl::StatusOr<std::vector<int32_t>> qweight = ReadI32Tensor(ckpt, specs[0]);
  if (!qweight.ok()) return qweight.status();
  t.qweight = ToMatrix(*qweight, specs[0]);
  absl::StatusOr<std::vector<int32_t>> qzeros = ReadI32Tensor(ckpt, specs[1]);
  if (!qzeros.ok()) return qzeros.status();
  t.qzeros = ToMatrix(*qzeros, specs[1]);
  absl::StatusOr<std::vector<float>> scales = ckpt.ReadFloat(specs[2].name, specs[2].shape);
  if (!scales.ok()) return scales.status();
  t.scales = ConstMapMatrixF(scales->data(), specs[2].shape[0], out);
  absl::StatusOr<std::vector<int32_t>> g_idx = ReadI32Tensor(ckpt, specs[3]);
  if (!g_idx.ok()) return g_idx.status();
  t.g_idx = *std::move(g_idx);
  for (int i = 0; i < in; ++i) {
    if (t.g_idx[i] < 0 || t.g_idx[i] >= specs[1].shape[0]) {
      return absl::InvalidArgumentError(absl::StrCat(ckpt.dir(), ": tensor '", specs[3].name,
                                                     "' entry ", i, " = ", t.g_idx[i],
                                                     " is not a valid group"));
    }
  }
  absl::StatusOr<QuantizedLinear> unpacked = UnpackGptq(t, q.sym);
  if (!unpacked.ok()) {
    return absl::Status(unpacked.status().code(),
                        absl::StrCat(base, ": ", std::string(unpacked.status().message())));
  }
  // UnpackGptq wraps the stored (zero - 1) field modulo 2^bits, reading the all-ones field as
  // zero 0. v1 kernels (AutoGPTQ cuda/exllama, vLLM gptq_gemm) compute field + 1 without the
  // wrap, i.e. zero 2^bits; read the checkpoint the way it will be served.
  for (int32_t& z : unpacked->zeros.reshaped()) {
    if (z == 0) z = int32_t{1} << q.bits;
  }
  return unpacked->Dequantize();
}

}  // namespace caliber
