#include "coordinator/checkpoint_assembler.h"

#include <openssl/evp.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "coordinator/job_preparer.h"
#include "coordinator/job_spec.h"
#include "core/calib/model_quantizer.h"
#include "core/eval/perplexity.h"
#include "core/formats/checkpoint_format.h"
#include "core/formats/job_meta.h"
#include "core/formats/layer_result_codec.h"
#include "core/formats/quant_report.h"
#include "core/io/inputs.h"
#include "services/job_options.h"
#include "services/storage/model_fetch.h"
#include "nlohmann/json.hpp"

namespace caliber::coordinator {
namespace fs = std::filesystem;
namespace {

absl::StatusOr<std::string> Sha256File(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InternalError(absl::StrCat("cannot read ", path.string()));
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    EVP_DigestUpdate(ctx, buf.data(), static_cast<size_t>(in.gcount()));
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, digest, &len);
  EVP_MD_CTX_free(ctx);
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) absl::StrAppend(&hex, absl::Hex(digest[i], absl::kZeroPad2));
  return hex;
}

nlohmann::json PplJson(const PerplexityResult& r, int seq_len) {
  return {{"ppl", r.ppl},         {"nll", r.nll},         {"tokens", r.tokens},
          {"windows", r.windows}, {"seq_len", seq_len}, {"act_bits", r.act_bits}};
}

std::string BaseName(std::string uri) {
  while (!uri.empty() && uri.back() == '/') uri.pop_back();
  const size_t slash = uri.find_last_of('/');
  return slash == std::string::npos ? uri : uri.substr(slash + 1);
}

}  // namespace

absl::StatusOr<bool> OutputExists(storage::Storage& storage, const std::string& output_uri) {
  for (const char* name : {"config.json", kManifestName}) {
    absl::StatusOr<bool> e = storage.Exists(storage::JoinUri(output_uri, name));
    if (!e.ok()) return e.status();
    if (*e) return true;
  }
  return false;
}

absl::StatusOr<v1::QualityReport> AssembleCheckpoint(storage::Storage& storage,
                                                     const v1::JobRecord& record,
                                                     const ModelConfig& config,
                                                     const std::string& cache_dir,
                                                     const AssemblyHooks& hooks) {
  const v1::QuantJobSpec& spec = record.job().spec();
  const CalibrationOptions options = CalibrationOptionsOf(spec);
  // A transformed job quantized the transformed model: its non-quantized tensors (rotated
  // embeddings, head) and config come from there; the fp baseline stays the original.
  const std::string original_dir = ModelCacheDir(cache_dir);
  const bool transformed = !record.transformed_model_uri().empty();
  const std::string model_dir = transformed ? TransformedModelCacheDir(cache_dir) : original_dir;
  if (transformed && !fs::exists(fs::path(model_dir) / "config.json")) {
    storage::ModelFetchOptions all;
    all.want = [](std::string_view) { return true; };
    all.tokenizer = true;
    if (absl::StatusOr<storage::ModelFetchStats> f = storage::FetchModel(storage, record.transformed_model_uri(),
                                                                          model_dir, all);
        !f.ok()) {
      return f.status();
    }
  }
  absl::StatusOr<ModelConfig> source_config =
      transformed ? ModelConfig::FromFile((fs::path(model_dir) / "config.json").string())
                  : absl::StatusOr<ModelConfig>(config);
  if (!source_config.ok()) return source_config.status();
  absl::StatusOr<std::unique_ptr<Checkpoint>> source = Checkpoint::Open(model_dir);
  if (!source.ok()) return source.status();

  const v1::CalibrationData& c = spec.calibration();
  // The same metadata `caliber quantize` writes: the method as named, the transform's options.
  absl::StatusOr<TransformOptions> transform = TransformOptionsFromProto(spec.method());
  if (!transform.ok()) return transform.status();
  const nlohmann::json meta =
      QuantizationMeta(options, {c.nsamples(), c.seq_len(), c.seed(), c.sampling()}, spec.method().name(), *transform);
  const std::string local_out = (fs::path(cache_dir) / "out").string();
  std::error_code ec;
  fs::remove_all(local_out, ec);  // what a previous attempt left
  // The job's format: GPTQ v1 for W·A16, compressed-tensors for W·A8 (act_bits 8).
  const std::unique_ptr<QuantizedCheckpointWriter> writer = MakeCheckpointWriter(
      options, *source_config, **source, model_dir, local_out,
      {{"quantizer", {"caliber:0.1.0"}}, {"caliber", meta}});
  writer->set_base_model_name(BaseName(spec.model_uri()));
  if (absl::Status s = writer->CheckOutput(); !s.ok()) return s;

  if (hooks.on_phase) hooks.on_phase("assembling");
  ModelQuantResult result;
  for (int l = 0; l < record.layers_size(); ++l) {
    const v1::LayerRecord& lr = record.layers(l);
    absl::StatusOr<std::string> bytes = storage.Read(lr.result_uri());
    if (!bytes.ok()) return bytes.status();
    const uint32_t crc = static_cast<uint32_t>(
        crc32(0, reinterpret_cast<const Bytef*>(bytes->data()), static_cast<uInt>(bytes->size())));
    if (static_cast<int64_t>(bytes->size()) != lr.result_bytes() || crc != lr.result_crc32()) {
      return absl::DataLossError(absl::StrCat("layer ", l, " result ", lr.result_uri(),
                                              " does not match the checksum its worker reported"));
    }
    absl::StatusOr<LayerQuantResult> layer = DecodeLayerResult(*bytes);
    if (!layer.ok()) return layer.status();
    if (layer->layer != l) return absl::DataLossError(absl::StrCat(lr.result_uri(), " holds layer ", layer->layer));
    if (absl::Status s = writer->AddLayer(*layer); !s.ok()) return s;
    result.layers.push_back(*std::move(layer));
  }
  absl::StatusOr<std::string> staged = writer->Stage();
  if (!staged.ok()) return staged.status();
  result.seconds = absl::ToDoubleSeconds(absl::Now() - absl::FromUnixSeconds(record.job().start_time().seconds()));

  nlohmann::json job = meta;
  job["model"] = spec.model_uri();
  job["calib"]["file"] = c.uri();
  job["job_id"] = record.job().job_id();
  job["workers"] = record.stage_count();
  job["propagation_mode"] = v1::Propagation_Name(spec.propagation());
  nlohmann::json report = BuildQuantReport(result, job);
  if (transformed) {
    absl::StatusOr<std::string> part = storage.Read(record.transform_report_uri());
    if (!part.ok()) return part.status();
    nlohmann::json t = nlohmann::json::parse(*part, nullptr, /*allow_exceptions=*/false);
    if (t.is_discarded()) return absl::DataLossError(absl::StrCat(record.transform_report_uri(), " is not JSON"));
    report["transform"] = std::move(t);
  }

  v1::QualityReport quality;
  quality.set_mean_relative_output_error(report["totals"]["mean_relative_output_error"].get<double>());
  quality.set_modules(report["totals"]["modules"].get<int>());
  if (spec.has_evaluation()) {
    if (hooks.on_phase) hooks.on_phase("evaluating");
    const v1::EvaluationData& e = spec.evaluation();
    absl::StatusOr<std::vector<int32_t>> tokens = LoadDataTokens(
        storage, e.uri(), e.format(), original_dir, (fs::path(cache_dir) / "eval").string(), config.vocab_size);
    if (!tokens.ok()) return tokens.status();
    PerplexityOptions po;
    po.seq_len = e.seq_len();
    po.max_windows = e.max_windows();
    const std::string adapter = (fs::path(*staged) / "adapter").string();
    absl::StatusOr<std::unique_ptr<Model>> fp = LoadModel(original_dir, "");
    if (!fp.ok()) return fp.status();
    absl::StatusOr<PerplexityResult> before = EvaluatePerplexity(**fp, *tokens, po);
    if (!before.ok()) return before.status();
    fp->reset();
    absl::StatusOr<std::unique_ptr<Model>> q = LoadModel(*staged, fs::exists(adapter) ? adapter : "");
    if (!q.ok()) return q.status();
    po.act_bits = options.act_bits;  // the checkpoint as it is served; the baseline in float
    absl::StatusOr<PerplexityResult> after = EvaluatePerplexity(**q, *tokens, po);
    if (!after.ok()) return after.status();
    report["eval"] = {{"fp", PplJson(*before, e.seq_len())}, {"quantized", PplJson(*after, e.seq_len())}};
    quality.set_ppl_fp(before->ppl);
    quality.set_ppl_quantized(after->ppl);
  }
  if (absl::Status s = writer->Commit(report); !s.ok()) return s;

  if (hooks.on_phase) hooks.on_phase("committing");
  if (hooks.before_commit) {
    if (absl::Status s = hooks.before_commit(); !s.ok()) return s;
  }
  // Everything but config.json first; then config.json (no loader starts without it); then
  // the manifest, the marker of a complete checkpoint.
  std::vector<fs::path> files;
  for (const auto& entry : fs::recursive_directory_iterator(local_out)) {
    if (entry.is_regular_file()) files.push_back(fs::relative(entry.path(), local_out));
  }
  std::sort(files.begin(), files.end(), [](const fs::path& a, const fs::path& b) {
    const bool ca = a == "config.json", cb = b == "config.json";
    return ca != cb ? cb : a < b;
  });
  nlohmann::json manifest = {{"job_id", record.job().job_id()}, {"files", nlohmann::json::array()}};
  for (const fs::path& rel : files) {
    const fs::path path = fs::path(local_out) / rel;
    absl::StatusOr<std::string> sha = Sha256File(path);
    if (!sha.ok()) return sha.status();
    if (absl::Status s = storage.WriteFile(storage::JoinUri(spec.output_uri(), rel.generic_string()), path.string());
        !s.ok()) {
      return s;
    }
    manifest["files"].push_back({{"name", rel.generic_string()}, {"size", fs::file_size(path)}, {"sha256", *sha}});
  }
  if (absl::Status s = storage.Write(storage::JoinUri(spec.output_uri(), kManifestName), manifest.dump(2) + "\n");
      !s.ok()) {
    return s;
  }
  quality.set_report_uri(storage::JoinUri(spec.output_uri(), "report.json"));
  fs::remove_all(local_out, ec);
  return quality;
}

}  // namespace caliber::coordinator
