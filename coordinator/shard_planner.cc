#include "coordinator/shard_planner.h"

#include <algorithm>
#include <limits>
#include <optional>

#include "absl/strings/str_cat.h"

namespace caliber::coordinator {

std::vector<LayerCost> EstimateLayerCosts(const ModelConfig& c, int64_t tokens, int seq_len) {
  const double h = c.hidden_size, q = c.q_dim(), kv = 2.0 * c.num_key_value_heads * c.head_dim,
               i = c.intermediate_size;
  const double linear_params = h * (q + kv) + q * h + 2 * h * i + i * h;
  std::vector<LayerCost> costs(static_cast<size_t>(c.num_hidden_layers));
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const std::optional<int> sliding = c.LayerSlidingWindow(l);
    const double window = sliding ? std::min(seq_len, *sliding) : seq_len;
    // Forward GEMMs (run once per module group under quantized propagation: ~4x), the
    // attention scores, the Hessians (in^2 per token per group), and the quantizers (~in^2 per
    // output row, dominated by the sweep).
    const double forward = 2.0 * tokens * linear_params + 4.0 * tokens * window * q;
    const double hessians = static_cast<double>(tokens) * (h * h * 2 + q * q + i * i);
    // GPTQ per module: a Cholesky (~in^3/3, three of them with the inverse) and the sweep's
    // rank updates (~out * in^2).
    auto gptq = [](double in, double out) { return in * in * in + out * in * in; };
    const double quantize = gptq(h, q + kv) + gptq(q, h) + gptq(h, 2 * i) + gptq(i, h);
    costs[static_cast<size_t>(l)].flops = 4 * forward + 2 * hessians + quantize;
    // Float32 weights + the largest Hessian pair (float64 worst case) + its factorization.
    costs[static_cast<size_t>(l)].bytes = static_cast<int64_t>(
        4 * (linear_params + 2 * h) + 3 * 8 * std::max(h, i) * std::max(h, i));
  }
  return costs;
}

int64_t StageFixedBytes(const ModelConfig& c, int64_t tokens) {
  // The boundary activations, a copy being propagated, and the widest intermediate batch.
  return tokens * static_cast<int64_t>(c.hidden_size) * 4 * 3 +
         tokens * static_cast<int64_t>(c.intermediate_size) * 4;
}

absl::StatusOr<std::vector<StageRange>> PlanStages(const std::vector<LayerCost>& layers,
                                                   const std::vector<int64_t>& worker_bytes,
                                                   int64_t fixed_bytes) {
  const int L = static_cast<int>(layers.size());
  const int S = static_cast<int>(worker_bytes.size());
  if (S < 1 || S > L) {
    return absl::InvalidArgumentError(absl::StrCat("cannot split ", L, " layers into ", S, " stages"));
  }
  // Prefix sums make a range's cost O(1).
  std::vector<double> flops(L + 1, 0);
  for (int l = 0; l < L; ++l) flops[l + 1] = flops[l] + layers[l].flops;
  // A stage holds one layer at a time plus its boundary; what must fit is its largest layer.
  auto fits = [&](int s, int a, int b) {
    int64_t largest = 0;
    for (int l = a; l < b; ++l) largest = std::max(largest, layers[l].bytes);
    return largest + fixed_bytes <= worker_bytes[s];
  };
  constexpr double kInf = std::numeric_limits<double>::infinity();
  // best[s][l]: the smallest max-stage cost putting layers [0, l) on stages [0, s).
  std::vector<std::vector<double>> best(S + 1, std::vector<double>(L + 1, kInf));
  std::vector<std::vector<int>> cut(S + 1, std::vector<int>(L + 1, -1));
  best[0][0] = 0;
  for (int s = 1; s <= S; ++s) {
    for (int l = s; l <= L - (S - s); ++l) {
      for (int a = s - 1; a < l; ++a) {
        if (best[s - 1][a] == kInf || !fits(s - 1, a, l)) continue;
        const double cost = std::max(best[s - 1][a], flops[l] - flops[a]);
        // Ties go to the earlier cut, which makes the plan deterministic.
        if (cost < best[s][l]) {
          best[s][l] = cost;
          cut[s][l] = a;
        }
      }
    }
  }
  if (best[S][L] == kInf) {
    int64_t largest = 0;
    for (const LayerCost& c : layers) largest = std::max(largest, c.bytes);
    return absl::FailedPreconditionError(absl::StrCat(
        "the model does not fit the workers: a layer needs ", largest + fixed_bytes,
        " bytes with its activations; the smallest worker offers ",
        *std::min_element(worker_bytes.begin(), worker_bytes.end())));
  }
  std::vector<StageRange> stages(S);
  for (int s = S, l = L; s > 0; --s) {
    const int a = cut[s][l];
    stages[s - 1] = {a, l};
    l = a;
  }
  return stages;
}

}  // namespace caliber::coordinator
