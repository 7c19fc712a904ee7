// Model hyper-parameters read from a Hugging Face config.json, for the decoder-only
// architectures Caliber supports. Everything the forward pass needs is resolved here
// (defaults filled in the way transformers fills them), so later code never reads JSON.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace caliber {

// Upper bounds on config.json values. Far above any released model, they keep every later
// size computation (products of two dimensions, times the layer count) inside int64.
inline constexpr int kMaxModelDim = 1 << 20;        // any width, head count or vocab size
inline constexpr int kMaxModelLayers = 4096;
inline constexpr int kMaxModelPositions = 1 << 24;  // max_position_embeddings, sliding_window

enum class Architecture { kLlama, kMistral, kQwen2, kQwen3 };
std::string_view ArchitectureName(Architecture arch);  // "LlamaForCausalLM", ...

// rope_scaling of Llama 3.1 (`rope_type`/`type` == "llama3"); kNone otherwise.
// Other rope types (linear, dynamic, yarn, ...) are rejected as unsupported.
struct RopeScaling {
  enum class Type { kNone, kLlama3 };
  Type type = Type::kNone;
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int original_max_position_embeddings = 8192;
};

// quantization_config of a GPTQ v1 checkpoint (AutoGPTQ / vLLM layout), whose linears are
// stored as qweight / qzeros / scales / g_idx instead of weight.
struct GptqQuantization {
  int bits = 4;
  int group_size = -1;  // -1: one group per output channel
  bool desc_act = false;
  bool sym = true;
};

// quantization_config of a compressed-tensors "pack-quantized" checkpoint (the layout
// core/formats/compressed_tensors_checkpoint.h writes and vLLM reads): one config group of
// integer weights by group or channel, optionally with dynamic per-token integer input
// activations. Linears are stored as weight_packed / weight_scale / weight_shape (+
// weight_zero_point when asymmetric, weight_g_idx with actorder "group").
struct CompressedTensorsQuantization {
  int bits = 4;
  int group_size = -1;  // strategy "group": its group_size; strategy "channel": -1
  bool sym = true;
  bool g_idx = false;   // actorder "group": each linear stores weight_g_idx
  int act_bits = 16;    // input_activations num_bits; 16 without input_activations
};

struct ModelConfig {
  Architecture arch = Architecture::kLlama;
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_hidden_layers = 0;
  int num_attention_heads = 0;
  int num_key_value_heads = 0;     // defaults to num_attention_heads
  int head_dim = 0;                // defaults to hidden_size / num_attention_heads
  int vocab_size = 0;
  int max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool attention_bias = false;     // q/k/v (and o for Llama) biases; always q/k/v for Qwen2
  bool attention_output_bias = false;  // o_proj bias (Llama's attention_bias covers o too)
  bool mlp_bias = false;
  bool qk_norm = false;            // Qwen3: per-head RMSNorm on q and k before RoPE
  std::optional<int> sliding_window;  // Mistral / Qwen2 with use_sliding_window
  // Qwen2/Qwen3 `max_window_layers`: layers below it attend fully even when sliding_window is
  // set; 0 for Mistral, whose every layer uses the window.
  int sliding_window_first_layer = 0;
  std::optional<int> bos_token_id;
  std::vector<int> eos_token_ids;
  std::optional<GptqQuantization> gptq;  // set for GPTQ-quantized checkpoints
  std::optional<CompressedTensorsQuantization> compressed_tensors;  // compressed-tensors ones
  std::string torch_dtype;         // as written ("bfloat16", ...), informational

  bool quantized() const { return gptq.has_value() || compressed_tensors.has_value(); }
  // The activation bits the checkpoint is served with: its input_activations num_bits for a
  // compressed-tensors W·A8 checkpoint, 16 otherwise.
  int served_act_bits() const { return compressed_tensors ? compressed_tensors->act_bits : 16; }
  int q_dim() const { return num_attention_heads * head_dim; }
  int kv_dim() const { return num_key_value_heads * head_dim; }
  // Attention window of decoder layer `layer`; nullopt means full causal attention.
  std::optional<int> LayerSlidingWindow(int layer) const {
    if (layer < sliding_window_first_layer) return std::nullopt;
    return sliding_window;
  }

  // Parses config.json text; `label` prefixes errors. Unknown architectures, missing or
  // non-positive sizes, heads not dividing evenly and unsupported features are errors.
  static absl::StatusOr<ModelConfig> FromJson(std::string_view json_text,
                                              std::string_view label = "config.json");
  // `path` is config.json itself or the checkpoint directory holding it; NotFound if absent.
  static absl::StatusOr<ModelConfig> FromFile(const std::string& path);
};

// Hugging Face tensor names.
std::string LayerTensorName(int layer, std::string_view suffix);  // "model.layers.3.<suffix>"

}  // namespace caliber
