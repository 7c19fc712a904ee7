// Orthogonal matrices for HeRo-Q's rotations: seeded initializations (a randomized Hadamard
// matrix where the size is a power of two, as QuaRot uses; a Haar-random orthogonal matrix
// otherwise) and the Cayley retraction that keeps a rotation on the orthogonal group while it
// is optimized (Cayley SGD, as SpinQuant uses it).
#pragma once

#include <cstdint>

#include "core/tensor/matrix.h"

namespace caliber {

// H·diag(±1)/√n with H the Sylvester Hadamard matrix when n is a power of two; otherwise the
// Q of a QR decomposition of a Gaussian matrix with the signs of R's diagonal made positive
// (Haar-distributed). The same (n, seed) gives the same bits on every platform: the random
// numbers come from a fixed generator, not from <random>'s distributions.
MatrixD RandomizedHadamardOrOrthogonal(int n, uint64_t seed);

// Whether RandomizedHadamardOrOrthogonal(n, ·) is a Hadamard matrix.
bool IsPowerOfTwo(int n);

// One step along the orthogonal group from R against the Euclidean gradient G of a loss:
// A = G Rᵀ - R Gᵀ (skew: the Riemannian gradient, moved to the identity), then
// R⁺ = (I + α/2 A)⁻¹ (I - α/2 A) R. R⁺ is orthogonal for every α (up to rounding) and
// d/dα R⁺ at α = 0 is -A R, a descent direction: d/dα loss = -½‖A‖²_F.
MatrixD CayleyStep(const MatrixD& R, const MatrixD& G, double alpha);

// ‖G Rᵀ - R Gᵀ‖_F: the size of the Riemannian gradient (0 at a stationary point).
double RiemannianGradientNorm(const MatrixD& R, const MatrixD& G);

}  // namespace caliber
