#include "services/runtime/log_limiter.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace caliber::runtime {
namespace {

class LogLimiterTest : public ::testing::Test {
 protected:
  LogLimiter limiter{3, absl::Seconds(30), [this](absl::string_view line) { lines.emplace_back(line); }};
  std::vector<std::string> lines;
  absl::Time t0 = absl::FromUnixSeconds(1000000);
};

TEST_F(LogLimiterTest, PrintsABurstPerKindThenOneSummaryPerWindow) {
  for (int i = 0; i < 1000; ++i) limiter.Log("a", absl::StrCat("a", i), t0 + absl::Milliseconds(i));
  limiter.Log("b", "b0", t0);
  EXPECT_EQ(lines, (std::vector<std::string>{"a0", "a1", "a2", "b0"}));
  limiter.Flush(t0 + absl::Seconds(29));
  EXPECT_EQ(lines.size(), 4u);
  limiter.Flush(t0 + absl::Seconds(31));
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines[4], "suppressed 997 similar lines in the last 30s: a999");
  // A new window prints again.
  limiter.Log("a", "again", t0 + absl::Seconds(32));
  EXPECT_EQ(lines.back(), "again");
}

TEST_F(LogLimiterTest, KindsBeyondTheCapShareOneBudget) {
  for (size_t i = 0; i < LogLimiter::kMaxKinds + 100; ++i) limiter.Log(absl::StrCat("k", i), "x", t0);
  // kMaxKinds kinds printed once each; the 100 others share the burst (3) of "other".
  EXPECT_EQ(lines.size(), LogLimiter::kMaxKinds + 3);
}

TEST_F(LogLimiterTest, SummaryCutsTheLastLine) {
  for (int i = 0; i < 4; ++i) limiter.Log("a", std::string(1000, 'x'), t0);
  limiter.Flush(t0 + absl::Minutes(1));
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_LT(lines[3].size(), 300u);
}

}  // namespace
}  // namespace caliber::runtime
