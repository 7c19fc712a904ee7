#include "core/model/model.h"

#include <algorithm>
#include <filesystem>
#include <optional>

#include "absl/strings/str_cat.h"
#include "core/io/safetensors.h"
#include "core/model/ops.h"
#include "core/quant/act_quant.h"
#include "core/util/allocator.h"

namespace caliber {
namespace {
// cos/sin tables are precomputed up to here (8 MiB at head_dim 128); longer sequences are
// rejected rather than silently computed with a giant table.
constexpr int kMaxRopePositions = 32768;
}  // namespace

absl::StatusOr<std::unique_ptr<Model>> Model::Load(const std::string& dir) {
  absl::StatusOr<ModelConfig> config =
      ModelConfig::FromFile((std::filesystem::path(dir) / "config.json").string());
  if (!config.ok()) return config.status();
  absl::StatusOr<std::unique_ptr<Checkpoint>> checkpoint = Checkpoint::Open(dir);
  if (!checkpoint.ok()) return checkpoint.status();
  absl::StatusOr<ModelWeights> weights = LoadModelWeights(*config, **checkpoint);
  if (!weights.ok()) return weights.status();
  return std::make_unique<Model>(*std::move(config), *std::move(weights));
}

Model::Model(ModelConfig config, ModelWeights weights)
    : config_(std::move(config)),
      weights_(std::move(weights)),
      rope_(config_, std::clamp(config_.max_position_embeddings, 1, kMaxRopePositions)) {
  TuneAllocatorForLargeMatrices();
}

absl::StatusOr<MatrixF> Model::Embed(absl::Span<const int32_t> ids) const {
  MatrixF hidden(static_cast<Eigen::Index>(ids.size()), config_.hidden_size);
  for (size_t t = 0; t < ids.size(); ++t) {
    if (ids[t] < 0 || ids[t] >= config_.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("token id ", ids[t], " at position ", t,
                                                     " is outside the vocabulary [0, ",
                                                     config_.vocab_size, ")"));
    }
    hidden.row(static_cast<Eigen::Index>(t)) = weights_.embed_tokens.row(ids[t]);
  }
  return hidden;
}

void Model::RunLayer(int layer, const SequenceBatch& batch, MatrixF& hidden,
                     LayerTaps* taps) const {
  DecoderLayerForward(config_, layer, weights_.layers[layer], rope_, batch, hidden, taps);
}

MatrixF Model::Logits(const MatrixF& hidden) const {
  const MatrixF normed = RmsNorm(hidden, weights_.final_norm, static_cast<float>(config_.rms_norm_eps));
  return Linear(normed, weights_.lm_head);
}

absl::StatusOr<MatrixF> Model::Forward(absl::Span<const int32_t> ids, int num_seqs,
                                       int act_bits) const {
  if (absl::Status s = ValidateActBits(act_bits); !s.ok()) return s;
  if (num_seqs <= 0 || ids.size() % num_seqs != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(ids.size(), " tokens do not split into ", num_seqs, " equal sequences"));
  }
  const SequenceBatch batch{num_seqs, static_cast<int>(ids.size() / num_seqs)};
  if (batch.seq_len > rope_.max_positions()) {
    return absl::InvalidArgumentError(absl::StrCat("sequence length ", batch.seq_len,
                                                   " exceeds the supported maximum of ",
                                                   rope_.max_positions()));
  }
  absl::StatusOr<MatrixF> hidden = Embed(ids);
  if (!hidden.ok()) return hidden.status();
  std::optional<ActQuantTaps> act_quant;
  LayerTaps* taps = WithActivationQuantization(act_bits, nullptr, act_quant);
  for (int l = 0; l < config_.num_hidden_layers; ++l) RunLayer(l, batch, *hidden, taps);
  return Logits(*hidden);
}

}  // namespace caliber
