// cuda::DeviceHessianAccumulator (cuBLAS syrk / TF32 GEMM) against caliber::HessianAccumulator
// (OpenBLAS ssyrk) over several batches, including an empty one.
//
// Tolerances, with u = 2^-24, K = total tokens and B = (2/nsamples)·|X|ᵀ|X| over all batches:
//  - float32: every entry is a length-K float32 dot product, rescaled once per batch; each side
//    is within (K + 2·batches)·u·B of the exact value whatever the order, so
//    |device − cpu| ≤ 2(K + 2·batches)·u·B element-wise (worst case); typically far less (core's
//    float32 result is 2.4e-7 from the exact one here, measured), checked as
//    ‖device − cpu‖_F / ‖cpu‖_F ≤ 1e-5.
//  - TF32: add 2·2^-10·B for the inputs' 10-bit mantissas; Frobenius ≤ 5e-3 (truncating the
//    inputs to TF32 on the host moves this Hessian by 7.2e-4, measured).
// Both Finalize by mirroring the lower triangle, so the device result is exactly symmetric.
#include "core/cuda/hessian.h"

#include <vector>

#include "core/cuda/host_transfer.h"
#include "core/quant/hessian.h"
#include "gpu_test_util.h"

namespace caliber::cuda {
namespace {

using testing::GpuTest;
using testing::kFloatU;
using testing::RandomNormal;
using testing::RelativeFrobenius;
using testing::WithinBound;

struct Batch {
  int tokens;
  int sequences;
};

class HessianTest : public GpuTest {
 protected:
  void Check(bool allow_tf32) {
    const int n = 384;
    const std::vector<Batch> batches = {{256, 2}, {128, 1}, {0, 1}, {384, 3}};
    HessianAccumulator cpu(n, HessianAccumulator::Precision::kFloat32);
    MatmulOptions options;
    options.allow_tf32 = allow_tf32;
    ASSERT_OK_AND_ASSIGN(DeviceHessianAccumulator gpu, DeviceHessianAccumulator::Create(ctx(), n, options));
    MatrixD abs_gram = MatrixD::Zero(n, n);
    int total_tokens = 0, total_seqs = 0;
    uint32_t seed = 10;
    for (const Batch& b : batches) {
      MatrixF x = RandomNormal(b.tokens, n, seed++);
      for (int c = 0; c < n; ++c) x.col(c) *= 1.0f + 0.1f * static_cast<float>(c % 7);
      cpu.AddBatch(x, b.sequences);
      ASSERT_OK_AND_ASSIGN(DeviceMatrix<float> dx, Upload(ctx(), x));
      ASSERT_OK(gpu.AddBatch(dx, b.sequences));
      const MatrixD ax = x.cast<double>().cwiseAbs();
      abs_gram += ax.transpose() * ax;
      total_tokens += b.tokens;
      total_seqs += b.sequences;
    }
    EXPECT_EQ(gpu.nsamples(), cpu.nsamples());
    EXPECT_EQ(gpu.tokens(), cpu.tokens());
    const MathMode expected = ResolveMathMode(options, ctx().device().compute_major);
    EXPECT_EQ(gpu.math_mode(), expected);

    const MatrixF want = cpu.Finalize();
    ASSERT_OK_AND_ASSIGN(DeviceMatrix<float> dh, gpu.Finalize());
    ASSERT_OK_AND_ASSIGN(MatrixF got, Download(ctx(), dh));
    EXPECT_TRUE(got == got.transpose()) << "device Hessian not exactly symmetric";

    const MatrixD bound_base = abs_gram * (2.0 / total_seqs);
    const double tol = 2.0 * (total_tokens + 2.0 * static_cast<double>(batches.size())) * kFloatU +
                       (expected == MathMode::kTf32 ? 2.0 / 1024.0 : 0.0);
    EXPECT_TRUE(WithinBound(got, want, [&](Eigen::Index r, Eigen::Index c) { return tol * bound_base(r, c) + 1e-30; }));
    EXPECT_LE(RelativeFrobenius(got, want), expected == MathMode::kTf32 ? 5e-3 : 1e-5);
  }
};

TEST_F(HessianTest, Float32SyrkMatchesCpu) { Check(/*allow_tf32=*/false); }
TEST_F(HessianTest, Tf32GemmIsRecordedAndWithinTf32Bounds) { Check(true); }

TEST_F(HessianTest, BadBatchIsInvalidArgumentAndChangesNothing) {
  ASSERT_OK_AND_ASSIGN(DeviceHessianAccumulator gpu, DeviceHessianAccumulator::Create(ctx(), 64));
  ASSERT_OK_AND_ASSIGN(DeviceMatrix<float> wrong_width, Upload(ctx(), RandomNormal(8, 63, 1)));
  EXPECT_EQ(gpu.AddBatch(wrong_width, 1).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_OK_AND_ASSIGN(DeviceMatrix<float> x, Upload(ctx(), RandomNormal(8, 64, 2)));
  EXPECT_EQ(gpu.AddBatch(x, 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(gpu.nsamples(), 0);
  EXPECT_EQ(gpu.tokens(), 0);
}

}  // namespace
}  // namespace caliber::cuda
