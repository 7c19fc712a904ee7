// Float32 weights of a decoder-only model, loaded from a checkpoint and validated against
// its config: every expected tensor present with the expected shape, no unexpected layer
// tensors, no NaN/Inf values.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/io/safetensors.h"
#include "core/model/config.h"
#include "core/tensor/matrix.h"

namespace caliber {

// The seven linear modules of a decoder layer, in checkpoint order.
enum class LinearModule { kQ, kK, kV, kO, kGate, kUp, kDown };
inline constexpr LinearModule kAllLinearModules[] = {
    LinearModule::kQ,    LinearModule::kK,  LinearModule::kV,   LinearModule::kO,
    LinearModule::kGate, LinearModule::kUp, LinearModule::kDown};
// "self_attn.q_proj", "mlp.down_proj", ... (the name inside a layer, without ".weight").
std::string_view LinearModuleName(LinearModule m);

struct LinearWeights {
  MatrixF weight;  // [out x in]
  VectorF bias;    // [out], empty when the module has none
};

struct LayerWeights {
  LinearWeights q, k, v, o, gate, up, down;
  VectorF input_norm;           // input_layernorm.weight [hidden]
  VectorF post_attention_norm;  // post_attention_layernorm.weight [hidden]
  VectorF q_norm, k_norm;       // Qwen3 per-head norms [head_dim], empty otherwise

  LinearWeights& linear(LinearModule m);
  const LinearWeights& linear(LinearModule m) const;
};

struct ModelWeights {
  MatrixF embed_tokens;  // [vocab x hidden]
  std::vector<LayerWeights> layers;
  VectorF final_norm;    // [hidden]
  MatrixF lm_head;       // [vocab x hidden]; a copy of embed_tokens when tied
};

// Checks that the checkpoint's tensor names are exactly what `config` implies (allowing
// rotary inv_freq buffers and a missing lm_head when embeddings are tied).
absl::Status ValidateTensorSet(const ModelConfig& config, const Checkpoint& checkpoint);

absl::StatusOr<LayerWeights> LoadLayerWeights(const ModelConfig& config,
                                              const Checkpoint& checkpoint, int layer);
absl::StatusOr<ModelWeights> LoadModelWeights(const ModelConfig& config,
                                              const Checkpoint& checkpoint);

}  // namespace caliber
