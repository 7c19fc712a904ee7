// GptqCheckpointWriter end to end on the tinyllama-en fixture (8 calibration segments of 64
// tokens): QuantizeModel -> AddLayer per layer -> Stage -> Commit, then
//  (a) an independent numpy decoder (tests/tools/decode_gptq_checkpoint.py, written from the
//      AutoGPTQ / vLLM v1 semantics) dequantizes every linear exactly like the quantizer's Q
//      with fp16-rounded scales, and the copied tensors are byte-identical to the source;
//  (b) Model::Load of the written directory (ReadGptqLinear) reads the same weights;
//  (c) config.json's quantization_config, the exact tensor names / dtypes / shapes, tokenizer
//      files and report.json;
//  (d) an existing output is AlreadyExists with nothing written, no staging dir survives;
//  (e) asymmetric grids with zero point 0, which the v1 format cannot store: the writer must
//      refuse them, and the reader must decode an all-ones zero field the way v1 kernels do.
#include "core/formats/gptq_checkpoint.h"

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
#include <ostream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "core/calib/model_quantizer.h"
#include "core/formats/quant_report.h"
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
const std::string kDecoder = std::string(CALIBER_TESTS_DIR) + "/tools/decode_gptq_checkpoint.py";
constexpr int kNsamples = 8;
constexpr int kSeqLen = 64;

struct Fixture {
  ModelConfig config;
  std::unique_ptr<Checkpoint> checkpoint;
  CalibrationSet calib;
};

const Fixture& Fix() {
  static const Fixture* fixture = [] {
    auto* f = new Fixture;
    auto config = ModelConfig::FromFile(kModelDir + "/config.json");
    EXPECT_TRUE(config.ok()) << config.status();
    f->config = *config;
    auto checkpoint = Checkpoint::Open(kModelDir);
    EXPECT_TRUE(checkpoint.ok()) << checkpoint.status();
    f->checkpoint = *std::move(checkpoint);
    auto stream = LoadTokenStream(kModelDir + "/calib/calib_tokens.i32", TokenFormat::kI32,
                                  nullptr, f->config.vocab_size);
    EXPECT_TRUE(stream.ok()) << stream.status();
    auto calib = SelectCalibrationSegments(*stream, kNsamples, kSeqLen, /*seed=*/0,
                                           CalibSampling::kRandom);
    EXPECT_TRUE(calib.ok()) << calib.status();
    f->calib = *std::move(calib);
    return f;
  }();
  return *fixture;
}

// A scratch directory per test process, removed at the end of the test.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& tag)
      : path_(fs::path(::testing::TempDir()) / absl::StrCat("gptq_ckpt_", tag, "_", ::getpid())) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~ScratchDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// Every entry of `dir` whose name contains ".partial-".
std::vector<std::string> PartialDirs(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename().string().find(".partial-") != std::string::npos) {
      out.push_back(e.path().string());
    }
  }
  return out;
}

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

bool HaveNumpy() {
  return std::system((kPython + " -c 'import numpy' >/dev/null 2>&1").c_str()) == 0;
}

// The value after "<key> " on its own line of the decoder's output; NaN if absent.
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
  out.write(reinterpret_cast<const char*>(m.data()),
            static_cast<std::streamsize>(m.size() * sizeof(float)));
}

// What a v1 checkpoint of `q` must dequantize to: the quantizer's Q with every scale rounded
// to fp16 (the dtype the writer stores scales in).
MatrixF ExpectedQ(const QuantizedLinear& q) {
  MatrixF w(q.out_features, q.in_features);
  for (int o = 0; o < q.out_features; ++o) {
    for (int i = 0; i < q.in_features; ++i) {
      const int g = q.g_idx[static_cast<size_t>(i)];
      const float scale = F16ToFloat(FloatToF16(q.scales(g, o)));
      w(o, i) = Dequant(static_cast<float>(q.codes(o, i)), scale, static_cast<float>(q.zeros(g, o)));
    }
  }
  return w;
}

struct Case {
  std::string name;
  std::string method;
  int bits;
  int group_size;
  bool act_order;
  bool sym;
  bool static_groups = false;
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
  return o;
}

struct Written {
  absl::StatusOr<ModelQuantResult> result = absl::UnknownError("not run");
  absl::Status status;  // of the first failing writer step
  std::string staged;
  nlohmann::json report;
};

// QuantizeModel with every layer handed to the writer as it finishes (as `caliber quantize`
// does), then Stage and Commit. Checks the staging protocol on the way.
Written QuantizeAndWrite(const Case& c, const fs::path& out) {
  const Fixture& f = Fix();
  const CalibrationOptions options = OptionsFor(c);
  const nlohmann::json job = {{"case", c.name}, {"method", c.method}};
  GptqCheckpointWriter writer(f.config, *f.checkpoint, kModelDir, out.string(), options.spec,
                              {{"quantizer", {"caliber:test"}}, {"caliber", job}});
  Written w;
  w.status = writer.CheckOutput();
  if (!w.status.ok()) return w;
  w.result = QuantizeModel(f.config, *f.checkpoint, f.calib, options,
                           [&](const LayerQuantResult& layer) { return writer.AddLayer(layer); });
  if (!w.result.ok()) {
    w.status = w.result.status();
    return w;
  }
  absl::StatusOr<std::string> staged = writer.Stage();
  if (!staged.ok()) {
    w.status = staged.status();
    return w;
  }
  w.staged = *staged;
  EXPECT_EQ(w.staged, absl::StrCat(out.string(), ".partial-", ::getpid()));
  EXPECT_TRUE(fs::is_directory(w.staged));
  EXPECT_FALSE(fs::exists(out)) << "OUT must only appear at Commit()";
  w.report = BuildQuantReport(*w.result, job);
  w.status = writer.Commit(w.report);
  return w;
}

class GptqCheckpointTest : public ::testing::TestWithParam<Case> {};

TEST_P(GptqCheckpointTest, IndependentDecoderAndModelLoadReadTheQuantizersQ) {
  const Case& c = GetParam();
  const Fixture& f = Fix();
  ScratchDir scratch(c.name);
  const fs::path out = scratch.path() / "ckpt";
  const Written w = QuantizeAndWrite(c, out);
  ASSERT_TRUE(w.status.ok()) << w.status;
  ASSERT_TRUE(fs::is_directory(out));
  EXPECT_THAT(PartialDirs(scratch.path()), ::testing::IsEmpty());
  const ModelQuantResult& result = *w.result;
  ASSERT_EQ(result.layers.size(), 4u);

  // The quantizer's Q per module, with fp16 scales, and how many zero points are 0.
  std::map<std::string, MatrixF> expected;
  for (const LayerQuantResult& layer : result.layers) {
    ASSERT_EQ(layer.modules.size(), 7u);
    for (const ModuleQuantResult& m : layer.modules) {
      const QuantizedLinear& q = m.quantized;
      EXPECT_EQ(q.bits, c.bits);
      EXPECT_EQ(q.group_size, c.group_size);
      expected[LayerTensorName(layer.layer, LinearModuleName(m.module))] = ExpectedQ(q);
    }
  }

  // (c) config.json
  const nlohmann::json config = ReadJson(out / "config.json");
  ASSERT_TRUE(config.is_object());
  const nlohmann::json source_config = ReadJson(fs::path(kModelDir) / "config.json");
  for (const auto& [key, value] : source_config.items()) {
    EXPECT_EQ(config[key], value) << "config.json field " << key << " must be copied";
  }
  const nlohmann::json& qc = config["quantization_config"];
  EXPECT_EQ(qc["quant_method"], "gptq");
  EXPECT_EQ(qc["bits"], c.bits);
  EXPECT_EQ(qc["group_size"], c.group_size);
  EXPECT_EQ(qc["desc_act"], c.act_order);
  EXPECT_EQ(qc["sym"], c.sym);
  EXPECT_EQ(qc["damp_percent"], 0.01);
  EXPECT_EQ(qc["true_sequential"], true);
  EXPECT_EQ(qc["static_groups"], c.static_groups);
  EXPECT_EQ(qc["checkpoint_format"], "gptq");
  EXPECT_EQ(qc["meta"]["quantizer"], nlohmann::json::array({"caliber:test"}));
  EXPECT_EQ(qc["meta"]["caliber"]["case"], c.name);
  absl::StatusOr<ModelConfig> parsed = ModelConfig::FromFile(out.string());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_TRUE(parsed->gptq.has_value());
  EXPECT_EQ(parsed->gptq->bits, c.bits);
  EXPECT_EQ(parsed->gptq->group_size, c.group_size);
  EXPECT_EQ(parsed->gptq->desc_act, c.act_order);
  EXPECT_EQ(parsed->gptq->sym, c.sym);

  // (c) tensors: exactly the GPTQ layout for the 28 linears, everything else as in the source.
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file =
      SafetensorsFile::Open((out / "model.safetensors").string());
  ASSERT_TRUE(file.ok()) << file.status();
  std::set<std::string> seen;
  for (const TensorInfo& t : (*file)->tensors()) seen.insert(t.name);
  size_t linear_tensors = 0;
  for (int l = 0; l < f.config.num_hidden_layers; ++l) {
    for (const LinearModule m : kAllLinearModules) {
      const std::string base = LayerTensorName(l, LinearModuleName(m));
      const MatrixF& q = expected[base];
      const int64_t out_f = q.rows(), in_f = q.cols();
      const int64_t groups = c.group_size == -1 ? 1 : in_f / c.group_size;
      const struct {
        std::string suffix;
        DType dtype;
        std::vector<int64_t> shape;
      } want[] = {{".qweight", DType::kI32, {in_f * c.bits / 32, out_f}},
                  {".qzeros", DType::kI32, {groups, out_f * c.bits / 32}},
                  {".scales", DType::kF16, {groups, out_f}},
                  {".g_idx", DType::kI32, {in_f}}};
      for (const auto& t : want) {
        const TensorInfo* info = (*file)->Find(base + t.suffix);
        ASSERT_NE(info, nullptr) << base << t.suffix;
        EXPECT_EQ(info->dtype, t.dtype) << base << t.suffix;
        EXPECT_EQ(info->shape, t.shape) << base << t.suffix;
        ++linear_tensors;
      }
      EXPECT_FALSE(seen.contains(base + ".weight")) << base;
    }
  }
  size_t copied = 0;
  for (const std::string& name : f.checkpoint->TensorNames()) {
    if (name.find("_proj.weight") != std::string::npos) continue;
    ++copied;
    const TensorInfo* info = (*file)->Find(name);
    ASSERT_NE(info, nullptr) << name;
    const TensorInfo* src = *f.checkpoint->Info(name);
    EXPECT_EQ(info->dtype, src->dtype) << name;
    EXPECT_EQ(info->shape, src->shape) << name;
  }
  EXPECT_EQ(copied, 2u + 2u * 4u + 1u);  // embed, lm_head, 2 norms per layer, final norm
  EXPECT_EQ((*file)->tensors().size(), linear_tensors + copied);

  // (c) tokenizer files and report.json
  for (const char* name : {"tokenizer.model", "tokenizer_config.json", "special_tokens_map.json",
                           "generation_config.json"}) {
    EXPECT_EQ(ReadAll(out / name), ReadAll(fs::path(kModelDir) / name)) << name;
  }
  EXPECT_FALSE(fs::exists(out / "adapter")) << "no low-rank part, no adapter";
  const nlohmann::json report = ReadJson(out / "report.json");
  ASSERT_TRUE(report.is_object());
  EXPECT_EQ(report, w.report);
  ASSERT_EQ(report["modules"].size(), 28u);
  std::set<std::string> reported;
  for (const auto& m : report["modules"]) {
    reported.insert(LayerTensorName(m["layer"].get<int>(), m["module"].get<std::string>()));
    EXPECT_EQ(m["bits"], c.bits);
    EXPECT_EQ(m["method"], c.method);
    EXPECT_GE(m["relative_output_error"].get<double>(), 0.0);
  }
  std::set<std::string> modules;
  for (const auto& [name, q] : expected) modules.insert(name);
  EXPECT_EQ(reported, modules);
  EXPECT_EQ(report["totals"]["modules"], 28);

  // (b) Caliber's own dequantizing loader.
  absl::StatusOr<std::unique_ptr<Model>> loaded = Model::Load(out.string());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  absl::StatusOr<std::unique_ptr<Model>> source = Model::Load(kModelDir);
  ASSERT_TRUE(source.ok()) << source.status();
  double worst_load = 0;
  for (int l = 0; l < f.config.num_hidden_layers; ++l) {
    const LayerWeights& lw = (*loaded)->weights().layers[static_cast<size_t>(l)];
    const LayerWeights& sw = (*source)->weights().layers[static_cast<size_t>(l)];
    for (const LinearModule m : kAllLinearModules) {
      const MatrixF& want = expected[LayerTensorName(l, LinearModuleName(m))];
      const MatrixF& got = lw.linear(m).weight;
      ASSERT_EQ(got.rows(), want.rows());
      ASSERT_EQ(got.cols(), want.cols());
      worst_load = std::max(worst_load, static_cast<double>((got - want).cwiseAbs().maxCoeff()));
    }
    EXPECT_TRUE(lw.input_norm == sw.input_norm);
    EXPECT_TRUE(lw.post_attention_norm == sw.post_attention_norm);
  }
  EXPECT_LE(worst_load, 1e-6);
  EXPECT_TRUE((*loaded)->weights().embed_tokens == (*source)->weights().embed_tokens);
  EXPECT_TRUE((*loaded)->weights().lm_head == (*source)->weights().lm_head);
  EXPECT_TRUE((*loaded)->weights().final_norm == (*source)->weights().final_norm);
  std::printf("[%s] Model::Load vs quantizer Q (fp16 scales): max |diff| = %g\n", c.name.c_str(),
              worst_load);

  // (a) the independent decoder.
  if (!HaveNumpy()) GTEST_SKIP() << kPython << " with numpy is not available";
  const fs::path expected_dir = scratch.path() / "expected";
  fs::create_directories(expected_dir);
  for (const auto& [name, q] : expected) WriteFloats(expected_dir / (name + ".f32"), q);
  const CommandResult r = RunCommand(absl::StrCat(kPython, " ", kDecoder, " ", out.string(),
                                           " --expected ", expected_dir.string(), " --source ",
                                           kModelDir, " --tol 1e-6"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("copied_tensors 11 identical"));
  EXPECT_EQ(OutputValue(r.output, "modules"), 28);
  const double max_diff = OutputValue(r.output, "max_abs_diff");
  EXPECT_LE(max_diff, 1e-6) << r.output;
  std::printf("[%s] independent v1 decoder vs quantizer Q: max |diff| = %g\n", c.name.c_str(),
              max_diff);

  // The decoder does catch a difference: one expected value off by 1e-5 (once is enough).
  if (c.name != "gptq_w4_g128_sym") return;
  MatrixF off = expected.begin()->second;
  off(3, 5) += 1e-5f;
  WriteFloats(expected_dir / (expected.begin()->first + ".f32"), off);
  const CommandResult bad = RunCommand(absl::StrCat(kPython, " ", kDecoder, " ", out.string(),
                                                    " --expected ", expected_dir.string()));
  EXPECT_EQ(bad.exit_code, 1) << bad.output;
  EXPECT_THAT(bad.output, HasSubstr(expected.begin()->first + ": max_abs_diff"));
  EXPECT_THAT(bad.output, HasSubstr("first [3, 5]"));
  EXPECT_THAT(bad.output, HasSubstr("MISMATCH"));
}

INSTANTIATE_TEST_SUITE_P(
    Specs, GptqCheckpointTest,
    ::testing::Values(Case{"gptq_w4_g128_sym", "gptq", 4, 128, false, true},
                      Case{"gptq_w3_perchannel_actorder", "gptq", 3, -1, true, true},
                      Case{"gptq_w2_g64_asym", "gptq", 2, 64, false, false},
                      Case{"gptq_w3_g32_actorder_static_asym", "gptq", 3, 32, true, false, true},
                      Case{"rtn_w8_g128_asym", "rtn", 8, 128, false, false}),
    [](const ::testing::TestParamInfo<Case>& p) { return p.param.name; });

// Layers of a cheap RTN run, to feed writers by hand.
ModelQuantResult RtnLayers(int bits, int group_size, bool sym) {
  const Fixture& f = Fix();
  const absl::StatusOr<ModelQuantResult> r = QuantizeModel(
      f.config, *f.checkpoint, f.calib, OptionsFor({"rtn", "rtn", bits, group_size, false, sym}));
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : ModelQuantResult{};
}

TEST(GptqCheckpointWriterTest, ExistingOutputIsAlreadyExistsAndNothingIsWritten) {
  const Fixture& f = Fix();
  ScratchDir scratch("exists");
  const fs::path out = scratch.path() / "ckpt";
  fs::create_directories(out);
  std::ofstream(out / "keep.txt") << "user data";
  const ModelQuantResult layers = RtnLayers(4, 128, true);
  ASSERT_EQ(layers.layers.size(), 4u);

  QuantSpec spec;
  GptqCheckpointWriter writer(f.config, *f.checkpoint, kModelDir, out.string(), spec, {});
  const absl::Status check = writer.CheckOutput();
  EXPECT_EQ(check.code(), absl::StatusCode::kAlreadyExists) << check;
  EXPECT_THAT(check.message(), HasSubstr(out.string()));
  for (const LayerQuantResult& l : layers.layers) ASSERT_TRUE(writer.AddLayer(l).ok());
  const absl::StatusOr<std::string> staged = writer.Stage();
  EXPECT_EQ(staged.status().code(), absl::StatusCode::kAlreadyExists) << staged.status();
  EXPECT_EQ(writer.Commit({}).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(PartialDirs(scratch.path()), ::testing::IsEmpty());
  // The existing directory is untouched.
  std::vector<std::string> entries;
  for (const auto& e : fs::directory_iterator(out)) entries.push_back(e.path().filename().string());
  EXPECT_THAT(entries, ::testing::ElementsAre("keep.txt"));
  EXPECT_EQ(ReadAll(out / "keep.txt"), "user data");
}

TEST(GptqCheckpointWriterTest, ProtocolErrors) {
  const Fixture& f = Fix();
  ScratchDir scratch("protocol");
  const ModelQuantResult layers = RtnLayers(4, 128, true);
  ASSERT_EQ(layers.layers.size(), 4u);
  QuantSpec spec;

  // The parent of OUT must exist.
  GptqCheckpointWriter orphan(f.config, *f.checkpoint, kModelDir,
                              (scratch.path() / "no" / "such" / "ckpt").string(), spec, {});
  EXPECT_EQ(orphan.CheckOutput().code(), absl::StatusCode::kNotFound);

  const fs::path out = scratch.path() / "ckpt";
  GptqCheckpointWriter writer(f.config, *f.checkpoint, kModelDir, out.string(), spec, {});
  ASSERT_TRUE(writer.AddLayer(layers.layers[0]).ok());
  const absl::Status twice = writer.AddLayer(layers.layers[0]);
  EXPECT_EQ(twice.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(twice.message(), HasSubstr("layer 0"));
  const absl::StatusOr<std::string> early = writer.Stage();
  EXPECT_EQ(early.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(early.status().message(), HasSubstr("layer 1 was never added"));
  for (size_t l = 1; l < layers.layers.size(); ++l) ASSERT_TRUE(writer.AddLayer(layers.layers[l]).ok());
  const absl::StatusOr<std::string> staged = writer.Stage();
  ASSERT_TRUE(staged.ok()) << staged.status();
  // OUT appearing between Stage() and Commit() (another job): Commit must not replace it,
  // and the staging directory is cleaned up.
  fs::create_directories(out);
  const absl::Status commit = writer.Commit({{"x", 1}});
  EXPECT_EQ(commit.code(), absl::StatusCode::kAlreadyExists) << commit;
  EXPECT_TRUE(fs::is_empty(out));
  EXPECT_THAT(PartialDirs(scratch.path()), ::testing::IsEmpty());
}

// (e) GPTQ v1 stores zero - 1 and v1 kernels (AutoGPTQ cuda/exllama, vLLM gptq_gemm) compute
// stored + 1 without wrapping, so an asymmetric zero point of 0 (a group whose weights are all
// >= -scale/2) has no v1 encoding: written as the all-ones field it is read back as 2^bits by
// vLLM. RTN W2 g32 asym on this fixture produces such groups.
TEST(GptqCheckpointZeroPointTest, WriterRefusesZeroPointZero) {
  const Fixture& f = Fix();
  ScratchDir scratch("zero");
  const ModelQuantResult layers = RtnLayers(2, 32, /*sym=*/false);
  ASSERT_EQ(layers.layers.size(), 4u);
  int zero_points = 0;
  int first_bad_layer = -1;
  std::string first_bad;
  for (const LayerQuantResult& l : layers.layers) {
    for (const ModuleQuantResult& m : l.modules) {
      const int n = static_cast<int>((m.quantized.zeros.array() == 0).count());
      if (n > 0 && first_bad.empty()) {
        first_bad = LayerTensorName(l.layer, LinearModuleName(m.module));
        first_bad_layer = l.layer;
      }
      zero_points += n;
    }
  }
  std::printf("RTN W2 g32 asym: %d (group, channel) zero points are 0, first in %s\n",
              zero_points, first_bad.c_str());
  ASSERT_GT(zero_points, 0) << "the fixture no longer produces a zero point of 0";

  QuantSpec spec;
  spec.bits = 2;
  spec.group_size = 32;
  spec.sym = false;
  const fs::path out = scratch.path() / "ckpt";
  GptqCheckpointWriter writer(f.config, *f.checkpoint, kModelDir, out.string(), spec, {});
  absl::Status failed;
  for (const LayerQuantResult& l : layers.layers) {
    const absl::Status s = writer.AddLayer(l);
    if (l.layer < first_bad_layer) {
      EXPECT_TRUE(s.ok()) << s;
    }
    if (!s.ok()) {
      failed = s;
      break;
    }
  }
  EXPECT_EQ(failed.code(), absl::StatusCode::kInvalidArgument) << failed;
  EXPECT_THAT(failed.message(), HasSubstr(first_bad));
  EXPECT_THAT(failed.message(), HasSubstr("zero point 0"));
  EXPECT_THAT(failed.message(), HasSubstr("GPTQ v1"));
  EXPECT_FALSE(fs::exists(out));
  EXPECT_THAT(PartialDirs(scratch.path()), ::testing::IsEmpty());
}

// (e) reader side: a v1 checkpoint whose zero field is all ones (as AutoGPTQ writes zero 0, or
// a genuine zero of 2^bits) must be dequantized as v1 kernels do, zero = field + 1 = 2^bits.
TEST(GptqCheckpointZeroPointTest, ReaderDecodesAllOnesZeroFieldLikeV1Kernels) {
  const Fixture& f = Fix();
  ScratchDir scratch("allones");
  const fs::path good = scratch.path() / "good";
  const Written w = QuantizeAndWrite({"w4", "rtn", 4, 128, false, true}, good);
  ASSERT_TRUE(w.status.ok()) << w.status;

  // Copy the checkpoint, setting the zero field of (group 1, output channel 5) of layer 2's
  // up_proj to 0xF.
  const std::string base = LayerTensorName(2, "mlp.up_proj");
  const fs::path patched = scratch.path() / "patched";
  fs::create_directories(patched);
  for (const char* file : {"config.json", "tokenizer.model"}) fs::copy_file(good / file, patched / file);
  absl::StatusOr<std::unique_ptr<Checkpoint>> ckpt = Checkpoint::Open(good.string());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  SafetensorsWriter st;
  for (const std::string& name : (*ckpt)->TensorNames()) {
    const TensorInfo* info = *(*ckpt)->Info(name);
    absl::Span<const uint8_t> bytes = *(*ckpt)->Bytes(name);
    std::vector<uint8_t> copy(bytes.begin(), bytes.end());
    if (name == base + ".qzeros") {
      // [groups, out*4/32]: channel 5 is field 5 of word 0 of row 1.
      const size_t row = static_cast<size_t>(info->shape[1]) * 4;
      uint32_t word;
      std::memcpy(&word, copy.data() + row, 4);
      word |= 0xFu << 20;
      std::memcpy(copy.data() + row, &word, 4);
    }
    ASSERT_TRUE(st.Add(name, info->dtype, info->shape, copy).ok());
  }
  ASSERT_TRUE(st.WriteFile((patched / "model.safetensors").string()).ok());

  absl::StatusOr<std::unique_ptr<Model>> model = Model::Load(patched.string());
  ASSERT_TRUE(model.ok()) << model.status();
  MatrixF want;
  for (const LayerQuantResult& l : w.result->layers) {
    if (l.layer != 2) continue;
    for (const ModuleQuantResult& m : l.modules) {
      if (m.module != LinearModule::kUp) continue;
      QuantizedLinear q = m.quantized;
      q.zeros(1, 5) = 16;
      want = ExpectedQ(q);
    }
  }
  const MatrixF& got = (*model)->weights().layers[2].up.weight;
  ASSERT_EQ(got.rows(), want.rows());
  EXPECT_LE((got - want).cwiseAbs().maxCoeff(), 1e-6)
      << "channel 5, group 1 read as " << got(5, 128) << ", v1 kernels read " << want(5, 128);

  if (!HaveNumpy()) GTEST_SKIP() << kPython << " with numpy is not available";
  const fs::path decoded = scratch.path() / "decoded";
  const CommandResult r = RunCommand(absl::StrCat(kPython, " ", kDecoder, " ", patched.string(),
                                           " --out ", decoded.string(), " --zeros-report"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("zeros_all_ones " + base + " 1"));
  const std::string raw = ReadAll(decoded / (base + ".f32"));
  ASSERT_EQ(raw.size(), static_cast<size_t>(want.size()) * sizeof(float));
  const MatrixF py = ConstMapMatrixF(reinterpret_cast<const float*>(raw.data()), want.rows(),
                                     want.cols());
  EXPECT_LE((py - got).cwiseAbs().maxCoeff(), 1e-6) << "Caliber's reader and v1 semantics differ";
  (void)f;
}

}  // namespace
}  // namespace caliber
