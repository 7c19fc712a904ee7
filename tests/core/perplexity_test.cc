// Perplexity reproduces the numbers published with the fixtures (their README and
// REFERENCE.md), with the GPTQ/WikiText-2 windowing convention.
#include <cmath>

#include "core/eval/perplexity.h"
#include "core/text/token_source.h"
#include "gtest/gtest.h"

namespace caliber {
namespace {

const std::string kData = CALIBER_TESTDATA_DIR;

struct Loaded {
  std::unique_ptr<Model> model;
  std::vector<int32_t> stream;
};

Loaded Load(const std::string& name) {
  Loaded l;
  auto model = Model::Load(kData + "/" + name);
  EXPECT_TRUE(model.ok()) << model.status();
  l.model = *std::move(model);
  auto stream = LoadTokenStream(kData + "/" + name + "/heldout/heldout_tokens.i32",
                                TokenFormat::kAuto, nullptr, l.model->config().vocab_size);
  EXPECT_TRUE(stream.ok()) << stream.status();
  l.stream = *std::move(stream);
  return l;
}

TEST(Perplexity, NllOfUniformLogitsIsLogVocab) {
  const MatrixF logits = MatrixF::Zero(4, 10);
  const std::vector<int32_t> ids = {1, 2, 3, 4};
  EXPECT_NEAR(SequenceNllSum(logits, ids), 3 * std::log(10.0), 1e-12);
}

TEST(Perplexity, RejectsInputsWithoutAFullWindow) {
  const Loaded l = Load("tinyllama-en");
  const std::vector<int32_t> short_stream(100, 5);
  auto r = EvaluatePerplexity(*l.model, short_stream, {.seq_len = 256});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
}

double PrefixPpl(const PerplexityResult& r, int windows) {
  double sum = 0;
  for (int w = 0; w < windows; ++w) sum += r.window_nll[w];
  return std::exp(sum / windows);
}

// Fixture README: 86.46 over all 459 windows and 97.29 over the first 128; REFERENCE.md: fp
// 88.387 over the first 400. Windows are independent, so one pass gives all three.
TEST(Perplexity, ReproducesFixtureReadmeAndReference) {
  const Loaded l = Load("tinyllama-en");
  auto all = EvaluatePerplexity(*l.model, l.stream, {.seq_len = 256});
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->windows, 459);
  EXPECT_EQ(all->tokens, 459 * 255);
  ASSERT_EQ(all->window_nll.size(), 459u);
  EXPECT_NEAR(all->ppl, 86.46, 0.005);
  EXPECT_NEAR(PrefixPpl(*all, 400), 88.387, 0.0005);
  EXPECT_NEAR(PrefixPpl(*all, 128), 97.29, 0.005);

  auto first128 = EvaluatePerplexity(*l.model, l.stream, {.seq_len = 256, .max_windows = 128});
  ASSERT_TRUE(first128.ok());
  EXPECT_EQ(first128->windows, 128);
  EXPECT_NEAR(first128->nll, std::log(PrefixPpl(*all, 128)), 1e-9);
}

TEST(Perplexity, OutlierTwinComputesTheSameFunction) {
  const Loaded l = Load("tinyllama-en-outliers");
  auto r = EvaluatePerplexity(*l.model, l.stream, {.seq_len = 256, .max_windows = 400});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_NEAR(r->ppl, 88.386, 0.0005);  // REFERENCE.md fp row
}

TEST(Perplexity, BatchSizeDoesNotChangeTheResult) {
  const Loaded l = Load("tinyllama-en");
  auto a = EvaluatePerplexity(*l.model, l.stream, {.seq_len = 128, .max_windows = 6, .batch_windows = 1});
  auto b = EvaluatePerplexity(*l.model, l.stream, {.seq_len = 128, .max_windows = 6, .batch_windows = 4});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NEAR(a->nll, b->nll, 1e-6);
}

}  // namespace
}  // namespace caliber
