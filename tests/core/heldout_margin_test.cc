// The margin rule of the nll selection (heldout_margin.h), on hand-computed numbers.
#include "core/transform/heldout_margin.h"

#include <cmath>

#include <gtest/gtest.h>

namespace caliber {
namespace {

// d = candidate − baseline = (−1, −3): mean −2, sample sd √2, standard error √2 / √2 = 1.
TEST(HeldoutMarginTest, PairedDifferenceIsTheMeanAndItsStandardError) {
  const PairedDifference d = *PairedNllDifference({4.0, 2.0}, {5.0, 5.0});
  EXPECT_DOUBLE_EQ(d.mean, -2.0);
  EXPECT_DOUBLE_EQ(d.standard_error, 1.0);
  // Pairing: a shift shared by every segment cancels, whatever the segments' spread.
  const PairedDifference shift = *PairedNllDifference({3.9, 5.9, 0.9}, {4.0, 6.0, 1.0});
  EXPECT_NEAR(shift.mean, -0.1, 1e-15);
  EXPECT_NEAR(shift.standard_error, 0.0, 1e-15);
  EXPECT_EQ(PairedNllDifference({1.0}, {2.0})->standard_error, 0.0);
  EXPECT_FALSE(PairedNllDifference({1.0}, {1.0, 2.0}).ok());
  EXPECT_FALSE(PairedNllDifference({}, {}).ok());
}

TEST(HeldoutMarginTest, IdentityStaysUnlessTheGainExceedsTheMargin) {
  const std::vector<double> identity = {5.0, 5.0};
  const std::vector<double> noisy = {4.0, 2.0};  // gain 2 ± 1
  EXPECT_EQ(*ChooseByHeldoutNll({identity, noisy}, 1.9), 1u);
  EXPECT_EQ(*ChooseByHeldoutNll({identity, noisy}, 2.0), 0u) << "a gain of exactly margin · SE does not pass";
  EXPECT_EQ(*ChooseByHeldoutNll({identity, noisy}, 0.0), 1u);
  // margin 0: a zero gain never passes, so ties keep identity.
  EXPECT_EQ(*ChooseByHeldoutNll({identity, identity}, 0.0), 0u);
}

TEST(HeldoutMarginTest, AmongPassingCandidatesTheLowestMeanWinsAndTheEarlierOnATie) {
  const std::vector<double> identity = {5.0, 5.0, 5.0};
  const std::vector<double> small_sure = {4.9, 4.9, 4.9};      // gain 0.1 ± 0
  const std::vector<double> large_noisy = {1.0, 5.0, 4.9};     // gain 1.37 ± 1.32: passes at margin 1, not 2
  const std::vector<double> large_sure = {4.5, 4.5, 4.5};      // gain 0.5 ± 0
  EXPECT_EQ(*ChooseByHeldoutNll({identity, small_sure, large_noisy}, 2.0), 1u);
  EXPECT_EQ(*ChooseByHeldoutNll({identity, small_sure, large_noisy}, 1.0), 2u);
  EXPECT_EQ(*ChooseByHeldoutNll({identity, large_sure, small_sure, large_sure}, 2.0), 1u);
}

TEST(HeldoutMarginTest, RejectsBadInput) {
  EXPECT_FALSE(ChooseByHeldoutNll({}, 2.0).ok());
  EXPECT_FALSE(ChooseByHeldoutNll({{1.0}, {1.0}}, -1.0).ok());
  EXPECT_FALSE(ChooseByHeldoutNll({{1.0}, {1.0}}, std::nan("")).ok());
  EXPECT_FALSE(ChooseByHeldoutNll({{1.0, 2.0}, {1.0}}, 2.0).ok());
}

}  // namespace
}  // namespace caliber
