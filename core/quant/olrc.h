// Optimal low-rank compensation (OLrC) of a fixed quantized Q: the rank-r B·A minimizing
//   tr((E0 - B·A) H (E0 - B·A)ᵀ),   E0 = W - Q.
// With any factor H = S Sᵀ (e.g. S = H^{1/2}) this is ‖(E0 - BA) S‖_F², minimized by
// BA = T_r(E0 S) S^{-1}, T_r the rank-r truncated SVD (Eckart–Young). Writing
// E0 S = U Σ Vᵀ, T_r(E0 S) S^{-1} = U_r U_rᵀ E0 S S^{-1} = U_r U_rᵀ E0: the minimizer only needs
// U_r, the top-r left singular vectors of E0 S, i.e. the top-r eigenvectors of
// E0 H E0ᵀ = (E0 S)(E0 S)ᵀ. That form needs neither S^{-1} nor damping and stays the exact
// minimizer when H is singular (directions with H v = 0 do not enter the objective).
// When out > in, U_r is obtained from the smaller [in x in] side instead: the top-r
// eigenpairs (v_k, σ_k²) of (E0 S)ᵀ(E0 S) with S = H^{1/2} (eigenvalues clipped at 0) give
// u_k = E0 S v_k / σ_k.
// Everything runs in double. B = U_r [out x r] has orthonormal columns; A = U_rᵀ E0 [r x in].
#pragma once

#include <optional>

#include <Eigen/Dense>

#include "absl/status/statusor.h"
#include "core/tensor/matrix.h"

namespace caliber {

struct LowRank {
  MatrixF B;  // [out x r]
  MatrixF A;  // [r x in]
};

// Solves OLrC repeatedly for one H (the refinement loop calls it once per iteration), caching
// H^{1/2} when the [in x in] side is needed.
class OlrcSolver {
 public:
  explicit OlrcSolver(const MatrixF& H);
  absl::StatusOr<LowRank> Solve(const MatrixF& E0, int rank);

 private:
  Eigen::MatrixXd H_;                    // symmetric, so row/column order does not matter
  std::optional<Eigen::MatrixXd> sqrt_;  // H^{1/2}, on first need
};

absl::StatusOr<LowRank> OptimalLowRank(const MatrixF& E0, const MatrixF& H, int rank);

}  // namespace caliber
