#include "core/calib/model_quantizer.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "core/model/weights.h"

namespace caliber {

absl::StatusOr<ModelQuantResult> QuantizeModel(const ModelConfig& config,
                                               const Checkpoint& checkpoint,
                                               const CalibrationSet& calib,
                                               const CalibrationOptions& options,
                                               const LayerDoneCallback& on_layer) {
  const auto start = std::chrono::steady_clock::now();
  if (absl::Status s = ValidateTensorSet(config, checkpoint); !s.ok()) return s;
  if (calib.nsamples < 1 || calib.seq_len < 1 ||
      calib.tokens.size() != static_cast<size_t>(calib.nsamples) * calib.seq_len) {
    return absl::InvalidArgumentError(absl::StrCat(
        "calibration set must hold nsamples >= 1 segments of seq_len >= 1 tokens, got ",
        calib.nsamples, " x ", calib.seq_len, " with ", calib.tokens.size(), " tokens"));
  }
  if (calib.seq_len > config.max_position_embeddings) {
    return absl::InvalidArgumentError(absl::StrCat("calibration seq_len ", calib.seq_len,
                                                   " exceeds max_position_embeddings ",
                                                   config.max_position_embeddings));
  }
  const int64_t embed_shape[] = {config.vocab_size, config.hidden_size};
  absl::StatusOr<std::vector<float>> embed = checkpoint.ReadFloat("model.embed_tokens.weight", embed_shape);
  if (!embed.ok()) return embed.status();
  MatrixF hidden(static_cast<Eigen::Index>(calib.tokens.size()), config.hidden_size);
  for (size_t t = 0; t < calib.tokens.size(); ++t) {
    const int32_t id = calib.tokens[t];
    if (id < 0 || id >= config.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("calibration token ", id, " at position ", t,
                                                     " is outside the vocabulary"));
    }
    hidden.row(static_cast<Eigen::Index>(t)) =
        Eigen::Map<const VectorF>(embed->data() + static_cast<size_t>(id) * config.hidden_size,
                                  config.hidden_size);
  }
  embed->clear();
  embed->shrink_to_fit();

  const RopeTable rope(config, calib.seq_len);
  const SequenceBatch samples{calib.nsamples, calib.seq_len};
  ModelQuantResult result;
  for (int l = 0; l < config.num_hidden_layers; ++l) {
    absl::StatusOr<LayerWeights> weights = LoadLayerWeights(config, checkpoint, l);
    if (!weights.ok()) return weights.status();
    absl::StatusOr<LayerQuantResult> layer =
        QuantizeLayer(config, rope, l, *weights, options, samples, hidden);
    if (!layer.ok()) return layer.status();
    if (on_layer) {
      if (absl::Status s = on_layer(*layer); !s.ok()) return s;
    }
    result.layers.push_back(*std::move(layer));
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace caliber
