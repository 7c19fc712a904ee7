#include <cstring>
#include <vector>

#include "core/cuda/context.h"
#include "core/cuda/convert.h"
#include "core/cuda/device_buffer.h"
#include "core/cuda/device.h"
#include "core/tensor/dtype.h"
#include "gtest/gtest.h"

namespace caliber::cuda {
namespace {

#define REQUIRE_GPU() \
  if (DeviceCount() == 0) GTEST_SKIP() << "no CUDA device: GPU test skipped, not passed"

TEST(CudaBackend, DeviceInfo) {
  REQUIRE_GPU();
  auto info = GetDeviceInfo(0);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_GE(info->compute_major, 7);
  EXPECT_GT(info->total_memory, 0u);
}

TEST(CudaBackend, Bf16ConversionIsBitExactWithCpu) {
  REQUIRE_GPU();
  std::vector<uint16_t> all(65536);
  for (int i = 0; i < 65536; ++i) all[i] = static_cast<uint16_t>(i);
  auto gpu = Bf16ToFloatOnDevice(all);
  ASSERT_TRUE(gpu.ok()) << gpu.status();
  for (int i = 0; i < 65536; ++i) {
    const float cpu = BF16ToFloat(all[i]);
    ASSERT_EQ(std::memcmp(&cpu, &(*gpu)[i], sizeof(float)), 0) << "bits " << i;
  }
}

TEST(CudaBackend, ContextAndBufferRoundTrip) {
  REQUIRE_GPU();
  auto ctx = CudaContext::Create();
  ASSERT_TRUE(ctx.ok()) << ctx.status();
  std::vector<float> host(1000);
  for (size_t i = 0; i < host.size(); ++i) host[i] = static_cast<float>(i) * 0.5f - 3.0f;
  auto a = DeviceBuffer<float>::FromHost(host, (*ctx)->stream());
  ASSERT_TRUE(a.ok()) << a.status();
  auto b = DeviceBuffer<float>::Allocate(host.size());
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_TRUE(b->CopyFrom(*a, (*ctx)->stream()).ok());
  ASSERT_TRUE(a->SetZero((*ctx)->stream()).ok());
  auto back = b->ToHost((*ctx)->stream());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, host);
  auto zeros = a->ToHost((*ctx)->stream());
  ASSERT_TRUE(zeros.ok()) << zeros.status();
  EXPECT_EQ(*zeros, std::vector<float>(host.size(), 0.0f));
  DeviceBuffer<float> moved = *std::move(b);  // ownership moves; one cudaFree at scope end
  EXPECT_EQ(moved.size(), host.size());
  EXPECT_EQ(a->CopyFromHost(std::vector<float>(3), (*ctx)->stream()).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE((*ctx)->Synchronize().ok());
}

TEST(CudaBackend, DeviceLevelBf16ConversionIsBitExactWithCpu) {
  REQUIRE_GPU();
  auto ctx = CudaContext::Create();
  ASSERT_TRUE(ctx.ok()) << ctx.status();
  std::vector<uint16_t> all(65536);
  for (int i = 0; i < 65536; ++i) all[i] = static_cast<uint16_t>(i);
  auto in = DeviceBuffer<uint16_t>::FromHost(all, (*ctx)->stream());
  ASSERT_TRUE(in.ok()) << in.status();
  auto out = DeviceBuffer<float>::Allocate(all.size());
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_TRUE(Bf16ToFloat(**ctx, *in, *out).ok());
  auto gpu = out->ToHost((*ctx)->stream());
  ASSERT_TRUE(gpu.ok()) << gpu.status();
  for (int i = 0; i < 65536; ++i) {
    const float cpu = BF16ToFloat(all[i]);
    ASSERT_EQ(std::memcmp(&cpu, &(*gpu)[i], sizeof(float)), 0) << "bits " << i;
  }
}

}  // namespace
}  // namespace caliber::cuda
