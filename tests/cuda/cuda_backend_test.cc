#include <cstring>

#include "core/cuda/convert.h"
#include "core/cuda/device.h"
#include "core/tensor/dtype.h"
#include "gtest/gtest.h"

namespace caliber::cuda {
namespace {

#define REQUIRE_GPU() \
  if (DeviceCount() == 0) GTEST_SKIP() << "no CUDA device: GPU test skipped, not passed"

TEST(CudaBackend, NoDeviceIsAStatusNotACrash) {
  if (DeviceCount() > 0) GTEST_SKIP() << "a device is present";
  auto r = Bf16ToFloatOnDevice(std::vector<uint16_t>{0x3f80});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(GetDeviceInfo(0).ok());
}

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

}  // namespace
}  // namespace caliber::cuda
