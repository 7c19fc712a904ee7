#include "core/model/weights.h"

#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/formats/compressed_tensors_linear.h"
#include "core/formats/gptq_linear.h"

namespace caliber {
namespace {

struct ExpectedTensor {
  std::string name;
  std::vector<int64_t> shape;
};

struct ModuleShape {
  LinearModule module;
  int64_t out;
  int64_t in;
  bool bias;
};

std::vector<ModuleShape> LinearShapes(const ModelConfig& c) {
  const int64_t h = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), ff = c.intermediate_size;
  const bool qkv_bias = c.attention_bias;
  return {{LinearModule::kQ, q, h, qkv_bias},
          {LinearModule::kK, kv, h, qkv_bias},
          {LinearModule::kV, kv, h, qkv_bias},
          {LinearModule::kO, h, q, c.attention_output_bias},
          {LinearModule::kGate, ff, h, c.mlp_bias},
          {LinearModule::kUp, ff, h, c.mlp_bias},
          {LinearModule::kDown, h, ff, c.mlp_bias}};
}

std::vector<ExpectedTensor> LayerTensors(const ModelConfig& c, int layer) {
  std::vector<ExpectedTensor> out;
  for (const ModuleShape& m : LinearShapes(c)) {
    const std::string base = LayerTensorName(layer, LinearModuleName(m.module));
    if (c.gptq) {
      for (TensorSpec& t : GptqLinearTensors(base, int(m.out), int(m.in), *c.gptq)) {
        out.push_back({std::move(t.name), std::move(t.shape)});
      }
    } else if (c.compressed_tensors) {
      for (TensorSpec& t :
           CompressedTensorsLinearTensors(base, int(m.out), int(m.in), *c.compressed_tensors)) {
        out.push_back({std::move(t.name), std::move(t.shape)});
      }
    } else {
      out.push_back({base + ".weight", {m.out, m.in}});
    }
    if (m.bias) out.push_back({base + ".bias", {m.out}});
  }
  out.push_back({LayerTensorName(layer, "input_layernorm.weight"), {c.hidden_size}});
  out.push_back({LayerTensorName(layer, "post_attention_layernorm.weight"), {c.hidden_size}});
  if (c.qk_norm) {
    out.push_back({LayerTensorName(layer, "self_attn.q_norm.weight"), {c.head_dim}});
    out.push_back({LayerTensorName(layer, "self_attn.k_norm.weight"), {c.head_dim}});
  }
  return out;
}

absl::StatusOr<MatrixF> ReadMatrix(const Checkpoint& ckpt, const std::string& name, int64_t rows,
                                   int64_t cols) {
  const int64_t shape[] = {rows, cols};
  absl::StatusOr<std::vector<float>> data = ckpt.ReadFloat(name, shape);
  if (!data.ok()) return data.status();
  return MatrixF(ConstMapMatrixF(data->data(), rows, cols));
}

absl::StatusOr<VectorF> ReadVector(const Checkpoint& ckpt, const std::string& name, int64_t n) {
  const int64_t shape[] = {n};
  absl::StatusOr<std::vector<float>> data = ckpt.ReadFloat(name, shape);
  if (!data.ok()) return data.status();
  return VectorF(Eigen::Map<const VectorF>(data->data(), n));
}

}  // namespace

std::string_view LinearModuleName(LinearModule m) {
  switch (m) {
    case LinearModule::kQ: return "self_attn.q_proj";
    case LinearModule::kK: return "self_attn.k_proj";
    case LinearModule::kV: return "self_attn.v_proj";
    case LinearModule::kO: return "self_attn.o_proj";
    case LinearModule::kGate: return "mlp.gate_proj";
    case LinearModule::kUp: return "mlp.up_proj";
    case LinearModule::kDown: return "mlp.down_proj";
  }
  return "?";
}

LinearWeights& LayerWeights::linear(LinearModule m) {
  return const_cast<LinearWeights&>(static_cast<const LayerWeights&>(*this).linear(m));
}

const LinearWeights& LayerWeights::linear(LinearModule m) const {
  switch (m) {
    case LinearModule::kQ: return q;
    case LinearModule::kK: return k;
    case LinearModule::kV: return v;
    case LinearModule::kO: return o;
    case LinearModule::kGate: return gate;
    case LinearModule::kUp: return up;
    case LinearModule::kDown: return down;
  }
  return q;
}

absl::Status ValidateTensorSet(const ModelConfig& config, const Checkpoint& checkpoint) {
  std::set<std::string, std::less<>> expected = {"model.embed_tokens.weight", "model.norm.weight"};
  for (int l = 0; l < config.num_hidden_layers; ++l) {
    for (ExpectedTensor& t : LayerTensors(config, l)) expected.insert(std::move(t.name));
  }
  const bool has_lm_head = checkpoint.Contains("lm_head.weight");
  if (!config.tie_word_embeddings && !has_lm_head) {
    return absl::InvalidArgumentError(absl::StrCat(
        checkpoint.dir(), ": tensor 'lm_head.weight' is missing (tie_word_embeddings is false)"));
  }
  if (has_lm_head) expected.insert("lm_head.weight");

  std::vector<std::string> missing, unexpected;
  const std::vector<std::string> names = checkpoint.TensorNames();
  const std::set<std::string, std::less<>> present(names.begin(), names.end());
  for (const std::string& name : expected) {
    if (!present.contains(name)) missing.push_back(name);
  }
  for (const std::string& name : names) {
    if (expected.contains(name) || absl::EndsWith(name, "rotary_emb.inv_freq")) continue;
    unexpected.push_back(name);
  }
  auto first = [](const std::vector<std::string>& v) {
    std::vector<std::string> head(v.begin(), v.begin() + std::min<size_t>(v.size(), 5));
    return absl::StrCat(absl::StrJoin(head, ", "), v.size() > 5 ? ", ..." : "");
  };
  if (!missing.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(checkpoint.dir(), ": ", missing.size(),
                                                   " tensor(s) the config requires are missing: ",
                                                   first(missing)));
  }
  if (!unexpected.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        checkpoint.dir(), ": ", unexpected.size(),
        " tensor(s) do not belong to this config (wrong architecture or layer count?): ",
        first(unexpected)));
  }
  return absl::OkStatus();
}

absl::StatusOr<LayerWeights> LoadLayerWeights(const ModelConfig& config,
                                              const Checkpoint& checkpoint, int layer) {
  if (layer < 0 || layer >= config.num_hidden_layers) {
    return absl::OutOfRangeError(absl::StrCat("layer ", layer, " out of range [0, ",
                                              config.num_hidden_layers, ")"));
  }
  LayerWeights w;
  for (const ModuleShape& m : LinearShapes(config)) {
    const std::string base = LayerTensorName(layer, LinearModuleName(m.module));
    LinearWeights& lin = w.linear(m.module);
    absl::StatusOr<MatrixF> weight =
        config.gptq ? ReadGptqLinear(checkpoint, base, int(m.out), int(m.in), *config.gptq)
        : config.compressed_tensors
            ? ReadCompressedTensorsLinear(checkpoint, base, int(m.out), int(m.in),
                                          *config.compressed_tensors)
            : ReadMatrix(checkpoint, base + ".weight", m.out, m.in);
    if (!weight.ok()) return weight.status();
    lin.weight = *std::move(weight);
    if (m.bias) {
      absl::StatusOr<VectorF> bias = ReadVector(checkpoint, base + ".bias", m.out);
      if (!bias.ok()) return bias.status();
      lin.bias = *std::move(bias);
    }
  }
  auto read_norm = [&](std::string_view suffix, int64_t n, VectorF& out) -> absl::Status {
    absl::StatusOr<VectorF> v = ReadVector(checkpoint, LayerTensorName(layer, suffix), n);
    if (!v.ok()) return v.status();
    out = *std::move(v);
    return absl::OkStatus();
  };
  if (absl::Status s = read_norm("input_layernorm.weight", config.hidden_size, w.input_norm); !s.ok()) return s;
  if (absl::Status s = read_norm("post_attention_layernorm.weight", config.hidden_size, w.post_attention_norm); !s.ok()) return s;
  if (config.qk_norm) {
    if (absl::Status s = read_norm("self_attn.q_norm.weight", config.head_dim, w.q_norm); !s.ok()) return s;
    if (absl::Status s = read_norm("self_attn.k_norm.weight", config.head_dim, w.k_norm); !s.ok()) return s;
  }
  return w;
}

absl::StatusOr<ModelWeights> LoadModelWeights(const ModelConfig& config,
                                              const Checkpoint& checkpoint) {
  if (absl::Status s = ValidateTensorSet(config, checkpoint); !s.ok()) return s;
  ModelWeights w;
  absl::StatusOr<MatrixF> embed =
      ReadMatrix(checkpoint, "model.embed_tokens.weight", config.vocab_size, config.hidden_size);
  if (!embed.ok()) return embed.status();
  w.embed_tokens = *std::move(embed);
  for (int l = 0; l < config.num_hidden_layers; ++l) {
    absl::StatusOr<LayerWeights> layer = LoadLayerWeights(config, checkpoint, l);
    if (!layer.ok()) return layer.status();
    w.layers.push_back(*std::move(layer));
  }
  absl::StatusOr<VectorF> norm = ReadVector(checkpoint, "model.norm.weight", config.hidden_size);
  if (!norm.ok()) return norm.status();
  w.final_norm = *std::move(norm);
  if (checkpoint.Contains("lm_head.weight")) {
    absl::StatusOr<MatrixF> head =
        ReadMatrix(checkpoint, "lm_head.weight", config.vocab_size, config.hidden_size);
    if (!head.ok()) return head.status();
    w.lm_head = *std::move(head);
  } else {
    w.lm_head = w.embed_tokens;
  }
  return w;
}

}  // namespace caliber
