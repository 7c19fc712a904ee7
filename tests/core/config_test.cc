// ModelConfig::FromJson on the fixture, on real released configs (written inline, as published
// on the Hugging Face Hub) and on one malformed config per validation rule.
#include "core/model/config.h"

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace caliber {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using json = nlohmann::json;

const std::string kFixtureDir = std::string(CALIBER_TESTDATA_DIR) + "/tinyllama-en";

constexpr char kLlama31_8B[] = R"({
  "architectures": ["LlamaForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 128000,
  "eos_token_id": [128001, 128008, 128009],
  "hidden_act": "silu",
  "hidden_size": 4096,
  "initializer_range": 0.02,
  "intermediate_size": 14336,
  "max_position_embeddings": 131072,
  "mlp_bias": false,
  "model_type": "llama",
  "num_attention_heads": 32,
  "num_hidden_layers": 32,
  "num_key_value_heads": 8,
  "pretraining_tp": 1,
  "rms_norm_eps": 1e-05,
  "rope_scaling": {
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192,
    "rope_type": "llama3"
  },
  "rope_theta": 500000.0,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.43.0.dev0",
  "use_cache": true,
  "vocab_size": 128256
})";

constexpr char kMistral7B[] = R"({
  "architectures": ["MistralForCausalLM"],
  "bos_token_id": 1,
  "eos_token_id": 2,
  "hidden_act": "silu",
  "hidden_size": 4096,
  "initializer_range": 0.02,
  "intermediate_size": 14336,
  "max_position_embeddings": 32768,
  "model_type": "mistral",
  "num_attention_heads": 32,
  "num_hidden_layers": 32,
  "num_key_value_heads": 8,
  "rms_norm_eps": 1e-05,
  "rope_theta": 10000.0,
  "sliding_window": 4096,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.34.0.dev0",
  "use_cache": true,
  "vocab_size": 32000
})";

constexpr char kQwen2_7B[] = R"({
  "architectures": ["Qwen2ForCausalLM"],
  "attention_dropout": 0.0,
  "bos_token_id": 151643,
  "eos_token_id": 151643,
  "hidden_act": "silu",
  "hidden_size": 3584,
  "initializer_range": 0.02,
  "intermediate_size": 18944,
  "max_position_embeddings": 131072,
  "max_window_layers": 28,
  "model_type": "qwen2",
  "num_attention_heads": 28,
  "num_hidden_layers": 28,
  "num_key_value_heads": 4,
  "rms_norm_eps": 1e-06,
  "rope_theta": 1000000.0,
  "sliding_window": 131072,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.37.2",
  "use_cache": true,
  "use_sliding_window": false,
  "vocab_size": 152064
})";

constexpr char kQwen2_0_5B[] = R"({
  "architectures": ["Qwen2ForCausalLM"],
  "attention_dropout": 0.0,
  "bos_token_id": 151643,
  "eos_token_id": 151643,
  "hidden_act": "silu",
  "hidden_size": 896,
  "initializer_range": 0.02,
  "intermediate_size": 4864,
  "max_position_embeddings": 131072,
  "max_window_layers": 24,
  "model_type": "qwen2",
  "num_attention_heads": 14,
  "num_hidden_layers": 24,
  "num_key_value_heads": 2,
  "rms_norm_eps": 1e-06,
  "rope_theta": 1000000.0,
  "sliding_window": 131072,
  "tie_word_embeddings": true,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.40.1",
  "use_cache": true,
  "use_sliding_window": false,
  "vocab_size": 151936
})";

constexpr char kQwen3_8B[] = R"({
  "architectures": ["Qwen3ForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 151643,
  "eos_token_id": 151645,
  "head_dim": 128,
  "hidden_act": "silu",
  "hidden_size": 4096,
  "initializer_range": 0.02,
  "intermediate_size": 12288,
  "max_position_embeddings": 40960,
  "max_window_layers": 36,
  "model_type": "qwen3",
  "num_attention_heads": 32,
  "num_hidden_layers": 36,
  "num_key_value_heads": 8,
  "rms_norm_eps": 1e-06,
  "rope_scaling": null,
  "rope_theta": 1000000,
  "sliding_window": null,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.51.0",
  "use_cache": true,
  "use_sliding_window": false,
  "vocab_size": 151936
})";

// A small valid Llama config; each bad-config test breaks one field of it.
json TinyLlama() {
  return {{"architectures", {"LlamaForCausalLM"}},
          {"model_type", "llama"},
          {"hidden_size", 64},
          {"intermediate_size", 128},
          {"num_hidden_layers", 2},
          {"num_attention_heads", 4},
          {"num_key_value_heads", 2},
          {"vocab_size", 100},
          {"rms_norm_eps", 1e-5},
          {"bos_token_id", 1},
          {"eos_token_id", 2}};
}

absl::StatusOr<ModelConfig> Parse(const json& config) {
  return ModelConfig::FromJson(config.dump());
}

// Expects InvalidArgument whose message contains every one of `parts`.
void ExpectInvalid(const json& config, std::initializer_list<std::string> parts) {
  const absl::StatusOr<ModelConfig> c = Parse(config);
  ASSERT_FALSE(c.ok()) << config.dump();
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << c.status();
  for (const std::string& part : parts) {
    EXPECT_THAT(std::string(c.status().message()), HasSubstr(part));
  }
}

TEST(ConfigTest, FixtureTinyLlama) {
  const absl::StatusOr<ModelConfig> c = ModelConfig::FromFile(kFixtureDir + "/config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->arch, Architecture::kLlama);
  EXPECT_EQ(c->hidden_size, 256);
  EXPECT_EQ(c->intermediate_size, 768);
  EXPECT_EQ(c->num_hidden_layers, 4);
  EXPECT_EQ(c->num_attention_heads, 8);
  EXPECT_EQ(c->num_key_value_heads, 2);
  EXPECT_EQ(c->head_dim, 32);
  EXPECT_EQ(c->q_dim(), 256);
  EXPECT_EQ(c->kv_dim(), 64);
  EXPECT_EQ(c->vocab_size, 4096);
  EXPECT_EQ(c->max_position_embeddings, 512);
  EXPECT_DOUBLE_EQ(c->rms_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(c->rope_theta, 10000.0);
  EXPECT_EQ(c->rope_scaling.type, RopeScaling::Type::kNone);
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_FALSE(c->attention_bias);
  EXPECT_FALSE(c->attention_output_bias);
  EXPECT_FALSE(c->mlp_bias);
  EXPECT_FALSE(c->qk_norm);
  EXPECT_FALSE(c->sliding_window.has_value());
  EXPECT_EQ(c->bos_token_id, 1);
  EXPECT_THAT(c->eos_token_ids, ElementsAre(2));
  EXPECT_EQ(c->torch_dtype, "bfloat16");
}

TEST(ConfigTest, FromFileAcceptsTheCheckpointDirectory) {
  const absl::StatusOr<ModelConfig> c = ModelConfig::FromFile(kFixtureDir);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->hidden_size, 256);
}

TEST(ConfigTest, FromFileMissingIsNotFound) {
  const absl::StatusOr<ModelConfig> c = ModelConfig::FromFile(kFixtureDir + "/no_such.json");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("no_such.json"));
}

TEST(ConfigTest, Llama31_8B) {
  const absl::StatusOr<ModelConfig> c = ModelConfig::FromJson(kLlama31_8B);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->arch, Architecture::kLlama);
  EXPECT_EQ(c->hidden_size, 4096);
  EXPECT_EQ(c->num_hidden_layers, 32);
  EXPECT_EQ(c->num_attention_heads, 32);
  EXPECT_EQ(c->num_key_value_heads, 8);
  EXPECT_EQ(c->head_dim, 128);
  EXPECT_EQ(c->intermediate_size, 14336);
  EXPECT_EQ(c->vocab_size, 128256);
  EXPECT_EQ(c->max_position_embeddings, 131072);
  EXPECT_DOUBLE_EQ(c->rope_theta, 500000.0);
  EXPECT_EQ(c->rope_scaling.type, RopeScaling::Type::kLlama3);
  EXPECT_DOUBLE_EQ(c->rope_scaling.factor, 8.0);
  EXPECT_DOUBLE_EQ(c->rope_scaling.low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(c->rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(c->rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_EQ(c->bos_token_id, 128000);
  EXPECT_THAT(c->eos_token_ids, ElementsAre(128001, 128008, 128009));
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_FALSE(c->attention_bias);
  EXPECT_FALSE(c->sliding_window.has_value());
}

TEST(ConfigTest, Mistral7B) {
  const absl::StatusOr<ModelConfig> c = ModelConfig::FromJson(kMistral7B);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->arch, Architecture::kMistral);
  EXPECT_EQ(c->head_dim, 128);
  EXPECT_EQ(c->num_key_value_heads, 8);
  EXPECT_EQ(c->vocab_size, 32000);
  EXPECT_EQ(c->sliding_window, 4096);
  EXPECT_EQ(c->LayerSlidingWindow(0), 4096);  // every Mistral layer uses the window
  EXPECT_EQ(c->LayerSlidingWindow(31), 4096);
  EXPECT_FALSE(c->attention_bias);
  EXPECT_FALSE(c->attention_output_bias);
  EXPECT_FALSE(c->mlp_bias);
  EXPECT_EQ(c->rope_scaling.type, RopeScaling::Type::kNone);
}

TEST(ConfigTest, MistralNullWindowAndExplicitHeadDim) {
  // Mistral v0.3 writes "sliding_window": null; Mistral-NeMo sets head_dim so that
  // q_dim (32 x 128) differs from hidden_size (5120).
  json config = json::parse(kMistral7B);
  config["sliding_window"] = nullptr;
  config["hidden_size"] = 5120;
  config["head_dim"] = 128;
  const absl::StatusOr<ModelConfig> c = Parse(config);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->sliding_window.has_value());
  EXPECT_EQ(c->head_dim, 128);
  EXPECT_EQ(c->q_dim(), 4096);
  EXPECT_EQ(c->kv_dim(), 1024);
}

TEST(ConfigTest, MistralWithoutWindowKeyGetsTransformersDefault) {
  json config = json::parse(kMistral7B);
  config.erase("sliding_window");
  const absl::StatusOr<ModelConfig> c = Parse(config);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->sliding_window, 4096);
}

TEST(ConfigTest, Qwen2_7B) {
  const absl::StatusOr<ModelConfig> c = ModelConfig::FromJson(kQwen2_7B);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->arch, Architecture::kQwen2);
  EXPECT_EQ(c->hidden_size, 3584);
  EXPECT_EQ(c->head_dim, 128);
  EXPECT_EQ(c->num_key_value_heads, 4);
  EXPECT_EQ(c->vocab_size, 152064);
  EXPECT_DOUBLE_EQ(c->rms_norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(c->rope_theta, 1e6);
  EXPECT_TRUE(c->attention_bias);          // q/k/v always biased
  EXPECT_FALSE(c->attention_output_bias);  // o_proj never
  EXPECT_FALSE(c->mlp_bias);
  EXPECT_FALSE(c->qk_norm);
  EXPECT_FALSE(c->sliding_window.has_value());  // use_sliding_window is false
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_EQ(c->bos_token_id, 151643);
  EXPECT_THAT(c->eos_token_ids, ElementsAre(151643));
}

TEST(ConfigTest, Qwen2SlidingWindowOnlyAboveMaxWindowLayers) {
  json config = json::parse(kQwen2_7B);
  config["use_sliding_window"] = true;
  config["sliding_window"] = 4096;
  config["max_window_layers"] = 21;
  const absl::StatusOr<ModelConfig> c = Parse(config);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->sliding_window, 4096);
  EXPECT_EQ(c->sliding_window_first_layer, 21);
  EXPECT_FALSE(c->LayerSlidingWindow(20).has_value());
  EXPECT_EQ(c->LayerSlidingWindow(21), 4096);
}

TEST(ConfigTest, Qwen2_0_5B_TiedEmbeddings) {
  const absl::StatusOr<ModelConfig> c = ModelConfig::FromJson(kQwen2_0_5B);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->tie_word_embeddings);
  EXPECT_EQ(c->hidden_size, 896);
  EXPECT_EQ(c->num_attention_heads, 14);
  EXPECT_EQ(c->head_dim, 64);
  EXPECT_EQ(c->kv_dim(), 128);
  EXPECT_EQ(c->num_hidden_layers, 24);
}

TEST(ConfigTest, Qwen3_8B) {
  const absl::StatusOr<ModelConfig> c = ModelConfig::FromJson(kQwen3_8B);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->arch, Architecture::kQwen3);
  EXPECT_EQ(c->head_dim, 128);
  EXPECT_EQ(c->q_dim(), 4096);
  EXPECT_EQ(c->num_hidden_layers, 36);
  EXPECT_EQ(c->intermediate_size, 12288);
  EXPECT_TRUE(c->qk_norm);
  EXPECT_FALSE(c->attention_bias);
  EXPECT_FALSE(c->attention_output_bias);
  EXPECT_DOUBLE_EQ(c->rope_theta, 1e6);  // written as an integer
  EXPECT_EQ(c->rope_scaling.type, RopeScaling::Type::kNone);
  EXPECT_FALSE(c->sliding_window.has_value());
  EXPECT_THAT(c->eos_token_ids, ElementsAre(151645));
}

TEST(ConfigTest, Qwen3SmallHasQDimAboveHidden) {
  // Qwen3-0.6B: hidden 1024 but 16 heads x 128 = 2048 query width; embeddings tied.
  json config = json::parse(kQwen3_8B);
  config["hidden_size"] = 1024;
  config["intermediate_size"] = 3072;
  config["num_attention_heads"] = 16;
  config["num_hidden_layers"] = 28;
  config["tie_word_embeddings"] = true;
  const absl::StatusOr<ModelConfig> c = Parse(config);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->q_dim(), 2048);
  EXPECT_EQ(c->kv_dim(), 1024);
  EXPECT_TRUE(c->tie_word_embeddings);
}

TEST(ConfigTest, Qwen3AttentionBiasCoversOutput) {
  json config = json::parse(kQwen3_8B);
  config["attention_bias"] = true;
  const absl::StatusOr<ModelConfig> c = Parse(config);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->attention_bias);
  EXPECT_TRUE(c->attention_output_bias);
}

TEST(ConfigTest, LlamaBiases) {
  json config = TinyLlama();
  config["attention_bias"] = true;
  config["mlp_bias"] = true;
  const absl::StatusOr<ModelConfig> c = Parse(config);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->attention_bias);
  EXPECT_TRUE(c->attention_output_bias);
  EXPECT_TRUE(c->mlp_bias);
}

TEST(ConfigTest, DefaultsFilledAsTransformersDoes) {
  json config = TinyLlama();
  for (const char* key : {"num_key_value_heads", "rms_norm_eps", "bos_token_id", "eos_token_id"}) {
    config.erase(key);
  }
  const absl::StatusOr<ModelConfig> c = Parse(config);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->num_key_value_heads, 4);
  EXPECT_EQ(c->head_dim, 16);
  EXPECT_DOUBLE_EQ(c->rms_norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(c->rope_theta, 10000.0);
  EXPECT_EQ(c->max_position_embeddings, 2048);
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_FALSE(c->bos_token_id.has_value());
  EXPECT_TRUE(c->eos_token_ids.empty());
}

TEST(ConfigTest, ModelTypeStandsInForMissingArchitectures) {
  json config = TinyLlama();
  config.erase("architectures");
  config["model_type"] = "mistral";
  const absl::StatusOr<ModelConfig> c = Parse(config);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->arch, Architecture::kMistral);
}

TEST(ConfigTest, RopeScalingDefaultTypeIsNone) {
  json config = TinyLlama();
  config["rope_scaling"] = {{"rope_type", "default"}};
  const absl::StatusOr<ModelConfig> c = Parse(config);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rope_scaling.type, RopeScaling::Type::kNone);
}

TEST(ConfigTest, RopeScalingLegacyTypeKey) {
  json config = json::parse(kLlama31_8B);
  config["rope_scaling"].erase("rope_type");
  config["rope_scaling"]["type"] = "llama3";
  const absl::StatusOr<ModelConfig> c = Parse(config);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rope_scaling.type, RopeScaling::Type::kLlama3);
}

TEST(ConfigTest, RopeParametersOfTransformersV5) {
  json config = json::parse(kLlama31_8B);
  json parameters = config["rope_scaling"];
  parameters["rope_theta"] = 500000.0;
  config.erase("rope_scaling");
  config.erase("rope_theta");
  config["rope_parameters"] = parameters;
  const absl::StatusOr<ModelConfig> c = Parse(config);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_DOUBLE_EQ(c->rope_theta, 500000.0);
  EXPECT_EQ(c->rope_scaling.type, RopeScaling::Type::kLlama3);
  EXPECT_DOUBLE_EQ(c->rope_scaling.factor, 8.0);
}

TEST(ConfigTest, LayerTensorName) {
  EXPECT_EQ(LayerTensorName(3, "self_attn.q_proj.weight"),
            "model.layers.3.self_attn.q_proj.weight");
  EXPECT_EQ(ArchitectureName(Architecture::kQwen3), "Qwen3ForCausalLM");
}

// quantization_config of a compressed-tensors W4A16 checkpoint as llm-compressor writes it
// (pack-quantized, one Linear group, lm_head ignored), and the W4A8 variant Caliber writes.
json CompressedTensorsW4A16() {
  return json::parse(R"({
    "config_groups": {
      "group_0": {
        "input_activations": null,
        "output_activations": null,
        "targets": ["Linear"],
        "weights": {"actorder": null, "block_structure": null, "dynamic": false,
                    "group_size": 128, "num_bits": 4, "observer": "minmax",
                    "observer_kwargs": {}, "strategy": "group", "symmetric": true,
                    "type": "int"}
      }
    },
    "format": "pack-quantized",
    "global_compression_ratio": 1.89,
    "ignore": ["lm_head"],
    "kv_cache_scheme": null,
    "quant_method": "compressed-tensors",
    "quantization_status": "compressed"
  })");
}

TEST(ConfigTest, CompressedTensorsPackQuantized) {
  json config = TinyLlama();
  config["quantization_config"] = CompressedTensorsW4A16();
  absl::StatusOr<ModelConfig> c = Parse(config);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(c->compressed_tensors.has_value());
  EXPECT_FALSE(c->gptq.has_value());
  EXPECT_TRUE(c->quantized());
  EXPECT_EQ(c->compressed_tensors->bits, 4);
  EXPECT_EQ(c->compressed_tensors->group_size, 128);
  EXPECT_TRUE(c->compressed_tensors->sym);
  EXPECT_FALSE(c->compressed_tensors->g_idx);
  EXPECT_EQ(c->served_act_bits(), 16);

  // The variants Caliber writes: W4A8 (dynamic per-token INT8 input activations), act-order
  // groups (weight_g_idx), asymmetric per-channel grids.
  json& group = config["quantization_config"]["config_groups"]["group_0"];
  group["input_activations"] = {{"num_bits", 8}, {"type", "int"}, {"symmetric", true},
                                {"strategy", "token"}, {"dynamic", true}, {"group_size", nullptr}};
  group["weights"]["actorder"] = "group";
  c = Parse(config);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->compressed_tensors->g_idx);
  EXPECT_EQ(c->served_act_bits(), 8);
  group["weights"]["actorder"] = "weight";
  group["weights"]["strategy"] = "channel";
  group["weights"]["group_size"] = nullptr;
  group["weights"]["symmetric"] = false;
  c = Parse(config);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->compressed_tensors->group_size, -1);
  EXPECT_FALSE(c->compressed_tensors->sym);
  EXPECT_FALSE(c->compressed_tensors->g_idx);
  // Without a strategy compressed-tensors infers it from group_size.
  group["weights"].erase("strategy");
  group["weights"]["group_size"] = 64;
  c = Parse(config);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->compressed_tensors->group_size, 64);
}

TEST(ConfigBadTest, CompressedTensorsOutsideWhatCaliberLoads) {
  struct Bad {
    std::string path;  // JSON pointer below quantization_config
    json value;
    std::string message;
  };
  const std::vector<Bad> cases = {
      {"/format", "int-quantized", "quantization_config.format 'int-quantized' is not supported (supported: pack-quantized)"},
      {"/quantization_status", "frozen", "quantization_status 'frozen' is not supported"},
      {"/ignore", json::array(), "quantization_config.ignore must list 'lm_head'"},
      {"/kv_cache_scheme", {{"num_bits", 8}}, "kv_cache_scheme is not supported"},
      {"/config_groups/group_1", CompressedTensorsW4A16()["config_groups"]["group_0"],
       "config_groups must hold exactly one group"},
      {"/config_groups/group_0/targets", {"re:.*q_proj"}, "group_0.targets must be [\"Linear\"]"},
      {"/config_groups/group_0/weights/type", "float", "weights.type 'float' is not supported"},
      {"/config_groups/group_0/weights/num_bits", 5, "weights.num_bits must be 2, 3, 4 or 8, got 5"},
      {"/config_groups/group_0/weights", {{"num_bits", 4}, {"strategy", "tensor"}},
       "weights.strategy 'tensor' is not supported (group, channel)"},
      {"/config_groups/group_0/weights/strategy", "tensor",
       "weights.group_size must be absent or -1 for strategy 'tensor', got 128"},
      {"/config_groups/group_0/weights/group_size", 0, "weights.group_size must be positive for strategy 'group', got 0"},
      {"/config_groups/group_0/weights/dynamic", true, "weights.dynamic must be false"},
      {"/config_groups/group_0/weights/actorder", "sometimes", "weights.actorder must be null, a boolean"},
      {"/config_groups/group_0/input_activations",
       {{"num_bits", 8}, {"type", "int"}, {"symmetric", true}, {"strategy", "tensor"}, {"dynamic", false}},
       "input_activations.strategy 'tensor' is not supported (token)"},
      {"/config_groups/group_0/input_activations",
       {{"num_bits", 4}, {"strategy", "token"}, {"dynamic", true}}, "input_activations.num_bits must be 8, got 4"},
      {"/config_groups/group_0/input_activations",
       {{"num_bits", 8}, {"strategy", "token"}, {"dynamic", true}, {"symmetric", false}},
       "input_activations.symmetric must be true"},
      {"/config_groups/group_0/input_activations",
       {{"num_bits", 8}, {"strategy", "token"}, {"dynamic", false}}, "input_activations.dynamic must be true"},
      {"/config_groups/group_0/output_activations", {{"num_bits", 8}}, "output_activations is not supported"},
      {"/quant_method", "awq", "quant_method 'awq' is not supported (supported: gptq, compressed-tensors)"},
  };
  for (const Bad& b : cases) {
    json config = TinyLlama();
    config["quantization_config"] = CompressedTensorsW4A16();
    config["quantization_config"][json::json_pointer(b.path)] = b.value;
    ExpectInvalid(config, {b.message});
  }
  json config = TinyLlama();
  config["quantization_config"] = CompressedTensorsW4A16();
  config["quantization_config"]["config_groups"]["group_0"]["weights"]["strategy"] = "channel";
  config["quantization_config"]["config_groups"]["group_0"]["weights"]["group_size"] = -1;
  config["quantization_config"]["config_groups"]["group_0"]["weights"]["actorder"] = "group";
  ExpectInvalid(config, {"weights.actorder 'group' needs strategy 'group'"});
}

// ---- One test per rejected config. ----

TEST(ConfigBadTest, NotJson) {
  const absl::StatusOr<ModelConfig> c = ModelConfig::FromJson("{\"hidden_size\": 4", "my.json");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("my.json"));
}

TEST(ConfigBadTest, NotAnObject) { ExpectInvalid(json::array({1, 2}), {"JSON object"}); }

TEST(ConfigBadTest, UnsupportedArchitecture) {
  json config = TinyLlama();
  config["architectures"] = {"GPT2LMHeadModel"};
  ExpectInvalid(config, {"unsupported architecture", "GPT2LMHeadModel", "LlamaForCausalLM",
                         "Qwen3ForCausalLM"});
}

TEST(ConfigBadTest, NoArchitectureAtAll) {
  json config = TinyLlama();
  config.erase("architectures");
  config.erase("model_type");
  ExpectInvalid(config, {"architectures", "model_type"});
}

TEST(ConfigBadTest, UnsupportedModelType) {
  json config = TinyLlama();
  config.erase("architectures");
  config["model_type"] = "gemma";
  ExpectInvalid(config, {"model_type", "gemma"});
}

TEST(ConfigBadTest, MissingSize) {
  for (const char* key : {"hidden_size", "intermediate_size", "num_hidden_layers",
                          "num_attention_heads", "vocab_size"}) {
    json config = TinyLlama();
    config.erase(key);
    ExpectInvalid(config, {key, "missing"});
  }
}

TEST(ConfigBadTest, NonPositiveSize) {
  for (const char* key : {"hidden_size", "intermediate_size", "num_hidden_layers",
                          "num_attention_heads", "vocab_size", "num_key_value_heads"}) {
    json config = TinyLlama();
    config[key] = 0;
    ExpectInvalid(config, {key, "got 0"});
    config[key] = -4;
    ExpectInvalid(config, {key, "got -4"});
  }
}

TEST(ConfigBadTest, SizeOfWrongType) {
  json config = TinyLlama();
  config["hidden_size"] = "64";
  ExpectInvalid(config, {"hidden_size", "\"64\""});
  config = TinyLlama();
  config["hidden_size"] = 64.5;
  ExpectInvalid(config, {"hidden_size", "64.5"});
  config = TinyLlama();
  config["num_hidden_layers"] = true;
  ExpectInvalid(config, {"num_hidden_layers", "true"});
}

TEST(ConfigBadTest, AbsurdSizes) {
  json config = TinyLlama();
  config["hidden_size"] = 1 << 21;
  ExpectInvalid(config, {"hidden_size", "2097152"});
  config = TinyLlama();
  config["num_hidden_layers"] = 5000;
  ExpectInvalid(config, {"num_hidden_layers", "5000"});
  config = TinyLlama();
  config["vocab_size"] = 18446744073709551615ull;
  ExpectInvalid(config, {"vocab_size", "18446744073709551615"});
  config = TinyLlama();  // each factor is in range, their product is not
  config["num_attention_heads"] = 1 << 12;
  config["num_key_value_heads"] = 1;
  config["head_dim"] = 1 << 10;
  ExpectInvalid(config, {"num_attention_heads", "head_dim"});
}

TEST(ConfigBadTest, HeadsNotDivisibleByKvHeads) {
  json config = TinyLlama();
  config["num_key_value_heads"] = 3;
  ExpectInvalid(config, {"num_attention_heads (4)", "num_key_value_heads (3)"});
}

TEST(ConfigBadTest, HiddenNotDivisibleByHeadsWithoutHeadDim) {
  json config = TinyLlama();
  config["hidden_size"] = 66;
  ExpectInvalid(config, {"hidden_size (66)", "num_attention_heads (4)"});
  config["head_dim"] = 16;  // an explicit head_dim makes it legal
  EXPECT_TRUE(Parse(config).ok());
}

TEST(ConfigBadTest, OddHeadDim) {
  json config = TinyLlama();
  config["head_dim"] = 15;
  ExpectInvalid(config, {"head_dim", "even", "15"});
  config = TinyLlama();
  config["hidden_size"] = 36;  // 36 / 4 = 9
  ExpectInvalid(config, {"head_dim", "9"});
}

TEST(ConfigBadTest, NonPositiveEps) {
  json config = TinyLlama();
  config["rms_norm_eps"] = 0.0;
  ExpectInvalid(config, {"rms_norm_eps", "0.0"});
  config["rms_norm_eps"] = -1e-6;
  ExpectInvalid(config, {"rms_norm_eps"});
}

TEST(ConfigBadTest, NonPositiveRopeTheta) {
  json config = TinyLlama();
  config["rope_theta"] = -10000.0;
  ExpectInvalid(config, {"rope_theta", "-10000"});
  config["rope_theta"] = "10000";
  ExpectInvalid(config, {"rope_theta"});
}

TEST(ConfigBadTest, UnsupportedRopeScalingType) {
  json config = TinyLlama();
  config["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  ExpectInvalid(config, {"unsupported rope_scaling type 'yarn'"});
  config["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  ExpectInvalid(config, {"unsupported rope_scaling type 'linear'"});
}

TEST(ConfigBadTest, RopeScalingWithoutType) {
  json config = TinyLlama();
  config["rope_scaling"] = {{"factor", 4.0}};
  ExpectInvalid(config, {"rope_scaling", "rope_type"});
  config["rope_scaling"] = "llama3";
  ExpectInvalid(config, {"rope_scaling", "object"});
}

TEST(ConfigBadTest, Llama3ScalingFieldMissingOrInvalid) {
  const json good = json::parse(kLlama31_8B);
  for (const char* key :
       {"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"}) {
    json config = good;
    config["rope_scaling"].erase(key);
    ExpectInvalid(config, {std::string("rope_scaling.") + key, "missing"});
    config["rope_scaling"][key] = 0;
    ExpectInvalid(config, {std::string("rope_scaling.") + key, "got 0"});
  }
}

TEST(ConfigBadTest, Llama3ScalingHighNotAboveLow) {
  json config = json::parse(kLlama31_8B);
  config["rope_scaling"]["high_freq_factor"] = 1.0;
  ExpectInvalid(config, {"high_freq_factor", "low_freq_factor"});
}

TEST(ConfigBadTest, UnsupportedActivation) {
  json config = TinyLlama();
  config["hidden_act"] = "gelu";
  ExpectInvalid(config, {"hidden_act", "gelu", "silu"});
}

TEST(ConfigBadTest, BadBosTokenId) {
  json config = TinyLlama();
  config["bos_token_id"] = "<s>";
  ExpectInvalid(config, {"bos_token_id", "\"<s>\""});
  config["bos_token_id"] = 100;  // == vocab_size
  ExpectInvalid(config, {"bos_token_id", "100"});
  config["bos_token_id"] = nullptr;
  EXPECT_TRUE(Parse(config).ok());
}

TEST(ConfigBadTest, BadEosTokenId) {
  json config = TinyLlama();
  config["eos_token_id"] = {2, "x"};
  ExpectInvalid(config, {"eos_token_id[1]", "\"x\""});
  config["eos_token_id"] = -1;
  ExpectInvalid(config, {"eos_token_id", "-1"});
  config["eos_token_id"] = {{"id", 2}};
  ExpectInvalid(config, {"eos_token_id"});
}

TEST(ConfigBadTest, BadSlidingWindow) {
  json config = json::parse(kMistral7B);
  config["sliding_window"] = 0;
  ExpectInvalid(config, {"sliding_window", "got 0"});
  config = json::parse(kQwen2_7B);
  config["use_sliding_window"] = "yes";
  ExpectInvalid(config, {"use_sliding_window", "\"yes\""});
}

TEST(ConfigBadTest, BadBooleanFlag) {
  json config = TinyLlama();
  config["tie_word_embeddings"] = 1;
  ExpectInvalid(config, {"tie_word_embeddings", "got 1"});
  config = TinyLlama();
  config["attention_bias"] = "false";
  ExpectInvalid(config, {"attention_bias"});
}

// The fuzzer's contract: hostile input gives a status, never a crash or an exception.
TEST(ConfigBadTest, HostileInputsReturnStatus) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  const std::string deep_field = "{\"rope_scaling\": " + deep + "}";
  for (const std::string& text :
       {std::string(), std::string("null"), std::string("\"x\""), deep, deep_field,
        std::string("{\"architectures\": [[]]}"), std::string("{\"architectures\": 7}"),
        std::string("{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 1e999}"),
        std::string("{\"architectures\": [\"\\u00ff\\ud800\"]}"), std::string("\xff\xfe")}) {
    const absl::StatusOr<ModelConfig> c = ModelConfig::FromJson(text);
    EXPECT_FALSE(c.ok());
  }
}

}  // namespace
}  // namespace caliber
