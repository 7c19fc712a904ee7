#include "core/io/safetensors.h"

#include <stdlib.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace caliber {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

constexpr char kLabel[] = "bad.safetensors";

// ---- helpers -------------------------------------------------------------------------------

class TempDir {
 public:
  TempDir() {
    std::string pattern = ::testing::TempDir() + "caliber_safetensors_XXXXXX";
    if (::mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }
  std::string File(std::string_view name) const { return path_ + "/" + std::string(name); }

 private:
  std::string path_;
};

void WriteBytes(const std::string& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A file image: little-endian u64 `header_size` (the real size unless overridden), header, data.
std::string Image(std::string_view header, std::string_view data,
                  std::optional<uint64_t> header_size = std::nullopt) {
  const uint64_t size = header_size.value_or(header.size());
  std::string image(8, '\0');
  std::memcpy(image.data(), &size, sizeof(size));
  return image.append(header).append(data);
}

absl::StatusOr<SafetensorsHeader> ParseImage(std::string_view image) {
  return ParseSafetensorsImage({reinterpret_cast<const uint8_t*>(image.data()), image.size()},
                               kLabel);
}

std::string Message(const absl::Status& status) { return std::string(status.message()); }

std::vector<uint8_t> Pattern(size_t size) {
  std::vector<uint8_t> bytes(size);
  for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<uint8_t>(i * 37 + 11);
  return bytes;
}

// Asserts that parsing `image` fails with `code` and a message naming the file label and
// containing every one of `words`.
void ExpectImageError(std::string_view image, absl::StatusCode code,
                      std::vector<std::string> words) {
  absl::StatusOr<SafetensorsHeader> header = ParseImage(image);
  ASSERT_FALSE(header.ok());
  EXPECT_EQ(header.status().code(), code) << header.status();
  EXPECT_THAT(Message(header.status()), HasSubstr(kLabel));
  for (const std::string& word : words) {
    EXPECT_THAT(Message(header.status()), HasSubstr(word));
  }
}

void ExpectHeaderError(std::string_view header, std::string_view data,
                       std::vector<std::string> words) {
  ExpectImageError(Image(header, data), absl::StatusCode::kInvalidArgument, std::move(words));
}

// ---- writer / reader round trips -----------------------------------------------------------

struct Sample {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
};

const std::vector<Sample>& EveryDTypeSamples() {
  static const std::vector<Sample> samples = {
      {"f64", DType::kF64, {2, 3}},     {"f32", DType::kF32, {3}},
      {"f16", DType::kF16, {2, 2}},     {"bf16", DType::kBF16, {1, 4}},
      {"i64", DType::kI64, {2}},        {"i32.scalar", DType::kI32, {}},
      {"i16.empty", DType::kI16, {0, 5}}, {"i8", DType::kI8, {5}},
      {"u8", DType::kU8, {2, 1, 3}},    {"bool", DType::kBool, {4}},
  };
  return samples;
}

size_t ByteCount(const Sample& sample) {
  size_t numel = 1;
  for (int64_t dim : sample.shape) numel *= static_cast<size_t>(dim);
  return numel * DTypeSize(sample.dtype);
}

TEST(SafetensorsTest, RoundTripsEveryDType) {
  TempDir dir;
  SafetensorsWriter writer;
  writer.SetMetadata("format", "pt");
  writer.SetMetadata("calibration", "wikitext");
  for (const Sample& sample : EveryDTypeSamples()) {
    ASSERT_TRUE(writer.Add(sample.name, sample.dtype, sample.shape, Pattern(ByteCount(sample))).ok());
  }
  const std::string path = dir.File("model.safetensors");
  ASSERT_TRUE(writer.WriteFile(path).ok());

  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->path(), path);
  EXPECT_THAT((*file)->metadata(),
              ElementsAre(std::pair<const std::string, std::string>("calibration", "wikitext"),
                          std::pair<const std::string, std::string>("format", "pt")));
  const std::vector<TensorInfo>& tensors = (*file)->tensors();
  ASSERT_EQ(tensors.size(), EveryDTypeSamples().size());
  uint64_t offset = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {  // insertion order == begin order
    const Sample& sample = EveryDTypeSamples()[i];
    const TensorInfo& info = tensors[i];
    EXPECT_EQ(info.name, sample.name);
    EXPECT_EQ(info.dtype, sample.dtype) << sample.name;
    EXPECT_EQ(info.shape, sample.shape) << sample.name;
    EXPECT_EQ(info.begin, offset) << sample.name;
    EXPECT_EQ(info.nbytes(), ByteCount(sample)) << sample.name;
    EXPECT_THAT((*file)->Bytes(info), ElementsAreArray(Pattern(ByteCount(sample))));
    EXPECT_EQ((*file)->Find(sample.name), &info);
    offset = info.end;
  }
  EXPECT_EQ((*file)->Find("missing"), nullptr);
  EXPECT_EQ(tensors[5].numel(), 1);  // scalar
  EXPECT_EQ(tensors[6].numel(), 0);  // empty

  // The file on disk is exactly Serialize(), which is deterministic; no temp file remains.
  EXPECT_EQ(ReadBytes(path), writer.Serialize());
  EXPECT_EQ(writer.Serialize(), writer.Serialize());
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()),
                          std::filesystem::directory_iterator()),
            1);
}

TEST(SafetensorsTest, SerializesTheReferenceLayout) {
  SafetensorsWriter writer;
  ASSERT_TRUE(writer.Add("b", DType::kU8, {2}, std::vector<uint8_t>{1, 2}).ok());
  ASSERT_TRUE(writer.Add("a", DType::kI16, {1}, std::vector<uint8_t>{3, 4}).ok());
  writer.SetMetadata("format", "pt");
  // "__metadata__" first, then tensors in insertion order, keys dtype/shape/data_offsets,
  // padded with spaces so that the data starts at a multiple of 8.
  const std::string json =
      R"({"__metadata__":{"format":"pt"},"b":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
      R"("a":{"dtype":"I16","shape":[1],"data_offsets":[2,4]}})";
  const std::string padded = json + std::string((8 - json.size() % 8) % 8, ' ');
  EXPECT_EQ(writer.Serialize(), Image(padded, std::string("\x01\x02\x03\x04", 4)));
  EXPECT_EQ(padded.size() % 8, 0u);

  SafetensorsWriter empty;
  EXPECT_EQ(empty.Serialize(), Image("{}      ", ""));
}

TEST(SafetensorsTest, AddFloatEncodesAndReadFloatDecodes) {
  TempDir dir;
  const std::vector<float> values = {1.0f, -0.333333f, 65504.0f, 1e-3f, 3.14159265f, -7.5f};
  SafetensorsWriter writer;
  for (DType dtype : {DType::kF64, DType::kF32, DType::kF16, DType::kBF16}) {
    ASSERT_TRUE(writer.AddFloat("w." + std::string(DTypeName(dtype)), dtype, {2, 3}, values).ok());
  }
  ASSERT_TRUE(writer.AddFloat("ints", DType::kI32, {6}, values).code() ==
              absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(writer.WriteFile(dir.File("model.safetensors")).ok());

  absl::StatusOr<std::unique_ptr<Checkpoint>> checkpoint = Checkpoint::Open(dir.path());
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  EXPECT_THAT((*checkpoint)->TensorNames(), ElementsAre("w.BF16", "w.F16", "w.F32", "w.F64"));
  for (DType dtype : {DType::kF64, DType::kF32, DType::kF16, DType::kBF16}) {
    absl::StatusOr<std::vector<float>> read =
        (*checkpoint)->ReadFloat("w." + std::string(DTypeName(dtype)), {2, 3});
    ASSERT_TRUE(read.ok()) << read.status();
    for (size_t i = 0; i < values.size(); ++i) {
      float expected = values[i];
      if (dtype == DType::kF16) expected = F16ToFloat(FloatToF16(values[i]));
      if (dtype == DType::kBF16) expected = BF16ToFloat(FloatToBF16(values[i]));
      EXPECT_EQ((*read)[i], expected) << DTypeName(dtype) << " " << i;
    }
  }
}

TEST(SafetensorsTest, WriterRejectsBadTensors) {
  SafetensorsWriter writer;
  ASSERT_TRUE(writer.Add("x", DType::kF32, {1}, Pattern(4)).ok());
  const auto expect_error = [](const absl::Status& status, const std::string& words) {
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_THAT(Message(status), HasSubstr(words));
  };
  expect_error(writer.Add("x", DType::kF32, {1}, Pattern(4)), "tensor 'x': added twice");
  expect_error(writer.Add("y", DType::kF32, {2}, Pattern(4)),
               "tensor 'y': got 4 bytes but shape [2] of F32 needs 8");
  expect_error(writer.Add("z", DType::kF32, {-1}, {}), "negative dimension -1");
  expect_error(writer.Add("__metadata__", DType::kU8, {0}, {}), "reserved");
  expect_error(writer.Add("", DType::kU8, {0}, {}), "empty name");
  expect_error(writer.Add("bad\xff", DType::kU8, {0}, {}), "not valid UTF-8");
  expect_error(writer.AddFloat("v", DType::kF32, {3}, std::vector<float>{1, 2}),
               "got 2 values for shape [3]");
  expect_error(writer.AddFloat("i", DType::kI8, {1}, std::vector<float>{1}),
               "needs a floating-point dtype, got I8");
  // Failed adds leave the writer as it was.
  EXPECT_EQ(writer.Serialize().size(), 8 + 56 + 4u);
}

TEST(SafetensorsTest, WriteFileReportsUnwritablePaths) {
  SafetensorsWriter writer;
  const absl::Status status = writer.WriteFile("/nonexistent-dir/model.safetensors");
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
  EXPECT_THAT(Message(status), HasSubstr("/nonexistent-dir/model.safetensors.tmp."));
}

// ---- the real fixture ----------------------------------------------------------------------

std::vector<std::string> TinyLlamaNames() {
  std::vector<std::string> names = {"lm_head.weight", "model.embed_tokens.weight",
                                    "model.norm.weight"};
  for (int layer = 0; layer < 4; ++layer) {
    for (const char* suffix :
         {"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
          "self_attn.o_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
          "mlp.down_proj.weight", "input_layernorm.weight", "post_attention_layernorm.weight"}) {
      names.push_back(absl::StrCat("model.layers.", layer, ".", suffix));
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

TEST(SafetensorsTest, ReadsTinyLlamaFixture) {
  const std::string dir = CALIBER_TESTDATA_DIR "/tinyllama-en";
  absl::StatusOr<std::unique_ptr<Checkpoint>> checkpoint = Checkpoint::Open(dir);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  const Checkpoint& ckpt = **checkpoint;
  EXPECT_EQ(ckpt.dir(), dir);
  EXPECT_EQ(ckpt.TensorNames(), TinyLlamaNames());
  EXPECT_EQ(ckpt.TensorNames().size(), 39u);  // embed + 4 layers x 9 + norm + lm_head

  const std::vector<std::pair<std::string, std::vector<int64_t>>> shapes = {
      {"model.embed_tokens.weight", {4096, 256}},
      {"model.layers.0.self_attn.q_proj.weight", {256, 256}},
      {"model.layers.0.self_attn.k_proj.weight", {64, 256}},
      {"model.layers.0.self_attn.v_proj.weight", {64, 256}},
      {"model.layers.2.mlp.gate_proj.weight", {768, 256}},
      {"model.layers.3.mlp.down_proj.weight", {256, 768}},
      {"model.layers.1.input_layernorm.weight", {256}},
      {"model.norm.weight", {256}},
      {"lm_head.weight", {4096, 256}},
  };
  for (const auto& [name, shape] : shapes) {
    absl::StatusOr<const TensorInfo*> info = ckpt.Info(name);
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ((*info)->shape, shape) << name;
  }
  for (const std::string& name : ckpt.TensorNames()) {
    EXPECT_EQ((*ckpt.Info(name))->dtype, DType::kBF16) << name;
  }

  const std::string k_proj = "model.layers.0.self_attn.k_proj.weight";
  absl::StatusOr<std::vector<float>> values = ckpt.ReadFloat(k_proj, {64, 256});
  ASSERT_TRUE(values.ok()) << values.status();
  ASSERT_EQ(values->size(), 64u * 256u);
  absl::StatusOr<absl::Span<const uint8_t>> bytes = ckpt.Bytes(k_proj);
  ASSERT_TRUE(bytes.ok());
  ASSERT_EQ(bytes->size(), 2 * values->size());
  for (size_t i = 0; i < values->size(); i += 997) {
    uint16_t bits;
    std::memcpy(&bits, bytes->data() + 2 * i, 2);
    EXPECT_EQ((*values)[i], BF16ToFloat(bits)) << i;
  }
  double sum_squares = 0;
  for (float v : *values) sum_squares += double{v} * v;
  EXPECT_GT(sum_squares, 0.0);  // trained weights, not zeros

  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file =
      SafetensorsFile::Open(dir + "/model.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_THAT((*file)->metadata(),
              ElementsAre(std::pair<const std::string, std::string>("format", "pt")));
  EXPECT_EQ((*file)->tensors().front().name, "model.embed_tokens.weight");  // sorted by offset
  EXPECT_EQ((*file)->tensors().back().name, "lm_head.weight");
}

TEST(SafetensorsTest, ReadFloatRejectsWrongShapeAndUnknownTensor) {
  absl::StatusOr<std::unique_ptr<Checkpoint>> checkpoint =
      Checkpoint::Open(CALIBER_TESTDATA_DIR "/tinyllama-en");
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  const std::string k_proj = "model.layers.0.self_attn.k_proj.weight";
  absl::StatusOr<std::vector<float>> wrong = (*checkpoint)->ReadFloat(k_proj, {256, 64});
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(wrong.status()),
              AllOf(HasSubstr("tensor '" + k_proj + "'"), HasSubstr("model.safetensors"),
                    HasSubstr("has shape [64, 256], expected [256, 64]")));

  absl::StatusOr<std::vector<float>> missing = (*checkpoint)->ReadFloat("model.layers.9.x");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(missing.status()), HasSubstr("tensor 'model.layers.9.x' not found"));
  EXPECT_EQ((*checkpoint)->Bytes("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE((*checkpoint)->Contains("nope"));
  EXPECT_TRUE((*checkpoint)->Contains(k_proj));
}

TEST(SafetensorsTest, ReadFloatRejectsIntegerDTypes) {
  TempDir dir;
  SafetensorsWriter writer;
  ASSERT_TRUE(writer.Add("ids", DType::kI32, {2}, Pattern(8)).ok());
  ASSERT_TRUE(writer.WriteFile(dir.File("model.safetensors")).ok());
  absl::StatusOr<std::unique_ptr<Checkpoint>> checkpoint = Checkpoint::Open(dir.path());
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  absl::StatusOr<std::vector<float>> read = (*checkpoint)->ReadFloat("ids");
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(read.status()),
              AllOf(HasSubstr("tensor 'ids'"), HasSubstr("dtype I32"), HasSubstr("floating")));
  EXPECT_TRUE((*checkpoint)->Bytes("ids").ok());  // raw bytes are still available
}

TEST(SafetensorsTest, ReadFloatRejectsNonFiniteWeights) {
  TempDir dir;
  std::vector<float> with_nan(8, 0.5f);
  with_nan[3] = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> with_neg_inf(6, -1.0f);
  with_neg_inf[5] = -std::numeric_limits<float>::infinity();
  std::vector<float> with_inf(4, 2.0f);
  with_inf[0] = std::numeric_limits<float>::infinity();
  SafetensorsWriter writer;
  ASSERT_TRUE(writer.AddFloat("layer.nan", DType::kF32, {2, 4}, with_nan).ok());
  ASSERT_TRUE(writer.AddFloat("layer.neg_inf", DType::kBF16, {6}, with_neg_inf).ok());
  ASSERT_TRUE(writer.AddFloat("layer.inf", DType::kF16, {2, 2}, with_inf).ok());
  // Finite in F32 but 1e6 overflows F16: the encoder produces Inf, which the reader catches.
  ASSERT_TRUE(writer.AddFloat("layer.overflow", DType::kF16, {2}, std::vector<float>{1, 1e6f}).ok());
  ASSERT_TRUE(writer.WriteFile(dir.File("model.safetensors")).ok());
  absl::StatusOr<std::unique_ptr<Checkpoint>> checkpoint = Checkpoint::Open(dir.path());
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();

  const std::vector<std::pair<std::string, std::string>> cases = {
      {"layer.nan", "non-finite value nan at flat index 3"},
      {"layer.neg_inf", "non-finite value -inf at flat index 5"},
      {"layer.inf", "non-finite value inf at flat index 0"},
      {"layer.overflow", "non-finite value inf at flat index 1"},
  };
  for (const auto& [name, problem] : cases) {
    absl::StatusOr<std::vector<float>> read = (*checkpoint)->ReadFloat(name);
    ASSERT_FALSE(read.ok()) << name;
    EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Message(read.status()),
                AllOf(HasSubstr("tensor '" + name + "' in " + dir.File("model.safetensors")),
                      HasSubstr(problem)));
  }
}

// ---- sharded checkpoints -------------------------------------------------------------------

void WriteShard(const std::string& path, const std::vector<std::string>& names) {
  SafetensorsWriter writer;
  writer.SetMetadata("format", "pt");
  for (const std::string& name : names) {
    const std::vector<float> values = {1.0f, static_cast<float>(name.size())};
    ASSERT_TRUE(writer.AddFloat(name, DType::kBF16, {2}, values).ok());
  }
  ASSERT_TRUE(writer.WriteFile(path).ok());
}

std::string IndexJson(const std::vector<std::pair<std::string, std::string>>& weight_map) {
  std::string entries;
  for (const auto& [tensor, shard] : weight_map) {
    absl::StrAppend(&entries, entries.empty() ? "" : ",", "\"", tensor, "\":\"", shard, "\"");
  }
  return absl::StrCat(R"({"metadata":{"total_size":16},"weight_map":{)", entries, "}}");
}

TEST(SafetensorsTest, OpensShardedCheckpoint) {
  TempDir dir;
  WriteShard(dir.File("model-00001-of-00002.safetensors"), {"model.embed_tokens.weight", "a.b"});
  WriteShard(dir.File("model-00002-of-00002.safetensors"), {"lm_head.weight", "model.norm.weight"});
  WriteBytes(dir.File("model.safetensors.index.json"),
             IndexJson({{"model.embed_tokens.weight", "model-00001-of-00002.safetensors"},
                        {"a.b", "model-00001-of-00002.safetensors"},
                        {"lm_head.weight", "model-00002-of-00002.safetensors"},
                        {"model.norm.weight", "model-00002-of-00002.safetensors"}}));
  // The index wins over a stray single file.
  WriteShard(dir.File("model.safetensors"), {"stray"});

  absl::StatusOr<std::unique_ptr<Checkpoint>> checkpoint = Checkpoint::Open(dir.path());
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  EXPECT_THAT((*checkpoint)->TensorNames(),
              ElementsAre("a.b", "lm_head.weight", "model.embed_tokens.weight",
                          "model.norm.weight"));
  EXPECT_FALSE((*checkpoint)->Contains("stray"));
  for (const std::string name : {"a.b", "lm_head.weight", "model.norm.weight"}) {
    absl::StatusOr<std::vector<float>> values = (*checkpoint)->ReadFloat(name, {2});
    ASSERT_TRUE(values.ok()) << values.status();
    EXPECT_THAT(*values, ElementsAre(1.0f, BF16ToFloat(FloatToBF16(name.size()))));
  }
}

TEST(SafetensorsTest, ShardedCheckpointRejectsTensorMissingFromItsShard) {
  TempDir dir;
  WriteShard(dir.File("shard1.safetensors"), {"a"});
  WriteShard(dir.File("shard2.safetensors"), {"b"});
  WriteBytes(dir.File("model.safetensors.index.json"),
             IndexJson({{"a", "shard1.safetensors"},
                        {"b", "shard2.safetensors"},
                        {"model.layers.0.mlp.up_proj.weight", "shard2.safetensors"}}));
  absl::StatusOr<std::unique_ptr<Checkpoint>> checkpoint = Checkpoint::Open(dir.path());
  ASSERT_FALSE(checkpoint.ok());
  EXPECT_EQ(checkpoint.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(checkpoint.status()),
              AllOf(HasSubstr("tensor 'model.layers.0.mlp.up_proj.weight'"),
                    HasSubstr("shard2.safetensors"), HasSubstr("missing")));
}

TEST(SafetensorsTest, ShardedCheckpointRejectsTensorInTwoShards) {
  TempDir dir;
  WriteShard(dir.File("shard1.safetensors"), {"a", "dup"});
  WriteShard(dir.File("shard2.safetensors"), {"b", "dup"});
  WriteBytes(dir.File("model.safetensors.index.json"),
             IndexJson({{"a", "shard1.safetensors"},
                        {"b", "shard2.safetensors"},
                        {"dup", "shard1.safetensors"}}));
  absl::StatusOr<std::unique_ptr<Checkpoint>> checkpoint = Checkpoint::Open(dir.path());
  ASSERT_FALSE(checkpoint.ok());
  EXPECT_EQ(checkpoint.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(checkpoint.status()),
              AllOf(HasSubstr("tensor 'dup'"), HasSubstr("two shards")));
}

TEST(SafetensorsTest, ShardedCheckpointRejectsBadIndexes) {
  TempDir dir;
  const std::string index = dir.File("model.safetensors.index.json");
  WriteShard(dir.File("shard1.safetensors"), {"a"});
  const auto open_error = [&](std::string_view index_json) {
    WriteBytes(index, index_json);
    absl::StatusOr<std::unique_ptr<Checkpoint>> checkpoint = Checkpoint::Open(dir.path());
    return checkpoint.ok() ? absl::OkStatus() : checkpoint.status();
  };

  absl::Status status = open_error(IndexJson({{"a", "missing-shard.safetensors"}}));
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
  EXPECT_THAT(Message(status), HasSubstr("missing-shard.safetensors"));

  status = open_error(IndexJson({{"a", "../shard1.safetensors"}}));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(Message(status), AllOf(HasSubstr("tensor 'a'"), HasSubstr("file name")));

  status = open_error(R"({"weight_map": ["a"]})");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(Message(status), HasSubstr("\"weight_map\" is missing or not an object"));

  status = open_error(R"({"weight_map": {"a": "shard1.safetensors", "a": "x"}})");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(Message(status), HasSubstr("duplicate key 'a'"));

  status = open_error("{not json");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(Message(status), AllOf(HasSubstr(index), HasSubstr("not valid JSON")));
}

TEST(SafetensorsTest, CheckpointWithoutWeightsIsNotFound) {
  TempDir dir;
  for (const std::string& path : {dir.path(), dir.File("does-not-exist")}) {
    absl::StatusOr<std::unique_ptr<Checkpoint>> checkpoint = Checkpoint::Open(path);
    ASSERT_FALSE(checkpoint.ok());
    EXPECT_EQ(checkpoint.status().code(), absl::StatusCode::kNotFound);
    EXPECT_THAT(Message(checkpoint.status()),
                AllOf(HasSubstr(path), HasSubstr("model.safetensors")));
  }
}

// ---- hostile files -------------------------------------------------------------------------

TEST(SafetensorsTest, RejectsFileShorterThanLengthPrefix) {
  TempDir dir;
  for (const std::string& content : {std::string(), std::string("\x10\x00\x00", 3)}) {
    const std::string path = dir.File("short.safetensors");
    WriteBytes(path, content);
    absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::Open(path);
    ASSERT_FALSE(file.ok());
    EXPECT_EQ(file.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_THAT(Message(file.status()),
                AllOf(HasSubstr(path), HasSubstr("shorter than the 8-byte header length")));
  }
}

TEST(SafetensorsTest, RejectsHeaderLengthBeyondEndOfFile) {
  TempDir dir;
  const std::string header = R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})";
  const std::string image = Image(header, "xy");
  // Truncated inside the header, as a partial download would be.
  const std::string path = dir.File("truncated.safetensors");
  WriteBytes(path, image.substr(0, 20));
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::Open(path);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(Message(file.status()),
              AllOf(HasSubstr(path), HasSubstr(absl::StrCat("header length ", header.size())),
                    HasSubstr("beyond the end of the 20-byte file")));
  // A header length that lies upwards.
  ExpectImageError(Image(header, "xy", header.size() + 3), absl::StatusCode::kDataLoss,
                   {"beyond the end"});
}

TEST(SafetensorsTest, RejectsHeaderLengthLyingDownwards) {
  const std::string header = R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})";
  ExpectImageError(Image(header, "xy", header.size() - 5), absl::StatusCode::kInvalidArgument,
                   {"header is not valid JSON"});
}

TEST(SafetensorsTest, RejectsZeroAndHugeHeaderLengths) {
  ExpectImageError(Image("", "abc", 0), absl::StatusCode::kInvalidArgument, {"header length is 0"});
  ExpectImageError(Image("{}", "", uint64_t{1} << 40), absl::StatusCode::kInvalidArgument,
                   {"header length 1099511627776 exceeds the 100000000-byte limit"});
  ExpectImageError(Image("{}", "", ~uint64_t{0}), absl::StatusCode::kInvalidArgument,
                   {"exceeds"});
}

TEST(SafetensorsTest, RejectsDataShorterThanDeclared) {
  TempDir dir;
  SafetensorsWriter writer;
  ASSERT_TRUE(writer.Add("model.embed_tokens.weight", DType::kF32, {4}, Pattern(16)).ok());
  const std::string image = writer.Serialize();
  const std::string path = dir.File("short_data.safetensors");
  WriteBytes(path, image.substr(0, image.size() - 3));
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::Open(path);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(file.status()),
              AllOf(HasSubstr(path), HasSubstr("tensor 'model.embed_tokens.weight'"),
                    HasSubstr("data_offsets [0, 16] extend beyond the 13-byte data section"),
                    HasSubstr("truncated")));
}

TEST(SafetensorsTest, RejectsInvalidJson) {
  ExpectHeaderError(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]})", "xy",
                    {"header is not valid JSON"});
  ExpectHeaderError("\xff\xfe{}", "", {"not valid JSON"});
  ExpectHeaderError("{\"a\xff\":{}}", "", {"not valid JSON"});  // invalid UTF-8 in a key
}

TEST(SafetensorsTest, RejectsNonObjectHeaderAndEntries) {
  ExpectHeaderError("[1, 2]", "", {"header is a JSON array, expected an object"});
  ExpectHeaderError("\"x\"", "", {"header is a JSON string"});
  ExpectHeaderError(R"({"w": [1, 2]})", "", {"tensor 'w'", "entry is a JSON array"});
  ExpectHeaderError(R"({"": {"dtype":"U8","shape":[0],"data_offsets":[0,0]}})", "",
                    {"empty name"});
}

TEST(SafetensorsTest, RejectsDeepNesting) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  ExpectHeaderError(deep, "", {"nests deeper than"});
  ExpectHeaderError(R"({"w": {"dtype":"U8","shape":[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]}})", "",
                    {"nests deeper than"});
  // Brackets inside strings do not count.
  const std::string name = "w[[[[[[[[[[[[[[[[[[[[\\\"[[";
  absl::StatusOr<SafetensorsHeader> header = ParseImage(Image(
      absl::StrCat(R"({")", name, R"(": {"dtype":"U8","shape":[1],"data_offsets":[0,1]}})"), "x"));
  ASSERT_TRUE(header.ok()) << header.status();
  EXPECT_EQ(header->tensors[0].name, "w[[[[[[[[[[[[[[[[[[[[\"[[");  // JSON-unescaped
}

TEST(SafetensorsTest, RejectsMissingAndMistypedFields) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"shape":[1],"data_offsets":[0,1]})", "missing \"dtype\""},
      {R"({"dtype":"U8","data_offsets":[0,1]})", "missing \"shape\""},
      {R"({"dtype":"U8","shape":[1]})", "missing \"data_offsets\""},
      {R"({"dtype":7,"shape":[1],"data_offsets":[0,1]})", "\"dtype\" is a JSON number"},
      {R"({"dtype":"U8","shape":1,"data_offsets":[0,1]})", "\"shape\" is a JSON number"},
      {R"({"dtype":"U8","shape":[1.0],"data_offsets":[0,1]})",
       "dimension 0 of \"shape\" is a JSON number, expected an integer"},
      {R"({"dtype":"U8","shape":["1"],"data_offsets":[0,1]})", "is a JSON string"},
      {R"({"dtype":"U8","shape":[1],"data_offsets":[0,1,2]})", "must be an array [begin, end]"},
      {R"({"dtype":"U8","shape":[1],"data_offsets":{"begin":0}})", "[begin, end]"},
      {R"({"dtype":"U8","shape":[1],"data_offsets":[0,1.5]})", "data_offsets end is a JSON number"},
      {R"({"dtype":"U8","shape":[1],"data_offsets":[-1,1]})", "data_offsets begin is negative"},
      {R"({"dtype":"U8","shape":[1],"data_offsets":[1,0]})", "data_offsets [1, 0] has begin after end"},
  };
  for (const auto& [entry, problem] : cases) {
    SCOPED_TRACE(entry);
    ExpectHeaderError(absl::StrCat(R"({"model.w":)", entry, "}"), "x", {"tensor 'model.w'", problem});
  }
}

TEST(SafetensorsTest, RejectsUnknownDType) {
  ExpectHeaderError(R"({"q.weight":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}})", "xy",
                    {"tensor 'q.weight'", "unknown dtype 'F8_E4M3'"});
}

TEST(SafetensorsTest, RejectsShapeByteLengthMismatch) {
  ExpectHeaderError(R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})",
                    std::string(20, 'x'),
                    {"tensor 'w'", "data_offsets [0, 20] span 20 bytes but shape [2, 3] of F32 "
                                   "needs 24 bytes"});
}

TEST(SafetensorsTest, RejectsNegativeDimension) {
  ExpectHeaderError(R"({"w":{"dtype":"F32","shape":[2,-3],"data_offsets":[0,0]}})", "",
                    {"tensor 'w'", "dimension 1 of \"shape\" is negative (-3)"});
}

TEST(SafetensorsTest, RejectsOverflowingShape) {
  ExpectHeaderError(
      R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", "",
      {"tensor 'w'", "shape [4294967296, 4294967296] overflows a 64-bit element count"});
  ExpectHeaderError(R"({"w":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,0]}})",
                    "", {"tensor 'w'", "of F32 overflows a 64-bit byte count"});
  ExpectHeaderError(R"({"w":{"dtype":"U8","shape":[9223372036854775808],"data_offsets":[0,0]}})",
                    "", {"tensor 'w'", "overflows int64"});
  // Beyond uint64 nlohmann produces a float, which is not an integer dimension.
  ExpectHeaderError(R"({"w":{"dtype":"U8","shape":[99999999999999999999],"data_offsets":[0,0]}})",
                    "", {"tensor 'w'", "expected an integer"});
  // An overflowing product hidden behind a zero is still an empty tensor, which is fine.
  EXPECT_TRUE(
      ParseImage(Image(R"({"w":{"dtype":"U8","shape":[0,4294967296],"data_offsets":[0,0]}})", ""))
          .ok());
}

TEST(SafetensorsTest, RejectsRangeBeyondData) {
  ExpectHeaderError(R"({"w":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}})", "abcd",
                    {"tensor 'w'", "data_offsets [4, 8] extend beyond the 4-byte data section"});
  ExpectHeaderError(
      R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[18446744073709551615,18446744073709551615]}})",
      "", {"tensor 'w'", "beyond the 0-byte data section"});
}

TEST(SafetensorsTest, RejectsOverlappingRanges) {
  ExpectHeaderError(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                    R"("b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})",
                    "abcdef", {"tensor 'b'", "data_offsets [2, 6] overlap tensor 'a' [0, 4]"});
  ExpectHeaderError(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                    R"("b":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})",
                    "abcd", {"overlap tensor 'a' [0, 4]"});
}

TEST(SafetensorsTest, RejectsHolesInRanges) {
  ExpectHeaderError(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                    R"("b":{"dtype":"U8","shape":[2],"data_offsets":[3,5]}})",
                    "abcde", {"tensor 'b'", "hole in the data section: bytes [2, 3)"});
  ExpectHeaderError(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}})", "abc",
                    {"tensor 'a'", "bytes [0, 1)"});
  ExpectHeaderError(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})", "abcd",
                    {"bytes [2, 4) after the last tensor belong to no tensor"});
}

TEST(SafetensorsTest, RejectsBadMetadataAndDuplicateKeys) {
  ExpectHeaderError(R"({"__metadata__":{"format":1}})", "",
                    {"\"__metadata__\" value of key 'format' is a JSON number"});
  ExpectHeaderError(R"({"__metadata__":["pt"]})", "", {"\"__metadata__\" is a JSON array"});
  ExpectHeaderError(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                    R"("w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})",
                    "x", {"header has duplicate key 'w'"});
  ExpectHeaderError(R"({"w":{"dtype":"U8","dtype":"F32","shape":[1],"data_offsets":[0,1]}})", "x",
                    {"duplicate key 'dtype'"});
}

TEST(SafetensorsTest, AcceptsEdgeCasesOfTheFormat) {
  // Unknown entry keys are ignored (as the reference reader does), an unpadded header is fine,
  // an empty metadata object is fine, and zero-size tensors may share an offset.
  absl::StatusOr<SafetensorsHeader> header = ParseImage(Image(
      R"({"__metadata__":{},"b":{"dtype":"BOOL","shape":[0],"data_offsets":[0,0],"x":[1]},)"
      R"("a":{"dtype":"I64","shape":[],"data_offsets":[0,8]}})",
      std::string(8, '\0')));
  ASSERT_TRUE(header.ok()) << header.status();
  ASSERT_EQ(header->tensors.size(), 2u);
  EXPECT_EQ(header->tensors[0].name, "b");
  EXPECT_EQ(header->tensors[1].name, "a");
  EXPECT_TRUE(header->metadata.empty());

  absl::StatusOr<SafetensorsHeader> empty = ParseImage(Image("{}", ""));
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_TRUE(empty->tensors.empty());
}

TEST(SafetensorsTest, ErrorMessagesBoundHostileNames) {
  const std::string name(100000, 'n');
  absl::StatusOr<SafetensorsHeader> header = ParseImage(
      Image(absl::StrCat(R"({")", name, R"(":{"dtype":"X","shape":[],"data_offsets":[0,0]}})"), ""));
  ASSERT_FALSE(header.ok());
  EXPECT_LT(header.status().message().size(), 1000u);
  EXPECT_THAT(Message(header.status()), HasSubstr("nnn..."));
}

TEST(SafetensorsTest, ParseSafetensorsHeaderTakesTheDataSize) {
  const std::string json = R"({"w":{"dtype":"F16","shape":[3],"data_offsets":[0,6]}})";
  EXPECT_TRUE(ParseSafetensorsHeader(json, 6, "object-store://bucket/x").ok());
  absl::StatusOr<SafetensorsHeader> header =
      ParseSafetensorsHeader(json, 5, "object-store://bucket/x");
  ASSERT_FALSE(header.ok());
  EXPECT_THAT(Message(header.status()),
              AllOf(HasSubstr("object-store://bucket/x: tensor 'w'"), HasSubstr("beyond")));
}

}  // namespace
}  // namespace caliber
