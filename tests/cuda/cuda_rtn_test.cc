// cuda::FindGroupGrid + cuda::QuantizeWithGrid against caliber::RtnQuantize (core/quant/rtn.h)
// on quant.py's grid. Tolerance: none — min/max are order-free and every other step is one
// correctly rounded float32 operation on both sides, so scales, zeros, codes and dequantized
// weights must be bit-identical.
#include "core/cuda/rtn.h"

#include <ostream>

#include "absl/strings/str_cat.h"
#include "core/cuda/host_transfer.h"
#include "core/quant/rtn.h"
#include "gpu_test_util.h"

namespace caliber::cuda {
namespace {

using testing::BitIdentical;
using testing::GpuTest;
using testing::RandomNormal;

struct Case {
  int bits;
  int group_size;
  bool sym;
};

// Named by value (the default would print the struct's bytes, padding included).
void PrintTo(const Case& c, std::ostream* os) {
  *os << "bits=" << c.bits << " group_size=" << c.group_size << (c.sym ? " sym" : " asym");
}

class RtnTest : public GpuTest, public ::testing::WithParamInterface<Case> {};

MatrixF TestWeights() {
  MatrixF w = RandomNormal(70, 320, 11, 0.05f);  // 320 = 2·128 + 64: a shorter last group
  w.row(3).setZero();                              // all zero: the [−1, 1] fallback
  w.row(4) = w.row(4).cwiseAbs();                  // positive only: xmin clamps to 0
  w.row(5) = -w.row(5).cwiseAbs();                 // negative only: xmax clamps to 0
  w(6, 17) = 3.0f;                                 // an outlier
  return w;
}

TEST_P(RtnTest, GridCodesAndDequantizedMatchCpuBitForBit) {
  const Case c = GetParam();
  const MatrixF w = TestWeights();
  QuantSpec spec;
  spec.bits = c.bits;
  spec.group_size = c.group_size;
  spec.sym = c.sym;
  absl::StatusOr<QuantizedLinear> cpu = RtnQuantize(w, spec);
  ASSERT_TRUE(cpu.ok()) << cpu.status();

  ASSERT_OK_AND_ASSIGN(DeviceMatrix<float> dw, Upload(ctx(), w));
  ASSERT_OK_AND_ASSIGN(DeviceGroupGrid grid, FindGroupGrid(ctx(), dw, c.bits, c.group_size, c.sym));
  ASSERT_OK_AND_ASSIGN(DeviceMatrix<uint8_t> codes, DeviceMatrix<uint8_t>::Allocate(w.rows(), w.cols()));
  ASSERT_OK_AND_ASSIGN(DeviceMatrix<float> deq, DeviceMatrix<float>::Allocate(w.rows(), w.cols()));
  ASSERT_OK(QuantizeWithGrid(ctx(), dw, grid, &codes, &deq));

  ASSERT_OK_AND_ASSIGN(MatrixF scales, Download(ctx(), grid.scales));
  ASSERT_OK_AND_ASSIGN(MatrixF zeros, Download(ctx(), grid.zeros));
  ASSERT_OK_AND_ASSIGN(CodeMatrix got_codes, Download(ctx(), codes));
  ASSERT_OK_AND_ASSIGN(MatrixF got_deq, Download(ctx(), deq));
  EXPECT_TRUE(BitIdentical(scales, cpu->scales));
  EXPECT_TRUE(BitIdentical(zeros, cpu->zeros.cast<float>()));
  EXPECT_TRUE(got_codes == cpu->codes);
  EXPECT_TRUE(BitIdentical(got_deq, cpu->Dequantize()));
}

INSTANTIATE_TEST_SUITE_P(Grids, RtnTest,
                         ::testing::Values(Case{4, 128, true}, Case{4, 128, false}, Case{3, 128, true},
                                           Case{2, 32, false}, Case{8, 64, true}, Case{4, -1, true},
                                           Case{3, -1, false}),
                         [](const ::testing::TestParamInfo<Case>& param_info) {
                           const Case& c = param_info.param;
                           return absl::StrCat("w", c.bits, "_g",
                                               c.group_size == -1 ? "channel" : absl::StrCat(c.group_size),
                                               c.sym ? "_sym" : "_asym");
                         });

class RtnGridTest : public GpuTest {};

// The MSE clipping search stays on the host: its grid, uploaded, quantizes like core's codes.
TEST_F(RtnGridTest, UploadedMseGridReproducesCpuCodes) {
  const MatrixF w = TestWeights();
  QuantSpec spec;
  spec.bits = 3;
  spec.group_size = 64;
  spec.sym = false;
  spec.mse = true;
  absl::StatusOr<QuantizedLinear> cpu = RtnQuantize(w, spec);
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  ASSERT_OK_AND_ASSIGN(DeviceMatrix<float> dw, Upload(ctx(), w));
  ASSERT_OK_AND_ASSIGN(DeviceGroupGrid grid, UploadGroupGrid(ctx(), cpu->scales, cpu->zeros, 3, 64));
  ASSERT_OK_AND_ASSIGN(DeviceMatrix<uint8_t> codes, DeviceMatrix<uint8_t>::Allocate(w.rows(), w.cols()));
  ASSERT_OK(QuantizeWithGrid(ctx(), dw, grid, &codes, nullptr));
  ASSERT_OK_AND_ASSIGN(CodeMatrix got, Download(ctx(), codes));
  EXPECT_TRUE(got == cpu->codes);
}

TEST_F(RtnGridTest, MismatchedGridIsInvalidArgument) {
  ASSERT_OK_AND_ASSIGN(DeviceMatrix<float> dw, Upload(ctx(), RandomNormal(8, 256, 1)));
  ASSERT_OK_AND_ASSIGN(DeviceGroupGrid grid, FindGroupGrid(ctx(), dw, 4, 128, true));
  grid.group_size = 64;  // the grid has 2 groups, W would need 4
  EXPECT_EQ(QuantizeWithGrid(ctx(), dw, grid, nullptr, nullptr).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(FindGroupGrid(ctx(), dw, 9, 128, true).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace caliber::cuda
