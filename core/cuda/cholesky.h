// Cholesky factorization and inverse on the device with cuSOLVER (potrf / potri), in float32
// or float64, on row-major symmetric matrices. Triangles are named as the row-major matrix
// sees them; internally the column-major solver works on the opposite triangle of the same
// buffer. A matrix that is not positive definite is FailedPrecondition naming the failing
// leading minor, with core's wording (core/quant/linalg.h).
#pragma once

#include "absl/status/status.h"
#include "core/cuda/context.h"
#include "core/cuda/device_matrix.h"

namespace caliber::cuda {

enum class Triangle { kLower, kUpper };

// In place on the square symmetric a: kLower reads a's lower triangle and writes L there with
// a = L·Lᵀ; kUpper reads the upper triangle and writes U with a = Uᵀ·U. The other strict
// triangle is never read; afterwards its contents are unspecified (LAPACK leaves it alone, but
// cuSOLVER does not promise to), so callers that need it zero or intact must see to it.
// T is float or double.
template <typename T>
absl::Status Cholesky(CudaContext& ctx, DeviceMatrix<T>& a, Triangle triangle);

// From the factor Cholesky(a, triangle) left, overwrites that triangle with the same triangle
// of a⁻¹ (potri); the other strict triangle as for Cholesky.
template <typename T>
absl::Status CholeskyInverse(CudaContext& ctx, DeviceMatrix<T>& factor, Triangle triangle);

// GPTQ's Hinv, as caliber::UpperCholeskyOfInverse: h := U, upper triangular with H⁻¹ = Uᵀ·U and
// its strictly lower triangle zeroed (Cholesky, inverse, Cholesky of the inverse, as gptq.py).
// Reads h's upper triangle, like core.
template <typename T>
absl::Status UpperCholeskyOfInverse(CudaContext& ctx, DeviceMatrix<T>& h);

}  // namespace caliber::cuda
