// Forward parity with the fixture's reference (float32 forward of the bf16 checkpoint):
// logits, every layer's hidden states, and the mean NLL of each reference sequence.
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/eval/perplexity.h"
#include "core/io/safetensors.h"
#include "core/model/model.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace caliber {
namespace {

const std::string kModelDir = std::string(CALIBER_TESTDATA_DIR) + "/tinyllama-en";

std::vector<float> ReadF32(const SafetensorsFile& f, const std::string& name) {
  const TensorInfo* info = f.Find(name);
  EXPECT_NE(info, nullptr) << name;
  std::vector<float> out(info->numel());
  ConvertToFloat(info->dtype, f.Bytes(*info).data(), out.size(), out.data());
  return out;
}

class ForwardParityTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto model = Model::Load(kModelDir);
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = model->release();
    auto ref = SafetensorsFile::Open(kModelDir + "/reference/reference.safetensors");
    ASSERT_TRUE(ref.ok()) << ref.status();
    ref_ = ref->release();
    const TensorInfo* ids = ref_->Find("input_ids");
    ASSERT_NE(ids, nullptr);
    ASSERT_EQ(ids->dtype, DType::kI32);
    const auto bytes = ref_->Bytes(*ids);
    ids_.resize(ids->numel());
    std::memcpy(ids_.data(), bytes.data(), bytes.size());
  }
  static void TearDownTestSuite() {
    delete model_;
    delete ref_;
  }
  static constexpr int kSeqs = 3, kLen = 64;
  static inline Model* model_ = nullptr;
  static inline SafetensorsFile* ref_ = nullptr;
  static inline std::vector<int32_t> ids_;
};

TEST_F(ForwardParityTest, LogitsMatchReference) {
  auto logits = model_->Forward(ids_, kSeqs);
  ASSERT_TRUE(logits.ok()) << logits.status();
  const std::vector<float> ref = ReadF32(*ref_, "logits");
  ASSERT_EQ(static_cast<size_t>(logits->size()), ref.size());
  double max_diff = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    max_diff = std::max(max_diff, std::abs(double(logits->data()[i]) - ref[i]));
  }
  RecordProperty("max_abs_logit_diff", std::to_string(max_diff));
  EXPECT_LT(max_diff, 1e-3);
}

TEST_F(ForwardParityTest, HiddenStatesMatchReferenceAfterEveryLayer) {
  const std::vector<float> ref = ReadF32(*ref_, "hidden_states");  // [5, 3, 64, 256]
  const int hidden = model_->config().hidden_size;
  const size_t per_state = size_t(kSeqs) * kLen * hidden;
  auto h = model_->Embed(ids_);
  ASSERT_TRUE(h.ok());
  for (int l = 0; l <= model_->config().num_hidden_layers; ++l) {
    if (l > 0) model_->RunLayer(l - 1, {kSeqs, kLen}, *h);
    double max_diff = 0, max_abs = 0;
    for (size_t i = 0; i < per_state; ++i) {
      max_diff = std::max(max_diff, std::abs(double(h->data()[i]) - ref[l * per_state + i]));
      max_abs = std::max(max_abs, std::abs(double(ref[l * per_state + i])));
    }
    EXPECT_LT(max_diff, 1e-4 * std::max(1.0, max_abs)) << "after layer " << l - 1;
  }
}

TEST_F(ForwardParityTest, MeanNllMatchesReference) {
  std::ifstream in(kModelDir + "/reference/reference.json");
  const nlohmann::json ref = nlohmann::json::parse(in);
  const auto& nll = ref.at("mean_nll_per_sequence");
  auto logits = model_->Forward(ids_, kSeqs);
  ASSERT_TRUE(logits.ok());
  for (int s = 0; s < kSeqs; ++s) {
    const double mine =
        SequenceNllSum(logits->middleRows(s * kLen, kLen),
                       absl::MakeConstSpan(ids_).subspan(s * kLen, kLen)) / (kLen - 1);
    EXPECT_NEAR(mine, nll.at(s).get<double>(), 1e-5) << "sequence " << s;
  }
}

}  // namespace
}  // namespace caliber
