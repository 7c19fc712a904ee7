// cuda::Linear (cuBLAS) against caliber::Linear (OpenBLAS sgemm) on random inputs.
//
// Tolerances, with u = 2^-24 and B = |x|·|W|ᵀ (element-wise absolute values):
//  - float32: each side's dot product of length k is within γ_k·B ≈ k·u·B of the exact one
//    whatever the summation order, so |device − cpu| ≤ 2k·u·B element-wise (worst case); the
//    typical error is ~√k·u relative (core's float32 result is 3.4e-7 from the exact product on
//    these inputs, measured), checked as ‖device − cpu‖_F / ‖cpu‖_F ≤ 1e-5.
//  - TF32: inputs keep a 10-bit mantissa (relative error ≤ 2^-10 per input even if truncated),
//    so each product is off by ≤ 2·2^-10 relative: |device − cpu| ≤ (2·2^-10 + 2k·u)·B
//    element-wise, and ≤ 5e-3 relative in Frobenius norm (truncating both inputs to TF32 on the
//    host moves this product by 7.7e-4, measured).
#include "core/cuda/linear.h"

#include "core/cuda/host_transfer.h"
#include "core/model/ops.h"
#include "gpu_test_util.h"

namespace caliber::cuda {
namespace {

using testing::GpuTest;
using testing::kFloatU;
using testing::RandomNormal;
using testing::RelativeFrobenius;
using testing::WithinBound;

class LinearTest : public GpuTest {
 protected:
  void Check(bool allow_tf32, bool with_bias) {
    const int tokens = 67, in = 1024, out = 300;
    const MatrixF x = RandomNormal(tokens, in, 1);
    const MatrixF w = RandomNormal(out, in, 2, 0.03f);
    const VectorF bias = RandomNormal(out, 1, 3);
    const MatrixF want = caliber::Linear(x, w, with_bias ? &bias : nullptr);
    const MatrixF bound_base = x.cwiseAbs() * w.cwiseAbs().transpose();

    ASSERT_OK_AND_ASSIGN(DeviceMatrix<float> dx, Upload(ctx(), x));
    ASSERT_OK_AND_ASSIGN(DeviceMatrix<float> dw, Upload(ctx(), w));
    ASSERT_OK_AND_ASSIGN(DeviceBuffer<float> db, Upload(ctx(), bias));
    ASSERT_OK_AND_ASSIGN(DeviceMatrix<float> dy, DeviceMatrix<float>::Allocate(tokens, out));
    MatmulOptions options;
    options.allow_tf32 = allow_tf32;
    ASSERT_OK_AND_ASSIGN(MathMode mode, Linear(ctx(), dx, dw, with_bias ? &db : nullptr, dy, options));
    EXPECT_EQ(mode, ResolveMathMode(options, ctx().device().compute_major));
    if (!allow_tf32) {
      EXPECT_EQ(mode, MathMode::kFloat32);
    }
    ASSERT_OK_AND_ASSIGN(MatrixF got, Download(ctx(), dy));

    const double product_tol = mode == MathMode::kTf32 ? 2.0 / 1024.0 : 0.0;
    const double sum_tol = 2.0 * in * kFloatU;
    EXPECT_TRUE(WithinBound(got, want, [&](Eigen::Index r, Eigen::Index c) {
      // The bias add is one more rounding of |y| on each side.
      return (product_tol + sum_tol) * bound_base(r, c) + 2 * kFloatU * std::abs(want(r, c)) + 1e-30;
    }));
    EXPECT_LE(RelativeFrobenius(got, want), mode == MathMode::kTf32 ? 5e-3 : 1e-5);
  }
};

TEST_F(LinearTest, Float32MatchesCpu) { Check(/*allow_tf32=*/false, /*with_bias=*/false); }
TEST_F(LinearTest, Float32WithBiasMatchesCpu) { Check(false, true); }
TEST_F(LinearTest, Tf32IsRecordedAndWithinTf32Bounds) { Check(true, false); }

TEST_F(LinearTest, ShapeMismatchIsInvalidArgument) {
  ASSERT_OK_AND_ASSIGN(DeviceMatrix<float> dx, Upload(ctx(), RandomNormal(4, 16, 1)));
  ASSERT_OK_AND_ASSIGN(DeviceMatrix<float> dw, Upload(ctx(), RandomNormal(8, 15, 2)));
  ASSERT_OK_AND_ASSIGN(DeviceMatrix<float> dy, DeviceMatrix<float>::Allocate(4, 8));
  EXPECT_EQ(Linear(ctx(), dx, dw, nullptr, dy).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace caliber::cuda
