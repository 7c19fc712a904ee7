// Shared by the CUDA op tests: the GPU fixture (skips, never passes, without a device), status
// assertions, random inputs and error measures for comparing device results with core's CPU
// implementation.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/cuda/context.h"
#include "core/cuda/device.h"
#include "core/tensor/matrix.h"
#include "gtest/gtest.h"

#define CALIBER_TEST_CONCAT_INNER(a, b) a##b
#define CALIBER_TEST_CONCAT(a, b) CALIBER_TEST_CONCAT_INNER(a, b)

#define ASSERT_OK(expr)                         \
  do {                                          \
    const absl::Status caliber_status_ = (expr); \
    ASSERT_TRUE(caliber_status_.ok()) << caliber_status_; \
  } while (0)

#define ASSERT_OK_AND_ASSIGN(lhs, expr) \
  ASSERT_OK_AND_ASSIGN_IMPL(CALIBER_TEST_CONCAT(caliber_status_or_, __LINE__), lhs, expr)
#define ASSERT_OK_AND_ASSIGN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  ASSERT_TRUE(tmp.ok()) << tmp.status();          \
  lhs = std::move(tmp).value()

namespace caliber::cuda::testing {

// float32 unit roundoff 2^-24.
inline constexpr double kFloatU = 5.9604644775390625e-8;

// Every device test derives from this: without a usable device the test is reported SKIPPED.
class GpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (DeviceCount() == 0) GTEST_SKIP() << "no CUDA device: GPU test skipped, not passed";
    absl::StatusOr<std::unique_ptr<CudaContext>> ctx = CudaContext::Create();
    ASSERT_TRUE(ctx.ok()) << ctx.status();
    ctx_ = *std::move(ctx);
  }
  CudaContext& ctx() { return *ctx_; }

 private:
  std::unique_ptr<CudaContext> ctx_;
};

inline MatrixF RandomNormal(Eigen::Index rows, Eigen::Index cols, uint32_t seed, float stddev = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, stddev);
  MatrixF m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = normal(rng);
  return m;
}

// ‖a − b‖_F / ‖b‖_F in double.
template <typename A, typename B>
double RelativeFrobenius(const A& a, const B& b) {
  const Eigen::MatrixXd da = a.template cast<double>();
  const Eigen::MatrixXd db = b.template cast<double>();
  return (da - db).norm() / db.norm();
}

// Bit-for-bit equality of two float matrices (so −0 vs +0 and NaN payloads count).
inline ::testing::AssertionResult BitIdentical(const MatrixF& got, const MatrixF& want) {
  if (got.rows() != want.rows() || got.cols() != want.cols()) {
    return ::testing::AssertionFailure() << "shape " << got.rows() << "x" << got.cols() << " vs "
                                         << want.rows() << "x" << want.cols();
  }
  for (Eigen::Index r = 0; r < got.rows(); ++r) {
    for (Eigen::Index c = 0; c < got.cols(); ++c) {
      const float g = got(r, c);
      const float w = want(r, c);
      if (std::memcmp(&g, &w, sizeof(float)) != 0) {
        return ::testing::AssertionFailure() << "(" << r << ", " << c << "): device " << g << " vs cpu " << w;
      }
    }
  }
  return ::testing::AssertionSuccess();
}

// Element-wise |got − want| <= bound(r, c), reporting the worst element.
template <typename Bound>
::testing::AssertionResult WithinBound(const MatrixF& got, const MatrixF& want, Bound bound) {
  if (got.rows() != want.rows() || got.cols() != want.cols()) {
    return ::testing::AssertionFailure() << "shape mismatch";
  }
  for (Eigen::Index r = 0; r < got.rows(); ++r) {
    for (Eigen::Index c = 0; c < got.cols(); ++c) {
      const double d = std::abs(static_cast<double>(got(r, c)) - static_cast<double>(want(r, c)));
      const double b = bound(r, c);
      if (!(d <= b)) {
        return ::testing::AssertionFailure() << "(" << r << ", " << c << "): device " << got(r, c) << " vs cpu "
                                             << want(r, c) << ", |diff| " << d << " > bound " << b;
      }
    }
  }
  return ::testing::AssertionSuccess();
}

}  // namespace caliber::cuda::testing
