#include "core/eval/perplexity.h"

#include <chrono>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace caliber {

double SequenceNllSum(const Eigen::Ref<const MatrixF>& logits, absl::Span<const int32_t> ids) {
  double total = 0;
  for (size_t t = 0; t + 1 < ids.size(); ++t) {
    const auto row = logits.row(static_cast<Eigen::Index>(t));
    const float max_logit = row.maxCoeff();
    // Shifted exponentials are in (0, 1]: a float sum over the vocabulary loses nothing that
    // matters, and Eigen vectorizes it; the total over tokens is kept in double.
    const double sum_exp = (row.array() - max_logit).exp().sum();
    total += std::log(sum_exp) + max_logit - double(row(ids[t + 1]));
  }
  return total;
}

absl::StatusOr<PerplexityResult> EvaluatePerplexity(const Model& model,
                                                    const std::vector<int32_t>& stream,
                                                    const PerplexityOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  const int64_t seq_len = options.seq_len;
  if (seq_len < 2) return absl::InvalidArgumentError("seq_len must be at least 2");
  int64_t windows = static_cast<int64_t>(stream.size()) / seq_len;
  if (options.max_windows > 0) windows = std::min<int64_t>(windows, options.max_windows);
  if (windows == 0) {
    return absl::InvalidArgumentError(absl::StrCat("the input has ", stream.size(),
                                                   " tokens: not one full window of ", seq_len));
  }
  const int batch = std::max(1, options.batch_windows);
  PerplexityResult r;
  double nll_sum = 0;
  for (int64_t w0 = 0; w0 < windows; w0 += batch) {
    const int n = static_cast<int>(std::min<int64_t>(batch, windows - w0));
    const absl::Span<const int32_t> ids(stream.data() + w0 * seq_len, n * seq_len);
    absl::StatusOr<MatrixF> logits = model.Forward(ids, n, options.act_bits);
    if (!logits.ok()) return logits.status();
    for (int i = 0; i < n; ++i) {
      const double nll = SequenceNllSum(logits->middleRows(i * seq_len, seq_len),
                                        ids.subspan(i * seq_len, seq_len));
      r.window_nll.push_back(nll / static_cast<double>(seq_len - 1));
      nll_sum += nll;
    }
    if (options.progress) options.progress(static_cast<int>(w0 + n), static_cast<int>(windows));
  }
  r.windows = static_cast<int>(windows);
  r.act_bits = options.act_bits;
  r.tokens = windows * (seq_len - 1);
  r.nll = nll_sum / static_cast<double>(r.tokens);
  r.ppl = std::exp(r.nll);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

}  // namespace caliber
