// PEFT LoRA adapters for the low-rank part of gptq_lora: the files PeftAdapterBuilder writes
// (adapter_config.json fields, tensor names / dtypes / shapes as PEFT saves them), that
// ApplyPeftAdapter on the dequantized base reproduces QuantizedLinear::Reconstruct(), PEFT's
// scaling rules, and every malformed adapter rejected with the offending name and the weights
// left untouched.
#include "core/formats/peft_adapter.h"

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "core/model/model.h"
#include "core/quant/quantizer.h"
#include "core/text/token_source.h"
#include "nlohmann/json.hpp"

namespace caliber {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

const std::string kModelDir = std::string(CALIBER_TESTDATA_DIR) + "/tinyllama-en";
constexpr int kRank = 8;

class ScratchDir {
 public:
  explicit ScratchDir(const std::string& tag)
      : path_(fs::path(::testing::TempDir()) / absl::StrCat("peft_", tag, "_", ::getpid())) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~ScratchDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

const Model& Source() {
  static const Model* model = [] {
    absl::StatusOr<std::unique_ptr<Model>> m = Model::Load(kModelDir);
    EXPECT_TRUE(m.ok()) << m.status();
    return m->release();
  }();
  return *model;
}

// H = 2/n XᵀX of real activations: the embeddings of 512 calibration tokens, and for the
// 768-wide down_proj input, silu(gate)·up of them (the actual MLP input structure is not needed,
// only a realistic, full-rank PSD matrix).
MatrixF HessianFor(int in_features) {
  const Model& m = Source();
  absl::StatusOr<std::vector<int32_t>> stream =
      LoadTokenStream(kModelDir + "/calib/calib_tokens.i32", TokenFormat::kI32, nullptr,
                      m.config().vocab_size);
  EXPECT_TRUE(stream.ok()) << stream.status();
  std::vector<int32_t> ids(stream->begin(), stream->begin() + 512);
  MatrixF x = *m.Embed(ids);
  if (in_features != x.cols()) {
    const LayerWeights& l = m.weights().layers[0];
    const MatrixF g = x * l.gate.weight.transpose();
    const MatrixF u = x * l.up.weight.transpose();
    x = (g.array() / (1.0f + (-g.array()).exp()) * u.array()).matrix();
  }
  return (2.0f / static_cast<float>(x.rows())) * (x.transpose() * x);
}

struct Quantized {
  int layer;
  LinearModule module;
  QuantizedLinear q;
};

Quantized GptqLora(int layer, LinearModule module) {
  const MatrixF& W = Source().weights().layers[static_cast<size_t>(layer)].linear(module).weight;
  QuantSpec spec;
  spec.bits = 4;
  spec.group_size = 128;
  spec.lora_rank = kRank;
  absl::StatusOr<QuantizedLinear> q =
      FindQuantizer("gptq_lora")->Quantize(W, HessianFor(static_cast<int>(W.cols())), spec);
  EXPECT_TRUE(q.ok()) << q.status();
  return {layer, module, *std::move(q)};
}

nlohmann::json ReadJson(const fs::path& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
}

TEST(PeftAdapterTest, GptqLoraAdapterReproducesReconstruct) {
  ScratchDir scratch("roundtrip");
  const std::vector<Quantized> parts = {GptqLora(0, LinearModule::kQ),
                                        GptqLora(3, LinearModule::kDown)};
  PeftAdapterBuilder builder;
  EXPECT_TRUE(builder.empty());
  for (const Quantized& p : parts) {
    ASSERT_EQ(p.q.lora_rank(), kRank);
    ASSERT_TRUE(builder
                    .Add(LayerTensorName(p.layer, LinearModuleName(p.module)), p.q.lora_a,
                         p.q.lora_b)
                    .ok());
  }
  EXPECT_EQ(builder.rank(), kRank);
  const fs::path dir = scratch.path() / "adapter";
  ASSERT_TRUE(builder.Write(dir.string(), kModelDir).ok());

  const nlohmann::json cfg = ReadJson(dir / "adapter_config.json");
  ASSERT_TRUE(cfg.is_object());
  EXPECT_EQ(cfg["peft_type"], "LORA");
  EXPECT_EQ(cfg["task_type"], "CAUSAL_LM");
  EXPECT_EQ(cfg["r"], kRank);
  EXPECT_EQ(cfg["lora_alpha"], kRank);  // scaling alpha / r = 1
  EXPECT_EQ(cfg["use_rslora"], false);
  EXPECT_EQ(cfg["fan_in_fan_out"], false);
  EXPECT_EQ(cfg["bias"], "none");
  EXPECT_EQ(cfg["target_modules"], nlohmann::json::array({"down_proj", "q_proj"}));
  EXPECT_EQ(cfg["base_model_name_or_path"], kModelDir);

  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file =
      SafetensorsFile::Open((dir / "adapter_model.safetensors").string());
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_EQ((*file)->tensors().size(), 4u);
  for (const Quantized& p : parts) {
    const std::string base = absl::StrCat("base_model.model.model.layers.", p.layer, ".",
                                          std::string(LinearModuleName(p.module)));
    const TensorInfo* a = (*file)->Find(base + ".lora_A.weight");
    const TensorInfo* b = (*file)->Find(base + ".lora_B.weight");
    ASSERT_NE(a, nullptr) << base;
    ASSERT_NE(b, nullptr) << base;
    EXPECT_EQ(a->dtype, DType::kF32);
    EXPECT_EQ(b->dtype, DType::kF32);
    EXPECT_EQ(a->shape, (std::vector<int64_t>{kRank, p.q.in_features}));
    EXPECT_EQ(b->shape, (std::vector<int64_t>{p.q.out_features, kRank}));
  }

  // The base as a GPTQ checkpoint reads it (Q), plus the adapter, is Q + B·A.
  ModelWeights weights = Source().weights();
  for (const Quantized& p : parts) {
    weights.layers[static_cast<size_t>(p.layer)].linear(p.module).weight = p.q.Dequantize();
  }
  const ModelWeights before = weights;
  ASSERT_TRUE(ApplyPeftAdapter(dir.string(), Source().config(), weights).ok());
  for (const Quantized& p : parts) {
    const MatrixF& got = weights.layers[static_cast<size_t>(p.layer)].linear(p.module).weight;
    const MatrixF want = p.q.Reconstruct();
    const double diff = (got - want).cwiseAbs().maxCoeff();
    const double lowrank = (want - p.q.Dequantize()).cwiseAbs().maxCoeff();
    std::printf("layer %d %s: max |applied - Reconstruct()| = %g (max |B·A| = %g)\n", p.layer,
                std::string(LinearModuleName(p.module)).c_str(), diff, lowrank);
    EXPECT_LE(diff, 1e-5);
    EXPECT_GT(lowrank, 1e-3) << "the low-rank part must matter for this check to mean anything";
  }
  // Everything else is untouched.
  for (size_t l = 0; l < weights.layers.size(); ++l) {
    for (const LinearModule m : kAllLinearModules) {
      const bool adapted = (l == 0 && m == LinearModule::kQ) || (l == 3 && m == LinearModule::kDown);
      if (!adapted) {
        EXPECT_TRUE(weights.layers[l].linear(m).weight == before.layers[l].linear(m).weight)
            << "layer " << l << " " << LinearModuleName(m);
      }
    }
  }
}

// Hand-built adapters for the scaling and error cases: one q_proj of layer 1 (256 x 256).
struct AdapterSpec {
  nlohmann::json config = {{"peft_type", "LORA"}, {"r", 2}, {"lora_alpha", 2}};
  std::vector<std::pair<std::string, MatrixF>> tensors;  // full names
};

MatrixF Filled(int rows, int cols, float seed) {
  MatrixF m(rows, cols);
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < cols; ++c) m(r, c) = seed * std::sin(static_cast<float>(r * cols + c + 1));
  }
  return m;
}

std::string Name(const std::string& base, const char* ab) {
  return absl::StrCat("base_model.model.", base, ".lora_", ab, ".weight");
}

const std::string kQ1 = "model.layers.1.self_attn.q_proj";

AdapterSpec ValidSpec(int r = 2) {
  AdapterSpec s;
  s.config["r"] = r;
  s.config["lora_alpha"] = r;
  s.tensors = {{Name(kQ1, "A"), Filled(r, 256, 0.1f)}, {Name(kQ1, "B"), Filled(256, r, 0.01f)}};
  return s;
}

void WriteAdapter(const fs::path& dir, const AdapterSpec& s) {
  fs::create_directories(dir);
  std::ofstream(dir / "adapter_config.json") << s.config.dump();
  SafetensorsWriter w;
  for (const auto& [name, m] : s.tensors) {
    ASSERT_TRUE(w.AddFloat(name, DType::kF32, {m.rows(), m.cols()},
                           absl::MakeConstSpan(m.data(), m.size()))
                    .ok());
  }
  ASSERT_TRUE(w.WriteFile((dir / "adapter_model.safetensors").string()).ok());
}

TEST(PeftAdapterTest, ScalingFollowsPeft) {
  ScratchDir scratch("scaling");
  const MatrixF A = Filled(4, 256, 0.1f), B = Filled(256, 4, 0.01f);
  const MatrixF& W = Source().weights().layers[1].q.weight;
  const struct {
    nlohmann::json extra;
    double scaling;
  } cases[] = {{{{"lora_alpha", 4}}, 1.0},
               {{{"lora_alpha", 8}}, 2.0},
               {{{"lora_alpha", 8}, {"use_rslora", true}}, 8.0 / 2.0},
               {nlohmann::json::object(), 8.0 / 4.0}};  // lora_alpha absent: PEFT's default 8
  int i = 0;
  for (const auto& c : cases) {
    AdapterSpec s;
    s.config = {{"peft_type", "LORA"}, {"r", 4}};
    s.config.update(c.extra);
    s.tensors = {{Name(kQ1, "A"), A}, {Name(kQ1, "B"), B}};
    const fs::path dir = scratch.path() / absl::StrCat("a", i++);
    WriteAdapter(dir, s);
    ModelWeights weights = Source().weights();
    const absl::Status st = ApplyPeftAdapter(dir.string(), Source().config(), weights);
    ASSERT_TRUE(st.ok()) << st;
    const MatrixF want = W + static_cast<float>(c.scaling) * (B * A);
    EXPECT_LE((weights.layers[1].q.weight - want).cwiseAbs().maxCoeff(), 1e-6) << s.config.dump();
  }
}

// Each malformed adapter: the expected code, a substring naming the offending thing, and the
// weights unchanged.
void ExpectRejected(const fs::path& dir, absl::StatusCode code, const std::string& what) {
  ModelWeights weights = Source().weights();
  const absl::Status s = ApplyPeftAdapter(dir.string(), Source().config(), weights);
  EXPECT_EQ(s.code(), code) << dir << ": " << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr(what)) << dir;
  for (size_t l = 0; l < weights.layers.size(); ++l) {
    for (const LinearModule m : kAllLinearModules) {
      EXPECT_TRUE(weights.layers[l].linear(m).weight ==
                  Source().weights().layers[l].linear(m).weight)
          << dir << ": a failed ApplyPeftAdapter modified layer " << l << " "
          << LinearModuleName(m);
    }
  }
}

TEST(PeftAdapterTest, MalformedTensorsAreRejectedByName) {
  ScratchDir scratch("tensors");
  const fs::path root = scratch.path();
  const auto with = [&](const std::string& tag, const std::function<void(AdapterSpec&)>& edit) {
    AdapterSpec s = ValidSpec();
    edit(s);
    WriteAdapter(root / tag, s);
    return root / tag;
  };
  const std::string kDown2 = "model.layers.2.mlp.down_proj";

  // lora_A without lora_B (and the other way round), after a valid module, so a partial
  // application would show.
  ExpectRejected(with("a_only", [&](AdapterSpec& s) {
                   s.tensors.push_back({Name(kDown2, "A"), Filled(2, 768, 0.1f)});
                 }),
                 absl::StatusCode::kInvalidArgument, kDown2 + " has lora_A but no lora_B");
  ExpectRejected(with("b_only", [&](AdapterSpec& s) {
                   s.tensors.push_back({Name(kDown2, "B"), Filled(256, 2, 0.1f)});
                 }),
                 absl::StatusCode::kInvalidArgument, kDown2 + " has lora_B but no lora_A");
  // Wrong shapes: A's input width, B's output height, a rank other than config r.
  ExpectRejected(with("a_shape", [&](AdapterSpec& s) { s.tensors[0].second = Filled(2, 768, 0.1f); }),
                 absl::StatusCode::kInvalidArgument, kQ1 + " needs floating-point lora_A [2, 256]");
  ExpectRejected(with("b_shape", [&](AdapterSpec& s) { s.tensors[1].second = Filled(64, 2, 0.1f); }),
                 absl::StatusCode::kInvalidArgument, kQ1 + " needs floating-point lora_A [2, 256]");
  ExpectRejected(with("rank", [&](AdapterSpec& s) { s.config["r"] = 4; }),
                 absl::StatusCode::kInvalidArgument, kQ1 + " needs floating-point lora_A [4, 256]");
  // Modules that are not linears of this model.
  for (const std::string bad : {"model.layers.1.self_attn.qkv_proj", "model.layers.4.mlp.up_proj",
                                "model.layers.-1.mlp.up_proj", "model.layers.+1.mlp.up_proj",
                                "model.layers.01.mlp.up_proj", "model.embed_tokens",
                                "lm_head"}) {
    ExpectRejected(with("module", [&](AdapterSpec& s) {
                     s.tensors = {{Name(bad, "A"), Filled(2, 256, 0.1f)},
                                  {Name(bad, "B"), Filled(256, 2, 0.1f)}};
                   }),
                   absl::StatusCode::kInvalidArgument,
                   "adapter module '" + bad + "' is not a linear of this model");
    fs::remove_all(root / "module");
  }
  // Names outside PEFT's scheme.
  ExpectRejected(with("prefix", [&](AdapterSpec& s) {
                   s.tensors.push_back({kQ1 + ".lora_A.weight", Filled(2, 256, 0.1f)});
                 }),
                 absl::StatusCode::kInvalidArgument, "'" + kQ1 + ".lora_A.weight' does not start with");
  ExpectRejected(with("suffix", [&](AdapterSpec& s) {
                   s.tensors.push_back({"base_model.model." + kQ1 + ".lora_magnitude_vector",
                                        Filled(1, 256, 0.1f)});
                 }),
                 absl::StatusCode::kInvalidArgument,
                 "unexpected adapter tensor 'base_model.model." + kQ1 + ".lora_magnitude_vector'");
  // Non-finite factors would silently turn the layer into NaN.
  ExpectRejected(with("nan", [&](AdapterSpec& s) {
                   s.tensors[1].second(3, 1) = std::numeric_limits<float>::quiet_NaN();
                 }),
                 absl::StatusCode::kInvalidArgument, Name(kQ1, "B"));
  ExpectRejected(with("inf", [&](AdapterSpec& s) {
                   s.tensors[0].second(0, 7) = std::numeric_limits<float>::infinity();
                 }),
                 absl::StatusCode::kInvalidArgument, Name(kQ1, "A"));
}

TEST(PeftAdapterTest, BadAdapterConfigIsRejected) {
  ScratchDir scratch("config");
  const fs::path root = scratch.path();
  const auto with_config = [&](const std::string& tag, const std::string& text) {
    WriteAdapter(root / tag, ValidSpec());
    std::ofstream(root / tag / "adapter_config.json", std::ios::trunc) << text;
    return root / tag;
  };
  // No adapter_config.json / no tensors at all.
  ExpectRejected(root / "missing", absl::StatusCode::kNotFound, "adapter_config.json");
  fs::create_directories(root / "no_tensors");
  std::ofstream(root / "no_tensors" / "adapter_config.json") << ValidSpec().config.dump();
  ExpectRejected(root / "no_tensors", absl::StatusCode::kNotFound, "adapter_model.safetensors");

  ExpectRejected(with_config("not_json", "{\"r\": 2,"), absl::StatusCode::kInvalidArgument,
                 "adapter_config.json");
  ExpectRejected(with_config("array", "[2]"), absl::StatusCode::kInvalidArgument,
                 "adapter_config.json");
  ExpectRejected(with_config("no_r", R"({"peft_type": "LORA", "lora_alpha": 2})"),
                 absl::StatusCode::kInvalidArgument, "positive integer r");
  ExpectRejected(with_config("r_zero", R"({"peft_type": "LORA", "r": 0})"),
                 absl::StatusCode::kInvalidArgument, "positive integer r");
  ExpectRejected(with_config("r_string", R"({"peft_type": "LORA", "r": "2"})"),
                 absl::StatusCode::kInvalidArgument, "positive integer r");
  ExpectRejected(with_config("r_huge", R"({"peft_type": "LORA", "r": 4294967298})"),
                 absl::StatusCode::kInvalidArgument, "positive integer r");
  ExpectRejected(with_config("alpha_string", R"({"peft_type": "LORA", "r": 2, "lora_alpha": "2"})"),
                 absl::StatusCode::kInvalidArgument, "lora_alpha");
  ExpectRejected(with_config("rslora_string", R"({"peft_type": "LORA", "r": 2, "use_rslora": "yes"})"),
                 absl::StatusCode::kInvalidArgument, "use_rslora");
  ExpectRejected(with_config("ia3", R"({"peft_type": "IA3", "r": 2})"),
                 absl::StatusCode::kInvalidArgument, "peft_type \"IA3\" is not supported");
  ExpectRejected(with_config("dora", R"({"peft_type": "LORA", "r": 2, "use_dora": true})"),
                 absl::StatusCode::kInvalidArgument, "use_dora true is not supported");
  ExpectRejected(
      with_config("rank_pattern", R"({"peft_type": "LORA", "r": 2, "rank_pattern": {"q_proj": 4}})"),
      absl::StatusCode::kInvalidArgument, "rank_pattern");
  ExpectRejected(
      with_config("alpha_pattern", R"({"peft_type": "LORA", "r": 2, "alpha_pattern": {"q_proj": 4}})"),
      absl::StatusCode::kInvalidArgument, "alpha_pattern");
  // Empty patterns, as PEFT writes them, are fine.
  ModelWeights weights = Source().weights();
  const absl::Status ok = ApplyPeftAdapter(
      with_config("empty_patterns",
                  R"({"peft_type": "LORA", "r": 2, "lora_alpha": 2, "rank_pattern": {},
                      "alpha_pattern": {}, "use_dora": false, "use_rslora": false})")
          .string(),
      Source().config(), weights);
  EXPECT_TRUE(ok.ok()) << ok;
}

}  // namespace
}  // namespace caliber
