// The CUDA backend without a usable device: every entry point returns a Status
// (FailedPrecondition naming the cause) instead of crashing, and the error translation is exact.
// CTest runs this with CUDA_VISIBLE_DEVICES=-1, which hides every GPU, so it runs (and passes)
// on GPU machines too; labelled "cuda", not "gpu", since it needs no device.
#include <cublas_api.h>
#include <cuda_runtime_api.h>
#include <cusolver_common.h>

#include <cstdlib>
#include <vector>

#include "core/cuda/blas_status.h"
#include "core/cuda/context.h"
#include "core/cuda/convert.h"
#include "core/cuda/device.h"
#include "core/cuda/device_buffer.h"
#include "core/cuda/device_matrix.h"
#include "core/cuda/math_mode.h"
#include "gtest/gtest.h"

namespace caliber::cuda {
namespace {

class NoDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (DeviceCount() > 0) GTEST_SKIP() << "a device is visible (run with CUDA_VISIBLE_DEVICES=-1)";
  }
};

constexpr absl::StatusCode kNoDevice = absl::StatusCode::kFailedPrecondition;

TEST_F(NoDeviceTest, RequireDeviceSaysWhy) {
  const absl::Status s = RequireDevice();
  EXPECT_EQ(s.code(), kNoDevice);
  EXPECT_NE(s.message().find("no usable CUDA device"), absl::string_view::npos) << s;
}

TEST_F(NoDeviceTest, ContextCreationIsFailedPrecondition) {
  EXPECT_EQ(CudaContext::Create().status().code(), kNoDevice);
  EXPECT_EQ(CudaContext::Create(3).status().code(), kNoDevice);
  EXPECT_EQ(GetDeviceInfo(0).status().code(), kNoDevice);
}

TEST_F(NoDeviceTest, AllocationAndUploadAreFailedPrecondition) {
  EXPECT_EQ(DeviceBuffer<float>::Allocate(16).status().code(), kNoDevice);
  EXPECT_EQ(DeviceBuffer<float>::Allocate(0).status().code(), kNoDevice);
  const std::vector<float> host(8, 1.0f);
  EXPECT_EQ(DeviceBuffer<float>::FromHost(host, nullptr).status().code(), kNoDevice);
  EXPECT_EQ(DeviceMatrix<float>::Allocate(2, 3).status().code(), kNoDevice);
  EXPECT_EQ(DeviceMatrix<double>::Allocate(2, 3).status().code(), kNoDevice);
}

TEST_F(NoDeviceTest, Bf16ConversionIsFailedPrecondition) {
  EXPECT_EQ(Bf16ToFloatOnDevice(std::vector<uint16_t>{0x3f80}).status().code(), kNoDevice);
  EXPECT_EQ(Bf16ToFloatOnDevice({}).status().code(), kNoDevice);
}

TEST_F(NoDeviceTest, EmptyBuffersNeedNoDevice) {
  DeviceBuffer<float> a;
  DeviceBuffer<float> b = std::move(a);
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.data(), nullptr);
  // A size mismatch is caught before any CUDA call.
  std::vector<float> host(4);
  EXPECT_EQ(b.CopyToHost(absl::MakeSpan(host), nullptr).code(), absl::StatusCode::kInvalidArgument);
}

// Error translation and shape checks: plain functions, no device involved.
TEST(CudaStatusTest, RuntimeErrorsMapToPreciseCodes) {
  EXPECT_TRUE(CudaStatus(cudaSuccess, "x").ok());
  EXPECT_EQ(CudaStatus(cudaErrorNoDevice, "x").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(CudaStatus(cudaErrorInsufficientDriver, "x").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(CudaStatus(cudaErrorDevicesUnavailable, "x").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(CudaStatus(cudaErrorMemoryAllocation, "x").code(), absl::StatusCode::kResourceExhausted);
  const absl::Status s = CudaStatus(cudaErrorLaunchFailure, "MyKernel launch");
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_NE(s.message().find("MyKernel launch: cudaErrorLaunchFailure"), absl::string_view::npos) << s;
}

TEST(CudaStatusTest, LibraryErrorsMapToPreciseCodes) {
  EXPECT_TRUE(CublasStatus(CUBLAS_STATUS_SUCCESS, "x").ok());
  EXPECT_EQ(CublasStatus(CUBLAS_STATUS_NOT_INITIALIZED, "x").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(CublasStatus(CUBLAS_STATUS_ALLOC_FAILED, "x").code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(CublasStatus(CUBLAS_STATUS_INVALID_VALUE, "x").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CublasStatus(CUBLAS_STATUS_ARCH_MISMATCH, "x").code(), absl::StatusCode::kUnimplemented);
  const absl::Status b = CublasStatus(CUBLAS_STATUS_EXECUTION_FAILED, "cublasSsyrk");
  EXPECT_EQ(b.code(), absl::StatusCode::kInternal);
  EXPECT_NE(b.message().find("cublasSsyrk: CUBLAS_STATUS_EXECUTION_FAILED"), absl::string_view::npos) << b;
  EXPECT_TRUE(CusolverStatus(CUSOLVER_STATUS_SUCCESS, "x").ok());
  EXPECT_EQ(CusolverStatus(CUSOLVER_STATUS_NOT_INITIALIZED, "x").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(CusolverStatus(CUSOLVER_STATUS_ALLOC_FAILED, "x").code(), absl::StatusCode::kResourceExhausted);
  const absl::Status c = CusolverStatus(CUSOLVER_STATUS_INTERNAL_ERROR, "cusolverDnSpotrf");
  EXPECT_EQ(c.code(), absl::StatusCode::kInternal);
  EXPECT_NE(c.message().find("cusolverDnSpotrf: CUSOLVER_STATUS_INTERNAL_ERROR"), absl::string_view::npos) << c;
}

TEST(CudaStatusTest, MathModeResolution) {
  MatmulOptions fp32;
  MatmulOptions tf32;
  tf32.allow_tf32 = true;
  unsetenv("NVIDIA_TF32_OVERRIDE");
  EXPECT_EQ(ResolveMathMode(fp32, 9), MathMode::kFloat32);
  EXPECT_EQ(ResolveMathMode(tf32, 9), MathMode::kTf32);
  EXPECT_EQ(ResolveMathMode(tf32, 8), MathMode::kTf32);
  EXPECT_EQ(ResolveMathMode(tf32, 7), MathMode::kFloat32);  // no TF32 before Ampere
  setenv("NVIDIA_TF32_OVERRIDE", "0", 1);
  EXPECT_EQ(ResolveMathMode(tf32, 9), MathMode::kFloat32);  // disabled process-wide
  unsetenv("NVIDIA_TF32_OVERRIDE");
  EXPECT_STREQ(MathModeName(MathMode::kTf32), "tf32");
  EXPECT_STREQ(MathModeName(MathMode::kFloat32), "float32");
}

TEST(CudaStatusTest, InconsistentMatrixIsInvalidArgument) {
  DeviceMatrix<float> m;  // no buffer
  m.rows = 2;
  m.cols = 3;
  EXPECT_EQ(CheckMatrix(m, -1, -1, "op", "m").code(), absl::StatusCode::kInvalidArgument);
  DeviceMatrix<float> empty;
  EXPECT_TRUE(CheckMatrix(empty, 0, -1, "op", "m").ok());
  const absl::Status s = CheckMatrix(empty, 1, 4, "cuda::Op", "x");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "cuda::Op: x is 0x0, expected 1x4");
}

}  // namespace
}  // namespace caliber::cuda
