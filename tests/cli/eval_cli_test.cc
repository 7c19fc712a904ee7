// `caliber eval` as a user runs it: the real binary, its JSON output and its error messages.
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace {

const std::string kCaliber = std::string(CALIBER_BINARY_DIR) + "/cli/caliber";
const std::string kModel = std::string(CALIBER_TESTDATA_DIR) + "/tinyllama-en";

struct CommandResult {
  int exit_code;
  std::string output;  // stdout and stderr together
};

CommandResult Exec(const std::string& args) {
  const std::string cmd = kCaliber + " " + args + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf;
  while (size_t n = fread(buf.data(), 1, buf.size(), pipe)) out.append(buf.data(), n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

TEST(EvalCli, JsonOnTokenIds) {
  const CommandResult r = Exec("eval --model " + kModel + " --tokens " + kModel +
                     "/heldout/heldout_tokens.i32 --max-windows 128 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  // results.json's PyTorch float32 value (README: 97.29); the tolerance is the float32 forward's
  // over 128·255 predictions (perplexity_test.cc: FloatForwardTolerance): 4·2·2e-5/√32640 relative.
  EXPECT_NEAR(j["ppl"].get<double>(), 97.2863739932659, 97.29 * 4 * 2 * 2e-5 / std::sqrt(128.0 * 255));
  EXPECT_EQ(j["windows"].get<int>(), 128);
  EXPECT_EQ(j["tokens"].get<int>(), 128 * 255);
  EXPECT_TRUE(j.contains("nll") && j.contains("seconds"));
  // One NLL per window, whose mean (every window predicts 255 tokens) is the reported NLL.
  const std::vector<double> windows = j["window_nll"].get<std::vector<double>>();
  ASSERT_EQ(windows.size(), 128u);
  double sum = 0;
  for (const double w : windows) sum += w;
  EXPECT_NEAR(sum / 128, j["nll"].get<double>(), 1e-12 * j["nll"].get<double>());
}

TEST(EvalCli, RawTextIsTokenizedWithTheModelsTokenizer) {
  const CommandResult r = Exec("eval --model " + kModel + " --text " + std::string(CALIBER_TESTDATA_DIR) +
                     "/text/heldout_sample.txt --max-windows 8 --seq-len 128 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["windows"].get<int>(), 8);
  // A trained model on in-domain English: far below uniform (4096).
  EXPECT_LT(j["ppl"].get<double>(), 400.0);
  EXPECT_GT(j["ppl"].get<double>(), 20.0);
}

TEST(EvalCli, ActBitsEightQuantizesActivations) {
  const std::string args = "eval --model " + kModel + " --tokens " + kModel +
                           "/heldout/heldout_tokens.i32 --max-windows 16 --json";
  const CommandResult plain = Exec(args);
  const CommandResult a16 = Exec(args + " --act-bits 16");
  const CommandResult a8 = Exec(args + " --act-bits 8");
  ASSERT_EQ(plain.exit_code, 0) << plain.output;
  ASSERT_EQ(a16.exit_code, 0) << a16.output;
  ASSERT_EQ(a8.exit_code, 0) << a8.output;
  const auto p = nlohmann::json::parse(plain.output);
  const auto j16 = nlohmann::json::parse(a16.output);
  const auto j8 = nlohmann::json::parse(a8.output);
  // An unquantized model is served with float activations unless told otherwise.
  EXPECT_EQ(p["act_bits"], 16);
  EXPECT_EQ(p["ppl"], j16["ppl"]);
  EXPECT_EQ(j8["act_bits"], 8);
  EXPECT_NE(j8["ppl"], j16["ppl"]);
  EXPECT_NEAR(j8["ppl"].get<double>(), j16["ppl"].get<double>(), 0.05 * j16["ppl"].get<double>());

  const CommandResult bad = Exec(args + " --act-bits 4");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.output.find("--act-bits: act_bits must be 16 (float activations) or 8 (per-token "
                            "dynamic INT8), got 4"),
            std::string::npos)
      << bad.output;
}

// A checkpoint directory with a LoRA adapter inside (gptq_lora writes DIR/adapter) evaluated
// without --adapter: the base alone is evaluated, and a note on stderr says the adapter was not
// applied. A directory without one gets no note.
TEST(EvalCli, NotesAnAdapterThatIsNotApplied) {
  const std::filesystem::path dir =
      std::filesystem::path(::testing::TempDir()) / ("eval_cli_adapter_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir / "adapter");
  for (const auto& entry : std::filesystem::directory_iterator(kModel)) {
    if (entry.is_regular_file()) std::filesystem::create_symlink(entry.path(), dir / entry.path().filename());
  }
  const std::string args = " --tokens " + kModel + "/heldout/heldout_tokens.i32 --max-windows 2";
  const CommandResult with = Exec("eval --model " + dir.string() + args);
  EXPECT_EQ(with.exit_code, 0) << with.output;
  EXPECT_NE(with.output.find("adapter holds a LoRA adapter that is NOT applied; pass --adapter " + dir.string() +
                             "/adapter"),
            std::string::npos)
      << with.output;
  const CommandResult without = Exec("eval --model " + kModel + args);
  EXPECT_EQ(without.exit_code, 0) << without.output;
  EXPECT_EQ(without.output.find("NOT applied"), std::string::npos) << without.output;
  std::filesystem::remove_all(dir);
}

TEST(EvalCli, BadInvocationsFailWithPreciseMessages) {
  CommandResult r = Exec("eval --model /nonexistent/model --tokens x.i32");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("/nonexistent/model"), std::string::npos) << r.output;

  r = Exec("eval --model " + kModel);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("exactly one of --text FILE or --tokens FILE"), std::string::npos) << r.output;

  r = Exec("eval --model " + kModel + " --tokens " + kModel + "/config.json");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("config.json"), std::string::npos) << r.output;

  r = Exec("frobnicate");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("unknown command 'frobnicate'"), std::string::npos) << r.output;
}

}  // namespace
