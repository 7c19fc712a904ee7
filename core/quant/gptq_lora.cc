#include "core/quant/gptq_lora.h"

#include <chrono>

#include "absl/strings/str_format.h"
#include "core/quant/gptq.h"
#include "core/quant/linalg.h"
#include "core/quant/quant_grid.h"

namespace caliber {

absl::StatusOr<MatrixF> LoraBasis(const MatrixF& H, int rank, int a_bits) {
  absl::StatusOr<EigenPairs> top = TopEigenpairs(H.cast<double>(), rank);
  if (!top.ok()) return top.status();
  MatrixF A = top->vectors.transpose().cast<float>();
  if (a_bits > 0) {
    const float maxq = static_cast<float>(MaxQ(a_bits));
    const GridParams p = FindParams(A, a_bits, /*sym=*/true, /*mse=*/false);
    for (int k = 0; k < A.rows(); ++k) {
      for (int i = 0; i < A.cols(); ++i) {
        A(k, i) = Dequant(QuantCode(A(k, i), p.scale[k], p.zero[k], maxq), p.scale[k], p.zero[k]);
      }
    }
  }
  return A;
}

MatrixF AugmentedHessian(const MatrixF& H, const MatrixF& A) {
  const int in = static_cast<int>(H.rows());
  const int r = static_cast<int>(A.rows());
  const MatrixD Hd = H.cast<double>();
  const MatrixD HAt = Hd * A.cast<double>().transpose();  // [in x r]
  MatrixD AHAt = A.cast<double>() * HAt;                   // [r x r]
  AHAt = (0.5 * (AHAt + AHAt.transpose())).eval();
  MatrixF aug(in + r, in + r);
  aug.topLeftCorner(in, in) = H;
  aug.topRightCorner(in, r) = HAt.cast<float>();
  aug.bottomLeftCorner(r, in) = HAt.transpose().cast<float>();
  aug.bottomRightCorner(r, r) = AHAt.cast<float>();
  return aug;
}

absl::StatusOr<QuantizedLinear> GptqLoraQuantize(const MatrixF& W, const MatrixF& H,
                                                 const QuantSpec& spec) {
  const auto start = std::chrono::steady_clock::now();
  const int out = static_cast<int>(W.rows());
  const int in = static_cast<int>(W.cols());
  if (absl::Status s = Validate(spec, in); !s.ok()) return s;
  if (spec.lora_rank <= 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("gptq_lora needs lora_rank > 0, got %d", spec.lora_rank));
  }
  const int r = spec.lora_rank;

  absl::StatusOr<MatrixF> A = LoraBasis(H, r, spec.lora_a_bits);
  if (!A.ok()) return A.status();

  MatrixF W_aug = MatrixF::Zero(out, in + r);
  W_aug.leftCols(in) = W;
  absl::StatusOr<GptqPassResult> pass = GptqPass(W_aug, AugmentedHessian(H, *A), in, spec);
  if (!pass.ok()) return pass.status();

  QuantizedLinear q = std::move(pass->quantized);
  q.lora_a = *std::move(A);
  q.lora_b = std::move(pass->tail);
  q.report.method = "gptq_lora";
  q.report.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return q;
}

}  // namespace caliber
