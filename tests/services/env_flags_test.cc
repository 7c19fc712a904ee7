#include "services/runtime/env_flags.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"

ABSL_FLAG(std::string, env_test_address, "127.0.0.1:50051", "test flag");
ABSL_FLAG(int32_t, env_test_workers, 1, "test flag");
ABSL_FLAG(bool, env_test_tls, false, "test flag");
ABSL_FLAG(double, env_test_ratio, 0.5, "test flag");
ABSL_FLAG(std::string, env_test_untouched, "default", "test flag");

namespace caliber::runtime {
namespace {

// argv for ApplyEnvOverrides (it only reads it).
class Argv {
 public:
  explicit Argv(std::vector<std::string> args) : args_(std::move(args)) {
    for (std::string& a : args_) pointers_.push_back(a.data());
    pointers_.push_back(nullptr);
  }
  int argc() const { return static_cast<int>(args_.size()); }
  char** argv() { return pointers_.data(); }

 private:
  std::vector<std::string> args_;
  std::vector<char*> pointers_;
};

class EnvFlagsTest : public ::testing::Test {
 protected:
  void SetUp() override { Reset(); }
  void TearDown() override {
    for (const char* v :
         {"CALIBER_ENV_TEST_ADDRESS", "CALIBER_ENV_TEST_WORKERS", "CALIBER_ENV_TEST_TLS",
          "CALIBER_ENV_TEST_RATIO", "MYAPP_ENV_TEST_WORKERS", "CALIBER_FLAGFILE"}) {
      unsetenv(v);
    }
    Reset();
  }
  static void Reset() {
    absl::SetFlag(&FLAGS_env_test_address, "127.0.0.1:50051");
    absl::SetFlag(&FLAGS_env_test_workers, 1);
    absl::SetFlag(&FLAGS_env_test_tls, false);
    absl::SetFlag(&FLAGS_env_test_ratio, 0.5);
    absl::SetFlag(&FLAGS_env_test_untouched, "default");
  }
};

TEST_F(EnvFlagsTest, EnvironmentSetsFlags) {
  setenv("CALIBER_ENV_TEST_ADDRESS", "0.0.0.0:9000", 1);
  setenv("CALIBER_ENV_TEST_WORKERS", "8", 1);
  setenv("CALIBER_ENV_TEST_TLS", "true", 1);
  setenv("CALIBER_ENV_TEST_RATIO", "0.25", 1);
  ASSERT_TRUE(ApplyEnvOverrides().ok());
  EXPECT_EQ(absl::GetFlag(FLAGS_env_test_address), "0.0.0.0:9000");
  EXPECT_EQ(absl::GetFlag(FLAGS_env_test_workers), 8);
  EXPECT_TRUE(absl::GetFlag(FLAGS_env_test_tls));
  EXPECT_EQ(absl::GetFlag(FLAGS_env_test_ratio), 0.25);
  EXPECT_EQ(absl::GetFlag(FLAGS_env_test_untouched), "default");
}

TEST_F(EnvFlagsTest, CustomPrefix) {
  setenv("MYAPP_ENV_TEST_WORKERS", "3", 1);
  setenv("CALIBER_ENV_TEST_WORKERS", "9", 1);
  ASSERT_TRUE(ApplyEnvOverrides("MYAPP_").ok());
  EXPECT_EQ(absl::GetFlag(FLAGS_env_test_workers), 3);
}

TEST_F(EnvFlagsTest, BadValueNamesTheVariableNotTheValue) {
  setenv("CALIBER_ENV_TEST_WORKERS", "many-secret", 1);
  setenv("CALIBER_ENV_TEST_ADDRESS", "0.0.0.0:9000", 1);
  const absl::Status s = ApplyEnvOverrides();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(s.message()).find("CALIBER_ENV_TEST_WORKERS"), std::string::npos) << s;
  EXPECT_NE(std::string(s.message()).find("--env_test_workers"), std::string::npos) << s;
  EXPECT_EQ(std::string(s.message()).find("many-secret"), std::string::npos) << s;
  EXPECT_EQ(absl::GetFlag(FLAGS_env_test_workers), 1);
  // The others are still applied.
  EXPECT_EQ(absl::GetFlag(FLAGS_env_test_address), "0.0.0.0:9000");
}

TEST_F(EnvFlagsTest, CommandLineBeatsEnvironment) {
  setenv("CALIBER_ENV_TEST_ADDRESS", "env:1", 1);
  setenv("CALIBER_ENV_TEST_WORKERS", "8", 1);
  setenv("CALIBER_ENV_TEST_TLS", "true", 1);
  setenv("CALIBER_ENV_TEST_RATIO", "0.75", 1);
  Argv args({"prog", "--env_test_address=cli:2", "--env_test_workers", "4", "--noenv_test_tls",
             "positional"});
  absl::ParseCommandLine(args.argc(), args.argv());
  ASSERT_TRUE(ApplyEnvOverrides(args.argc(), args.argv()).ok());
  EXPECT_EQ(absl::GetFlag(FLAGS_env_test_address), "cli:2");
  EXPECT_EQ(absl::GetFlag(FLAGS_env_test_workers), 4);
  EXPECT_FALSE(absl::GetFlag(FLAGS_env_test_tls));
  EXPECT_EQ(absl::GetFlag(FLAGS_env_test_ratio), 0.75);  // not on the command line: env wins
}

TEST_F(EnvFlagsTest, EnvironmentBeatsFlagfile) {
  const std::string path =
      ::testing::TempDir() + "/env_flags_test_" + std::to_string(getpid()) + ".flags";
  {
    std::ofstream out(path);
    out << "--env_test_workers=6\n--env_test_address=file:3\n--env_test_untouched=from-file\n";
  }
  setenv("CALIBER_ENV_TEST_WORKERS", "8", 1);
  const std::string flagfile = "--flagfile=" + path;
  Argv args({"prog", flagfile, "--env_test_address=cli:2"});
  absl::ParseCommandLine(args.argc(), args.argv());
  ASSERT_TRUE(ApplyEnvOverrides(args.argc(), args.argv()).ok());
  EXPECT_EQ(absl::GetFlag(FLAGS_env_test_workers), 8);              // env > flagfile
  EXPECT_EQ(absl::GetFlag(FLAGS_env_test_address), "cli:2");        // command line > flagfile
  EXPECT_EQ(absl::GetFlag(FLAGS_env_test_untouched), "from-file");  // flagfile > default
  std::filesystem::remove(path);
}

TEST_F(EnvFlagsTest, DashedSpellingCountsAsGiven) {
  // Our CLI rewrites "--foo-bar" to "--foo_bar" before absl parses; either spelling on argv
  // means the flag was given.
  setenv("CALIBER_ENV_TEST_WORKERS", "8", 1);
  setenv("CALIBER_ENV_TEST_ADDRESS", "env:1", 1);
  Argv args({"prog", "--env-test-workers=4", "-env-test-address", "x"});
  ASSERT_TRUE(ApplyEnvOverrides(args.argc(), args.argv()).ok());
  EXPECT_EQ(absl::GetFlag(FLAGS_env_test_workers), 1);  // left to the command-line parse
  EXPECT_EQ(absl::GetFlag(FLAGS_env_test_address), "127.0.0.1:50051");
}

TEST_F(EnvFlagsTest, ArgumentsAfterDoubleDashAreNotFlags) {
  setenv("CALIBER_ENV_TEST_WORKERS", "8", 1);
  Argv args({"prog", "--", "--env_test_workers=2"});
  ASSERT_TRUE(ApplyEnvOverrides(args.argc(), args.argv()).ok());
  EXPECT_EQ(absl::GetFlag(FLAGS_env_test_workers), 8);
}

TEST_F(EnvFlagsTest, ValueOfASeparatedFlagIsNotMistakenForAFlag) {
  setenv("CALIBER_ENV_TEST_WORKERS", "8", 1);
  // "--env_test_address --env_test_workers": the second word is the address flag's value.
  Argv args({"prog", "--env_test_address", "--env_test_workers"});
  ASSERT_TRUE(ApplyEnvOverrides(args.argc(), args.argv()).ok());
  EXPECT_EQ(absl::GetFlag(FLAGS_env_test_workers), 8);
}

TEST_F(EnvFlagsTest, BuiltinFlagsAreNotTakenFromTheEnvironment) {
  setenv("CALIBER_FLAGFILE", "/nonexistent", 1);
  EXPECT_TRUE(ApplyEnvOverrides().ok());
}

}  // namespace
}  // namespace caliber::runtime
