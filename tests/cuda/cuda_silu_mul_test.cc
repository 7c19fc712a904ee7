// cuda::SiluMul against caliber::SiluMulInPlace (core/model/ops.h) on random inputs.
//
// Tolerance: g / (1 + exp(−g)) · up has no cancellation, so each side is within a few ulp of
// the exact value: the device expf is within 2 ulp, Eigen's vectorized exp within about 1 ulp,
// plus one rounding each for the add, the division and the product. |device − cpu| ≤ 16u·|cpu|
// (u = 2^-24) leaves twice that margin; 1e-30 absolute covers results that underflow.
#include "core/cuda/silu_mul.h"

#include "core/cuda/host_transfer.h"
#include "core/model/ops.h"
#include "gpu_test_util.h"

namespace caliber::cuda {
namespace {

using testing::GpuTest;
using testing::kFloatU;
using testing::RandomNormal;
using testing::WithinBound;

class SiluMulTest : public GpuTest {};

TEST_F(SiluMulTest, MatchesCpu) {
  MatrixF gate = RandomNormal(33, 1408, 1, 4.0f);
  gate(0, 0) = 0.0f;
  gate(0, 1) = -30.0f;
  gate(0, 2) = 30.0f;
  gate(0, 3) = -0.0f;
  const MatrixF up = RandomNormal(33, 1408, 2);
  MatrixF want = gate;
  caliber::SiluMulInPlace(want, up);
  ASSERT_OK_AND_ASSIGN(DeviceMatrix<float> dgate, Upload(ctx(), gate));
  ASSERT_OK_AND_ASSIGN(DeviceMatrix<float> dup, Upload(ctx(), up));
  ASSERT_OK(SiluMul(ctx(), dgate, dup));
  ASSERT_OK_AND_ASSIGN(MatrixF got, Download(ctx(), dgate));
  EXPECT_TRUE(WithinBound(got, want, [&](Eigen::Index r, Eigen::Index c) {
    return 16 * kFloatU * std::abs(static_cast<double>(want(r, c))) + 1e-30;
  }));
}

TEST_F(SiluMulTest, ShapeMismatchIsInvalidArgument) {
  ASSERT_OK_AND_ASSIGN(DeviceMatrix<float> dgate, Upload(ctx(), RandomNormal(2, 8, 3)));
  ASSERT_OK_AND_ASSIGN(DeviceMatrix<float> dup, Upload(ctx(), RandomNormal(2, 9, 4)));
  EXPECT_EQ(SiluMul(ctx(), dgate, dup).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace caliber::cuda
