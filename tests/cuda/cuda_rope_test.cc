// cuda::ApplyRope against caliber::RopeTable::Apply (core/model/rope.h), from the same table.
//
// Tolerance: the device rounds every product and sum (as torch does); the host compiler may
// fuse core's x1·cos − x2·sin into an FMA, which skips one product rounding. The two then differ
// by at most a couple of roundings of the terms: |device − cpu| ≤ 4u·(|x1·cos| + |x2·sin|),
// u = 2^-24 (a worst-case bound).
#include "core/cuda/rope.h"

#include "core/cuda/host_transfer.h"
#include "core/model/rope.h"
#include "gpu_test_util.h"

namespace caliber::cuda {
namespace {

using testing::GpuTest;
using testing::kFloatU;
using testing::RandomNormal;
using testing::WithinBound;

ModelConfig RopeConfig(bool llama3) {
  ModelConfig c;
  c.hidden_size = 512;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 128;
  c.rope_theta = llama3 ? 500000.0 : 10000.0;
  if (llama3) {
    c.rope_scaling.type = RopeScaling::Type::kLlama3;
    c.rope_scaling.factor = 8.0;
    c.rope_scaling.low_freq_factor = 1.0;
    c.rope_scaling.high_freq_factor = 4.0;
    c.rope_scaling.original_max_position_embeddings = 8192;
  }
  return c;
}

class RopeTest : public GpuTest {
 protected:
  void Check(const ModelConfig& c, int num_seqs, int seq_len, int num_heads, uint32_t seed) {
    const RopeTable table(c, 96);
    const MatrixF x = RandomNormal(static_cast<Eigen::Index>(num_seqs) * seq_len,
                                   static_cast<Eigen::Index>(num_heads) * c.head_dim, seed, 2.0f);
    MatrixF want = x;
    table.Apply(want, num_seqs, seq_len, num_heads, c.head_dim);
    ASSERT_OK_AND_ASSIGN(DeviceRopeTable dtable, UploadRopeTable(ctx(), table));
    ASSERT_OK_AND_ASSIGN(DeviceMatrix<float> dx, Upload(ctx(), x));
    ASSERT_OK(ApplyRope(ctx(), dtable, dx, num_seqs, seq_len, num_heads, c.head_dim));
    ASSERT_OK_AND_ASSIGN(MatrixF got, Download(ctx(), dx));
    const int half = c.head_dim / 2;
    EXPECT_TRUE(WithinBound(got, want, [&](Eigen::Index r, Eigen::Index col) {
      const int pos = static_cast<int>(r % seq_len);
      const Eigen::Index head0 = (col / c.head_dim) * c.head_dim;
      const int i = static_cast<int>((col - head0) % half);
      const double a = x(r, head0 + i);         // x1
      const double b = x(r, head0 + half + i);  // x2
      const double cs = table.cos()(pos, i);
      const double sn = table.sin()(pos, i);
      return 4 * kFloatU * (std::abs(a * cs) + std::abs(b * sn)) + 1e-30;
    }));
  }
};

TEST_F(RopeTest, QueriesMatchCpu) { Check(RopeConfig(false), 3, 50, 4, 1); }
TEST_F(RopeTest, KeysWithFewerHeadsMatchCpu) { Check(RopeConfig(false), 2, 96, 2, 2); }
TEST_F(RopeTest, Llama3ScaledTableMatchesCpu) { Check(RopeConfig(true), 1, 77, 4, 3); }

TEST_F(RopeTest, SequenceLongerThanTableIsInvalidArgument) {
  const ModelConfig c = RopeConfig(false);
  const RopeTable table(c, 8);
  ASSERT_OK_AND_ASSIGN(DeviceRopeTable dtable, UploadRopeTable(ctx(), table));
  ASSERT_OK_AND_ASSIGN(DeviceMatrix<float> dx, Upload(ctx(), RandomNormal(16, 128, 4)));
  EXPECT_EQ(ApplyRope(ctx(), dtable, dx, 1, 16, 1, 128).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace caliber::cuda
