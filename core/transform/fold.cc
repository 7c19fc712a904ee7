#include "core/transform/fold.h"

#include "core/transform/transform_matrices.h"

namespace caliber {
namespace {

// W ← L·W·T (either side optional) in float64, bias ← L·bias.
void Transform(LinearWeights& lin, const MatrixD* L, const MatrixD* T) {
  MatrixD w = lin.weight.cast<double>();
  if (L != nullptr) w = *L * w;
  if (T != nullptr) w = w * *T;
  lin.weight = w.cast<float>();
  if (L != nullptr && lin.bias.size() > 0) lin.bias = (*L * lin.bias.cast<double>()).cast<float>();
}

void ScaleColumns(MatrixF& w, const VectorF& g) { w = w * g.asDiagonal(); }

}  // namespace

void FoldLayerNorms(LayerWeights& w) {
  ScaleColumns(w.q.weight, w.input_norm);
  ScaleColumns(w.k.weight, w.input_norm);
  ScaleColumns(w.v.weight, w.input_norm);
  ScaleColumns(w.gate.weight, w.post_attention_norm);
  ScaleColumns(w.up.weight, w.post_attention_norm);
  w.input_norm.setOnes();
  w.post_attention_norm.setOnes();
}

void ApplyLayerTransform(const ModelConfig& config, const MatrixD& r1, const LayerTransform& t,
                         LayerWeights& w) {
  FoldLayerNorms(w);
  const LayerTransformMatrices m = BuildTransformMatrices(config, r1, t);
  const MatrixD r1t = r1.transpose();
  const MatrixD inv_du = m.d_u.cwiseInverse().asDiagonal();
  const MatrixD du = m.d_u.asDiagonal();
  Transform(w.q, nullptr, &m.t_attn);
  Transform(w.k, nullptr, &m.t_attn);
  Transform(w.v, &m.l_v, &m.t_attn);
  Transform(w.o, &r1t, &m.t_o);
  Transform(w.gate, nullptr, &m.t_mlp);
  Transform(w.up, &inv_du, &m.t_mlp);
  Transform(w.down, &r1t, &du);
  w.input_norm = (-t.log_attn.array()).exp().cast<float>();
  w.post_attention_norm = (-t.log_mlp.array()).exp().cast<float>();
}

void ApplyEmbeddingTransform(const MatrixD& r1, MatrixF& embed_tokens) {
  embed_tokens = (embed_tokens.cast<double>() * r1).cast<float>();
}

void ApplyHeadTransform(const MatrixD& r1, VectorF& final_norm, MatrixF& lm_head) {
  lm_head = (lm_head.cast<double>() * final_norm.cast<double>().asDiagonal() * r1).cast<float>();
  final_norm.setOnes();
}

void ApplyModelTransform(const ModelConfig& config, const ModelTransform& t, ModelWeights& w) {
  for (size_t l = 0; l < w.layers.size(); ++l) ApplyLayerTransform(config, t.r1, t.layers[l], w.layers[l]);
  ApplyEmbeddingTransform(t.r1, w.embed_tokens);
  ApplyHeadTransform(t.r1, w.final_norm, w.lm_head);
}

}  // namespace caliber
