// Which finished jobs are forgotten: by age, by count per tenant, newest kept.
#include "coordinator/job_retention.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace caliber::coordinator {
namespace {

using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

FinishedJob Job(std::string id, std::string tenant, absl::Duration ago, int64_t seq = 0) {
  return {std::move(id), std::move(tenant), kNow - ago, seq};
}

TEST(JobRetentionTest, ForgetsJobsOlderThanTheTtl) {
  const RetentionPolicy policy{absl::Hours(1), 0};
  EXPECT_THAT(ExpiredJobs({Job("old", "a", absl::Hours(2)), Job("new", "a", absl::Minutes(59)),
                           Job("other", "b", absl::Hours(1) + absl::Seconds(1))},
                          policy, kNow),
              UnorderedElementsAre("old", "other"));
}

TEST(JobRetentionTest, KeepsTheNewestPerTenant) {
  const RetentionPolicy policy{absl::ZeroDuration(), 2};
  EXPECT_THAT(ExpiredJobs({Job("a1", "a", absl::Minutes(4)), Job("a2", "a", absl::Minutes(3)),
                           Job("a3", "a", absl::Minutes(2)), Job("a4", "a", absl::Minutes(1)),
                           Job("b1", "b", absl::Hours(100)), Job("b2", "b", absl::Hours(99))},
                          policy, kNow),
              UnorderedElementsAre("a1", "a2"));
}

TEST(JobRetentionTest, TiesInEndTimeKeepTheLaterSubmission) {
  const RetentionPolicy policy{absl::ZeroDuration(), 1};
  EXPECT_THAT(ExpiredJobs({Job("first", "a", absl::Minutes(1), 1), Job("second", "a", absl::Minutes(1), 2)}, policy,
                          kNow),
              UnorderedElementsAre("first"));
}

TEST(JobRetentionTest, ZeroMeansNoLimit) {
  EXPECT_THAT(ExpiredJobs({Job("x", "a", absl::Hours(10000))}, RetentionPolicy{absl::ZeroDuration(), 0}, kNow),
              IsEmpty());
}

}  // namespace
}  // namespace caliber::coordinator
