// QuantizeLayer against an independent transcription, written here from scratch, of the GPTQ
// authors' reference flow for one decoder layer (IST-DASLab gptq repository):
//
//   llama.py llama_sequential, --true-sequential:
//     for names in [[k,v,q], [o], [up,gate], [down]]:
//       hook every module of the subset with GPTQ.add_batch; run the layer on every
//       calibration sequence, ONE AT A TIME (inps[j].unsqueeze(0)); remove the hooks;
//       fasterquant every module of the subset and write Q into the layer
//     then run the (now quantized) layer once more to get the next layer's inputs.
//     (The order inside a subset is immaterial: its modules share one input, and every
//     Hessian of the subset is taken before any of them is quantized. Here: q,k,v / gate,up.)
//   gptq.py add_batch(inp) with inp [1 x seq x in]:
//     H *= n / (n + 1); n += 1; inp = sqrt(2 / n) * inp; H += inpᵀ inp          (float32)
//   gptq.py fasterquant(percdamp=.01, groupsize=-1), here WITHOUT lazy blocks (the blocked
//   version is the same arithmetic reordered):
//     find_params(W) per output channel; dead = diag(H) == 0: H_ii = 1, W[:, i] = 0;
//     H += 0.01 * mean(diag H) * I; Hinv = cholesky(H^-1, upper);
//     for every column i: q = quantize(w_i); err = (w_i - q) / Hinv_ii;
//                         W[:, i:] -= err · Hinv[i, i:]
//   quant.py Quantizer(perchannel=True, sym=True): xmax = max(|min(w, 0)|, max(w, 0)),
//     xmin = -xmax where min < 0, [-1, 1] for an all-zero row, scale = (xmax - xmin) / maxq,
//     zero = (maxq + 1) / 2; q = scale * (clamp(round(w / scale) + zero, 0, maxq) - zero).
//
// Only core/model (the decoder layer forward, the embedding) and Eigen are used for it; nothing
// from core/calib or core/quant. Caliber's QuantizeLayer (batched Hessians, blocked GPTQ, float
// Cholesky) must then reproduce it: the same layer objective per module within 1% and all but
// a handful of identical codes (two float orders of the same sum can round a value sitting on
// a .5 tie differently, and the row then legitimately drifts a little).
#include "core/calib/layer_quantizer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <Eigen/Cholesky>
#include <Eigen/Eigenvalues>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/model/model.h"
#include "core/quant/quantizer.h"  // only QuantizerNames(), for the error-message check
#include "core/text/token_source.h"

namespace caliber {
namespace {

using ::testing::HasSubstr;

const std::string kModelDir = std::string(CALIBER_TESTDATA_DIR) + "/tinyllama-en";
constexpr int kSeqs = 32;     // calibration sequences: the first 128 tokens of rows 0..31
constexpr int kSeqLen = 128;  // of calib_tokens.i32 [256 x 256]
constexpr int kBits = 4;

// ---- the reference flow ------------------------------------------------------------------

const LinearModule kGroupModules[4][3] = {
    {LinearModule::kQ, LinearModule::kK, LinearModule::kV},
    {LinearModule::kO},
    {LinearModule::kGate, LinearModule::kUp},
    {LinearModule::kDown},
};
constexpr int kGroupSize[4] = {3, 1, 2, 1};

int GroupOf(LinearModule m) {
  switch (m) {
    case LinearModule::kQ:
    case LinearModule::kK:
    case LinearModule::kV: return 0;
    case LinearModule::kO: return 1;
    case LinearModule::kGate:
    case LinearModule::kUp: return 2;
    case LinearModule::kDown: return 3;
  }
  return -1;
}

// GPTQ.add_batch as a forward hook on the input of one module subset.
class AddBatchHook : public LayerTaps {
 public:
  AddBatchHook(LinearGroup group, int in_features)
      : group_(group), H_(MatrixF::Zero(in_features, in_features)) {}
  void OnLinearInput(LinearGroup g, MatrixF& x) override {
    if (g != group_) return;
    const int tmp = 1;  // inp.shape[0]: llama_sequential feeds one sequence per call
    H_ *= static_cast<float>(static_cast<double>(nsamples_) / static_cast<double>(nsamples_ + tmp));
    nsamples_ += tmp;
    const MatrixF inp = static_cast<float>(std::sqrt(2.0 / static_cast<double>(nsamples_))) * x;
    H_.noalias() += inp.transpose() * inp;
  }
  const MatrixF& H() const { return H_; }

 private:
  LinearGroup group_;
  MatrixF H_;
  int nsamples_ = 0;
};

struct RefQuant {
  Eigen::MatrixXi codes;  // [out x in]
  MatrixF Q;              // [out x in], what is written back into the layer
  Eigen::VectorXf scale, zero;
};

// fasterquant, column by column, per-channel symmetric grid.
RefQuant RefFasterquant(const MatrixF& weight, const MatrixF& H_in, int bits, double percdamp) {
  const Eigen::Index rows = weight.rows(), columns = weight.cols();
  const float maxq = static_cast<float>((1 << bits) - 1);
  RefQuant r;
  // quant.py find_params(W, weight=True), perchannel, sym.
  r.scale.resize(rows);
  r.zero.resize(rows);
  for (Eigen::Index o = 0; o < rows; ++o) {
    float xmin = std::min(weight.row(o).minCoeff(), 0.0f);
    float xmax = std::max(weight.row(o).maxCoeff(), 0.0f);
    xmax = std::max(std::fabs(xmin), xmax);
    if (xmin < 0) xmin = -xmax;
    if (xmin == 0 && xmax == 0) {
      xmin = -1;
      xmax = 1;
    }
    r.scale(o) = (xmax - xmin) / maxq;
    r.zero(o) = (maxq + 1) / 2;
  }
  // W transposed, so column i of W is the contiguous row i.
  MatrixF Wt = weight.transpose();
  MatrixF H = H_in;
  for (Eigen::Index i = 0; i < columns; ++i) {
    if (H(i, i) == 0) {
      H(i, i) = 1;
      Wt.row(i).setZero();
    }
  }
  const double damp = percdamp * H.diagonal().cast<double>().mean();
  Eigen::MatrixXd Hd = H.cast<double>();
  Hd.diagonal().array() += damp;
  // torch: cholesky -> cholesky_inverse -> cholesky(upper=True). In double here.
  const Eigen::MatrixXd Hinv_full =
      Hd.llt().solve(Eigen::MatrixXd::Identity(columns, columns));
  const Eigen::LLT<Eigen::MatrixXd> llt(Hinv_full);
  EXPECT_EQ(llt.info(), Eigen::Success);
  const Eigen::MatrixXd U = llt.matrixU();
  const MatrixF Hinv = U.cast<float>();

  r.codes.resize(rows, columns);
  r.Q.resize(rows, columns);
  Eigen::VectorXf err(rows);
  for (Eigen::Index i = 0; i < columns; ++i) {
    const float d = Hinv(i, i);
    for (Eigen::Index o = 0; o < rows; ++o) {
      const float w = Wt(i, o);
      const float c = std::clamp(std::nearbyint(w / r.scale(o)) + r.zero(o), 0.0f, maxq);
      const float q = r.scale(o) * (c - r.zero(o));
      r.codes(o, i) = static_cast<int>(c);
      r.Q(o, i) = q;
      err(o) = (w - q) / d;
    }
    // W[:, i:] -= err1 · Hinv1[i, i:]  (column i itself is done; the rest receive the error)
    const Eigen::Index rest = columns - i - 1;
    if (rest > 0) {
      Wt.bottomRows(rest).noalias() -= Hinv.row(i).tail(rest).transpose() * err.transpose();
    }
  }
  return r;
}

struct Reference {
  ModelConfig config;
  std::unique_ptr<Model> model;
  MatrixF inputs;  // [kSeqs*kSeqLen x hidden]: the embedded calibration tokens
  MatrixF H[4];    // the Hessian each subset was quantized with
  RefQuant quant[7];  // by LinearModule
  MatrixF outputs;  // the quantized layer's outputs
  double seconds = 0;
};

MatrixF Rows(const MatrixF& m, int seq) {
  return m.middleRows(static_cast<Eigen::Index>(seq) * kSeqLen, kSeqLen);
}

std::unique_ptr<Reference> BuildReference() {
  const auto start = std::chrono::steady_clock::now();
  auto ref = std::make_unique<Reference>();
  auto model = Model::Load(kModelDir);
  EXPECT_TRUE(model.ok()) << model.status();
  if (!model.ok()) return nullptr;
  ref->model = *std::move(model);
  ref->config = ref->model->config();
  const auto stream = LoadTokenStream(kModelDir + "/calib/calib_tokens.i32", TokenFormat::kI32,
                                      nullptr, ref->config.vocab_size);
  EXPECT_TRUE(stream.ok()) << stream.status();
  if (!stream.ok()) return nullptr;
  std::vector<int32_t> ids;
  for (int s = 0; s < kSeqs; ++s) {
    ids.insert(ids.end(), stream->begin() + s * 256, stream->begin() + s * 256 + kSeqLen);
  }
  auto inputs = ref->model->Embed(ids);
  EXPECT_TRUE(inputs.ok()) << inputs.status();
  if (!inputs.ok()) return nullptr;
  ref->inputs = *std::move(inputs);

  const ModelConfig& c = ref->config;
  const int in_features[4] = {c.hidden_size, c.q_dim(), c.hidden_size, c.intermediate_size};
  LayerWeights layer = ref->model->weights().layers[0];
  for (int g = 0; g < 4; ++g) {
    AddBatchHook hook(kAllLinearGroups[g], in_features[g]);
    for (int j = 0; j < kSeqs; ++j) {
      MatrixF h = Rows(ref->inputs, j);
      DecoderLayerForward(c, 0, layer, ref->model->rope(), {1, kSeqLen}, h, &hook);
    }
    ref->H[g] = hook.H();
    for (int k = 0; k < kGroupSize[g]; ++k) {
      const LinearModule m = kGroupModules[g][k];
      RefQuant q = RefFasterquant(layer.linear(m).weight, ref->H[g], kBits, 0.01);
      layer.linear(m).weight = q.Q;
      ref->quant[static_cast<int>(m)] = std::move(q);
    }
  }
  ref->outputs.resize(ref->inputs.rows(), ref->inputs.cols());
  for (int j = 0; j < kSeqs; ++j) {
    MatrixF h = Rows(ref->inputs, j);
    DecoderLayerForward(c, 0, layer, ref->model->rope(), {1, kSeqLen}, h, nullptr);
    ref->outputs.middleRows(static_cast<Eigen::Index>(j) * kSeqLen, kSeqLen) = h;
  }
  ref->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return ref;
}

const Reference& Ref() {
  static const std::unique_ptr<Reference> ref = BuildReference();
  if (ref == nullptr) {
    ADD_FAILURE() << "could not build the reference";
    std::abort();
  }
  return *ref;
}

// tr(A H Aᵀ) in double.
double TraceQuad(const MatrixF& A, const MatrixF& H) {
  const Eigen::MatrixXd a = A.cast<double>();
  return (a * H.cast<double>()).cwiseProduct(a).sum();
}

double RelativeError(const MatrixF& W, const MatrixF& What, const MatrixF& H) {
  return TraceQuad(W - What, H) / TraceQuad(W, H);
}

CalibrationOptions GptqOptions() {
  CalibrationOptions o;
  o.method = "gptq";
  o.spec.bits = kBits;
  o.spec.group_size = -1;
  o.spec.sym = true;
  o.spec.damp = 0.01;
  return o;
}

struct CaliberRun {
  absl::StatusOr<LayerQuantResult> result;
  LayerWeights weights;
  MatrixF hidden;
};

CaliberRun RunCaliber(const CalibrationOptions& options) {
  const Reference& ref = Ref();
  CaliberRun run{absl::UnknownError("not run"), ref.model->weights().layers[0], ref.inputs};
  run.result = QuantizeLayer(ref.config, ref.model->rope(), 0, run.weights, options,
                             {kSeqs, kSeqLen}, run.hidden);
  return run;
}

// One shared QuantizeLayer run with the reference's settings.
const CaliberRun& Caliber() {
  static const CaliberRun* run = new CaliberRun(RunCaliber(GptqOptions()));
  return *run;
}

const ModuleQuantResult* FindModule(const LayerQuantResult& r, LinearModule m) {
  for (const ModuleQuantResult& x : r.modules) {
    if (x.module == m) return &x;
  }
  return nullptr;
}

// Bit-identical (and equally shaped); never prints the matrices.
template <typename A, typename B>
bool Same(const A& a, const B& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() && (a.array() == b.array()).all();
}

// ---- the comparison -----------------------------------------------------------------------

TEST(LayerQuantizer, MatchesReferenceGptqTrueSequential) {
  const Reference& ref = Ref();
  const auto start = std::chrono::steady_clock::now();
  const CaliberRun& cal = Caliber();
  const double caliber_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(cal.result.ok()) << cal.result.status();
  const LayerQuantResult& r = *cal.result;
  EXPECT_EQ(r.layer, 0);
  ASSERT_EQ(r.modules.size(), 7u);
  std::printf("reference flow %.2f s, QuantizeLayer %.2f s\n", ref.seconds, caliber_seconds);

  int64_t total_same = 0, total = 0;
  for (int i = 0; i < 7; ++i) {
    const LinearModule m = kAllLinearModules[i];
    const ModuleQuantResult& mod = r.modules[static_cast<size_t>(i)];
    ASSERT_EQ(mod.module, m) << "modules not in checkpoint order";
    const std::string name(LinearModuleName(m));
    const RefQuant& rq = ref.quant[i];
    const QuantizedLinear& q = mod.quantized;
    const MatrixF& W = ref.model->weights().layers[0].linear(m).weight;
    ASSERT_EQ(q.codes.rows(), W.rows()) << name;
    ASSERT_EQ(q.codes.cols(), W.cols()) << name;
    EXPECT_EQ(q.bits, kBits);
    EXPECT_EQ(q.group_size, -1);
    EXPECT_TRUE(q.sym);
    ASSERT_EQ(q.num_groups(), 1) << name;

    // The per-channel grid comes from the unquantized W alone: identical.
    for (Eigen::Index o = 0; o < W.rows(); ++o) {
      ASSERT_EQ(q.scales(0, o), rq.scale(o)) << name << " row " << o;
      ASSERT_EQ(static_cast<float>(q.zeros(0, o)), rq.zero(o)) << name << " row " << o;
    }

    int64_t same = 0;
    for (Eigen::Index o = 0; o < W.rows(); ++o) {
      for (Eigen::Index c = 0; c < W.cols(); ++c) same += q.codes(o, c) == rq.codes(o, c);
    }
    const double match = static_cast<double>(same) / static_cast<double>(W.size());
    total_same += same;
    total += W.size();

    // The layer objective of both results on the reference's Hessian of that subset.
    const MatrixF& H = ref.H[GroupOf(m)];
    const double ref_err = RelativeError(W, rq.Q, H);
    const double cal_err = RelativeError(W, q.Reconstruct(), H);
    std::printf("%-18s codes equal %.5f  rel.err reference %.6f caliber %.6f (ratio %.8f), "
                "caliber's own report %.6f\n",
                name.c_str(), match, ref_err, cal_err, cal_err / ref_err,
                q.report.relative_error);
    EXPECT_GT(match, 0.99) << name;
    EXPECT_NEAR(cal_err / ref_err, 1.0, 0.01) << name;
    // What Caliber reports (on its own Hessian) is the same number.
    EXPECT_NEAR(q.report.relative_error / ref_err, 1.0, 0.01) << name;
    EXPECT_EQ(q.report.method, "gptq");
    EXPECT_DOUBLE_EQ(q.report.damp_used, 0.01);
    EXPECT_EQ(q.report.cholesky_retries, 0);
    EXPECT_EQ(q.report.dead_columns, 0);
    // 4-bit GPTQ of a trained layer: a few percent of the output energy.
    EXPECT_GT(cal_err, 1e-4) << name;
    EXPECT_LT(cal_err, 0.1) << name;
    EXPECT_EQ(mod.hessian_tokens, int64_t{kSeqs} * kSeqLen) << name;

    // The weights left in the layer are what the checkpoint computes.
    EXPECT_TRUE(Same(cal.weights.linear(m).weight, q.Reconstruct())) << name;
  }
  std::printf("all modules: codes equal %.5f (%lld of %lld)\n",
              static_cast<double>(total_same) / static_cast<double>(total),
              static_cast<long long>(total_same), static_cast<long long>(total));

  // And the calibration activations handed to the next layer are the quantized layer's outputs.
  const double out_diff = (cal.hidden - ref.outputs).norm() / ref.outputs.norm();
  std::printf("layer outputs: relative difference %.3g\n", out_diff);
  EXPECT_LT(out_diff, 1e-3);
}

// hessian_trace and hessian_top_eigenvalue describe the Hessian each module was quantized with.
TEST(LayerQuantizer, ReportsHessianTraceAndTopEigenvalue) {
  const Reference& ref = Ref();
  const CaliberRun& cal = Caliber();
  ASSERT_TRUE(cal.result.ok()) << cal.result.status();
  for (int g = 0; g < 4; ++g) {
    const MatrixF& H = ref.H[g];
    const double trace = H.diagonal().cast<double>().sum();
    const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(H.cast<double>(),
                                                             Eigen::EigenvaluesOnly);
    ASSERT_EQ(eig.info(), Eigen::Success);
    const double top = eig.eigenvalues().maxCoeff();
    const double second = eig.eigenvalues()(eig.eigenvalues().size() - 2);
    for (int k = 0; k < kGroupSize[g]; ++k) {
      const LinearModule m = kGroupModules[g][k];
      const ModuleQuantResult* mod = FindModule(*cal.result, m);
      ASSERT_NE(mod, nullptr);
      std::printf("%-18s trace %.6g (rel. diff %.2g)  top eigenvalue %.6g (Eigen: rel. diff "
                  "%.2g; next eigenvalue %.6g)\n",
                  std::string(LinearModuleName(m)).c_str(), mod->hessian_trace,
                  mod->hessian_trace / trace - 1, mod->hessian_top_eigenvalue,
                  mod->hessian_top_eigenvalue / top - 1, second);
      // Same inputs for the first subset; later ones see layers quantized almost identically.
      EXPECT_NEAR(mod->hessian_trace / trace, 1.0, g == 0 ? 1e-5 : 1e-4)
          << LinearModuleName(m);
      EXPECT_NEAR(mod->hessian_top_eigenvalue / top, 1.0, 1e-3) << LinearModuleName(m);
    }
  }
}

TEST(LayerQuantizer, IsDeterministic) {
  const CaliberRun& a = Caliber();
  const CaliberRun b = RunCaliber(GptqOptions());
  ASSERT_TRUE(a.result.ok());
  ASSERT_TRUE(b.result.ok()) << b.result.status();
  ASSERT_EQ(a.result->modules.size(), b.result->modules.size());
  for (size_t i = 0; i < a.result->modules.size(); ++i) {
    const QuantizedLinear& qa = a.result->modules[i].quantized;
    const QuantizedLinear& qb = b.result->modules[i].quantized;
    EXPECT_TRUE(Same(qa.codes, qb.codes)) << i;
    EXPECT_TRUE(Same(qa.scales, qb.scales)) << i;
    EXPECT_TRUE(Same(qa.zeros, qb.zeros)) << i;
    EXPECT_EQ(qa.g_idx, qb.g_idx) << i;
    EXPECT_EQ(a.result->modules[i].hessian_trace, b.result->modules[i].hessian_trace) << i;
    EXPECT_EQ(a.result->modules[i].hessian_top_eigenvalue,
              b.result->modules[i].hessian_top_eigenvalue)
        << i;
  }
  EXPECT_TRUE(Same(a.hidden, b.hidden));
}

// kFp: every Hessian and the outputs come from the original layer. The first subset sees the
// same inputs either way, so q, k and v come out bit-identical; everything after differs.
TEST(LayerQuantizer, FpPropagationDiffersAfterTheFirstGroup) {
  const Reference& ref = Ref();
  const CaliberRun& quantized = Caliber();
  CalibrationOptions options = GptqOptions();
  options.propagation = Propagation::kFp;
  const CaliberRun fp = RunCaliber(options);
  ASSERT_TRUE(quantized.result.ok());
  ASSERT_TRUE(fp.result.ok()) << fp.result.status();
  ASSERT_EQ(fp.result->modules.size(), 7u);
  for (size_t i = 0; i < 7; ++i) {
    const LinearModule m = kAllLinearModules[i];
    const ModuleQuantResult& a = quantized.result->modules[i];
    const ModuleQuantResult& b = fp.result->modules[i];
    ASSERT_EQ(b.module, m);
    if (GroupOf(m) == 0) {
      EXPECT_TRUE(Same(a.quantized.codes, b.quantized.codes)) << LinearModuleName(m);
      EXPECT_TRUE(Same(a.quantized.scales, b.quantized.scales)) << LinearModuleName(m);
      EXPECT_EQ(a.hessian_trace, b.hessian_trace) << LinearModuleName(m);
    } else {
      EXPECT_NE(a.hessian_trace, b.hessian_trace) << LinearModuleName(m);
      EXPECT_FALSE(Same(a.quantized.codes, b.quantized.codes)) << LinearModuleName(m);
    }
    EXPECT_TRUE(Same(fp.weights.linear(m).weight, b.quantized.Reconstruct())) << LinearModuleName(m);
    // How far the fp-propagated result is from the reference (which is quantized-propagated):
    // shows the code-agreement bar of the reference comparison is not trivially met.
    const RefQuant& rq = ref.quant[i];
    int64_t same = 0;
    for (Eigen::Index o = 0; o < rq.codes.rows(); ++o) {
      for (Eigen::Index c = 0; c < rq.codes.cols(); ++c) same += b.quantized.codes(o, c) == rq.codes(o, c);
    }
    std::printf("kFp %-18s codes equal to the reference's %.5f\n", std::string(LinearModuleName(m)).c_str(),
                static_cast<double>(same) / static_cast<double>(rq.codes.size()));
  }
  EXPECT_FALSE(Same(quantized.hidden, fp.hidden));

  // kFp hands on the ORIGINAL layer's outputs; kQuantized the quantized layer's.
  MatrixF original = ref.inputs;
  DecoderLayerForward(ref.config, 0, ref.model->weights().layers[0], ref.model->rope(),
                      {kSeqs, kSeqLen}, original, nullptr);
  EXPECT_LT((fp.hidden - original).cwiseAbs().maxCoeff(), 1e-5);
  MatrixF through_quantized = ref.inputs;
  DecoderLayerForward(ref.config, 0, quantized.weights, ref.model->rope(), {kSeqs, kSeqLen},
                      through_quantized, nullptr);
  EXPECT_LT((quantized.hidden - through_quantized).cwiseAbs().maxCoeff(), 1e-5);
  EXPECT_GT((quantized.hidden - original).cwiseAbs().maxCoeff(), 1e-3);
}

// Batching and the Hessian's precision change only rounding: a batch size that does not
// divide the sample count (32 = 6 * 5 + 2) and a float64 Hessian still give the reference.
TEST(LayerQuantizer, BatchingAndHessianPrecisionDoNotMatter) {
  const Reference& ref = Ref();
  CalibrationOptions options = GptqOptions();
  options.batch_seqs = 5;
  options.hessian_precision = HessianAccumulator::Precision::kFloat64;
  const CaliberRun run = RunCaliber(options);
  ASSERT_TRUE(run.result.ok()) << run.result.status();
  for (size_t i = 0; i < 7; ++i) {
    const LinearModule m = kAllLinearModules[i];
    const ModuleQuantResult& mod = run.result->modules[i];
    const RefQuant& rq = ref.quant[i];
    int64_t same = 0;
    for (Eigen::Index o = 0; o < rq.codes.rows(); ++o) {
      for (Eigen::Index c = 0; c < rq.codes.cols(); ++c) same += mod.quantized.codes(o, c) == rq.codes(o, c);
    }
    EXPECT_GT(static_cast<double>(same) / static_cast<double>(rq.codes.size()), 0.99)
        << LinearModuleName(m);
    const double trace = ref.H[GroupOf(m)].diagonal().cast<double>().sum();
    EXPECT_NEAR(mod.hessian_trace / trace, 1.0, 1e-5) << LinearModuleName(m);
    EXPECT_EQ(mod.hessian_tokens, int64_t{kSeqs} * kSeqLen);
  }
  EXPECT_LT((run.hidden - ref.outputs).norm() / ref.outputs.norm(), 1e-3);
}

TEST(LayerQuantizer, RejectsUnknownMethodListingTheKnownOnes) {
  const Reference& ref = Ref();
  CalibrationOptions options = GptqOptions();
  options.method = "awq";
  LayerWeights weights = ref.model->weights().layers[0];
  MatrixF hidden = ref.inputs.topRows(2 * kSeqLen);
  const auto r = QuantizeLayer(ref.config, ref.model->rope(), 0, weights, options, {2, kSeqLen},
                               hidden);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("'awq'"));
  const std::vector<std::string> names = QuantizerNames();
  ASSERT_FALSE(names.empty());
  for (const std::string& n : names) EXPECT_THAT(r.status().message(), HasSubstr(n));
  EXPECT_THAT(r.status().message(), HasSubstr("rtn"));
  EXPECT_THAT(r.status().message(), HasSubstr("gptq"));
  // Nothing was touched.
  EXPECT_TRUE(Same(hidden, ref.inputs.topRows(2 * kSeqLen)));
  EXPECT_TRUE(Same(weights.q.weight, ref.model->weights().layers[0].q.weight));
}

TEST(LayerQuantizer, RejectsInputsOfTheWrongShape) {
  const Reference& ref = Ref();
  const CalibrationOptions options = GptqOptions();
  LayerWeights weights = ref.model->weights().layers[0];
  {
    // One token more than 2 sequences.
    MatrixF hidden = ref.inputs.topRows(2 * kSeqLen + 1);
    const auto r = QuantizeLayer(ref.config, ref.model->rope(), 0, weights, options,
                                 {2, kSeqLen}, hidden);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(r.status().message(), HasSubstr("257x256"));
    EXPECT_THAT(r.status().message(), HasSubstr("expected 256x256"));
  }
  {
    // Right number of rows, wrong width.
    MatrixF hidden = ref.inputs.topRows(2 * kSeqLen).leftCols(255);
    const auto r = QuantizeLayer(ref.config, ref.model->rope(), 0, weights, options,
                                 {2, kSeqLen}, hidden);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(r.status().message(), HasSubstr("256x255"));
  }
  EXPECT_TRUE(Same(weights.down.weight, ref.model->weights().layers[0].down.weight));
}

// No samples, or sequences longer than the RoPE table: InvalidArgument, not an all-zero layer
// (zero Hessian = every column "dead") or a read past the table.
TEST(LayerQuantizer, RejectsEmptyOrTooLongSamples) {
  const Reference& ref = Ref();
  const CalibrationOptions options = GptqOptions();
  LayerWeights weights = ref.model->weights().layers[0];
  for (const SequenceBatch samples : {SequenceBatch{0, kSeqLen}, SequenceBatch{4, 0},
                                      SequenceBatch{0, 0}}) {
    MatrixF hidden(0, ref.config.hidden_size);
    const auto r = QuantizeLayer(ref.config, ref.model->rope(), 0, weights, options, samples,
                                 hidden);
    ASSERT_FALSE(r.ok()) << samples.num_seqs << " x " << samples.seq_len;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(r.status().message(), HasSubstr("calibration sequence"));
  }
  {
    const RopeTable short_rope(ref.config, kSeqLen / 2);
    MatrixF hidden = ref.inputs.topRows(kSeqLen);
    const auto r = QuantizeLayer(ref.config, short_rope, 0, weights, options, {1, kSeqLen}, hidden);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(r.status().message(), HasSubstr("1..64 tokens, got 1 x 128"));
  }
  EXPECT_TRUE(Same(weights.q.weight, ref.model->weights().layers[0].q.weight));
}

TEST(LayerQuantizer, QuantizerErrorsNameLayerAndModule) {
  const Reference& ref = Ref();
  CalibrationOptions options = GptqOptions();
  options.spec.bits = 5;
  LayerWeights weights = ref.model->weights().layers[2];
  MatrixF hidden = ref.inputs.topRows(2 * kSeqLen);
  const auto r = QuantizeLayer(ref.config, ref.model->rope(), 2, weights, options, {2, kSeqLen},
                               hidden);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("layer 2 self_attn.q_proj"));
  EXPECT_THAT(r.status().message(), HasSubstr("bits"));
}

// RTN ignores the Hessian but still reports it; its error is far above GPTQ's on every module.
TEST(LayerQuantizer, RtnIsWorseThanGptqOnTheSameHessian) {
  const Reference& ref = Ref();
  const CaliberRun& gptq = Caliber();
  CalibrationOptions options = GptqOptions();
  options.method = "rtn";
  options.propagation = Propagation::kFp;  // same Hessians as the reference's first subset
  const CaliberRun rtn = RunCaliber(options);
  ASSERT_TRUE(gptq.result.ok());
  ASSERT_TRUE(rtn.result.ok()) << rtn.result.status();
  for (size_t i = 0; i < 3; ++i) {  // q, k, v: same Hessian in both runs
    const LinearModule m = kAllLinearModules[i];
    const MatrixF& W = ref.model->weights().layers[0].linear(m).weight;
    const double e_rtn = RelativeError(W, rtn.result->modules[i].quantized.Reconstruct(), ref.H[0]);
    const double e_gptq =
        RelativeError(W, gptq.result->modules[i].quantized.Reconstruct(), ref.H[0]);
    std::printf("%-18s rel.err rtn %.6f gptq %.6f\n", std::string(LinearModuleName(m)).c_str(),
                e_rtn, e_gptq);
    EXPECT_LT(e_gptq, 0.9 * e_rtn) << LinearModuleName(m);
    EXPECT_EQ(rtn.result->modules[i].quantized.report.method, "rtn");
  }
}

}  // namespace
}  // namespace caliber
