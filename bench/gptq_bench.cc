// GPTQ on Llama-3-8B-shaped modules: 4096x4096 (q/o), 14336x4096 (gate/up: out x in) and
// 4096x14336 (down), random W ~ N(0, 0.02), H = 2/n·XᵀX from 2048 correlated tokens
// X = Z·M with M = diag(s) + U·Vᵀ (log-normal column scales s, so act-order has something to
// sort, plus a rank-32 mixing U·Vᵀ), accumulated by HessianAccumulator in batches of 512.
// Methods: gptq W4 g128, the same with act-order, and gptq_lora r=32 (W4 g128).
//
// Columns (each the best of --repeats):
//   total s   seconds per module through the quantizer registry, as the pipeline calls it
//             (input checks, the quantizer, and the registry's objective report tr(E H Eᵀ));
//   sweep s   the GPTQ pass alone (GptqQuantize; for gptq_lora GptqPass over [W, 0], H_aug);
//   extra s   gptq_lora's work before its pass: top-r eigenpairs of H (LoraBasis) and H_aug;
//   chol s    UpperCholeskyOfInverse of the damped H (H_aug) alone: the chain inside the sweep;
//   GFLOP     the sweep's counted work:
//               lazy block updates  Σ_blocks 2·out·B·(cols − i2)   (one GEMM per block)
//               in-block updates    Σ_blocks out·B·(B − 1)         (rank-1 updates in a block)
//               Cholesky chain      4/3·cols³ (spotrf n³/3 + spotri 2n³/3 + spotrf n³/3)
//             with cols = in (+ r for gptq_lora, whose extra columns receive every update);
//   %pk sweep the sweep's counted GFLOP/s as a percentage of this run's SGEMM peak;
//   %pk chol  the chain's 4/3·cols³ over chol s;
//   %pk upd   the updates' flops over (sweep s − chol s): the lazy GEMMs and everything else
//             the sweep does besides the chain (quantizing, transposes, copies).
// The SGEMM peak (4096 x 4096 x 2048 through the same OpenBLAS) is measured before every timed
// run and its best is the baseline, so that baseline and runs see the same background load.
// Like the pipeline (Model::Load), the process calls TuneAllocatorForLargeMatrices() first.
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "core/quant/gptq.h"
#include "core/quant/gptq_lora.h"
#include "core/quant/hessian.h"
#include "core/quant/linalg.h"
#include "core/quant/quant_spec.h"
#include "core/quant/quantizer.h"
#include "core/tensor/matrix.h"
#include "core/util/allocator.h"

ABSL_FLAG(int, repeats, 2, "timed repetitions per module and method (best is reported)");
ABSL_FLAG(bool, quick, false, "skip the 14336-wide modules (gate/up and down)");
ABSL_FLAG(int, tokens, 2048, "calibration tokens behind H");
ABSL_FLAG(std::string, methods, "gptq,gptq_act,gptq_lora",
          "comma-separated subset of gptq, gptq_act, gptq_lora");
ABSL_FLAG(std::string, modules, "qo,gateup,down", "comma-separated subset of qo, gateup, down");
ABSL_FLAG(bool, cpu_clock, false,
          "time with this process's CPU clock instead of the wall clock: with "
          "OPENBLAS_NUM_THREADS=1, a measure of work that background load barely moves");

namespace caliber {
namespace {

// Wall-clock seconds, or with --cpu_clock this process's CPU seconds (all its threads).
double Now() {
  if (absl::GetFlag(FLAGS_cpu_clock)) {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double Seconds(const std::function<void()>& fn) {
  const double t0 = Now();
  fn();
  return Now() - t0;
}

MatrixF Random(Eigen::Index rows, Eigen::Index cols, float scale, std::mt19937& rng) {
  std::normal_distribution<float> n(0.0f, scale);
  MatrixF m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = n(rng);
  return m;
}

std::vector<std::string> SplitCommas(const std::string& s) {
  std::vector<std::string> out;
  std::string item;
  for (const char ch : s) {
    if (ch == ',') {
      if (!item.empty()) out.push_back(item);
      item.clear();
    } else {
      item.push_back(ch);
    }
  }
  if (!item.empty()) out.push_back(item);
  return out;
}

bool Contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// H of X = Z·(diag(s) + U·Vᵀ), Z ~ N(0, 1) [tokens x in], accumulated like the pipeline does.
MatrixF CorrelatedHessian(int in, int tokens, std::mt19937& rng) {
  const int rank = 32;
  std::lognormal_distribution<float> scale(0.0f, 0.5f);
  Eigen::VectorXf s(in);
  for (int i = 0; i < in; ++i) s[i] = scale(rng);
  const MatrixF U = Random(in, rank, 1.0f / std::sqrt(static_cast<float>(in)), rng);
  const MatrixF V = Random(in, rank, 1.0f, rng);
  HessianAccumulator acc(in);
  const int batch = 512;  // 4 sequences of 128 tokens per AddBatch
  for (int t = 0; t < tokens; t += batch) {
    const MatrixF z = Random(std::min(batch, tokens - t), in, 1.0f, rng);
    MatrixF x = z * s.asDiagonal();
    x.noalias() += (z * U) * V.transpose();
    acc.AddBatch(x, 4);
  }
  return acc.Finalize();
}

// The SGEMM baseline: the best rate seen so far, measured again before every timed run.
class SgemmPeak {
 public:
  explicit SgemmPeak(std::mt19937& rng) : a_(Random(2048, 4096, 1.0f, rng)), c_(4096, 4096) {}
  void Measure() {
    const double s = Seconds([&] {
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, 4096, 4096, 2048, 1.0f, a_.data(),
                  4096, a_.data(), 4096, 0.0f, c_.data(), 4096);
    });
    best_ = std::max(best_, 2.0 * 4096.0 * 4096.0 * 2048.0 / s / 1e9);
  }
  double gflops() const { return best_; }

 private:
  MatrixF a_, c_;
  double best_ = 0;
};

// Flops of the sweep's block updates (lazy GEMMs and in-block rank-1 updates).
double UpdateFlops(double out, int cols, int n, int block) {
  double f = 0;
  for (int i1 = 0; i1 < n; i1 += block) {
    const int i2 = std::min(i1 + block, n);
    const double b = i2 - i1;
    f += 2.0 * out * b * (cols - i2) + out * b * (b - 1);
  }
  return f;
}

double CholeskyChainFlops(int cols) { return 4.0 / 3.0 * double(cols) * cols * cols; }

// The chain GptqPass runs, on the same damped matrix (dead H_ii = 1 aside; there are none).
double CholeskyChainSeconds(const MatrixF& H, double damp) {
  MatrixF damped = H;
  double mean_diag = 0;
  for (Eigen::Index i = 0; i < H.rows(); ++i) mean_diag += H(i, i);
  mean_diag /= static_cast<double>(H.rows());
  damped.diagonal().array() += static_cast<float>(damp * mean_diag);
  return Seconds([&] {
    absl::StatusOr<MatrixF> u = UpperCholeskyOfInverse(std::move(damped));
    if (!u.ok()) std::printf("chain failed: %s\n", u.status().ToString().c_str());
  });
}

struct Module {
  std::string key;
  const char* name;
  int out, in;
};

struct Method {
  std::string key;
  const char* quantizer;
  bool act_order;
  int lora_rank;
};

}  // namespace
}  // namespace caliber

int main(int argc, char** argv) {
  using namespace caliber;
  absl::ParseCommandLine(argc, argv);
  TuneAllocatorForLargeMatrices();
  const int repeats = std::max(1, absl::GetFlag(FLAGS_repeats));
  const bool quick = absl::GetFlag(FLAGS_quick);
  const int tokens = absl::GetFlag(FLAGS_tokens);
  const std::vector<std::string> want_methods = SplitCommas(absl::GetFlag(FLAGS_methods));
  const std::vector<std::string> want_modules = SplitCommas(absl::GetFlag(FLAGS_modules));
  std::mt19937 rng(1);
  SgemmPeak peak(rng);
  peak.Measure();  // warm-up

  std::vector<Module> modules;
  for (const Module& m : {Module{"qo", "q/o 4096x4096", 4096, 4096},
                          Module{"gateup", "gate/up 14336x4096", 14336, 4096},
                          Module{"down", "down 4096x14336", 4096, 14336}}) {
    if (quick && (m.out > 4096 || m.in > 4096)) continue;
    if (Contains(want_modules, m.key)) modules.push_back(m);
  }
  std::vector<Method> methods;
  for (const Method& m : {Method{"gptq", "gptq", false, 0}, Method{"gptq_act", "gptq", true, 0},
                          Method{"gptq_lora", "gptq_lora", false, 32}}) {
    if (Contains(want_methods, m.key)) methods.push_back(m);
  }

  struct Row {
    std::string module, method;
    double total, sweep, extra, chol, update_flops, chain_flops, rel;
  };
  std::vector<Row> rows;
  for (const Module& mod : modules) {
    std::mt19937 mrng(static_cast<uint32_t>(mod.out * 31 + mod.in));
    const MatrixF W = Random(mod.out, mod.in, 0.02f, mrng);
    const MatrixF H = CorrelatedHessian(mod.in, tokens, mrng);
    for (const Method& m : methods) {
      QuantSpec spec;
      spec.bits = 4;
      spec.group_size = 128;
      spec.act_order = m.act_order;
      spec.lora_rank = m.lora_rank;
      const LinearQuantizer* quantizer = FindQuantizer(m.quantizer);
      Row row{mod.name, m.key, 1e30, 1e30, 0, 1e30, 0, 0, 0};
      bool failed = false;
      for (int r = 0; r < repeats && !failed; ++r) {
        // What the pipeline pays: the registry call.
        absl::StatusOr<QuantizedLinear> q;
        peak.Measure();
        row.total = std::min(row.total, Seconds([&] { q = quantizer->Quantize(W, H, spec); }));
        if (!q.ok()) {
          std::printf("%s %s failed: %s\n", mod.name, m.key.c_str(), q.status().ToString().c_str());
          failed = true;
          break;
        }
        row.rel = q->report.relative_error;
        peak.Measure();
        if (m.lora_rank == 0) {
          row.sweep = std::min(row.sweep, Seconds([&] { auto p = GptqQuantize(W, H, spec); }));
          peak.Measure();
          row.chol = std::min(row.chol, CholeskyChainSeconds(H, spec.damp));
        } else {
          MatrixF h_aug;
          const double extra = Seconds([&] {
            absl::StatusOr<MatrixF> a = LoraBasis(H, m.lora_rank, spec.lora_a_bits);
            if (a.ok()) h_aug = AugmentedHessian(H, *a);
          });
          if (h_aug.size() == 0) {
            std::printf("%s %s: LoraBasis failed\n", mod.name, m.key.c_str());
            failed = true;
            break;
          }
          row.extra = r == 0 ? extra : std::min(row.extra, extra);
          MatrixF w_aug = MatrixF::Zero(mod.out, mod.in + m.lora_rank);
          w_aug.leftCols(mod.in) = W;
          peak.Measure();
          row.sweep = std::min(row.sweep,
                               Seconds([&] { auto p = GptqPass(w_aug, h_aug, mod.in, spec); }));
          peak.Measure();
          row.chol = std::min(row.chol, CholeskyChainSeconds(h_aug, spec.damp));
        }
      }
      if (failed) continue;
      const int cols = mod.in + m.lora_rank;
      row.update_flops = UpdateFlops(mod.out, cols, mod.in, spec.block_size);
      row.chain_flops = CholeskyChainFlops(cols);
      rows.push_back(row);
      std::fprintf(stderr, "done: %s %s (%.2f s)\n", mod.name, m.key.c_str(), row.total);
    }
  }

  const double pk = peak.gflops();
  std::printf("GPTQ W4 g128 (block 128, damp 0.01), H from %d tokens; best of %d (%s clock); "
              "SGEMM peak %.1f GFLOP/s (4096 x 4096 x 2048, best over the run)\n",
              tokens, repeats, absl::GetFlag(FLAGS_cpu_clock) ? "process CPU" : "wall", pk);
  std::printf("%-19s %-9s %8s %8s %8s %8s %8s %9s %8s %8s %9s\n", "module (out x in)", "method",
              "total s", "sweep s", "extra s", "chol s", "GFLOP", "%pk sweep", "%pk chol",
              "%pk upd", "rel.err");
  for (const Row& r : rows) {
    const double flops = r.update_flops + r.chain_flops;
    const double upd_s = r.sweep - r.chol;
    std::printf("%-19s %-9s %8.2f %8.2f %8.2f %8.2f %8.1f %8.1f%% %7.1f%% %7.1f%% %9.3e\n",
                r.module.c_str(), r.method.c_str(), r.total, r.sweep, r.extra, r.chol, flops / 1e9,
                100.0 * flops / r.sweep / 1e9 / pk, 100.0 * r.chain_flops / r.chol / 1e9 / pk,
                upd_s > 0 ? 100.0 * r.update_flops / upd_s / 1e9 / pk : 0.0, r.rel);
  }
  return 0;
}
