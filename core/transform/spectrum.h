// Spectral summaries of a Hessian for HeRo-Q's report: the largest eigenvalue, the trace and
// the condition number GPTQ actually factors, that of H + damp·mean(diag H)·I.
#pragma once

#include "core/tensor/matrix.h"

namespace caliber {

struct SpectrumSummary {
  double lambda_max = 0;
  double trace = 0;
  double damped_condition = 0;  // λmax / λmin of H + damp·mean(diag H)·I
};

// λmax of a symmetric PSD matrix by power iteration from `v` (any start if empty or of the
// wrong size), run to a relative change of 1e-14 or 1000 steps; `v` returns the eigenvector,
// so the next call on a nearby matrix starts warm.
double TopEigenpair(const MatrixD& H, VectorD& v);

// Power iteration for λmax; inverse iteration through a Cholesky factor for λmin.
SpectrumSummary SummarizeSpectrum(const MatrixD& H, double damp = 0.01);

}  // namespace caliber
