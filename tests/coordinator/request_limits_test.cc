// Request bounds: label syntax (Kubernetes' rules), identifier sizes, bounded error messages.
#include "coordinator/request_limits.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "coordinator/job_spec.h"

namespace caliber::coordinator {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// A DNS subdomain of `n` bytes: labels of 63 characters joined by dots.
std::string Subdomain(size_t n) {
  std::string s;
  while (s.size() < n) s.push_back(s.size() % 64 == 63 ? '.' : 'p');
  return s;
}

google::protobuf::Map<std::string, std::string> Labels(std::initializer_list<std::pair<std::string, std::string>> kv) {
  google::protobuf::Map<std::string, std::string> m;
  for (const auto& [k, v] : kv) m[k] = v;
  return m;
}

TEST(RequestLimitsTest, AcceptsKubernetesStyleLabels) {
  EXPECT_TRUE(ValidateLabels(Labels({{"team", "nlp"},
                                     {"app.kubernetes.io/name", "caliber"},
                                     {"example.com/run-id", "r_1.2-x"},
                                     {"empty", ""},
                                     {"A", "Z"},
                                     {std::string(63, 'k'), std::string(63, 'v')},
                                     {absl::StrCat(Subdomain(253), "/x"), "y"}}))
                  .ok());
}

TEST(RequestLimitsTest, RefusesMalformedOrOversizedLabels) {
  for (const auto& [key, value] : std::vector<std::pair<std::string, std::string>>{
           {"", "v"},                                  // empty key
           {"bad key", "v"},                           // space
           {"-lead", "v"},                             // must start alphanumeric
           {"trail-", "v"},                            // must end alphanumeric
           {std::string(64, 'k'), "v"},                // name over 63
           {"Upper.Case/x", "v"},                      // prefix must be lowercase
           {"a..b/x", "v"},                            // empty DNS label in the prefix
           {absl::StrCat(Subdomain(254), "/x"), "v"},         // prefix over 253
           {absl::StrCat(std::string(64, 'p'), ".io/x"), "v"},  // a DNS label over 63
           {"/x", "v"},                                // empty prefix
           {"x/", "v"},                                // empty name
           {"k", std::string(64, 'v')},                // value over 63
           {"k", "bad value"},                         // space in the value
           {"k", "-v"},                                // value must start alphanumeric
           {"k", std::string(1 << 20, 'v')},           // the 1 MiB value of the report
       }) {
    const absl::Status s = ValidateLabels(Labels({{key, value}}));
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << key.substr(0, 80) << "=" << value.substr(0, 80);
    EXPECT_LT(s.message().size(), 1200u) << "the error must not echo unbounded input";
  }
}

TEST(RequestLimitsTest, RefusesTooManyLabels) {
  google::protobuf::Map<std::string, std::string> m;
  for (int i = 0; i <= kMaxLabels; ++i) m[absl::StrCat("k", i)] = std::string(1, 'v');
  const absl::Status s = ValidateLabels(m);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("at most 64"));
}

TEST(RequestLimitsTest, IdentifierErrorsStateTheBoundAndNeverTheValue) {
  const std::string id(20 << 10, 'j');
  const absl::Status s = CheckIdentifier("job_id", id, kMaxJobIdBytes);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "job_id is 20480 bytes; at most 64 are allowed");
  EXPECT_TRUE(CheckIdentifier("job_id", std::string(64, 'j'), kMaxJobIdBytes).ok());
}

TEST(RequestLimitsTest, BoundedMessageCutsAtACharacterBoundary) {
  EXPECT_EQ(BoundedMessage("short"), "short");
  std::string big;
  while (big.size() < 3 * kMaxErrorMessageBytes) big += "é";  // two bytes each
  const std::string cut = BoundedMessage(big);
  EXPECT_LE(cut.size(), kMaxErrorMessageBytes);
  EXPECT_THAT(cut, HasSubstr("[... truncated]"));
  const std::string body = cut.substr(0, cut.find(" [..."));
  EXPECT_EQ(body.size() % 2, 0u) << "a two-byte character was split";
}

v1::QuantJobSpec ValidSpec() {
  v1::QuantJobSpec spec;
  spec.set_model_uri("file:///m");
  spec.set_output_uri("file:///o");
  spec.mutable_calibration()->set_uri("file:///c.i32");
  return spec;
}

TEST(RequestLimitsTest, SpecBoundsNameTheirLimits) {
  v1::QuantJobSpec spec = ValidSpec();
  ASSERT_TRUE(NormalizeSpec(spec).ok());

  spec = ValidSpec();
  spec.mutable_calibration()->set_seq_len(1000000000);
  absl::Status s = NormalizeSpec(spec);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("must be 1..131072"));
  EXPECT_THAT(std::string(s.message()), Not(HasSubstr("positive")));

  spec = ValidSpec();
  spec.set_model_uri(absl::StrCat("file:///", std::string(5000, 'm')));
  s = NormalizeSpec(spec);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "spec.model_uri is 5008 bytes; at most 2048 are allowed");

  spec = ValidSpec();
  (*spec.mutable_labels())["k"] = std::string(1 << 20, 'v');
  s = NormalizeSpec(spec);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("spec is"));
  EXPECT_LT(s.message().size(), 200u);

  spec = ValidSpec();
  spec.mutable_calibration()->set_nsamples(65536);
  spec.mutable_calibration()->set_seq_len(131072);
  s = NormalizeSpec(spec);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("tokens; at most 16777216"));

  spec = ValidSpec();
  spec.set_batch_seqs(100000);
  EXPECT_THAT(std::string(NormalizeSpec(spec).message()), HasSubstr("must be 1..4096"));
}

}  // namespace
}  // namespace caliber::coordinator
