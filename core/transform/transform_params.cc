#include "core/transform/transform_params.h"

namespace caliber {

LayerTransform IdentityLayerTransform(const ModelConfig& config) {
  LayerTransform t;
  t.r2 = MatrixD::Identity(config.head_dim, config.head_dim);
  t.log_attn = VectorD::Zero(config.hidden_size);
  t.log_mlp = VectorD::Zero(config.hidden_size);
  t.log_vo = VectorD::Zero(config.kv_dim());
  t.log_ud = VectorD::Zero(config.intermediate_size);
  return t;
}

ModelTransform IdentityModelTransform(const ModelConfig& config) {
  ModelTransform t;
  t.r1 = MatrixD::Identity(config.hidden_size, config.hidden_size);
  t.layers.assign(config.num_hidden_layers, IdentityLayerTransform(config));
  return t;
}

}  // namespace caliber
