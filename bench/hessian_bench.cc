// GPTQ Hessian accumulation throughput (HessianAccumulator::AddBatch) for Llama-3-8B input
// widths (in = 4096: q/k/v/o/gate/up inputs; in = 14336: down's input) with batches of 2048
// tokens, float32 and float64 accumulators, as a ratio to the SGEMM peak measured in the same
// run through the same BLAS (cblas_sgemm, 4096 x 4096 x 2048: the full XᵀX of one batch).
//
// Flop convention: a batch of n tokens is a symmetric rank-n update of which only the lower
// triangle is useful, in·(in+1)/2 entries of 2n flops each: n·in·(in+1) flops per batch.
// (A full gemm XᵀX does 2·n·in² flops, about twice the useful work.)
//
// The machine is shared, so every case runs once per round, round after round (--repeats
// rounds after a warm-up round), each right after a run of the baseline, and each reports its
// best: the baseline and the cases see the same spread of background load. Like the pipeline (Model::Load), the process first
// calls TuneAllocatorForLargeMatrices(), so repeated large temporaries are not page-faulted in
// again on every call.
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "core/quant/hessian.h"
#include "core/tensor/matrix.h"
#include "core/util/allocator.h"

ABSL_FLAG(int, tokens, 2048, "tokens per AddBatch");
ABSL_FLAG(int, repeats, 3, "timed rounds (best is reported)");
ABSL_FLAG(bool, quick, false, "skip in = 14336");
ABSL_FLAG(bool, cpu_clock, false,
          "time with this process's CPU clock instead of the wall clock: with "
          "OPENBLAS_NUM_THREADS=1, a measure of work that background load barely moves");

namespace caliber {
namespace {

using Precision = HessianAccumulator::Precision;

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

struct Case {
  std::string what;
  int in = 0;
  const char* prec = "";
  double flops = 0;  // 0: time only
  std::function<void()> run;
  double best = 1e30;
};

}  // namespace
}  // namespace caliber

int main(int argc, char** argv) {
  using namespace caliber;
  absl::ParseCommandLine(argc, argv);
  TuneAllocatorForLargeMatrices();
  const int tokens = absl::GetFlag(FLAGS_tokens);
  const int repeats = std::max(1, absl::GetFlag(FLAGS_repeats));
  std::vector<int> widths = {4096};
  if (!absl::GetFlag(FLAGS_quick)) widths.push_back(14336);
  std::mt19937 rng(1);

  // Storage the cases work on (kept alive for the whole run).
  const MatrixF peak_a = Random(tokens, 4096, 1.0f, rng);
  MatrixF peak_c = MatrixF::Zero(4096, 4096);
  const MatrixD peak_ad = peak_a.cast<double>();
  MatrixD peak_cd = MatrixD::Zero(4096, 4096);
  std::vector<MatrixF> xs;
  std::vector<HessianAccumulator> accs;
  std::vector<MatrixF> raw;
  xs.reserve(widths.size());
  accs.reserve(2 * widths.size());
  raw.reserve(widths.size());

  std::vector<Case> cases;
  cases.push_back({"SGEMM peak (baseline)", 4096, "f32", 2.0 * 4096.0 * 4096.0 * tokens, [&] {
                     cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, 4096, 4096, tokens, 1.0f,
                                 peak_a.data(), 4096, peak_a.data(), 4096, 0.0f, peak_c.data(),
                                 4096);
                   }});
  cases.push_back({"DGEMM (f64 ceiling)", 4096, "f64", 2.0 * 4096.0 * 4096.0 * tokens, [&] {
                     cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, 4096, 4096, tokens, 1.0,
                                 peak_ad.data(), 4096, peak_ad.data(), 4096, 0.0, peak_cd.data(),
                                 4096);
                   }});
  for (const int in : widths) {
    xs.push_back(Random(tokens, in, 1.0f, rng));
    const MatrixF& x = xs.back();
    const double useful = double(tokens) * in * (in + 1.0);
    for (const Precision p : {Precision::kFloat32, Precision::kFloat64}) {
      const bool f32 = p == Precision::kFloat32;
      accs.emplace_back(in, p);
      HessianAccumulator& acc = accs.back();
      acc.AddBatch(x, 8);  // the timed batches rescale an already non-zero H (beta != 0)
      cases.push_back({"AddBatch", in, f32 ? "f32" : "f64", useful, [&acc, &x] { acc.AddBatch(x, 8); }});
      cases.push_back({"Finalize (once per H)", in, f32 ? "f32" : "f64", 0, [&acc] {
                         const MatrixF h = acc.Finalize();
                         if (h(0, 0) < 0) std::printf("?");
                       }});
    }
    // The same update straight through BLAS, to split AddBatch's own cost from the kernel's.
    raw.push_back(MatrixF::Zero(in, in));
    MatrixF& c = raw.back();
    cases.push_back({"raw cblas_ssyrk", in, "f32", useful, [&x, &c, in, tokens] {
                       cblas_ssyrk(CblasRowMajor, CblasLower, CblasTrans, in, tokens, 1.0f,
                                   x.data(), in, 1.0f, c.data(), in);
                     }});
  }

  // The baseline runs again before every other case, so that its best is taken over as many
  // load conditions as the cases see.
  for (int round = 0; round <= repeats; ++round) {  // round 0: warm-up
    for (size_t i = 1; i < cases.size(); ++i) {
      for (const size_t k : {size_t{0}, i}) {
        const double s = Seconds(cases[k].run);
        if (round > 0) cases[k].best = std::min(cases[k].best, s);
      }
    }
  }

  const double peak = cases[0].flops / cases[0].best / 1e9;
  std::printf("Hessian accumulation, %d tokens per batch, best of %d rounds (%s clock); useful "
              "flops = tokens·in·(in+1) per batch\n",
              tokens, repeats, absl::GetFlag(FLAGS_cpu_clock) ? "process CPU" : "wall");
  std::printf("%-24s %6s %-4s %10s %9s %10s\n", "what", "in", "prec", "GFLOP/s", "%SGEMM", "seconds");
  for (const Case& c : cases) {
    if (c.flops > 0) {
      const double gflops = c.flops / c.best / 1e9;
      std::printf("%-24s %6d %-4s %10.1f %8.1f%% %10.3f\n", c.what.c_str(), c.in, c.prec, gflops,
                  100.0 * gflops / peak, c.best);
    } else {
      std::printf("%-24s %6d %-4s %10s %9s %10.3f\n", c.what.c_str(), c.in, c.prec, "-", "-",
                  c.best);
    }
  }
  return 0;
}
