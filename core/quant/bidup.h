// Bid-Up: coordinate descent on the codes of Q over its fixed grid (scales, zeros, g_idx stay),
// for a fixed target W̃ = W - B·A. Sweeping input columns i in order, every row takes
//   q_i <- grid_round(W̃_i + Σ_{j≠i} (W̃_j - Q_j) H_ji / H_ii),
// the exact minimizer of tr((W̃ - Q) H (W̃ - Q)ᵀ) over column i with the others fixed (rows are
// independent; the objective is a convex parabola in each entry, so the nearest grid point
// wins). With the residual R = (W̃ - Q)·H the target is simply Q_i + R_i / H_ii, and a change
// Δ in column i updates R by the rank-1 -Δ H_i. Those rank-1 updates are applied lazily in
// blocks of columns, like GPTQ's: only the columns still to be visited are kept current, and
// each block's updates to later columns are one GEMM, so a sweep is O(out·in²) in BLAS-3.
// A code changes only when it lowers the objective by more than rounding noise, so a sweep
// never increases it. Columns with H_ii == 0 do not enter the objective and are left alone.
//
// RefineGptqLora alternates a Bid-Up sweep (Q for fixed B·A) and OLrC (B·A for fixed Q).
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/quant/quant_spec.h"
#include "core/quant/quantized_linear.h"
#include "core/tensor/matrix.h"

namespace caliber {

// One sweep over all input columns of q towards `target` [out x in] (in double: W - B·A).
// Returns the number of codes changed.
absl::StatusOr<int> BidUpSweep(const MatrixD& target, const MatrixF& H, QuantizedLinear& q);

// tr((W - Q - B·A) H (W - Q - B·A)ᵀ) in double, B·A formed in double (no float rounding of the
// reconstruction, so successive refinement steps compare exactly).
double RefineObjective(const MatrixF& W, const MatrixF& H, const QuantizedLinear& q);

// spec.refine_iters rounds of: Bid-Up sweep, then OLrC with Q fixed (keeping the previous B, A
// when the new ones would not lower the objective). With spec.lora_a_bits > 0 the OLrC A is
// RTN-quantized per row (symmetric) and B refitted to it by least squares. The objective is
// appended to q.report.refine_objectives before the first step and after every step; the
// rounds stop early at a fixed point (no code moved and OLrC found nothing better).
absl::Status RefineGptqLora(const MatrixF& W, const MatrixF& H, const QuantSpec& spec,
                            QuantizedLinear& q);

}  // namespace caliber
