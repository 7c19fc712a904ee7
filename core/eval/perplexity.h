// Perplexity by the convention GPTQ papers use for WikiText-2: the token stream is cut into
// non-overlapping windows of seq_len tokens (the last partial window dropped), each window is
// an independent sequence starting at position 0, and ppl = exp(mean NLL over the
// seq_len - 1 predictions of every window).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model/model.h"

namespace caliber {

struct PerplexityOptions {
  int seq_len = 256;
  int max_windows = 0;      // <= 0: every full window
  int batch_windows = 8;    // windows per forward pass (bigger GEMMs)
  // 16: float activations; 8: per-token dynamic INT8 at every linear input (Model::Forward).
  int act_bits = 16;
  // Called after each batch with (windows done, windows total).
  std::function<void(int, int)> progress;
};

struct PerplexityResult {
  double ppl = 0;
  double nll = 0;  // mean natural-log NLL per predicted token
  int64_t tokens = 0;  // predicted tokens
  int windows = 0;
  double seconds = 0;
  int act_bits = 16;  // the activations it was computed with (PerplexityOptions::act_bits)
  std::vector<double> window_nll;  // mean NLL of each window, in order
};

// Mean NLL of each row's next token: logits [T x vocab] for one sequence of ids [T];
// returns the sum over positions 0..T-2 predicting ids[1..T-1], accumulated in double.
double SequenceNllSum(const Eigen::Ref<const MatrixF>& logits, absl::Span<const int32_t> ids);

absl::StatusOr<PerplexityResult> EvaluatePerplexity(const Model& model,
                                                    const std::vector<int32_t>& stream,
                                                    const PerplexityOptions& options);

}  // namespace caliber
