// Token input files: every format, the fixture's streams, and one test per kind of bad input.
#include "core/text/token_source.h"

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

const fs::path kFixture = fs::path(CALIBER_TESTDATA_DIR) / "tinyllama-en";
constexpr int kVocab = 4096;

// Per process: ctest may run this binary's tests concurrently with another build's.
fs::path ScratchRoot() {
  return fs::path(::testing::TempDir()) / ("token_source_test_" + std::to_string(::getpid()));
}

fs::path Scratch(const std::string& name) {
  fs::create_directories(ScratchRoot());
  return ScratchRoot() / name;
}

// Removes the scratch files once all tests of the process have run.
class ScratchCleanup : public ::testing::Environment {
 public:
  void TearDown() override { fs::remove_all(ScratchRoot()); }
};
::testing::Environment* const kScratchCleanup =
    ::testing::AddGlobalTestEnvironment(new ScratchCleanup);

std::string WriteFile(const std::string& name, const std::string& bytes) {
  const fs::path path = Scratch(name);
  std::ofstream(path, std::ios::binary) << bytes;
  return path.string();
}

template <typename T>
std::string RawBytes(const std::vector<T>& values) {
  std::string bytes(values.size() * sizeof(T), '\0');
  std::memcpy(bytes.data(), values.data(), bytes.size());
  return bytes;
}

// Expects `status` to be `code` with a message containing every one of `parts`.
void ExpectError(const absl::Status& status, absl::StatusCode code,
                 std::initializer_list<std::string> parts) {
  EXPECT_EQ(status.code(), code) << status;
  for (const std::string& part : parts) {
    EXPECT_THAT(std::string(status.message()), HasSubstr(part));
  }
}

std::unique_ptr<Tokenizer> FixtureTokenizer() {
  absl::StatusOr<std::unique_ptr<Tokenizer>> t = Tokenizer::Load(kFixture.string());
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *std::move(t) : nullptr;
}

TEST(TokenSourceFormatTest, ParsesNames) {
  EXPECT_EQ(*ParseTokenFormat("auto"), TokenFormat::kAuto);
  EXPECT_EQ(*ParseTokenFormat("text"), TokenFormat::kText);
  EXPECT_EQ(*ParseTokenFormat("jsonl"), TokenFormat::kJsonl);
  EXPECT_EQ(*ParseTokenFormat("u32"), TokenFormat::kU32);
  EXPECT_EQ(*ParseTokenFormat("i32"), TokenFormat::kI32);
  ExpectError(ParseTokenFormat("parquet").status(), absl::StatusCode::kInvalidArgument,
              {"parquet", "jsonl"});
  EXPECT_EQ(TokenFormatName(TokenFormat::kJsonl), "jsonl");
}

TEST(TokenSourceFormatTest, ResolvesFromExtension) {
  EXPECT_EQ(*ResolveTokenFormat("a/b.txt", TokenFormat::kAuto), TokenFormat::kText);
  EXPECT_EQ(*ResolveTokenFormat("b.JSONL", TokenFormat::kAuto), TokenFormat::kJsonl);
  EXPECT_EQ(*ResolveTokenFormat("b.u32", TokenFormat::kAuto), TokenFormat::kU32);
  EXPECT_EQ(*ResolveTokenFormat("b.bin", TokenFormat::kAuto), TokenFormat::kU32);
  EXPECT_EQ(*ResolveTokenFormat("b.i32", TokenFormat::kAuto), TokenFormat::kI32);
  EXPECT_EQ(*ResolveTokenFormat("b.raw", TokenFormat::kText), TokenFormat::kText);
}

TEST(TokenSourceTest, FixtureHeldoutStreamAndWindows) {
  absl::StatusOr<std::vector<int32_t>> stream = LoadTokenStream(
      (kFixture / "heldout" / "heldout_tokens.i32").string(), TokenFormat::kAuto, nullptr, kVocab);
  ASSERT_TRUE(stream.ok()) << stream.status();
  ASSERT_EQ(stream->size(), 117741u);
  EXPECT_THAT(std::vector<int32_t>(stream->begin(), stream->begin() + 4),
              ElementsAre(1, 343, 414, 579));

  absl::StatusOr<std::vector<std::vector<int32_t>>> windows = CutWindows(*stream, 256, 0);
  ASSERT_TRUE(windows.ok()) << windows.status();
  ASSERT_EQ(windows->size(), 459u);
  EXPECT_EQ(windows->back().size(), 256u);
  EXPECT_EQ(windows->back().back(), (*stream)[459 * 256 - 1]);
  EXPECT_EQ((*windows)[1].front(), (*stream)[256]);

  absl::StatusOr<std::vector<std::vector<int32_t>>> first = CutWindows(*stream, 256, 400);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->size(), 400u);
}

TEST(TokenSourceTest, FixtureCalibrationSegments) {
  // calib_tokens.i32 is [256 segments x 256 tokens]; GPTQ-style runs take its first rows.
  absl::StatusOr<std::vector<int32_t>> stream = LoadTokenStream(
      (kFixture / "calib" / "calib_tokens.i32").string(), TokenFormat::kAuto, nullptr, kVocab);
  ASSERT_TRUE(stream.ok()) << stream.status();
  absl::StatusOr<std::vector<std::vector<int32_t>>> segments = CutWindows(*stream, 256, 128);
  ASSERT_TRUE(segments.ok()) << segments.status();
  EXPECT_EQ(segments->size(), 128u);
}

TEST(TokenSourceTest, TextIsEncodedWholeWithBos) {
  const std::unique_ptr<Tokenizer> tokenizer = FixtureTokenizer();
  ASSERT_NE(tokenizer, nullptr);
  // The first held-out document: its ids open heldout_tokens.i32 (after <s>, before </s>).
  std::ifstream docs(kFixture / "heldout" / "heldout_docs.jsonl");
  std::string line;
  ASSERT_TRUE(std::getline(docs, line));
  const std::string text = nlohmann::json::parse(line)["text"].get<std::string>();
  const std::string path = WriteFile("doc0.txt", text);

  absl::StatusOr<std::vector<int32_t>> ids =
      LoadTokenStream(path, TokenFormat::kAuto, tokenizer.get(), kVocab);
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ(*ids, tokenizer->Encode(text, /*add_bos=*/true));

  absl::StatusOr<std::vector<int32_t>> heldout = LoadTokenStream(
      (kFixture / "heldout" / "heldout_tokens.i32").string(), TokenFormat::kI32, nullptr, kVocab);
  ASSERT_TRUE(heldout.ok());
  ASSERT_GT(heldout->size(), ids->size());
  EXPECT_EQ(std::vector<int32_t>(heldout->begin(), heldout->begin() + ids->size()), *ids);
  EXPECT_EQ((*heldout)[ids->size()], 2);  // the document's </s>
}

TEST(TokenSourceTest, TextNeedsTokenizer) {
  const std::string path = WriteFile("plain.txt", "hello");
  ExpectError(LoadTokenStream(path, TokenFormat::kAuto, nullptr, kVocab).status(),
              absl::StatusCode::kInvalidArgument, {"tokenizer"});
}

TEST(TokenSourceTest, TextIdsBeyondModelVocabulary) {
  const std::unique_ptr<Tokenizer> tokenizer = FixtureTokenizer();
  ASSERT_NE(tokenizer, nullptr);
  const std::string path = WriteFile("vocab.txt", "the quick brown fox");
  ExpectError(LoadTokenStream(path, TokenFormat::kText, tokenizer.get(), 3).status(),
              absl::StatusCode::kInvalidArgument, {"token 1", "[0, 3)"});
}

TEST(TokenSourceTest, JsonlArraysObjectsAndBlankLines) {
  const std::string path = WriteFile("docs.jsonl",
                                     "[1, 5, 6]\n"
                                     "\n"
                                     "{\"input_ids\": [1, 7], \"text\": \"ignored\"}\r\n"
                                     "   \n"
                                     "{\"ids\": [8, 9, 10]}\n"
                                     "[]\n"
                                     "[11]");  // no trailing newline
  absl::StatusOr<std::vector<std::vector<int32_t>>> docs =
      LoadTokenDocuments(path, TokenFormat::kAuto, nullptr, kVocab);
  ASSERT_TRUE(docs.ok()) << docs.status();
  EXPECT_THAT(*docs, ElementsAre(ElementsAre(1, 5, 6), ElementsAre(1, 7), ElementsAre(8, 9, 10),
                                 ElementsAre(), ElementsAre(11)));
  absl::StatusOr<std::vector<int32_t>> stream =
      LoadTokenStream(path, TokenFormat::kAuto, nullptr, kVocab);
  ASSERT_TRUE(stream.ok()) << stream.status();
  EXPECT_THAT(*stream, ElementsAre(1, 5, 6, 1, 7, 8, 9, 10, 11));
}

TEST(TokenSourceTest, JsonlMalformedLineNamesLineNumber) {
  const std::string path = WriteFile("bad.jsonl", "[1, 2]\n\n[3, 4\n");
  ExpectError(LoadTokenStream(path, TokenFormat::kJsonl, nullptr, kVocab).status(),
              absl::StatusCode::kInvalidArgument, {"bad.jsonl:3", "JSON"});
}

TEST(TokenSourceTest, JsonlWrongShapes) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{\"tokens\": [1]}", "input_ids"},
      {"{\"input_ids\": \"1 2\"}", "array"},
      {"\"1 2 3\"", "array"},
      {"[1, 2.5]", "element 1"},
      {"[[1, 2]]", "element 0"},
      {"[1, \"2\"]", "element 1"},
  };
  for (const auto& [line, part] : cases) {
    const std::string path = WriteFile("shape.jsonl", "[1]\n" + line + "\n");
    ExpectError(LoadTokenStream(path, TokenFormat::kJsonl, nullptr, kVocab).status(),
                absl::StatusCode::kInvalidArgument, {"shape.jsonl:2", part});
  }
}

TEST(TokenSourceTest, JsonlIdsOutOfRange) {
  const std::string negative = WriteFile("neg.jsonl", "[1, 2, -3]\n");
  ExpectError(LoadTokenStream(negative, TokenFormat::kJsonl, nullptr, kVocab).status(),
              absl::StatusCode::kInvalidArgument, {"neg.jsonl:1, element 2", "-3"});
  const std::string large = WriteFile("large.jsonl", "[1]\n[4096]\n");
  ExpectError(LoadTokenStream(large, TokenFormat::kJsonl, nullptr, kVocab).status(),
              absl::StatusCode::kInvalidArgument, {"large.jsonl:2, element 0", "4096"});
  const std::string larger = WriteFile("larger.jsonl", "[5000]\n");
  ExpectError(LoadTokenStream(larger, TokenFormat::kJsonl, nullptr, kVocab).status(),
              absl::StatusCode::kInvalidArgument, {"larger.jsonl:1, element 0", "token id 5000"});
  const std::string huge = WriteFile("huge.jsonl", "[18446744073709551615]\n");
  ExpectError(LoadTokenStream(huge, TokenFormat::kJsonl, nullptr, kVocab).status(),
              absl::StatusCode::kInvalidArgument, {"huge.jsonl:1", "18446744073709551615"});
  const std::string minus_zero = WriteFile("minus_zero.jsonl", "[-0, 1]\n");
  absl::StatusOr<std::vector<int32_t>> ids =
      LoadTokenStream(minus_zero, TokenFormat::kJsonl, nullptr, kVocab);
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_THAT(*ids, ElementsAre(0, 1));
}

TEST(TokenSourceTest, RawU32AndI32) {
  const std::string u32 = WriteFile("ids.u32", RawBytes(std::vector<uint32_t>{1, 4095, 0, 17}));
  absl::StatusOr<std::vector<int32_t>> a =
      LoadTokenStream(u32, TokenFormat::kAuto, nullptr, kVocab);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_THAT(*a, ElementsAre(1, 4095, 0, 17));

  const std::string bin = WriteFile("ids.bin", RawBytes(std::vector<uint32_t>{3, 2}));
  absl::StatusOr<std::vector<int32_t>> b =
      LoadTokenStream(bin, TokenFormat::kAuto, nullptr, kVocab);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_THAT(*b, ElementsAre(3, 2));

  const std::string i32 = WriteFile("ids.i32", RawBytes(std::vector<int32_t>{5, 6, 7}));
  absl::StatusOr<std::vector<int32_t>> c =
      LoadTokenStream(i32, TokenFormat::kAuto, nullptr, kVocab);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(*c, ElementsAre(5, 6, 7));
}

TEST(TokenSourceTest, RawOddByteCount) {
  const std::string path = WriteFile("odd.i32", std::string(10, '\0'));
  ExpectError(LoadTokenStream(path, TokenFormat::kAuto, nullptr, kVocab).status(),
              absl::StatusCode::kInvalidArgument, {"odd.i32", "10 bytes", "multiple of 4"});
}

TEST(TokenSourceTest, RawNegativeId) {
  const std::string path = WriteFile("neg.i32", RawBytes(std::vector<int32_t>{1, 2, -1}));
  ExpectError(LoadTokenStream(path, TokenFormat::kAuto, nullptr, kVocab).status(),
              absl::StatusCode::kInvalidArgument, {"neg.i32: token 2", "-1"});
}

TEST(TokenSourceTest, RawIdBeyondVocabulary) {
  const std::string path = WriteFile("big.u32", RawBytes(std::vector<uint32_t>{1, 4096}));
  ExpectError(LoadTokenStream(path, TokenFormat::kAuto, nullptr, kVocab).status(),
              absl::StatusCode::kInvalidArgument, {"big.u32: token 1", "4096", "[0, 4096)"});
  // As uint32 a 0xFFFFFFFF id is 4294967295, not -1.
  const std::string high = WriteFile("high.u32", RawBytes(std::vector<uint32_t>{0xFFFFFFFFu}));
  ExpectError(LoadTokenStream(high, TokenFormat::kAuto, nullptr, kVocab).status(),
              absl::StatusCode::kInvalidArgument, {"4294967295"});
}

TEST(TokenSourceTest, UnknownExtensionNeedsExplicitFormat) {
  const std::string path = WriteFile("wiki.test.raw", "some text");
  ExpectError(LoadTokenStream(path, TokenFormat::kAuto, nullptr, kVocab).status(),
              absl::StatusCode::kInvalidArgument, {"wiki.test.raw", "'.raw'", "format"});
}

TEST(TokenSourceTest, MissingFileIsNotFound) {
  ExpectError(
      LoadTokenStream(Scratch("absent.i32").string(), TokenFormat::kAuto, nullptr, kVocab).status(),
      absl::StatusCode::kNotFound, {"absent.i32"});
}

TEST(TokenSourceTest, EmptyFileHasNoTokens) {
  const std::string path = WriteFile("empty.i32", "");
  ExpectError(LoadTokenStream(path, TokenFormat::kAuto, nullptr, kVocab).status(),
              absl::StatusCode::kInvalidArgument, {"no token ids"});
}

TEST(TokenSourceWindowsTest, DropsPartialTailAndHonoursLimit) {
  const std::vector<int32_t> stream = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  absl::StatusOr<std::vector<std::vector<int32_t>>> w = CutWindows(stream, 3, 0);
  ASSERT_TRUE(w.ok());
  EXPECT_THAT(*w, ElementsAre(ElementsAre(0, 1, 2), ElementsAre(3, 4, 5), ElementsAre(6, 7, 8)));
  w = CutWindows(stream, 3, 2);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->size(), 2u);
  w = CutWindows(stream, 5, 10);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->size(), 2u);
}

TEST(TokenSourceWindowsTest, Errors) {
  const std::vector<int32_t> stream = {0, 1, 2};
  ExpectError(CutWindows(stream, 1, 0).status(), absl::StatusCode::kInvalidArgument, {"2"});
  ExpectError(CutWindows(stream, 4, 0).status(), absl::StatusCode::kInvalidArgument,
              {"3 tokens", "4"});
}

}  // namespace
}  // namespace caliber
