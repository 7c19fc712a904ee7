// Llama / Mistral / Qwen2 / Qwen3 / tied / Llama-3.1-rope variants: tiny random checkpoints
// are written to disk, loaded through the normal path, and the forward pass is compared with
// an independent, deliberately naive double-precision implementation written below.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <numbers>
#include <random>

#include "core/io/safetensors.h"
#include "core/model/model.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace caliber {
namespace {

namespace fs = std::filesystem;
using Tensors = std::map<std::string, std::vector<double>>;

struct Variant {
  std::string name;
  nlohmann::json config;
  DType dtype = DType::kF32;
};

int Get(const nlohmann::json& c, const char* key, int fallback) {
  return c.contains(key) && !c[key].is_null() ? c[key].get<int>() : fallback;
}

// ---- The independent reference: plain loops in double, straight from HF's modeling code. ----
struct Ref {
  const nlohmann::json& c;
  const Tensors& t;
  int H, L, nh, nkv, hd, ff, V;
  double eps, theta;

  Ref(const nlohmann::json& config, const Tensors& tensors) : c(config), t(tensors) {
    H = c["hidden_size"];
    L = c["num_hidden_layers"];
    nh = c["num_attention_heads"];
    nkv = Get(c, "num_key_value_heads", nh);
    hd = Get(c, "head_dim", H / nh);
    ff = c["intermediate_size"];
    V = c["vocab_size"];
    eps = c["rms_norm_eps"];
    theta = c.value("rope_theta", 10000.0);
  }
  const std::vector<double>& W(const std::string& n) const { return t.at(n); }
  bool Has(const std::string& n) const { return t.count(n) > 0; }

  std::vector<double> Linear(const std::vector<double>& x, const std::string& name, int in, int out) const {
    const auto& w = W(name + ".weight");
    std::vector<double> y(out, 0.0);
    for (int o = 0; o < out; ++o) {
      for (int i = 0; i < in; ++i) y[o] += w[o * in + i] * x[i];
      if (Has(name + ".bias")) y[o] += W(name + ".bias")[o];
    }
    return y;
  }
  static void Norm(std::vector<double>& x, const std::vector<double>& w, double eps, int off, int n) {
    double ss = 0;
    for (int i = 0; i < n; ++i) ss += x[off + i] * x[off + i];
    const double r = 1.0 / std::sqrt(ss / n + eps);
    for (int i = 0; i < n; ++i) x[off + i] = w[i] * (x[off + i] * r);
  }
  double InvFreq(int i) const {
    double f = 1.0 / std::pow(theta, 2.0 * i / hd);
    if (c.contains("rope_scaling") && c["rope_scaling"].is_object()) {
      const auto& s = c["rope_scaling"];
      const double factor = s["factor"], lo = s["low_freq_factor"], hi = s["high_freq_factor"];
      const double old_ctx = s["original_max_position_embeddings"];
      const double wavelen = 2 * std::numbers::pi / f;
      if (wavelen < old_ctx / hi) return f;                // high frequency: unchanged
      if (wavelen > old_ctx / lo) return f / factor;       // low frequency: scaled
      const double smooth = (old_ctx / wavelen - lo) / (hi - lo);
      return (1 - smooth) * f / factor + smooth * f;
    }
    return f;
  }
  // rotate_half form: out = x * cos + cat(-x2, x1) * sin, on one head.
  void Rope(std::vector<double>& x, int off, int pos) const {
    std::vector<double> rot(hd);
    for (int i = 0; i < hd / 2; ++i) {
      rot[i] = -x[off + hd / 2 + i];
      rot[hd / 2 + i] = x[off + i];
    }
    for (int i = 0; i < hd; ++i) {
      const double a = pos * InvFreq(i % (hd / 2));
      x[off + i] = x[off + i] * std::cos(a) + rot[i] * std::sin(a);
    }
  }

  // Logits [T x V] of one sequence.
  std::vector<std::vector<double>> Forward(const std::vector<int>& ids) const {
    const int T = static_cast<int>(ids.size());
    const bool qk_norm = Has("model.layers.0.self_attn.q_norm.weight");
    const int window = c.contains("sliding_window") && !c["sliding_window"].is_null() &&
                               c.value("use_sliding_window", true)
                           ? c["sliding_window"].get<int>()
                           : T;
    std::vector<std::vector<double>> h(T);
    for (int p = 0; p < T; ++p) {
      const auto& e = W("model.embed_tokens.weight");
      h[p].assign(e.begin() + ids[p] * H, e.begin() + (ids[p] + 1) * H);
    }
    for (int l = 0; l < L; ++l) {
      const std::string pre = "model.layers." + std::to_string(l) + ".";
      std::vector<std::vector<double>> q(T), k(T), v(T);
      for (int p = 0; p < T; ++p) {
        std::vector<double> x = h[p];
        Norm(x, W(pre + "input_layernorm.weight"), eps, 0, H);
        q[p] = Linear(x, pre + "self_attn.q_proj", H, nh * hd);
        k[p] = Linear(x, pre + "self_attn.k_proj", H, nkv * hd);
        v[p] = Linear(x, pre + "self_attn.v_proj", H, nkv * hd);
        for (int a = 0; a < nh; ++a) {
          if (qk_norm) Norm(q[p], W(pre + "self_attn.q_norm.weight"), eps, a * hd, hd);
          Rope(q[p], a * hd, p);
        }
        for (int a = 0; a < nkv; ++a) {
          if (qk_norm) Norm(k[p], W(pre + "self_attn.k_norm.weight"), eps, a * hd, hd);
          Rope(k[p], a * hd, p);
        }
      }
      for (int p = 0; p < T; ++p) {
        std::vector<double> attn(nh * hd, 0.0);
        for (int a = 0; a < nh; ++a) {
          const int kv = a / (nh / nkv);
          std::vector<double> s;
          double mx = -1e300;
          for (int j = std::max(0, p - window + 1); j <= p; ++j) {
            double d = 0;
            for (int i = 0; i < hd; ++i) d += q[p][a * hd + i] * k[j][kv * hd + i];
            s.push_back(d / std::sqrt(double(hd)));
            mx = std::max(mx, s.back());
          }
          double z = 0;
          for (double& x : s) z += (x = std::exp(x - mx));
          int idx = 0;
          for (int j = std::max(0, p - window + 1); j <= p; ++j, ++idx) {
            for (int i = 0; i < hd; ++i) attn[a * hd + i] += s[idx] / z * v[j][kv * hd + i];
          }
        }
        const auto o = Linear(attn, pre + "self_attn.o_proj", nh * hd, H);
        for (int i = 0; i < H; ++i) h[p][i] += o[i];
        std::vector<double> x = h[p];
        Norm(x, W(pre + "post_attention_layernorm.weight"), eps, 0, H);
        auto g = Linear(x, pre + "mlp.gate_proj", H, ff);
        const auto u = Linear(x, pre + "mlp.up_proj", H, ff);
        for (int i = 0; i < ff; ++i) g[i] = g[i] / (1 + std::exp(-g[i])) * u[i];
        const auto d = Linear(g, pre + "mlp.down_proj", ff, H);
        for (int i = 0; i < H; ++i) h[p][i] += d[i];
      }
    }
    const std::string head = Has("lm_head.weight") ? "lm_head" : "model.embed_tokens";
    std::vector<std::vector<double>> logits(T);
    for (int p = 0; p < T; ++p) {
      Norm(h[p], W("model.norm.weight"), eps, 0, H);
      logits[p] = Linear(h[p], head, H, V);
    }
    return logits;
  }
};

// ---- Checkpoint construction. ----
Tensors RandomTensors(const nlohmann::json& c, DType dtype, uint32_t seed) {
  const int H = c["hidden_size"], L = c["num_hidden_layers"], nh = c["num_attention_heads"];
  const int nkv = Get(c, "num_key_value_heads", nh), hd = Get(c, "head_dim", H / nh);
  const int ff = c["intermediate_size"], V = c["vocab_size"];
  const std::string arch = c["architectures"][0];
  const bool qkv_bias = arch == "Qwen2ForCausalLM" || c.value("attention_bias", false);
  const bool o_bias = arch != "Qwen2ForCausalLM" && c.value("attention_bias", false);
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  Tensors t;
  auto add = [&](const std::string& n, int size, double scale, double mean = 0.0) {
    std::vector<double> v(size);
    for (double& x : v) {
      x = mean + scale * normal(rng);
      // Store exactly what the checkpoint will hold.
      if (dtype == DType::kBF16) x = BF16ToFloat(FloatToBF16(static_cast<float>(x)));
      if (dtype == DType::kF32) x = static_cast<float>(x);
    }
    t[n] = std::move(v);
  };
  add("model.embed_tokens.weight", V * H, 1.0);
  for (int l = 0; l < L; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "self_attn.q_proj.weight", nh * hd * H, 1.0 / std::sqrt(H));
    add(p + "self_attn.k_proj.weight", nkv * hd * H, 1.0 / std::sqrt(H));
    add(p + "self_attn.v_proj.weight", nkv * hd * H, 1.0 / std::sqrt(H));
    add(p + "self_attn.o_proj.weight", H * nh * hd, 1.0 / std::sqrt(nh * hd));
    if (qkv_bias) {
      add(p + "self_attn.q_proj.bias", nh * hd, 0.1);
      add(p + "self_attn.k_proj.bias", nkv * hd, 0.1);
      add(p + "self_attn.v_proj.bias", nkv * hd, 0.1);
    }
    if (o_bias) add(p + "self_attn.o_proj.bias", H, 0.1);
    add(p + "mlp.gate_proj.weight", ff * H, 1.0 / std::sqrt(H));
    add(p + "mlp.up_proj.weight", ff * H, 1.0 / std::sqrt(H));
    add(p + "mlp.down_proj.weight", H * ff, 1.0 / std::sqrt(ff));
    add(p + "input_layernorm.weight", H, 0.1, 1.0);
    add(p + "post_attention_layernorm.weight", H, 0.1, 1.0);
    if (arch == "Qwen3ForCausalLM") {
      add(p + "self_attn.q_norm.weight", hd, 0.1, 1.0);
      add(p + "self_attn.k_norm.weight", hd, 0.1, 1.0);
    }
  }
  add("model.norm.weight", H, 0.1, 1.0);
  if (!c.value("tie_word_embeddings", false)) add("lm_head.weight", V * H, 1.0 / std::sqrt(H));
  return t;
}

std::vector<int64_t> ShapeOf(const std::string& name, size_t numel, int hidden) {
  if (name.ends_with(".bias") || name.find("norm") != std::string::npos) return {int64_t(numel)};
  if (name.find("down_proj") != std::string::npos || name.find("o_proj") != std::string::npos) {
    return {hidden, int64_t(numel) / hidden};
  }
  const int64_t in = hidden;
  return {int64_t(numel) / in, in};
}

std::string WriteCheckpoint(const Variant& v, const Tensors& t, bool sharded) {
  const fs::path dir = fs::path(::testing::TempDir()) / ("arch_" + v.name);
  fs::create_directories(dir);
  std::ofstream(dir / "config.json") << v.config.dump(2);
  const int H = v.config["hidden_size"];
  SafetensorsWriter a, b;
  nlohmann::json weight_map;
  int i = 0;
  for (const auto& [name, values] : t) {
    std::vector<float> f(values.begin(), values.end());
    SafetensorsWriter& w = (sharded && (i++ % 2)) ? b : a;
    EXPECT_TRUE(w.AddFloat(name, v.dtype, ShapeOf(name, values.size(), H), f).ok()) << name;
    weight_map[name] = (&w == &b) ? "model-00002-of-00002.safetensors" : "model-00001-of-00002.safetensors";
  }
  if (sharded) {
    EXPECT_TRUE(a.WriteFile((dir / "model-00001-of-00002.safetensors").string()).ok());
    EXPECT_TRUE(b.WriteFile((dir / "model-00002-of-00002.safetensors").string()).ok());
    std::ofstream(dir / "model.safetensors.index.json")
        << nlohmann::json{{"metadata", nlohmann::json::object()}, {"weight_map", weight_map}}.dump();
  } else {
    EXPECT_TRUE(a.WriteFile((dir / "model.safetensors").string()).ok());
  }
  return dir.string();
}

nlohmann::json BaseConfig(const std::string& arch, const std::string& model_type) {
  return {{"architectures", {arch}}, {"model_type", model_type}, {"hidden_size", 64},
          {"intermediate_size", 96}, {"num_hidden_layers", 2},   {"num_attention_heads", 4},
          {"num_key_value_heads", 2}, {"vocab_size", 50},        {"rms_norm_eps", 1e-6},
          {"rope_theta", 10000.0},   {"max_position_embeddings", 64}, {"hidden_act", "silu"},
          {"tie_word_embeddings", false}, {"bos_token_id", 1},   {"eos_token_id", 2}};
}

std::vector<Variant> Variants() {
  std::vector<Variant> v;
  v.push_back({"llama", BaseConfig("LlamaForCausalLM", "llama")});
  Variant llama_bias{"llama_bias_bf16", BaseConfig("LlamaForCausalLM", "llama"), DType::kBF16};
  llama_bias.config["attention_bias"] = true;
  v.push_back(llama_bias);
  Variant llama31{"llama31_rope", BaseConfig("LlamaForCausalLM", "llama")};
  // Small original context so all three frequency bands (kept, smoothed, scaled) occur.
  llama31.config["rope_theta"] = 500000.0;
  llama31.config["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                                    {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 64}};
  v.push_back(llama31);
  Variant mistral{"mistral_window", BaseConfig("MistralForCausalLM", "mistral")};
  mistral.config["sliding_window"] = 5;
  v.push_back(mistral);
  Variant qwen2{"qwen2_tied", BaseConfig("Qwen2ForCausalLM", "qwen2")};
  qwen2.config["tie_word_embeddings"] = true;
  v.push_back(qwen2);
  Variant qwen3{"qwen3", BaseConfig("Qwen3ForCausalLM", "qwen3")};
  qwen3.config["head_dim"] = 24;  // q_dim 96 != hidden 64, as Qwen3 allows
  v.push_back(qwen3);
  return v;
}

class ArchitectureTest : public ::testing::TestWithParam<Variant> {};

TEST_P(ArchitectureTest, ForwardMatchesNaiveDoubleImplementation) {
  const Variant& v = GetParam();
  const Tensors t = RandomTensors(v.config, v.dtype, 1234);
  const std::string dir = WriteCheckpoint(v, t, /*sharded=*/v.name == "qwen3");
  auto model = Model::Load(dir);
  ASSERT_TRUE(model.ok()) << model.status();

  constexpr int kSeqs = 2, kLen = 11;
  std::vector<int32_t> ids;
  for (int i = 0; i < kSeqs * kLen; ++i) ids.push_back((i * 7 + 3) % 50);
  auto logits = (*model)->Forward(ids, kSeqs);
  ASSERT_TRUE(logits.ok()) << logits.status();

  const Ref ref(v.config, t);
  double max_diff = 0;
  for (int s = 0; s < kSeqs; ++s) {
    const std::vector<int> seq(ids.begin() + s * kLen, ids.begin() + (s + 1) * kLen);
    const auto expected = ref.Forward(seq);
    for (int p = 0; p < kLen; ++p) {
      for (int j = 0; j < 50; ++j) {
        max_diff = std::max(max_diff, std::abs(expected[p][j] - (*logits)(s * kLen + p, j)));
      }
    }
  }
  EXPECT_LT(max_diff, 2e-4) << v.name;
}

INSTANTIATE_TEST_SUITE_P(Variants, ArchitectureTest, ::testing::ValuesIn(Variants()),
                         [](const auto& param_info) { return param_info.param.name; });

TEST(ArchitectureErrors, UnexpectedAndMissingTensorsAreReported) {
  Variant v{"llama_missing", BaseConfig("LlamaForCausalLM", "llama")};
  Tensors t = RandomTensors(v.config, v.dtype, 1);
  t.erase("model.layers.1.mlp.up_proj.weight");
  auto model = Model::Load(WriteCheckpoint(v, t, false));
  ASSERT_FALSE(model.ok());
  EXPECT_NE(model.status().message().find("model.layers.1.mlp.up_proj.weight"), std::string::npos)
      << model.status();

  // A Qwen2 checkpoint (q/k/v biases) declared as Llama: the biases do not belong.
  Variant q{"qwen2_as_llama", BaseConfig("Qwen2ForCausalLM", "qwen2")};
  Tensors qt = RandomTensors(q.config, q.dtype, 2);
  q.config = BaseConfig("LlamaForCausalLM", "llama");
  model = Model::Load(WriteCheckpoint(q, qt, false));
  ASSERT_FALSE(model.ok());
  EXPECT_NE(model.status().message().find("do not belong"), std::string::npos) << model.status();
  EXPECT_NE(model.status().message().find("q_proj.bias"), std::string::npos) << model.status();
}

TEST(ArchitectureErrors, WrongShapeIsReported) {
  Variant v{"llama_shape", BaseConfig("LlamaForCausalLM", "llama")};
  const Tensors t = RandomTensors(v.config, v.dtype, 3);
  const std::string dir = WriteCheckpoint(v, t, false);
  nlohmann::json c = v.config;
  c["intermediate_size"] = 128;  // the checkpoint has 96
  std::ofstream(fs::path(dir) / "config.json") << c.dump();
  auto model = Model::Load(dir);
  ASSERT_FALSE(model.ok());
  EXPECT_NE(model.status().message().find("gate_proj.weight"), std::string::npos) << model.status();
}

}  // namespace
}  // namespace caliber
