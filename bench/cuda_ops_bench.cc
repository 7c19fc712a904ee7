// GPTQ Hessian accumulation on the GPU (DeviceHessianAccumulator::AddBatch) for Llama-3-8B
// calibration shapes — 128 sequences of 2048 tokens (262144 tokens) at input widths 4096
// (q/k/v/o/gate/up inputs) and 14336 (down's input), batches of --batch_seqs sequences — as a
// ratio to cuBLAS SGEMM and TF32 GEMM throughput measured in the same run on the same shapes
// (the full XᵀX of each batch through cuda::Linear: [in x tokens] · [in x tokens]ᵀ).
//
// Flop convention (as bench/hessian_bench.cc): a batch of n tokens is a symmetric rank-n update
// of which only the lower triangle is useful, in·(in+1)/2 entries of 2n flops each, so the
// Hessian counts n·in·(in+1) flops per batch; a GEMM counts 2·n·in². A Hessian ratio of 1.0
// therefore means "as fast as computing the full XᵀX with that GEMM would be per useful flop";
// syrk does half the products, so the float32 Hessian at ratio r takes 1/(2r) of SGEMM's time.
//
// Every case runs once per round (--repeats rounds after a warm-up round) and reports its best
// wall time (host clock around the batches, then a stream synchronize). Without a usable CUDA
// device the bench says so and exits with status 2.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "core/cuda/context.h"
#include "core/cuda/device.h"
#include "core/cuda/device_matrix.h"
#include "core/cuda/hessian.h"
#include "core/cuda/linear.h"

ABSL_FLAG(int, seqs, 128, "calibration sequences");
ABSL_FLAG(int, seq_len, 2048, "tokens per sequence");
ABSL_FLAG(int, batch_seqs, 8, "sequences per AddBatch");
ABSL_FLAG(int, repeats, 3, "timed rounds (best is reported)");
ABSL_FLAG(bool, quick, false, "skip in = 14336");

namespace caliber::cuda {
namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

[[noreturn]] void Fail(const absl::Status& s, const char* what) {
  std::fprintf(stderr, "cuda_ops_bench: %s: %s\n", what, s.ToString().c_str());
  std::exit(1);
}

template <typename T>
T Check(absl::StatusOr<T> v, const char* what) {
  if (!v.ok()) Fail(v.status(), what);
  return *std::move(v);
}

void Check(const absl::Status& s, const char* what) {
  if (!s.ok()) Fail(s, what);
}

// Uniform values in [-1, 1) from a 64-bit LCG: fast enough for ~10^9 floats, and throughput
// does not depend on the values.
std::vector<float> RandomValues(size_t n, uint64_t seed) {
  std::vector<float> v(n);
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (float& x : v) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    x = static_cast<float>(static_cast<double>(s >> 40) / static_cast<double>(1ull << 23) - 1.0);
  }
  return v;
}

struct Case {
  std::string what;
  double flops = 0;
  std::function<MathMode()> run;  // runs every batch, waits, returns the math mode used
  double best = 1e30;
  MathMode mode = MathMode::kFloat32;
};

void RunWidth(CudaContext& ctx, int in, int seqs, int seq_len, int batch_seqs, int repeats) {
  const int batches = seqs / batch_seqs;
  const int64_t batch_tokens = static_cast<int64_t>(batch_seqs) * seq_len;
  const double total_tokens = static_cast<double>(batches) * static_cast<double>(batch_tokens);
  const double n = in;

  // One batch of activations, reused for every AddBatch (throughput does not depend on it).
  auto x = Check(DeviceMatrix<float>::Allocate(batch_tokens, in), "allocate X");
  {
    const std::vector<float> host = RandomValues(static_cast<size_t>(x.size()), static_cast<uint64_t>(in));
    Check(x.buffer.CopyFromHost(host, ctx.stream()), "upload X");
  }
  // The same values as a [in x tokens] GEMM operand for the baselines: a·aᵀ is XᵀX.
  auto a = Check(DeviceMatrix<float>::Allocate(in, batch_tokens), "allocate A");
  Check(a.buffer.CopyFrom(x.buffer, ctx.stream()), "copy A");
  auto y = Check(DeviceMatrix<float>::Allocate(in, in), "allocate GEMM output");

  MatmulOptions fp32;
  MatmulOptions tf32;
  tf32.allow_tf32 = true;
  auto gemm = [&](const MatmulOptions& options) {
    return [&ctx, &a, &y, batches, options]() {
      MathMode mode = MathMode::kFloat32;
      for (int b = 0; b < batches; ++b) mode = Check(Linear(ctx, a, a, nullptr, y, options), "Linear");
      Check(ctx.Synchronize(), "synchronize");
      return mode;
    };
  };
  auto hessian = [&](const MatmulOptions& options) {
    return [&ctx, &x, in, batches, batch_seqs, options]() {
      auto acc = Check(DeviceHessianAccumulator::Create(ctx, in, options), "create accumulator");
      for (int b = 0; b < batches; ++b) Check(acc.AddBatch(x, batch_seqs), "AddBatch");
      Check(ctx.Synchronize(), "synchronize");
      return acc.math_mode();
    };
  };
  const double gemm_flops = 2.0 * total_tokens * n * n;
  const double hessian_flops = total_tokens * n * (n + 1);
  std::vector<Case> cases;
  cases.push_back({"cuBLAS SGEMM (full X^T X)", gemm_flops, gemm(fp32)});
  cases.push_back({"cuBLAS TF32 GEMM (full X^T X)", gemm_flops, gemm(tf32)});
  cases.push_back({"Hessian AddBatch float32 (syrk)", hessian_flops, hessian(fp32)});
  cases.push_back({"Hessian AddBatch allow_tf32 (GEMM)", hessian_flops, hessian(tf32)});

  for (int round = 0; round <= repeats; ++round) {
    for (Case& c : cases) {
      const double t0 = Now();
      c.mode = c.run();
      const double t = Now() - t0;
      if (round > 0) c.best = std::min(c.best, t);  // round 0 warms up
    }
  }

  const double sgemm = cases[0].flops / cases[0].best;
  const double tf32_gemm = cases[1].flops / cases[1].best;
  std::printf("\nin = %d: %d batches of %lld tokens (%.0f tokens), best of %d rounds\n", in, batches,
              static_cast<long long>(batch_tokens), total_tokens, repeats);
  std::printf("%-38s %8s %10s %9s %9s %12s\n", "case", "math", "seconds", "TFLOP/s", "vs SGEMM", "vs TF32 GEMM");
  for (const Case& c : cases) {
    const double rate = c.flops / c.best;
    std::printf("%-38s %8s %10.4f %9.2f %9.3f %12.3f\n", c.what.c_str(), MathModeName(c.mode), c.best, rate * 1e-12,
                rate / sgemm, rate / tf32_gemm);
  }
}

}  // namespace
}  // namespace caliber::cuda

int main(int argc, char** argv) {
  using namespace caliber::cuda;
  absl::ParseCommandLine(argc, argv);
  if (absl::Status s = RequireDevice(); !s.ok()) {
    std::fprintf(stderr, "cuda_ops_bench: %s; nothing measured (run it on a machine with a CUDA GPU)\n",
                 s.ToString().c_str());
    return 2;
  }
  auto ctx = Check(CudaContext::Create(), "create CUDA context");
  const DeviceInfo& d = ctx->device();
  std::printf("device %d: %s, compute capability %d.%d, %.1f GiB\n", d.index, d.name.c_str(), d.compute_major,
              d.compute_minor, static_cast<double>(d.total_memory) / (1 << 30));
  const int seqs = absl::GetFlag(FLAGS_seqs);
  const int seq_len = absl::GetFlag(FLAGS_seq_len);
  const int batch_seqs = absl::GetFlag(FLAGS_batch_seqs);
  const int repeats = std::max(1, absl::GetFlag(FLAGS_repeats));
  if (seqs < 1 || seq_len < 1 || batch_seqs < 1 || seqs % batch_seqs != 0) {
    std::fprintf(stderr, "cuda_ops_bench: need seqs, seq_len, batch_seqs >= 1 and batch_seqs dividing seqs\n");
    return 1;
  }
  std::printf("Hessian flops: tokens·in·(in+1) (useful lower triangle); GEMM flops: 2·tokens·in²\n");
  std::vector<int> widths = {4096};
  if (!absl::GetFlag(FLAGS_quick)) widths.push_back(14336);
  for (int in : widths) RunWidth(*ctx, in, seqs, seq_len, batch_seqs, repeats);
  return 0;
}
