#include "core/quant/gptq.h"

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cmath>
#include <numeric>
#include <vector>

#include "absl/strings/str_format.h"
#include "core/quant/linalg.h"
#include "core/quant/quant_grid.h"

namespace caliber {

namespace {

// H[perm][:, perm] with dead inputs' H_ii = 1 (a fresh copy: LAPACK factorizes in place).
MatrixF PermutedHessian(const MatrixF& H, const std::vector<int>& perm, bool permute) {
  const int cols = static_cast<int>(H.rows());
  MatrixF Hp;
  if (permute) {
    Hp.resize(cols, cols);
    for (int a = 0; a < cols; ++a) {
      const float* h = H.row(perm[static_cast<size_t>(a)]).data();
      float* hp = Hp.row(a).data();
      for (int b = 0; b < cols; ++b) hp[b] = h[perm[static_cast<size_t>(b)]];
    }
  } else {
    Hp = H;
  }
  for (int a = 0; a < cols; ++a) {
    if (Hp(a, a) == 0) Hp(a, a) = 1;
  }
  return Hp;
}

// Output channels per tile of the block sweep: a block's 128 rows of W and of errors for this
// many channels (2 x 128 KiB) stay in L2 while the block's columns are swept.
constexpr int kChannelTile = 256;

// One column of the sweep for `len` channels: codes, and the scaled errors (w - q) / d.
// Element by element the same IEEE operations as QuantCode / Dequant (division, nearbyint under
// the current rounding mode, std::clamp's comparisons, and a rounded product before the
// subtraction), so the results are bit-identical to the scalar loop.
void QuantizeColumn(const float* w, const float* scale, const float* zero, float maxq, float d,
                    int len, uint8_t* code, float* err) {
  int r = 0;
#if defined(__AVX2__)
  const __m256 vzero = _mm256_setzero_ps();
  const __m256 vmaxq = _mm256_set1_ps(maxq);
  const __m256 vd = _mm256_set1_ps(d);
  for (; r + 8 <= len; r += 8) {
    const __m256 x = _mm256_loadu_ps(w + r);
    const __m256 s = _mm256_loadu_ps(scale + r);
    const __m256 z = _mm256_loadu_ps(zero + r);
    __m256 c = _mm256_add_ps(
        _mm256_round_ps(_mm256_div_ps(x, s), _MM_FROUND_CUR_DIRECTION | _MM_FROUND_NO_EXC), z);
    // std::clamp(c, 0, maxq) = c < 0 ? 0 : (maxq < c ? maxq : c).
    c = _mm256_blendv_ps(c, vzero, _mm256_cmp_ps(c, vzero, _CMP_LT_OQ));
    c = _mm256_blendv_ps(c, vmaxq, _mm256_cmp_ps(vmaxq, c, _CMP_LT_OQ));
    __m256 q = _mm256_mul_ps(s, _mm256_sub_ps(c, z));
    __asm__("" : "+x"(q));  // Dequant's RoundHere: no FMA into the subtraction below
    _mm256_storeu_ps(err + r, _mm256_div_ps(_mm256_sub_ps(x, q), vd));
    // Codes are integers in [0, maxq <= 255]: truncate, then narrow 32 -> 16 -> 8 bits.
    const __m256i ci = _mm256_cvttps_epi32(c);
    const __m128i c16 =
        _mm_packus_epi32(_mm256_castsi256_si128(ci), _mm256_extracti128_si256(ci, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(code + r), _mm_packus_epi16(c16, c16));
  }
#endif
  for (; r < len; ++r) {
    const float c = QuantCode(w[r], scale[r], zero[r], maxq);
    code[r] = static_cast<uint8_t>(c);
    err[r] = (w[r] - Dequant(c, scale[r], zero[r])) / d;
  }
}

// w -= h * e, each element rounded once (fused multiply-subtract, as the Eigen expression
// `w -= h * e` compiles to under GCC's default -ffp-contract=fast with FMA).
void SubtractScaled(float h, const float* e, float* w, int len) {
  for (int r = 0; r < len; ++r) w[r] = std::fma(-h, e[r], w[r]);
}

}  // namespace

absl::StatusOr<GptqPassResult> GptqPass(const MatrixF& W, const MatrixF& H, int quantized_columns,
                                        const QuantSpec& spec) {
  const auto start = std::chrono::steady_clock::now();
  const int rows = static_cast<int>(W.rows());
  const int cols = static_cast<int>(W.cols());
  const int n = quantized_columns;
  if (H.rows() != cols || H.cols() != cols) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "GPTQ: H is %dx%d but W has %d columns", H.rows(), H.cols(), cols));
  }
  if (rows <= 0 || n <= 0 || n > cols) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "GPTQ: need W with rows and 0 < quantized_columns <= %d, got %dx%d and %d", cols, rows,
        cols, n));
  }
  if (absl::Status s = Validate(spec, n); !s.ok()) return s;

  const bool per_channel = spec.group_size == -1;
  const int group = per_channel ? n : spec.group_size;
  const int num_groups = per_channel ? 1 : (n + group - 1) / group;
  const float maxq = static_cast<float>(MaxQ(spec.bits));
  std::vector<GridParams> grids(static_cast<size_t>(num_groups));

  // Wt.row(i) is column i of W: contiguous for the per-column sweep.
  MatrixF Wt = TransposedCopy(W);

  // fasterquant calls find_params(W) before it zeroes the dead columns.
  if (per_channel) {
    grids[0] = FindParams(Wt.topRows(n).transpose(), spec.bits, spec.sym, spec.mse);
  }

  // An input never active in calibration: H_ii = 1 keeps H invertible, and the zeroed column
  // quantizes to 0 without pushing error anywhere.
  int dead = 0;
  for (int i = 0; i < cols; ++i) {
    if (H(i, i) == 0) {
      Wt.row(i).setZero();
      ++dead;
    }
  }

  if (spec.static_groups && !per_channel) {
    for (int g = 0; g < num_groups; ++g) {
      const int begin = g * group;
      grids[static_cast<size_t>(g)] =
          FindParams(Wt.middleRows(begin, std::min(group, n - begin)).transpose(), spec.bits,
                     spec.sym, spec.mse);
    }
  }

  // Columns in quantization order; the un-quantized tail keeps its place at the end.
  std::vector<int> perm(static_cast<size_t>(cols));
  std::iota(perm.begin(), perm.end(), 0);
  if (spec.act_order) {
    // Sorted after the dead H_ii became 1, as in gptq.py.
    std::vector<float> diag(static_cast<size_t>(cols));
    for (int i = 0; i < cols; ++i) diag[static_cast<size_t>(i)] = H(i, i) == 0 ? 1.0f : H(i, i);
    std::stable_sort(perm.begin(), perm.begin() + n, [&diag](int a, int b) {
      return diag[static_cast<size_t>(a)] > diag[static_cast<size_t>(b)];
    });
    MatrixF permuted(cols, rows);
    for (int a = 0; a < cols; ++a) permuted.row(a) = Wt.row(perm[static_cast<size_t>(a)]);
    Wt = std::move(permuted);
  }

  // Hinv = chol(inv(H + damp * mean(diag H) * I), upper), H permuted and with dead H_ii = 1.
  // On failure, 10x the damping.
  double mean_diag = 0;
  for (int i = 0; i < cols; ++i) mean_diag += H(i, i) == 0 ? 1.0 : static_cast<double>(H(i, i));
  mean_diag /= cols;
  double rel_damp = spec.damp;
  int retries = 0;
  MatrixF Hinv;
  for (;;) {
    MatrixF damped = PermutedHessian(H, perm, spec.act_order);
    damped.diagonal().array() += static_cast<float>(rel_damp * mean_diag);
    absl::StatusOr<MatrixF> u = UpperCholeskyOfInverse(std::move(damped));
    if (u.ok()) {
      Hinv = *std::move(u);
      break;
    }
    if (retries == spec.max_damp_retries) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "GPTQ: Cholesky failed after %d retries (damp=%g): %s", retries, rel_damp,
          u.status().message()));
    }
    ++retries;
    rel_damp *= 10;
  }

  const int block = spec.block_size;
  MatrixF Err1(std::min(block, n), rows);  // the block's scaled errors (w - q) / Hinv_ii
  CodeMatrix codes_perm(n, rows);          // codes in quantization order
  std::vector<const GridParams*> column_grid(static_cast<size_t>(std::min(block, n)));

  for (int i1 = 0; i1 < n; i1 += block) {
    const int i2 = std::min(i1 + block, n);
    const int count = i2 - i1;

    // Every grid this block's columns use, before any of them is touched: a group's grid is
    // computed when the group starts, from W as the previous blocks' lazy updates left it
    // (gptq.py reads W there, not the block copy W1, so this block's own updates are not seen).
    for (int i = 0; i < count; ++i) {
      const int p = i1 + i;
      const GridParams* g = &grids[0];
      if (!per_channel) {
        if (spec.static_groups) {
          g = &grids[static_cast<size_t>(perm[static_cast<size_t>(p)] / group)];
        } else {
          GridParams& own = grids[static_cast<size_t>(p / group)];
          if (p % group == 0) {
            const int width = std::min(group, n - p);
            own = FindParams(Wt.middleRows(p, width).transpose(), spec.bits, spec.sym, spec.mse);
          }
          g = &own;
        }
      }
      column_grid[static_cast<size_t>(i)] = g;
    }

    // The block sweep, in place on Wt's rows i1..i2 (they are not read again once their block
    // is done), one tile of output channels at a time: channels are independent, and a tile of
    // the block's rows and errors stays in cache while its columns are quantized and their
    // errors propagated. Every element sees the same operations in the same order as a sweep
    // over whole rows.
    for (int r0 = 0; r0 < rows; r0 += kChannelTile) {
      const int len = std::min(kChannelTile, rows - r0);
      for (int i = 0; i < count; ++i) {
        const int p = i1 + i;
        const GridParams& g = *column_grid[static_cast<size_t>(i)];
        float* err = Err1.row(i).data() + r0;
        QuantizeColumn(Wt.row(p).data() + r0, g.scale.data() + r0, g.zero.data() + r0, maxq,
                       Hinv(p, p), len, codes_perm.row(p).data() + r0, err);
        // Propagate this column's error to the rest of the block (rank-1, contiguous rows).
        const float* h = Hinv.row(p).data();
        for (int j = i + 1; j < count; ++j) {
          SubtractScaled(h[i1 + j], err, Wt.row(i1 + j).data() + r0, len);
        }
      }
    }

    // Lazy batch update of everything after the block: W[:, i2:] -= Err1 · Hinv[i1:i2, i2:].
    if (i2 < cols) {
      Wt.bottomRows(cols - i2).noalias() -=
          Hinv.block(i1, i2, count, cols - i2).transpose() * Err1.topRows(count);
    }
  }

  GptqPassResult result;
  QuantizedLinear& q = result.quantized;
  q.out_features = rows;
  q.in_features = n;
  q.bits = spec.bits;
  q.group_size = spec.group_size;
  q.sym = spec.sym;
  if (spec.act_order) {
    CodeMatrix codes_t(n, rows);  // row i: codes of original column i
    for (int p = 0; p < n; ++p) codes_t.row(perm[static_cast<size_t>(p)]) = codes_perm.row(p);
    q.codes = TransposedCopy(codes_t);
  } else {
    q.codes = TransposedCopy(codes_perm);
  }
  q.scales.resize(num_groups, rows);
  q.zeros.resize(num_groups, rows);
  for (int g = 0; g < num_groups; ++g) {
    q.scales.row(g) = grids[static_cast<size_t>(g)].scale.transpose();
    q.zeros.row(g) = grids[static_cast<size_t>(g)].zero.cast<int32_t>().transpose();
  }
  q.g_idx.assign(static_cast<size_t>(n), 0);
  if (!per_channel) {
    for (int p = 0; p < n; ++p) {
      // Static groups keep the original column order, whatever the sweep order was.
      const int column = perm[static_cast<size_t>(p)];
      q.g_idx[static_cast<size_t>(column)] = (spec.static_groups ? column : p) / group;
    }
  }
  if (cols > n) result.tail = TransposedCopy(MatrixF(Wt.bottomRows(cols - n)));

  q.report.method = "gptq";
  q.report.damp_used = rel_damp;
  q.report.cholesky_retries = retries;
  q.report.dead_columns = dead;
  q.report.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

absl::StatusOr<QuantizedLinear> GptqQuantize(const MatrixF& W, const MatrixF& H,
                                             const QuantSpec& spec) {
  absl::StatusOr<GptqPassResult> pass = GptqPass(W, H, static_cast<int>(W.cols()), spec);
  if (!pass.ok()) return pass.status();
  return std::move(pass->quantized);
}

}  // namespace caliber
