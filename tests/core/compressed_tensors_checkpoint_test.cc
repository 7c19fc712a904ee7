// CompressedTensorsCheckpointWriter end to end on the tinyllama-en fixture (8 calibration
// segments of 64 tokens, W·A8 calibration: act_bits 8): QuantizeModel -> AddLayer per layer ->
// Stage -> Commit through MakeCheckpointWriter (the writer a W·A8 job gets), then
//  (a) config.json's quantization_config (compressed-tensors, pack-quantized, one Linear group,
//      int8 dynamic per-token input activations), the exact tensor names / dtypes / shapes
//      (weight_scale in the model's bf16), tokenizer files, adapter and report.json;
//  (b) Model::Load of the directory (the dequantizing loader `caliber eval --model` uses) reads
//      the quantizer's Q with bf16-rounded scales (+ B·A from the adapter), and its logits at 8
//      activation bits equal those of the in-memory quantized model, bit for bit;
//  (c) an independent numpy decoder (tests/tools/decode_compressed_tensors.py) dequantizes
//      every module to the same Q, and the copied tensors are byte-identical to the source;
//  (d) the same job written as a GPTQ v1 checkpoint and decoded by the independent v1 decoder
//      (tests/tools/decode_gptq_checkpoint.py) gives identical dequantized weights (on a copy
//      of the fixture whose config says float16, so both formats store fp16 scales);
//  (e) what the format cannot hold is refused before any calibration (CheckOutput).
#include "core/formats/compressed_tensors_checkpoint.h"

#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "core/calib/model_quantizer.h"
#include "core/formats/checkpoint_format.h"
#include "core/formats/gptq_checkpoint.h"
#include "core/formats/peft_adapter.h"
#include "core/formats/quant_report.h"
#include "core/io/inputs.h"
#include "core/model/model.h"
#include "core/quant/quant_grid.h"
#include "core/tensor/dtype.h"
#include "core/text/token_source.h"
#include "nlohmann/json.hpp"

namespace caliber {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

const std::string kModelDir = std::string(CALIBER_TESTDATA_DIR) + "/tinyllama-en";
const std::string kPython = "/usr/bin/python3";
const std::string kCtDecoder = std::string(CALIBER_TESTS_DIR) + "/tools/decode_compressed_tensors.py";
const std::string kGptqDecoder = std::string(CALIBER_TESTS_DIR) + "/tools/decode_gptq_checkpoint.py";

struct Fixture {
  ModelConfig config;
  std::unique_ptr<Checkpoint> checkpoint;
  CalibrationSet calib;
  std::vector<int32_t> heldout;
};

const Fixture& Fix() {
  static const Fixture* fixture = [] {
    auto* f = new Fixture;
    f->config = *ModelConfig::FromFile(kModelDir + "/config.json");
    f->checkpoint = *Checkpoint::Open(kModelDir);
    auto stream = LoadTokenStream(kModelDir + "/calib/calib_tokens.i32", TokenFormat::kI32,
                                  nullptr, f->config.vocab_size);
    f->calib = *SelectCalibrationSegments(*stream, 8, 64, /*seed=*/0, CalibSampling::kRandom);
    f->heldout = *LoadTokenStream(kModelDir + "/heldout/heldout_tokens.i32", TokenFormat::kI32,
                                  nullptr, f->config.vocab_size);
    return f;
  }();
  return *fixture;
}

class ScratchDir {
 public:
  explicit ScratchDir(const std::string& tag)
      : path_(fs::path(::testing::TempDir()) / absl::StrCat("ct_ckpt_", tag, "_", ::getpid())) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~ScratchDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

struct CommandResult {
  int exit_code = -1;
  std::string output;
};

CommandResult RunCommand(const std::string& cmd) {
  FILE* pipe = popen((cmd + " 2>&1").c_str(), "r");
  CommandResult r;
  if (pipe == nullptr) return r;
  std::array<char, 4096> buf;
  while (size_t n = fread(buf.data(), 1, buf.size(), pipe)) r.output.append(buf.data(), n);
  const int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

bool HaveNumpy() { return std::system((kPython + " -c 'import numpy' >/dev/null 2>&1").c_str()) == 0; }

double OutputValue(const std::string& output, const std::string& key) {
  std::istringstream lines(output);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind(key + " ", 0) == 0) return std::stod(line.substr(key.size() + 1));
  }
  return std::nan("");
}

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

nlohmann::json ReadJson(const fs::path& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
}

void WriteFloats(const fs::path& path, const MatrixF& m) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(m.data()), static_cast<std::streamsize>(m.size() * sizeof(float)));
}

float RoundTo(DType dtype, float v) {
  return dtype == DType::kBF16 ? BF16ToFloat(FloatToBF16(v)) : F16ToFloat(FloatToF16(v));
}

// What the checkpoint must dequantize to: the quantizer's Q with every scale rounded to the
// dtype it is stored in.
MatrixF ExpectedQ(const QuantizedLinear& q, DType scale_dtype) {
  QuantizedLinear r = q;
  for (float& s : r.scales.reshaped()) s = RoundTo(scale_dtype, s);
  return r.Dequantize();
}

struct Case {
  std::string name;
  std::string method;
  int bits;
  int group_size;
  bool act_order;
  bool sym;
  bool static_groups = false;
  int lora_rank = 0;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

CalibrationOptions OptionsFor(const Case& c) {
  CalibrationOptions o;
  o.method = c.method;
  o.spec.bits = c.bits;
  o.spec.group_size = c.group_size;
  o.spec.act_order = c.act_order;
  o.spec.sym = c.sym;
  o.spec.static_groups = c.static_groups;
  o.spec.lora_rank = c.lora_rank;
  o.act_bits = 8;
  return o;
}

struct Written {
  absl::StatusOr<ModelQuantResult> result = absl::UnknownError("not run");
  absl::Status status;
  nlohmann::json report;
};

// QuantizeModel feeding every layer to each of `writers` as it finishes, then Stage + Commit.
Written QuantizeAndWrite(const ModelConfig& config, const Checkpoint& checkpoint,
                         const CalibrationOptions& options,
                         const std::vector<QuantizedCheckpointWriter*>& writers) {
  Written w;
  for (QuantizedCheckpointWriter* writer : writers) {
    w.status = writer->CheckOutput();
    if (!w.status.ok()) return w;
  }
  w.result = QuantizeModel(config, checkpoint, Fix().calib, options, [&](const LayerQuantResult& layer) {
    for (QuantizedCheckpointWriter* writer : writers) {
      if (absl::Status s = writer->AddLayer(layer); !s.ok()) return s;
    }
    return absl::OkStatus();
  });
  if (!w.result.ok()) {
    w.status = w.result.status();
    return w;
  }
  w.report = BuildQuantReport(*w.result, {{"act_bits", options.act_bits}});
  for (QuantizedCheckpointWriter* writer : writers) {
    absl::StatusOr<std::string> staged = writer->Stage();
    if (!staged.ok()) {
      w.status = staged.status();
      return w;
    }
    w.status = writer->Commit(w.report);
    if (!w.status.ok()) return w;
  }
  return w;
}

class CompressedTensorsCheckpointTest : public ::testing::TestWithParam<Case> {};

TEST_P(CompressedTensorsCheckpointTest, LoaderAndIndependentDecoderReadTheQuantizersQ) {
  const Case& c = GetParam();
  const Fixture& f = Fix();
  ScratchDir scratch(c.name);
  const fs::path out = scratch.path() / "ckpt";
  const CalibrationOptions options = OptionsFor(c);
  ASSERT_EQ(CheckpointFormatFor(options), CheckpointFormat::kCompressedTensors);
  const std::unique_ptr<QuantizedCheckpointWriter> writer =
      MakeCheckpointWriter(options, f.config, *f.checkpoint, kModelDir, out.string(),
                           {{"quantizer", {"caliber:test"}}, {"caliber", {{"case", c.name}}}});
  ASSERT_NE(dynamic_cast<CompressedTensorsCheckpointWriter*>(writer.get()), nullptr);
  const Written w = QuantizeAndWrite(f.config, *f.checkpoint, options, {writer.get()});
  ASSERT_TRUE(w.status.ok()) << w.status;
  ASSERT_TRUE(fs::is_directory(out));
  for (const auto& e : fs::directory_iterator(scratch.path())) {
    EXPECT_EQ(e.path().filename().string().find(".partial-"), std::string::npos) << e.path();
  }

  std::map<std::string, const QuantizedLinear*> quantized;
  for (const LayerQuantResult& layer : w.result->layers) {
    for (const ModuleQuantResult& m : layer.modules) {
      quantized[LayerTensorName(layer.layer, LinearModuleName(m.module))] = &m.quantized;
    }
  }
  ASSERT_EQ(quantized.size(), 28u);
  const bool stores_g_idx = c.act_order && !c.static_groups && c.group_size > 0;

  // (a) config.json
  const nlohmann::json config = ReadJson(out / "config.json");
  ASSERT_TRUE(config.is_object());
  const nlohmann::json source_config = ReadJson(fs::path(kModelDir) / "config.json");
  for (const auto& [key, value] : source_config.items()) {
    EXPECT_EQ(config[key], value) << "config.json field " << key << " must be copied";
  }
  const nlohmann::json& qc = config["quantization_config"];
  EXPECT_EQ(qc["quant_method"], "compressed-tensors");
  EXPECT_EQ(qc["format"], "pack-quantized");
  EXPECT_EQ(qc["quantization_status"], "compressed");
  EXPECT_EQ(qc["ignore"], nlohmann::json::array({"lm_head"}));
  ASSERT_EQ(qc["config_groups"].size(), 1u);
  const nlohmann::json& group = qc["config_groups"]["group_0"];
  EXPECT_EQ(group["targets"], nlohmann::json::array({"Linear"}));
  EXPECT_TRUE(group["output_activations"].is_null());
  const nlohmann::json want_weights = {
      {"num_bits", c.bits},
      {"type", "int"},
      {"symmetric", c.sym},
      {"strategy", c.group_size == -1 ? "channel" : "group"},
      {"group_size", c.group_size == -1 ? nlohmann::json(nullptr) : nlohmann::json(c.group_size)},
      {"block_structure", nullptr},
      {"dynamic", false},
      {"actorder", stores_g_idx ? nlohmann::json("group")
                   : c.act_order ? nlohmann::json("weight")
                                 : nlohmann::json(nullptr)}};
  EXPECT_EQ(group["weights"], want_weights);
  const nlohmann::json want_acts = {{"num_bits", 8},       {"type", "int"},
                                    {"symmetric", true},   {"strategy", "token"},
                                    {"group_size", nullptr}, {"block_structure", nullptr},
                                    {"dynamic", true},     {"actorder", nullptr}};
  EXPECT_EQ(group["input_activations"], want_acts);
  EXPECT_EQ(qc["meta"]["caliber"]["case"], c.name);
  absl::StatusOr<ModelConfig> parsed = ModelConfig::FromFile(out.string());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_TRUE(parsed->compressed_tensors.has_value());
  EXPECT_FALSE(parsed->gptq.has_value());
  EXPECT_TRUE(parsed->quantized());
  EXPECT_EQ(parsed->compressed_tensors->bits, c.bits);
  EXPECT_EQ(parsed->compressed_tensors->group_size, c.group_size);
  EXPECT_EQ(parsed->compressed_tensors->sym, c.sym);
  EXPECT_EQ(parsed->compressed_tensors->g_idx, stores_g_idx);
  EXPECT_EQ(parsed->served_act_bits(), 8);

  // (a) tensors
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::Open((out / "model.safetensors").string());
  ASSERT_TRUE(file.ok()) << file.status();
  size_t linear_tensors = 0;
  for (const auto& [base, q] : quantized) {
    const int64_t o = q->out_features, in = q->in_features, pf = 32 / c.bits;
    const int64_t groups = c.group_size == -1 ? 1 : in / c.group_size;
    struct Want {
      std::string suffix;
      DType dtype;
      std::vector<int64_t> shape;
    };
    std::vector<Want> want = {{".weight_packed", DType::kI32, {o, (in + pf - 1) / pf}},
                              {".weight_scale", DType::kBF16, {o, groups}},
                              {".weight_shape", DType::kI64, {2}}};
    if (!c.sym) want.push_back({".weight_zero_point", DType::kI32, {(o + pf - 1) / pf, groups}});
    if (stores_g_idx) want.push_back({".weight_g_idx", DType::kI32, {in}});
    for (const Want& t : want) {
      const TensorInfo* info = (*file)->Find(base + t.suffix);
      ASSERT_NE(info, nullptr) << base << t.suffix;
      EXPECT_EQ(info->dtype, t.dtype) << base << t.suffix;
      EXPECT_EQ(info->shape, t.shape) << base << t.suffix;
      ++linear_tensors;
    }
    const TensorInfo* shape = (*file)->Find(base + ".weight_shape");
    const absl::Span<const uint8_t> bytes = (*file)->Bytes(*shape);
    int64_t dims[2];
    std::memcpy(dims, bytes.data(), sizeof dims);
    EXPECT_EQ(dims[0], o);
    EXPECT_EQ(dims[1], in);
    EXPECT_EQ((*file)->Find(base + ".weight"), nullptr);
  }
  EXPECT_EQ((*file)->tensors().size(), linear_tensors + 11u);  // + embed, lm_head, 9 norms
  for (const char* name : {"tokenizer.model", "tokenizer_config.json", "special_tokens_map.json",
                           "generation_config.json"}) {
    EXPECT_EQ(ReadAll(out / name), ReadAll(fs::path(kModelDir) / name)) << name;
  }
  EXPECT_EQ(fs::exists(out / "adapter"), c.lora_rank > 0);
  EXPECT_EQ(ReadJson(out / "report.json"), w.report);

  // (b) the dequantizing loader (with the adapter, as `caliber eval --adapter` applies it).
  const std::string adapter = c.lora_rank > 0 ? (out / "adapter").string() : "";
  absl::StatusOr<std::unique_ptr<Model>> loaded = LoadModel(out.string(), adapter);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  absl::StatusOr<std::unique_ptr<Model>> in_memory = Model::Load(kModelDir);
  ASSERT_TRUE(in_memory.ok()) << in_memory.status();
  double scale_rounding = 0;
  for (int l = 0; l < f.config.num_hidden_layers; ++l) {
    for (const LinearModule m : kAllLinearModules) {
      const QuantizedLinear& q = *quantized[LayerTensorName(l, LinearModuleName(m))];
      MatrixF want = ExpectedQ(q, DType::kBF16);
      if (q.lora_rank() > 0) want.noalias() += q.lora_b * q.lora_a;
      const MatrixF& got = (*loaded)->weights().layers[l].linear(m).weight;
      ASSERT_EQ(got.rows(), want.rows());
      EXPECT_TRUE(got == want) << LayerTensorName(l, LinearModuleName(m)) << ": max |diff| "
                               << (got - want).cwiseAbs().maxCoeff();
      scale_rounding = std::max(scale_rounding, double((got - q.Reconstruct()).cwiseAbs().maxCoeff()));
      (*in_memory)->mutable_weights().layers[l].linear(m).weight = want;
    }
  }
  std::printf("[%s] loaded weights vs float32-scale Q: max |diff| %g (bf16 scales)\n", c.name.c_str(),
              scale_rounding);
  const absl::Span<const int32_t> ids(f.heldout.data(), 4 * 64);
  absl::StatusOr<MatrixF> got_logits = (*loaded)->Forward(ids, 4, 8);
  absl::StatusOr<MatrixF> want_logits = (*in_memory)->Forward(ids, 4, 8);
  ASSERT_TRUE(got_logits.ok() && want_logits.ok());
  EXPECT_TRUE(*got_logits == *want_logits) << "max |diff| " << (*got_logits - *want_logits).cwiseAbs().maxCoeff();

  // (c) the independent decoder.
  if (!HaveNumpy()) GTEST_SKIP() << kPython << " with numpy is not available";
  const fs::path expected_dir = scratch.path() / "expected";
  fs::create_directories(expected_dir);
  for (const auto& [base, q] : quantized) WriteFloats(expected_dir / (base + ".f32"), ExpectedQ(*q, DType::kBF16));
  const CommandResult r = RunCommand(absl::StrCat(kPython, " ", kCtDecoder, " ", out.string(), " --expected ",
                                                  expected_dir.string(), " --source ", kModelDir));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("copied_tensors 11 identical"));
  EXPECT_THAT(r.output, HasSubstr("input_activations int8 token dynamic=True symmetric=True"));
  EXPECT_EQ(OutputValue(r.output, "modules"), 28);
  EXPECT_EQ(OutputValue(r.output, "max_abs_diff"), 0.0) << r.output;
}

INSTANTIATE_TEST_SUITE_P(
    Specs, CompressedTensorsCheckpointTest,
    ::testing::Values(Case{"gptq_w4_g128_sym", "gptq", 4, 128, false, true},
                      Case{"gptq_w4_g64_actorder_asym", "gptq", 4, 64, true, false},
                      Case{"gptq_w3_g32_actorder_static", "gptq", 3, 32, true, true, true},
                      Case{"rtn_w8_perchannel_asym", "rtn", 8, -1, false, false},
                      Case{"gptq_lora_w4_g128_r8", "gptq_lora", 4, 128, false, true, false, 8}),
    [](const ::testing::TestParamInfo<Case>& p) { return p.param.name; });

// (d) One W·A8 job written both ways: the compressed-tensors and GPTQ v1 checkpoints decode,
// each with its own independent decoder, to identical weights.
TEST(CompressedTensorsVsGptq, SameJobSameDequantizedWeights) {
  if (!HaveNumpy()) GTEST_SKIP() << kPython << " with numpy is not available";
  ScratchDir scratch("vs_gptq");
  // The fixture with torch_dtype float16: compressed-tensors then stores fp16 scales, as v1 does.
  const fs::path model = scratch.path() / "model-fp16";
  fs::create_directories(model);
  for (const auto& e : fs::directory_iterator(kModelDir)) {
    if (e.is_regular_file() && e.path().filename() != "config.json") {
      fs::create_symlink(e.path(), model / e.path().filename());
    }
  }
  nlohmann::json cfg = ReadJson(fs::path(kModelDir) / "config.json");
  cfg["torch_dtype"] = "float16";
  std::ofstream(model / "config.json") << cfg.dump(2);
  absl::StatusOr<ModelConfig> parsed = ModelConfig::FromFile(model.string());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const ModelConfig& config = *parsed;
  absl::StatusOr<std::unique_ptr<Checkpoint>> opened = Checkpoint::Open(model.string());
  ASSERT_TRUE(opened.ok()) << opened.status();
  const std::unique_ptr<Checkpoint> checkpoint = *std::move(opened);

  for (const Case& c : {Case{"actorder_sym", "gptq", 4, 128, true, true}, Case{"g64_asym", "gptq", 4, 64, false, false}}) {
    const CalibrationOptions options = OptionsFor(c);
    const fs::path ct = scratch.path() / (c.name + "-ct");
    const fs::path v1 = scratch.path() / (c.name + "-gptq");
    CompressedTensorsCheckpointWriter ct_writer(config, *checkpoint, model.string(), ct.string(), options.spec, 8, {});
    GptqCheckpointWriter v1_writer(config, *checkpoint, model.string(), v1.string(), options.spec, {});
    const Written w = QuantizeAndWrite(config, *checkpoint, options, {&ct_writer, &v1_writer});
    ASSERT_TRUE(w.status.ok()) << c.name << ": " << w.status;
    const fs::path decoded = scratch.path() / (c.name + "-decoded");
    CommandResult r = RunCommand(absl::StrCat(kPython, " ", kGptqDecoder, " ", v1.string(), " --out ", decoded.string()));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    r = RunCommand(absl::StrCat(kPython, " ", kCtDecoder, " ", ct.string(), " --expected ", decoded.string(),
                                " --source ", model.string(), " --tol 0"));
    EXPECT_EQ(r.exit_code, 0) << c.name << ": " << r.output;
    EXPECT_EQ(OutputValue(r.output, "modules"), 28) << r.output;
    EXPECT_EQ(OutputValue(r.output, "max_abs_diff"), 0.0) << r.output;
    std::printf("[%s] compressed-tensors vs GPTQ v1 (independent decoders): max |diff| %g\n", c.name.c_str(),
                OutputValue(r.output, "max_abs_diff"));
    // Both loaders agree too.
    absl::StatusOr<std::unique_ptr<Model>> a = Model::Load(ct.string());
    absl::StatusOr<std::unique_ptr<Model>> b = Model::Load(v1.string());
    ASSERT_TRUE(a.ok() && b.ok());
    for (int l = 0; l < config.num_hidden_layers; ++l) {
      for (const LinearModule m : kAllLinearModules) {
        EXPECT_TRUE((*a)->weights().layers[l].linear(m).weight == (*b)->weights().layers[l].linear(m).weight);
      }
    }
  }
}

// (e) Refused before calibration: group sizes that leave unequal groups, other act_bits, an
// existing output.
TEST(CompressedTensorsCheckpointWriterTest, RefusesUnrepresentableJobsAtCheckOutput) {
  const Fixture& f = Fix();
  ScratchDir scratch("refuse");
  ModelConfig odd = f.config;
  odd.intermediate_size = 800;  // 800 = 6·128 + 32
  QuantSpec spec;
  spec.group_size = 128;
  absl::Status s = CheckCompressedTensorsFormat(spec, 8, odd);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("group_size 128 does not divide intermediate_size 800"));
  CompressedTensorsCheckpointWriter writer(odd, *f.checkpoint, kModelDir,
                                           (scratch.path() / "out").string(), spec, 8, {});
  EXPECT_EQ(writer.CheckOutput().code(), absl::StatusCode::kInvalidArgument);
  spec.group_size = 32;
  EXPECT_TRUE(CheckCompressedTensorsFormat(spec, 8, odd).ok());
  spec.group_size = -1;
  EXPECT_TRUE(CheckCompressedTensorsFormat(spec, 8, odd).ok());

  CalibrationOptions options;
  options.act_bits = 8;
  options.spec.group_size = 128;
  EXPECT_EQ(CheckCheckpointFormat(options, odd).code(), absl::StatusCode::kInvalidArgument);
  options.act_bits = 16;  // GPTQ v1 stores a shorter last group
  EXPECT_TRUE(CheckCheckpointFormat(options, odd).ok());
  options.act_bits = 4;
  EXPECT_THAT(CheckCheckpointFormat(options, f.config).message(), HasSubstr("act_bits must be 16"));

  fs::create_directories(scratch.path() / "exists");
  CompressedTensorsCheckpointWriter exists(f.config, *f.checkpoint, kModelDir,
                                           (scratch.path() / "exists").string(), QuantSpec{}, 8, {});
  EXPECT_EQ(exists.CheckOutput().code(), absl::StatusCode::kAlreadyExists);
}

// The loader refuses a checkpoint whose tensors disagree with its config.
TEST(CompressedTensorsCheckpointLoaderTest, MismatchedConfigIsAnError) {
  const Fixture& f = Fix();
  ScratchDir scratch("loader");
  const fs::path out = scratch.path() / "ckpt";
  CalibrationOptions options = OptionsFor({"rtn", "rtn", 4, 128, false, true});
  const std::unique_ptr<QuantizedCheckpointWriter> writer =
      MakeCheckpointWriter(options, f.config, *f.checkpoint, kModelDir, out.string(), {});
  ASSERT_TRUE(QuantizeAndWrite(f.config, *f.checkpoint, options, {writer.get()}).status.ok());
  ASSERT_TRUE(Model::Load(out.string()).ok());
  nlohmann::json cfg = ReadJson(out / "config.json");
  cfg["quantization_config"]["config_groups"]["group_0"]["weights"]["group_size"] = 64;
  std::ofstream(out / "config.json") << cfg.dump(2);
  absl::Status s = Model::Load(out.string()).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(s.message(), HasSubstr("weight_scale"));
  cfg["quantization_config"]["config_groups"]["group_0"]["weights"]["group_size"] = 128;
  cfg["quantization_config"]["config_groups"]["group_0"]["input_activations"]["strategy"] = "tensor";
  std::ofstream(out / "config.json") << cfg.dump(2);
  s = Model::Load(out.string()).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(s.message(), HasSubstr("input_activations.strategy 'tensor' is not supported"));
}

}  // namespace
}  // namespace caliber
