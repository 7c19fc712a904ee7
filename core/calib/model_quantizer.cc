#include "core/calib/model_quantizer.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "core/model/weights.h"

namespace caliber {

absl::Status ValidateCalibrationSet(const ModelConfig& config, const CalibrationSet& calib) {
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
  for (size_t t = 0; t < calib.tokens.size(); ++t) {
    const int32_t id = calib.tokens[t];
    if (id < 0 || id >= config.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("calibration token ", id, " at position ", t,
                                                     " is outside the vocabulary"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<MatrixF> EmbedCalibrationTokens(const ModelConfig& config,
                                               const Checkpoint& checkpoint,
                                               const CalibrationSet& calib) {
  if (absl::Status s = ValidateCalibrationSet(config, calib); !s.ok()) return s;
  const int64_t embed_shape[] = {config.vocab_size, config.hidden_size};
  absl::StatusOr<std::vector<float>> embed =
      checkpoint.ReadFloat("model.embed_tokens.weight", embed_shape);
  if (!embed.ok()) return embed.status();
  MatrixF hidden(static_cast<Eigen::Index>(calib.tokens.size()), config.hidden_size);
  for (size_t t = 0; t < calib.tokens.size(); ++t) {
    hidden.row(static_cast<Eigen::Index>(t)) = Eigen::Map<const VectorF>(
        embed->data() + static_cast<size_t>(calib.tokens[t]) * config.hidden_size,
        config.hidden_size);
  }
  return hidden;
}

absl::Status QuantizeLayerRange(const ModelConfig& config, const Checkpoint& checkpoint,
                                const CalibrationOptions& options, const SequenceBatch& samples,
                                int first, int end, const std::map<int, LayerQuantResult>& done,
                                MatrixF& hidden, const LayerDoneCallback& on_layer) {
  if (first < 0 || end > config.num_hidden_layers || first > end) {
    return absl::InvalidArgumentError(absl::StrCat("layer range [", first, ", ", end,
                                                   ") is not inside the model's ",
                                                   config.num_hidden_layers, " layers"));
  }
  const RopeTable rope(config, samples.seq_len);
  for (int l = first; l < end; ++l) {
    absl::StatusOr<LayerWeights> weights = LoadLayerWeights(config, checkpoint, l);
    if (!weights.ok()) return weights.status();
    if (auto it = done.find(l); it != done.end()) {
      if (options.propagation == Propagation::kQuantized) {
        if (absl::Status s = ApplyLayerResult(it->second, *weights); !s.ok()) return s;
      }
      if (absl::Status s = PropagateLayer(config, rope, l, *weights, samples, options.batch_seqs,
                                          options.act_bits, hidden);
          !s.ok()) {
        return s;
      }
      continue;
    }
    absl::StatusOr<LayerQuantResult> layer =
        QuantizeLayer(config, rope, l, *weights, options, samples, hidden);
    if (!layer.ok()) return layer.status();
    if (on_layer) {
      if (absl::Status s = on_layer(*layer); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<ModelQuantResult> QuantizeModel(const ModelConfig& config,
                                               const Checkpoint& checkpoint,
                                               const CalibrationSet& calib,
                                               const CalibrationOptions& options,
                                               const LayerDoneCallback& on_layer) {
  const auto start = std::chrono::steady_clock::now();
  if (absl::Status s = ValidateTensorSet(config, checkpoint); !s.ok()) return s;
  absl::StatusOr<MatrixF> hidden = EmbedCalibrationTokens(config, checkpoint, calib);
  if (!hidden.ok()) return hidden.status();
  ModelQuantResult result;
  absl::Status s = QuantizeLayerRange(
      config, checkpoint, options, {calib.nsamples, calib.seq_len}, 0, config.num_hidden_layers,
      {}, *hidden, [&](const LayerQuantResult& layer) {
        if (on_layer) {
          if (absl::Status cb = on_layer(layer); !cb.ok()) return cb;
        }
        result.layers.push_back(layer);
        return absl::OkStatus();
      });
  if (!s.ok()) return s;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace caliber
