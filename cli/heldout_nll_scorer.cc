#include "cli/heldout_nll_scorer.h"

#include <cstdio>
#include <filesystem>
#include <memory>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/calib/model_quantizer.h"
#include "core/eval/perplexity.h"
#include "core/formats/checkpoint_format.h"
#include "core/io/inputs.h"

namespace caliber {

namespace fs = std::filesystem;

HeldoutNllScorer MakeHeldoutNllScorer(const CalibrationOptions& options, const std::string& source_dir,
                                      const ModelConfig& source_config, const Checkpoint& source_checkpoint,
                                      const std::string& scratch) {
  return [&options, source_dir, &source_config, &source_checkpoint, scratch](
             const ModelTransform& transform, const CalibrationSet& train,
             const CalibrationSet& heldout) -> absl::StatusOr<std::vector<double>> {
    struct Cleanup {
      std::string path;
      ~Cleanup() {
        std::error_code ec;
        fs::remove_all(path, ec);
      }
    } cleanup{scratch};
    std::error_code ec;
    if (fs::exists(scratch, ec)) {
      return absl::AlreadyExistsError(absl::StrCat("scratch directory ", scratch, " already exists; remove it"));
    }
    const std::string model_dir = (fs::path(scratch) / "model").string();
    if (absl::Status s = WriteTransformedModel(source_dir, source_config, source_checkpoint, transform, model_dir);
        !s.ok()) {
      return s;
    }
    absl::StatusOr<ModelConfig> config = ModelConfig::FromFile((fs::path(model_dir) / "config.json").string());
    if (!config.ok()) return config.status();
    absl::StatusOr<std::unique_ptr<Checkpoint>> checkpoint = Checkpoint::Open(model_dir);
    if (!checkpoint.ok()) return checkpoint.status();
    std::unique_ptr<QuantizedCheckpointWriter> writer =
        MakeCheckpointWriter(options, *config, **checkpoint, model_dir, (fs::path(scratch) / "q").string(),
                             {{"quantizer", {"caliber:0.1.0"}}});
    absl::StatusOr<ModelQuantResult> result =
        QuantizeModel(*config, **checkpoint, train, options,
                      [&](const LayerQuantResult& layer) { return writer->AddLayer(layer); });
    if (!result.ok()) return result.status();
    absl::StatusOr<std::string> staged = writer->Stage();
    if (!staged.ok()) return staged.status();
    const std::string adapter = (fs::path(*staged) / "adapter").string();
    absl::StatusOr<std::unique_ptr<Model>> model = LoadModel(*staged, fs::exists(adapter) ? adapter : "");
    if (!model.ok()) return model.status();
    PerplexityOptions eval;
    eval.seq_len = heldout.seq_len;
    eval.max_windows = 0;
    eval.act_bits = options.act_bits;
    absl::StatusOr<PerplexityResult> r = EvaluatePerplexity(**model, heldout.tokens, eval);
    if (!r.ok()) return r.status();
    std::fprintf(stderr, "selection nll: held-out nll %.6f (%d windows)\n", r->nll, r->windows);
    return r->window_nll;
  };
}

}  // namespace caliber
