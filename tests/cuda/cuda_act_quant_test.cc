// cuda::FakeQuantizePerToken against caliber::FakeQuantizePerToken (core/quant/act_quant.h).
// Tolerance: none — every step is one correctly rounded float32 operation on both sides
// (absmax is a max, order-free), so the results must be bit-identical, ties included.
#include "core/cuda/act_quant.h"

#include "core/cuda/host_transfer.h"
#include "core/quant/act_quant.h"
#include "gpu_test_util.h"

namespace caliber::cuda {
namespace {

using testing::BitIdentical;
using testing::GpuTest;
using testing::RandomNormal;

class ActQuantTest : public GpuTest {
 protected:
  void Check(const MatrixF& x, int bits) {
    MatrixF want = x;
    caliber::FakeQuantizePerToken(want, bits);
    ASSERT_OK_AND_ASSIGN(DeviceMatrix<float> dx, Upload(ctx(), x));
    ASSERT_OK(FakeQuantizePerToken(ctx(), dx, bits));
    ASSERT_OK_AND_ASSIGN(MatrixF got, Download(ctx(), dx));
    EXPECT_TRUE(BitIdentical(got, want)) << bits << " bits";
  }
};

TEST_F(ActQuantTest, Int8MatchesCpuBitForBit) {
  MatrixF x = RandomNormal(41, 4096, 1, 3.0f);
  x.row(3).setZero();                           // all zeros: unchanged
  x.row(4).setConstant(-0.0f);                  // negative zeros: unchanged (absmax 0)
  for (int i = 0; i < 4096; ++i) x(5, i) = static_cast<float>(i % 254 - 127) + 0.5f;  // ties
  x(5, 0) = 127.0f;                             // absmax 127: scale 1, ties round half to even
  x(6, 7) = 1e4f;                               // one outlier
  Check(x, 8);
}

TEST_F(ActQuantTest, FourBitsAndNarrowRowsMatchCpuBitForBit) {
  Check(RandomNormal(300, 1, 2), 4);
  Check(RandomNormal(7, 5000, 3, 0.01f), 4);
  Check(RandomNormal(64, 96, 4), 2);
}

TEST_F(ActQuantTest, BadBitsIsInvalidArgument) {
  ASSERT_OK_AND_ASSIGN(DeviceMatrix<float> dx, Upload(ctx(), RandomNormal(2, 8, 5)));
  EXPECT_EQ(FakeQuantizePerToken(ctx(), dx, 16).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(FakeQuantizePerToken(ctx(), dx, 1).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace caliber::cuda
