// Summary numbers of a layer Hessian for reports: its trace and largest eigenvalue.
#pragma once

#include "core/tensor/matrix.h"

namespace caliber {

struct HessianStats {
  double trace = 0;
  double top_eigenvalue = 0;  // power-iteration estimate (a lower bound that converges upward)
};

// Power iteration in double from a fixed start vector, so the estimate is deterministic;
// `iterations` matrix-vector products (O(in²) each, cheap next to any quantizer).
HessianStats ComputeHessianStats(const MatrixF& H, int iterations = 100);

}  // namespace caliber
