// Forward-pass throughput: the fixture model, and one Llama-3-8B-shaped decoder layer
// (hidden 4096, 32 heads, 8 kv heads, intermediate 14336, random weights, 2048 tokens).
// Linear-layer GFLOP/s are printed as a ratio to the SGEMM peak measured in the same run.
#include <chrono>
#include <cstdio>
#include <functional>
#include <random>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "core/model/model.h"
#include "core/model/ops.h"

ABSL_FLAG(std::string, model, "testdata/tinyllama-en", "fixture model directory");
ABSL_FLAG(int, tokens, 2048, "tokens through the 8B-shaped layer");
ABSL_FLAG(int, repeats, 3, "timed repetitions (best is reported)");

namespace caliber {
namespace {

double BestSeconds(int repeats, const std::function<void()>& fn) {
  fn();  // warm-up
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

MatrixF Random(Eigen::Index rows, Eigen::Index cols, float scale, std::mt19937& rng) {
  std::normal_distribution<float> n(0.0f, scale);
  MatrixF m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = n(rng);
  return m;
}

// SGEMM peak: the largest linear of the layer's shapes, through the same Eigen/BLAS path.
double SgemmPeakGflops(int tokens, int repeats, std::mt19937& rng) {
  const MatrixF x = Random(tokens, 4096, 1.0f, rng);
  const MatrixF w = Random(14336, 4096, 0.01f, rng);
  MatrixF y(tokens, 14336);
  const double s = BestSeconds(repeats, [&] { y.noalias() = x * w.transpose(); });
  return 2.0 * tokens * 4096.0 * 14336.0 / s / 1e9;
}

void BenchLlama3Layer(int tokens, int repeats, double peak) {
  ModelConfig c;
  c.hidden_size = 4096;
  c.intermediate_size = 14336;
  c.num_hidden_layers = 1;
  c.num_attention_heads = 32;
  c.num_key_value_heads = 8;
  c.head_dim = 128;
  c.vocab_size = 128256;
  c.max_position_embeddings = tokens;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 500000.0;
  std::mt19937 rng(7);
  LayerWeights w;
  w.q.weight = Random(4096, 4096, 0.01f, rng);
  w.k.weight = Random(1024, 4096, 0.01f, rng);
  w.v.weight = Random(1024, 4096, 0.01f, rng);
  w.o.weight = Random(4096, 4096, 0.01f, rng);
  w.gate.weight = Random(14336, 4096, 0.01f, rng);
  w.up.weight = Random(14336, 4096, 0.01f, rng);
  w.down.weight = Random(4096, 14336, 0.01f, rng);
  w.input_norm = VectorF::Ones(4096);
  w.post_attention_norm = VectorF::Ones(4096);
  const RopeTable rope(c, tokens);
  const MatrixF input = Random(tokens, 4096, 1.0f, rng);

  const double layer_s = BestSeconds(repeats, [&] {
    MatrixF h = input;
    DecoderLayerForward(c, 0, w, rope, {1, tokens}, h, nullptr);
  });
  // The same seven linears alone, to split the layer's time.
  const MatrixF x_ff = Random(tokens, 14336, 1.0f, rng);
  const double linear_s = BestSeconds(repeats, [&] {
    for (const LinearWeights* lin : {&w.q, &w.k, &w.v, &w.o, &w.gate, &w.up}) {
      MatrixF y = Linear(input, lin->weight);
    }
    MatrixF y = Linear(x_ff, w.down.weight);
  });
  double params = 0;
  for (const LinearWeights* lin : {&w.q, &w.k, &w.v, &w.o, &w.gate, &w.up, &w.down}) {
    params += double(lin->weight.size());
  }
  const double linear_gflops = 2.0 * tokens * params / linear_s / 1e9;
  std::printf("%-34s %10.1f tok/s  %8.3f s\n", "llama3-8b layer, full forward", tokens / layer_s, layer_s);
  std::printf("%-34s %10.1f GFLOP/s  %5.1f%% of SGEMM peak  (%.0f%% of layer time)\n",
              "llama3-8b layer, 7 linears", linear_gflops, 100.0 * linear_gflops / peak,
              100.0 * linear_s / layer_s);
}

void BenchFixture(const std::string& dir, int repeats) {
  auto model = Model::Load(dir);
  if (!model.ok()) {
    std::printf("fixture: %s\n", model.status().ToString().c_str());
    return;
  }
  const int seqs = 8, len = 256;
  std::vector<int32_t> ids(seqs * len);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>((i * 131 + 7) % 4096);
  const double s = BestSeconds(repeats, [&] { auto logits = (*model)->Forward(ids, seqs); });
  std::printf("%-34s %10.1f tok/s  %8.3f s for %d x %d tokens\n", "fixture tinyllama-en forward",
              ids.size() / s, s, seqs, len);
}

}  // namespace
}  // namespace caliber

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int tokens = absl::GetFlag(FLAGS_tokens);
  const int repeats = absl::GetFlag(FLAGS_repeats);
  std::mt19937 rng(1);
  const double peak = caliber::SgemmPeakGflops(tokens, repeats, rng);
  std::printf("%-34s %10.1f GFLOP/s  (%d x 4096 x 14336, this run's baseline)\n", "SGEMM peak", peak, tokens);
  caliber::BenchFixture(absl::GetFlag(FLAGS_model), repeats);
  caliber::BenchLlama3Layer(tokens, repeats, peak);
  return 0;
}
