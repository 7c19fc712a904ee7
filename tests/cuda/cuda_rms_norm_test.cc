// cuda::RmsNorm against caliber::RmsNorm (core/model/ops.h) on random inputs.
//
// Tolerance: both sides compute mean(x²) as a float32 sum of `width` positive terms, in
// different orders (core: Eigen's vectorized sequential sum; device: per-thread partial sums and
// a tree). A float32 sum of n positive terms is within about (n/8)·u relative of the exact sum
// for core's 8-lane accumulation, (n/threads + log2 threads)·u on the device, u = 2^-24: at
// width 4096 that is ≤ 3.1e-5 on mean(x²), ≤ 1.6e-5 after the square root, plus three rounded
// products. So |device − cpu| ≤ 2e-5·|cpu| element-wise is a worst-case bound, not a fit.
#include "core/cuda/rms_norm.h"

#include "core/cuda/host_transfer.h"
#include "core/model/ops.h"
#include "gpu_test_util.h"

namespace caliber::cuda {
namespace {

using testing::GpuTest;
using testing::RandomNormal;
using testing::WithinBound;

constexpr double kRelTol = 2e-5;

class RmsNormTest : public GpuTest {
 protected:
  void Check(const MatrixF& x, const VectorF& weight, float eps, bool in_place) {
    const MatrixF want = caliber::RmsNorm(x, weight, eps);
    ASSERT_OK_AND_ASSIGN(DeviceMatrix<float> dx, Upload(ctx(), x));
    ASSERT_OK_AND_ASSIGN(DeviceBuffer<float> dw, Upload(ctx(), weight));
    MatrixF got;
    if (in_place) {
      ASSERT_OK(RmsNorm(ctx(), dx, dw, eps, dx));
      ASSERT_OK_AND_ASSIGN(got, Download(ctx(), dx));
    } else {
      ASSERT_OK_AND_ASSIGN(DeviceMatrix<float> dy, DeviceMatrix<float>::Allocate(x.rows(), x.cols()));
      ASSERT_OK(RmsNorm(ctx(), dx, dw, eps, dy));
      ASSERT_OK_AND_ASSIGN(got, Download(ctx(), dy));
    }
    EXPECT_TRUE(WithinBound(got, want, [&](Eigen::Index r, Eigen::Index c) {
      return kRelTol * std::abs(static_cast<double>(want(r, c))) + 1e-30;
    }));
  }
};

TEST_F(RmsNormTest, HiddenWidthMatchesCpu) {
  MatrixF x = RandomNormal(37, 4096, 1, 2.0f);
  x.row(5).setZero();  // an all-zero row: sqrt(eps) path
  const VectorF w = (RandomNormal(4096, 1, 2, 0.1f).array() + 1.0f).matrix();
  Check(x, w, 1e-5f, /*in_place=*/false);
}

TEST_F(RmsNormTest, InPlaceMatchesCpu) {
  Check(RandomNormal(9, 2048, 3, 0.5f), (RandomNormal(2048, 1, 4).array() + 1.0f).matrix(), 1e-6f, true);
}

TEST_F(RmsNormTest, PerHeadChunksMatchCpu) {  // Qwen3's q/k norm: weight of head_dim
  Check(RandomNormal(19, 8 * 128, 5, 3.0f), (RandomNormal(128, 1, 6, 0.2f).array() + 1.0f).matrix(), 1e-6f, false);
}

TEST_F(RmsNormTest, OddWidthMatchesCpu) {
  Check(RandomNormal(4, 1000, 7), (RandomNormal(1000, 1, 8).array() + 1.0f).matrix(), 1e-5f, false);
}

TEST_F(RmsNormTest, WidthNotAMultipleIsInvalidArgument) {
  ASSERT_OK_AND_ASSIGN(DeviceMatrix<float> dx, Upload(ctx(), RandomNormal(2, 10, 9)));
  ASSERT_OK_AND_ASSIGN(DeviceBuffer<float> dw, Upload(ctx(), VectorF(VectorF::Ones(4))));
  EXPECT_EQ(RmsNorm(ctx(), dx, dw, 1e-6f, dx).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace caliber::cuda
