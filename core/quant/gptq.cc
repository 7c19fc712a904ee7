#include "core/quant/gptq.h"

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
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

// Wᵀ, the sweep's layout (row i = column i of W). Like TransposedCopy, in 64 x 64 tiles, but
// each tile moves as 8 x 8 blocks through AVX registers (about twice as fast at 14336 x 4096).
MatrixF TransposeForSweep(const MatrixF& m) {
  const Eigen::Index rows = m.rows(), cols = m.cols();
  MatrixF t(cols, rows);
  constexpr Eigen::Index kTile = 64;
  for (Eigen::Index r0 = 0; r0 < rows; r0 += kTile) {
    const Eigen::Index r1 = std::min(r0 + kTile, rows);
    for (Eigen::Index c0 = 0; c0 < cols; c0 += kTile) {
      const Eigen::Index c1 = std::min(c0 + kTile, cols);
      Eigen::Index r = r0;
#if defined(__AVX2__)
      for (; r + 8 <= r1; r += 8) {
        Eigen::Index c = c0;
        for (; c + 8 <= c1; c += 8) {
          const float* src = m.data() + r * cols + c;
          float* dst = t.data() + c * rows + r;
          __m256 v[8];
          for (int k = 0; k < 8; ++k) v[k] = _mm256_loadu_ps(src + k * cols);
          __m256 u[8];
          for (int k = 0; k < 8; k += 2) {
            u[k] = _mm256_unpacklo_ps(v[k], v[k + 1]);
            u[k + 1] = _mm256_unpackhi_ps(v[k], v[k + 1]);
          }
          for (int k = 0; k < 8; k += 4) {
            v[k] = _mm256_shuffle_ps(u[k], u[k + 2], 0x44);
            v[k + 1] = _mm256_shuffle_ps(u[k], u[k + 2], 0xEE);
            v[k + 2] = _mm256_shuffle_ps(u[k + 1], u[k + 3], 0x44);
            v[k + 3] = _mm256_shuffle_ps(u[k + 1], u[k + 3], 0xEE);
          }
          for (int k = 0; k < 4; ++k) {
            _mm256_storeu_ps(dst + k * rows, _mm256_permute2f128_ps(v[k], v[k + 4], 0x20));
            _mm256_storeu_ps(dst + (k + 4) * rows, _mm256_permute2f128_ps(v[k], v[k + 4], 0x31));
          }
        }
        for (; c < c1; ++c) {
          for (Eigen::Index k = r; k < r + 8; ++k) t(c, k) = m(k, c);
        }
      }
#endif
      for (; r < r1; ++r) {
        for (Eigen::Index c = c0; c < c1; ++c) t(c, r) = m(r, c);
      }
    }
  }
  return t;
}

// Output channels per step of the block sweep: the errors of a block's 128 columns for this
// many channels (32 KiB) stay in L1 while the block's columns are swept, and the column being
// updated stays in eight AVX registers.
constexpr int kChannelTile = 64;

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

// The in-block error propagation, left-looking: before column i of a block is quantized,
//   w[r] = fma(-coef[k], err[k * stride + r], w[r])   for k = 0, 1, ..., m - 1 in this order,
// where coef[k] = Hinv(i1 + k, i1 + i) and err row k holds column i1 + k's scaled errors. Each
// element gets the same fused multiply-subtracts in the same order as the reference's
// right-looking `W1[:, j] -= Err1[:, k] * Hinv[k, j]` after every column k (which GCC compiles
// to FMAs under its default -ffp-contract=fast with -march=x86-64-v3, in Eigen's vector body
// and scalar peel alike), but w is loaded once and kept in registers.
void ApplyBlockUpdates(float* w, int len, const float* coef, const float* err, Eigen::Index stride,
                       int m) {
  int r = 0;
#if defined(__AVX2__) && defined(__FMA__)
  if (len == kChannelTile) {
    __m256 a0 = _mm256_loadu_ps(w + 0), a1 = _mm256_loadu_ps(w + 8);
    __m256 a2 = _mm256_loadu_ps(w + 16), a3 = _mm256_loadu_ps(w + 24);
    __m256 a4 = _mm256_loadu_ps(w + 32), a5 = _mm256_loadu_ps(w + 40);
    __m256 a6 = _mm256_loadu_ps(w + 48), a7 = _mm256_loadu_ps(w + 56);
    for (int k = 0; k < m; ++k) {
      const __m256 c = _mm256_broadcast_ss(coef + k);
      const float* e = err + k * stride;
      a0 = _mm256_fnmadd_ps(c, _mm256_loadu_ps(e + 0), a0);
      a1 = _mm256_fnmadd_ps(c, _mm256_loadu_ps(e + 8), a1);
      a2 = _mm256_fnmadd_ps(c, _mm256_loadu_ps(e + 16), a2);
      a3 = _mm256_fnmadd_ps(c, _mm256_loadu_ps(e + 24), a3);
      a4 = _mm256_fnmadd_ps(c, _mm256_loadu_ps(e + 32), a4);
      a5 = _mm256_fnmadd_ps(c, _mm256_loadu_ps(e + 40), a5);
      a6 = _mm256_fnmadd_ps(c, _mm256_loadu_ps(e + 48), a6);
      a7 = _mm256_fnmadd_ps(c, _mm256_loadu_ps(e + 56), a7);
    }
    _mm256_storeu_ps(w + 0, a0);
    _mm256_storeu_ps(w + 8, a1);
    _mm256_storeu_ps(w + 16, a2);
    _mm256_storeu_ps(w + 24, a3);
    _mm256_storeu_ps(w + 32, a4);
    _mm256_storeu_ps(w + 40, a5);
    _mm256_storeu_ps(w + 48, a6);
    _mm256_storeu_ps(w + 56, a7);
    return;
  }
  for (; r + 8 <= len; r += 8) {
    __m256 a = _mm256_loadu_ps(w + r);
    for (int k = 0; k < m; ++k) {
      a = _mm256_fnmadd_ps(_mm256_broadcast_ss(coef + k), _mm256_loadu_ps(err + k * stride + r), a);
    }
    _mm256_storeu_ps(w + r, a);
  }
#endif
  for (; r < len; ++r) {
    float a = w[r];
    for (int k = 0; k < m; ++k) a = std::fma(-coef[k], err[k * stride + r], a);
    w[r] = a;
  }
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
  MatrixF Wt = TransposeForSweep(W);

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
  CodeMatrix codes(rows, n);               // [out x in], original column order
  std::vector<const GridParams*> column_grid(static_cast<size_t>(std::min(block, n)));
  MatrixF coef(std::min(block, n), std::min(block, n));  // see the sweep below
  MatrixF err_tile(std::min(block, n), kChannelTile);    // Err1's columns of one channel tile
  CodeMatrix code_tile(std::min(block, n), kChannelTile);  // and the codes of that tile

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

    // Hinv's block, transposed: coef.row(i) holds Hinv(i1 + k, i1 + i) for k < i, the weights of
    // the earlier columns' errors in column i.
    for (int i = 0; i < count; ++i) {
      for (int k = 0; k < i; ++k) coef(i, k) = Hinv(i1 + k, i1 + i);
    }

    // The block sweep, one tile of output channels at a time (channels are independent): each
    // column of the block receives the propagated errors of the block's earlier columns, then
    // is quantized; its own row of Wt is not needed after that (the rows of a finished block
    // are never read again). Every element sees the same operations in the same order as the
    // reference's sweep over whole columns. The tile's errors are gathered in a contiguous
    // buffer (Err1's rows lie a multiple of 4 KiB apart at Llama's widths, so their tiles would
    // share a handful of L1 sets) and copied into Err1 for the lazy update.
    for (int r0 = 0; r0 < rows; r0 += kChannelTile) {
      const int len = std::min(kChannelTile, rows - r0);
      for (int i = 0; i < count; ++i) {
        const int p = i1 + i;
        const GridParams& g = *column_grid[static_cast<size_t>(i)];
        float* w = Wt.row(p).data() + r0;
        ApplyBlockUpdates(w, len, coef.row(i).data(), err_tile.data(), kChannelTile, i);
        QuantizeColumn(w, g.scale.data() + r0, g.zero.data() + r0, maxq, Hinv(p, p), len,
                       code_tile.row(i).data(), err_tile.row(i).data());
      }
      Err1.block(0, r0, count, len) = err_tile.topLeftCorner(count, len);
      // The tile's codes into [out x in] in the original column order.
      for (int r = 0; r < len; ++r) {
        uint8_t* dst = codes.row(r0 + r).data();
        for (int i = 0; i < count; ++i) {
          dst[perm[static_cast<size_t>(i1 + i)]] = code_tile(i, r);
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
  q.codes = std::move(codes);
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
