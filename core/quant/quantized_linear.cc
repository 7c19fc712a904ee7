#include "core/quant/quantized_linear.h"

#include "core/quant/linalg.h"
#include "core/quant/quant_grid.h"

namespace caliber {

MatrixF QuantizedLinear::Dequantize() const {
  MatrixF q(out_features, in_features);
  for (int r = 0; r < out_features; ++r) {
    for (int i = 0; i < in_features; ++i) {
      const int g = g_idx[static_cast<size_t>(i)];
      q(r, i) = caliber::Dequant(static_cast<float>(codes(r, i)), scales(g, r),
                                 static_cast<float>(zeros(g, r)));
    }
  }
  return q;
}

MatrixF QuantizedLinear::Reconstruct() const {
  MatrixF w = Dequantize();
  if (lora_rank() > 0) w.noalias() += lora_b * lora_a;
  return w;
}

double LayerObjective(const MatrixF& W, const MatrixF& What, const MatrixF& H) {
  const MatrixD e = W.cast<double>() - What.cast<double>();
  return TraceQuadratic(e, H);
}

}  // namespace caliber
