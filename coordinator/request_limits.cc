#include "coordinator/request_limits.h"

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace caliber::coordinator {
namespace {

bool LabelName(absl::string_view s) {
  if (s.empty() || s.size() > kMaxLabelNameBytes) return false;
  if (!absl::ascii_isalnum(static_cast<unsigned char>(s.front())) ||
      !absl::ascii_isalnum(static_cast<unsigned char>(s.back()))) {
    return false;
  }
  for (const char c : s) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

// RFC 1123 subdomain: dot-separated labels of lowercase alphanumerics and '-', each starting
// and ending with an alphanumeric.
bool DnsSubdomain(absl::string_view s) {
  if (s.empty() || s.size() > kMaxLabelPrefixBytes) return false;
  for (absl::string_view part : absl::StrSplit(s, '.')) {
    if (part.empty() || part.size() > 63 || part.front() == '-' || part.back() == '-') return false;
    for (const char c : part) {
      if (!(absl::ascii_islower(static_cast<unsigned char>(c)) || absl::ascii_isdigit(static_cast<unsigned char>(c)) ||
            c == '-')) {
        return false;
      }
    }
  }
  return true;
}

constexpr char kLabelRule[] =
    "a key is [prefix/]name with a DNS-subdomain prefix of at most 253 bytes and a name of 1-63 "
    "alphanumerics, '-', '_' or '.' that begins and ends with an alphanumeric; a value is empty or "
    "has the name's form";

}  // namespace

absl::Status CheckIdentifier(absl::string_view field, absl::string_view value, size_t max_bytes) {
  if (value.size() <= max_bytes) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(field, " is ", value.size(), " bytes; at most ", max_bytes, " are allowed"));
}

absl::Status ValidateLabels(const google::protobuf::Map<std::string, std::string>& labels) {
  if (labels.size() > static_cast<size_t>(kMaxLabels)) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.labels: ", labels.size(), " labels; at most ", kMaxLabels, " are allowed"));
  }
  for (const auto& [key, value] : labels) {
    absl::string_view name = key;
    bool ok = true;
    if (const size_t slash = key.find('/'); slash != std::string::npos) {
      ok = DnsSubdomain(absl::string_view(key).substr(0, slash));
      name = absl::string_view(key).substr(slash + 1);
    }
    // Keys and values are quoted only once they are known to be short and printable.
    if (!ok || !LabelName(name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "spec.labels: key ", key.size() <= kMaxLabelPrefixBytes + 1 + kMaxLabelNameBytes
                                   ? absl::StrCat("'", absl::CHexEscape(key), "'")
                                   : absl::StrCat("of ", key.size(), " bytes"),
          " is not a valid label key (", kLabelRule, ")"));
    }
    if (!value.empty() && !LabelName(value)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "spec.labels['", key, "']: value ",
          value.size() <= kMaxLabelNameBytes ? absl::StrCat("'", absl::CHexEscape(value), "'")
                                            : absl::StrCat("of ", value.size(), " bytes"),
          " is not a valid label value (", kLabelRule, ")"));
    }
  }
  return absl::OkStatus();
}

std::string BoundedMessage(absl::string_view message) {
  if (message.size() <= kMaxErrorMessageBytes) return std::string(message);
  constexpr absl::string_view kMark = " [... truncated]";
  size_t cut = kMaxErrorMessageBytes - kMark.size();
  while (cut > 0 && (static_cast<unsigned char>(message[cut]) & 0xC0) == 0x80) --cut;  // UTF-8 continuation
  return absl::StrCat(message.substr(0, cut), kMark);
}

}  // namespace caliber::coordinator
