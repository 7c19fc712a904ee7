// Tokenizer against the tinyllama-en fixture: ids must match the ones its Python pipeline
// (sentencepiece's encode) produced for reference/reference.json and heldout_tokens.i32.
#include "core/text/tokenizer.h"

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace caliber {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using json = nlohmann::json;

const fs::path kFixture = fs::path(CALIBER_TESTDATA_DIR) / "tinyllama-en";

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::vector<json> ReadJsonl(const fs::path& path) {
  std::vector<json> lines;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line));
  return lines;
}

std::vector<int32_t> ReadI32(const fs::path& path) {
  const std::string bytes = ReadFile(path);
  std::vector<int32_t> ids(bytes.size() / 4);
  std::memcpy(ids.data(), bytes.data(), ids.size() * 4);
  return ids;
}

// A fresh scratch directory, removed when the test ends.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& name)
      : path_(fs::path(::testing::TempDir()) /
              ("tokenizer_test_" + std::to_string(::getpid()) + "_" + name)) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~ScratchDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

class TokenizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<std::unique_ptr<Tokenizer>> t = Tokenizer::Load(kFixture.string());
    ASSERT_TRUE(t.ok()) << t.status();
    tokenizer_ = t->release();
  }
  static void TearDownTestSuite() {
    delete tokenizer_;
    tokenizer_ = nullptr;
  }
  static const Tokenizer* tokenizer_;
};
const Tokenizer* TokenizerTest::tokenizer_ = nullptr;

TEST_F(TokenizerTest, FixtureProperties) {
  EXPECT_EQ(tokenizer_->vocab_size(), 4096);
  EXPECT_EQ(tokenizer_->unk_id(), 0);
  EXPECT_EQ(tokenizer_->bos_id(), 1);
  EXPECT_EQ(tokenizer_->eos_id(), 2);
  EXPECT_TRUE(tokenizer_->add_bos_token());
  EXPECT_FALSE(tokenizer_->add_eos_token());
  EXPECT_EQ(tokenizer_->model_path(), (kFixture / "tokenizer.model").string());
}

TEST_F(TokenizerTest, LoadsTheModelFileDirectly) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> t =
      Tokenizer::Load((kFixture / "tokenizer.model").string());
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)->vocab_size(), 4096);
}

// reference.json holds <s> + the first 63 tokens of three held-out documents.
TEST_F(TokenizerTest, MatchesReferenceJsonIds) {
  const json reference = json::parse(ReadFile(kFixture / "reference" / "reference.json"));
  const std::vector<json> docs = ReadJsonl(kFixture / "heldout" / "heldout_docs.jsonl");
  ASSERT_EQ(reference["sources"].size(), 3u);
  for (size_t s = 0; s < reference["sources"].size(); ++s) {
    const json& source = reference["sources"][s];
    const json* doc = nullptr;
    for (const json& d : docs) {
      if (d["source"] == source["source"] && d["index"] == source["index"]) doc = &d;
    }
    ASSERT_NE(doc, nullptr) << source.dump();
    const std::vector<int32_t> expected = reference["input_ids"][s].get<std::vector<int32_t>>();
    std::vector<int32_t> ids =
        tokenizer_->Encode(doc->at("text").get<std::string>(), /*add_bos=*/true);
    ASSERT_GE(ids.size(), expected.size());
    ids.resize(expected.size());
    EXPECT_EQ(ids, expected) << source.dump();
  }
}

// heldout_tokens.i32 is the concatenation over heldout_docs.jsonl of [<s>] + encode(text) + [</s>].
TEST_F(TokenizerTest, ReproducesHeldoutTokenStreamExactly) {
  const std::vector<json> docs = ReadJsonl(kFixture / "heldout" / "heldout_docs.jsonl");
  const std::vector<int32_t> expected = ReadI32(kFixture / "heldout" / "heldout_tokens.i32");
  ASSERT_EQ(docs.size(), 49u);
  ASSERT_EQ(expected.size(), 117741u);
  std::vector<int32_t> stream;
  for (const json& doc : docs) {
    const std::vector<int32_t> ids =
        tokenizer_->Encode(doc["text"].get<std::string>(), /*add_bos=*/true, /*add_eos=*/true);
    stream.insert(stream.end(), ids.begin(), ids.end());
  }
  ASSERT_EQ(stream.size(), expected.size());
  EXPECT_EQ(stream, expected);
}

TEST_F(TokenizerTest, EncodeKeepsNewlinesAndAddsOnlyRequestedSpecials) {
  const std::vector<int32_t> plain = tokenizer_->Encode("Hello world.\nSecond line.", false);
  ASSERT_FALSE(plain.empty());
  EXPECT_NE(plain.front(), 1);
  EXPECT_NE(plain.back(), 2);
  EXPECT_THAT(plain, ::testing::Contains(13));  // <0x0A>: byte fallback for '\n'
  const std::vector<int32_t> with = tokenizer_->Encode("Hello world.\nSecond line.", true, true);
  ASSERT_EQ(with.size(), plain.size() + 2);
  EXPECT_EQ(with.front(), 1);
  EXPECT_EQ(with.back(), 2);
  EXPECT_THAT(tokenizer_->Encode("", true), ElementsAre(1));
}

TEST_F(TokenizerTest, SpecialTokenSpellingsAreOrdinaryText) {
  const std::vector<int32_t> ids = tokenizer_->Encode("a </s> b", false);
  EXPECT_THAT(ids, ::testing::Not(::testing::Contains(2)));
}

TEST_F(TokenizerTest, DecodeRoundTrips) {
  const std::string text =
      "The jury said it did find that \"many\" of Georgia's 1961 laws are outmoded.\n"
      "  Two spaces, a tab\tand UTF-8: caf\xc3\xa9 \xe2\x82\xac 42.";
  const std::vector<int32_t> ids = tokenizer_->Encode(text, /*add_bos=*/true, /*add_eos=*/true);
  EXPECT_EQ(tokenizer_->Decode(ids), text);
}

TEST_F(TokenizerTest, DecodeMapsOutOfVocabularyIdsToUnknown) {
  const std::vector<int32_t> ids = tokenizer_->Encode("word", false);
  std::vector<int32_t> bad = ids;
  bad.push_back(4096);
  bad.push_back(-7);
  const std::string decoded = tokenizer_->Decode(bad);
  EXPECT_THAT(decoded, ::testing::StartsWith("word"));
  EXPECT_GT(decoded.size(), std::string("word").size());
}

TEST(TokenizerLoadTest, MissingDirectoryIsNotFound) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> t =
      Tokenizer::Load((fs::path(::testing::TempDir()) / "no_such_model_dir").string());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(t.status().message()), HasSubstr("tokenizer.model"));
}

TEST(TokenizerLoadTest, DirectoryWithOnlyTokenizerJsonExplains) {
  const ScratchDir scratch("json_only");
  const fs::path& dir = scratch.path();
  std::ofstream(dir / "tokenizer.json") << "{}";
  absl::StatusOr<std::unique_ptr<Tokenizer>> t = Tokenizer::Load(dir.string());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(t.status().message()), HasSubstr("tokenizer.json"));
}

TEST(TokenizerLoadTest, CorruptModelIsInvalidArgument) {
  const ScratchDir scratch("corrupt");
  const fs::path& dir = scratch.path();
  std::ofstream(dir / "tokenizer.model") << "this is not a protobuf";
  absl::StatusOr<std::unique_ptr<Tokenizer>> t = Tokenizer::Load(dir.string());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(t.status().message()), HasSubstr("tokenizer.model"));
}

TEST(TokenizerLoadTest, ReadsAddBosAndEosFromTokenizerConfig) {
  const ScratchDir scratch("flags");
  const fs::path& dir = scratch.path();
  fs::copy_file(kFixture / "tokenizer.model", dir / "tokenizer.model");
  std::ofstream(dir / "tokenizer_config.json")
      << R"({"add_bos_token": false, "add_eos_token": true})";
  absl::StatusOr<std::unique_ptr<Tokenizer>> t = Tokenizer::Load(dir.string());
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_FALSE((*t)->add_bos_token());
  EXPECT_TRUE((*t)->add_eos_token());
}

TEST(TokenizerLoadTest, DefaultsWithoutTokenizerConfig) {
  const ScratchDir scratch("no_config");
  const fs::path& dir = scratch.path();
  fs::copy_file(kFixture / "tokenizer.model", dir / "tokenizer.model");
  absl::StatusOr<std::unique_ptr<Tokenizer>> t = Tokenizer::Load(dir.string());
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_TRUE((*t)->add_bos_token());
  EXPECT_FALSE((*t)->add_eos_token());
}

TEST(TokenizerLoadTest, MalformedTokenizerConfigIsInvalidArgument) {
  const ScratchDir scratch("bad_config");
  const fs::path& dir = scratch.path();
  fs::copy_file(kFixture / "tokenizer.model", dir / "tokenizer.model");
  std::ofstream(dir / "tokenizer_config.json") << R"({"add_bos_token": "yes"})";
  absl::StatusOr<std::unique_ptr<Tokenizer>> t = Tokenizer::Load(dir.string());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(t.status().message()), HasSubstr("add_bos_token"));
}

}  // namespace
}  // namespace caliber
