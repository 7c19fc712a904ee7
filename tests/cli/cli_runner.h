// What the `caliber` CLI tests share: the real binary, the tinyllama-en fixture, a scratch
// directory per test and process, and a runner that keeps stdout and stderr apart.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "nlohmann/json.hpp"

namespace caliber_cli_test {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

inline const std::string kCaliber = std::string(CALIBER_BINARY_DIR) + "/cli/caliber";
inline const std::string kModel = std::string(CALIBER_TESTDATA_DIR) + "/tinyllama-en";
inline const std::string kCalib = kModel + "/calib/calib_tokens.i32";
inline const std::string kHeldout = kModel + "/heldout/heldout_tokens.i32";
// Small and fast: 16 segments of 64 tokens, 16 evaluation windows of 64.
inline const std::string kFast = " --nsamples 16 --seq-len 64";

class ScratchDir {
 public:
  explicit ScratchDir(const std::string& tag)
      : path_(fs::path(::testing::TempDir()) / ("quantize_cli_" + tag + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~ScratchDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

  // Names in the directory other than `except`: what a failed run may have left behind.
  std::vector<std::string> Leftovers(const std::vector<std::string>& except = {}) const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(path_)) {
      const std::string name = e.path().filename().string();
      if (std::find(except.begin(), except.end(), name) == except.end()) out.push_back(name);
    }
    return out;
  }

 private:
  fs::path path_;
};

struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

inline CommandResult Exec(const std::string& args, const fs::path& err_file) {
  const std::string cmd = kCaliber + " " + args + " 2>" + err_file.string();
  FILE* pipe = popen(cmd.c_str(), "r");
  CommandResult r;
  std::array<char, 4096> buf;
  while (size_t n = fread(buf.data(), 1, buf.size(), pipe)) r.out.append(buf.data(), n);
  const int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream in(err_file);
  std::ostringstream s;
  s << in.rdbuf();
  r.err = s.str();
  fs::remove(err_file);
  return r;
}

inline nlohmann::json ReadJson(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
}

}  // namespace caliber_cli_test
