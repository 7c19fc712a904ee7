// The `caliber` command line as scripts and people meet it, through the real binary: every
// subcommand's --help lists its own flags (dashed, with defaults) and exits 0, --helpfull shows
// no source paths, and usage errors (unknown flag, bad value, -h, malformed --labels) exit 2
// with a hint. No coordinator is needed: all of these are refused before any connection.
#include <unistd.h>

#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "services/child_process.h"

namespace {

using ::testing::HasSubstr;
using ::testing::Not;

const std::string kCaliber = std::string(CALIBER_BINARY_DIR) + "/cli/caliber";

struct Result {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// `caliber ARGS`; client commands also get an address nothing listens on, so one that wrongly
// got as far as connecting fails fast instead of reaching a real coordinator.
Result Exec(std::vector<std::string> args, bool with_coordinator) {
  args.insert(args.begin(), kCaliber);
  if (with_coordinator) args.push_back("--coordinator=127.0.0.1:1");
  // One file per process: CTest runs these tests as parallel processes.
  const std::string err_path = ::testing::TempDir() + "/cli_usage_stderr." + std::to_string(::getpid()) + ".txt";
  Result r;
  r.exit_code = caliber::testing::RunCommand(args, &r.out, err_path);
  if (std::FILE* f = std::fopen(err_path.c_str(), "r"); f != nullptr) {
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof(buf), f)) > 0;) r.err.append(buf, n);
    std::fclose(f);
  }
  return r;
}

Result RunClient(std::vector<std::string> args) { return Exec(std::move(args), true); }
// eval and quantize take no --coordinator.
Result RunLocal(std::vector<std::string> args) { return Exec(std::move(args), false); }

struct HelpCase {
  std::string command;
  std::vector<std::string> expected;  // lines' beginnings: flag synopsis ... default
};

const std::vector<HelpCase>& HelpCases() {
  static const std::vector<HelpCase> cases = {
      {"submit",
       {"--model=STRING", "--seq-len=INT", "[default: 256]", "--labels=STRING", "--wait", "[default: false]",
        "--reconnect-timeout=DURATION", "[default: 5m]", "--coordinator=STRING", "[default: \"127.0.0.1:7070\"]",
        "--nsamples=INT", "[default: 128]"}},
      {"watch", {"--reconnect-timeout=DURATION", "--coordinator=STRING", "--token-file=STRING"}},
      {"status", {"--coordinator=STRING", "--tls-ca=STRING"}},
      {"list", {"--page-size=INT", "[default: 50]"}},
      {"cancel", {"--coordinator=STRING"}},
      {"quantize",
       {"--model=STRING", "--calib=STRING", "--out=STRING", "--method=STRING", "[default: \"gptq\"]",
        "--group-size=INT", "[default: 128]", "--act-order", "--heroq-iterations=INT", "--eval-baseline",
        "[default: true]"}},
      {"eval", {"--model=STRING", "--text=STRING", "--max-windows=INT", "--batch-windows=INT", "[default: 8]"}},
  };
  return cases;
}

TEST(CliUsage, EveryCommandsHelpListsItsFlagsWithDashesAndDefaults) {
  for (const HelpCase& c : HelpCases()) {
    for (const char* help : {"--help", "--helpshort"}) {
      SCOPED_TRACE(c.command + " " + help);
      const Result r = RunLocal({c.command, help});
      EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
      EXPECT_THAT(r.out, Not(HasSubstr("No flags matched")));
      EXPECT_THAT(r.out, HasSubstr("usage: caliber " + c.command));
      for (const std::string& e : c.expected) EXPECT_THAT(r.out, HasSubstr(e));
      // Registered names are underscored; users type dashes.
      EXPECT_THAT(r.out, Not(HasSubstr("--seq_len")));
      EXPECT_THAT(r.out, Not(HasSubstr("--token_file")));
    }
  }
}

TEST(CliUsage, HelpListsOnlyTheCommandsOwnFlags) {
  const Result watch = RunLocal({"watch", "--help"});
  EXPECT_THAT(watch.out, Not(HasSubstr("--model")));
  EXPECT_THAT(watch.out, Not(HasSubstr("--nsamples")));
  const Result eval = RunLocal({"eval", "--help"});
  EXPECT_THAT(eval.out, Not(HasSubstr("--coordinator")));
  EXPECT_THAT(eval.out, Not(HasSubstr("--calib=")));
}

TEST(CliUsage, HelpfullHasNoSourcePaths) {
  for (const char* command : {"submit", "watch", "status", "list", "cancel", "quantize", "eval"}) {
    SCOPED_TRACE(command);
    const Result r = RunLocal({command, "--helpfull"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_THAT(r.out, Not(HasSubstr("No flags matched")));
    EXPECT_THAT(r.out, Not(HasSubstr(".cc")));
    EXPECT_THAT(r.out, Not(HasSubstr("Flags from")));
    EXPECT_THAT(r.out, Not(HasSubstr("absl/")));
    EXPECT_THAT(r.out, HasSubstr("--flagfile=LIST"));
    EXPECT_THAT(r.out + r.err, Not(HasSubstr("/work/")));
  }
}

TEST(CliUsage, UnknownFlagExitsTwoAndSuggestsTheClosest) {
  const Result r = RunClient({"submit", "--modle", "m", "--calib", "c", "--out", "o"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("unknown flag --modle (did you mean --model?)"));
  EXPECT_THAT(r.err, HasSubstr("usage: caliber submit"));

  const Result q = RunLocal({"quantize", "--nsample=4"});
  EXPECT_EQ(q.exit_code, 2) << q.err;
  EXPECT_THAT(q.err, HasSubstr("did you mean --nsamples?"));

  const Result w = RunClient({"watch", "job-1", "--reconect-timeout=1s"});
  EXPECT_EQ(w.exit_code, 2) << w.err;
  EXPECT_THAT(w.err, HasSubstr("did you mean --reconnect-timeout?"));

  const Result far = RunClient({"list", "--frobnicate"});
  EXPECT_EQ(far.exit_code, 2) << far.err;
  EXPECT_THAT(far.err, HasSubstr("unknown flag --frobnicate"));
  EXPECT_THAT(far.err, Not(HasSubstr("did you mean")));
}

TEST(CliUsage, AnotherCommandsFlagIsAUsageError) {
  // Silently ignoring it would run something else than asked.
  const Result r = RunClient({"watch", "job-1", "--nsamples", "4"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("--nsamples"));
  EXPECT_THAT(r.err, HasSubstr("not of `caliber watch`"));
}

TEST(CliUsage, BadValuesAndMissingValuesExitTwo) {
  const Result r = RunClient({"submit", "--model", "m", "--calib", "c", "--out", "o", "--nsamples", "abc"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("bad value 'abc' for --nsamples=INT"));

  const Result d = RunClient({"watch", "job-1", "--reconnect-timeout=soon"});
  EXPECT_EQ(d.exit_code, 2) << d.err;
  EXPECT_THAT(d.err, HasSubstr("--reconnect-timeout=DURATION"));

  const Result neg = RunClient({"watch", "job-1", "--reconnect-timeout=-1s"});
  EXPECT_EQ(neg.exit_code, 2) << neg.err;

  const Result missing = RunLocal({"eval", "--model"});
  EXPECT_EQ(missing.exit_code, 2) << missing.err;
  EXPECT_THAT(missing.err, HasSubstr("--model needs a value"));

  const Result b = RunClient({"submit", "--wait=maybe"});
  EXPECT_EQ(b.exit_code, 2) << b.err;
}

TEST(CliUsage, ShortHIsAUsageErrorPointingAtHelp) {
  for (const char* command : {"submit", "watch", "quantize", "eval"}) {
    SCOPED_TRACE(command);
    const Result r = RunLocal({command, "-h"});
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_THAT(r.err, HasSubstr("did you mean --help?"));
  }
}

TEST(CliUsage, WrongPositionalArgumentsExitTwo) {
  EXPECT_EQ(RunClient({"watch"}).exit_code, 2);
  EXPECT_EQ(RunClient({"status", "a", "b"}).exit_code, 2);
  EXPECT_EQ(RunClient({"cancel"}).exit_code, 2);
  EXPECT_EQ(RunClient({"list", "extra"}).exit_code, 2);
}

TEST(CliUsage, MalformedLabelsAreRejectedBeforeSubmitting) {
  const std::vector<std::string> base = {"submit", "--model", "m", "--calib", "c", "--out", "o", "--labels"};
  const std::pair<std::string, std::string> cases[] = {
      {"badlabel", "'badlabel' is not key=value"},
      {"team=a,badlabel", "'badlabel' is not key=value"},
      {"=x", "'=x' has an empty key"},
      {"team=a,team=b", "key 'team' is given twice"},
  };
  for (const auto& [labels, message] : cases) {
    SCOPED_TRACE(labels);
    std::vector<std::string> args = base;
    args.push_back(labels);
    const Result r = RunClient(args);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_THAT(r.err, HasSubstr(message));
    EXPECT_THAT(r.out, ::testing::IsEmpty()) << "no job id: nothing was submitted";
  }
}

TEST(CliUsage, WellFormedLabelsGetAsFarAsConnecting) {
  // No coordinator at 127.0.0.1:1: the request itself was accepted by the command line.
  const Result r = RunClient({"submit", "--model", "m", "--calib", "c", "--out", "o", "--labels", "team=a,empty="});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("UNAVAILABLE"));
}

}  // namespace
