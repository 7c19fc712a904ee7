#include "core/model/decoder_layer.h"

#include "core/model/ops.h"

namespace caliber {

std::string_view LinearGroupName(LinearGroup g) {
  switch (g) {
    case LinearGroup::kQkv: return "qkv";
    case LinearGroup::kO: return "o";
    case LinearGroup::kGateUp: return "gate_up";
    case LinearGroup::kDown: return "down";
  }
  return "?";
}

namespace {

MatrixF Apply(const LinearWeights& lin, const MatrixF& x) { return Linear(x, lin.weight, &lin.bias); }

void Tap(LayerTaps* taps, LinearGroup group, MatrixF& x) {
  if (taps != nullptr) taps->OnLinearInput(group, x);
}

}  // namespace

void DecoderLayerForward(const ModelConfig& c, int layer, const LayerWeights& w, const RopeTable& rope,
                         const SequenceBatch& batch, MatrixF& hidden, LayerTaps* taps) {
  const float eps = static_cast<float>(c.rms_norm_eps);

  // Self-attention block.
  MatrixF x = RmsNorm(hidden, w.input_norm, eps);
  Tap(taps, LinearGroup::kQkv, x);
  MatrixF q = Apply(w.q, x);
  MatrixF k = Apply(w.k, x);
  MatrixF v = Apply(w.v, x);
  if (c.qk_norm) {  // Qwen3 normalizes each head before RoPE.
    RmsNormInPlace(q, w.q_norm, eps);
    RmsNormInPlace(k, w.k_norm, eps);
  }
  rope.Apply(q, batch.num_seqs, batch.seq_len, c.num_attention_heads, c.head_dim);
  rope.Apply(k, batch.num_seqs, batch.seq_len, c.num_key_value_heads, c.head_dim);
  const AttentionShape shape{batch.num_seqs,         batch.seq_len, c.num_attention_heads,
                             c.num_key_value_heads, c.head_dim,    c.LayerSlidingWindow(layer)};
  MatrixF attn = CausalAttention(q, k, v, shape);
  Tap(taps, LinearGroup::kO, attn);
  hidden += Apply(w.o, attn);

  // MLP block (SwiGLU).
  x = RmsNorm(hidden, w.post_attention_norm, eps);
  Tap(taps, LinearGroup::kGateUp, x);
  MatrixF gate = Apply(w.gate, x);
  const MatrixF up = Apply(w.up, x);
  SiluMulInPlace(gate, up);
  Tap(taps, LinearGroup::kDown, gate);
  hidden += Apply(w.down, gate);
}

}  // namespace caliber
