#include "services/storage/s3_xml.h"

#include <cstdint>

#include "absl/strings/str_cat.h"

namespace caliber::storage {
namespace {

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Parses the digits of a character reference ("#38", "#x26"); nullopt if malformed or not a
// Unicode scalar value.
std::optional<uint32_t> ParseCharRef(std::string_view ref) {
  if (ref.size() < 2 || ref[0] != '#') return std::nullopt;
  const bool hex = ref[1] == 'x' || ref[1] == 'X';
  std::string_view digits = ref.substr(hex ? 2 : 1);
  if (digits.empty() || digits.size() > 8) return std::nullopt;
  uint32_t value = 0;
  for (char c : digits) {
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (hex && c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else if (hex && c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else {
      return std::nullopt;
    }
    value = value * (hex ? 16 : 10) + static_cast<uint32_t>(d);
  }
  if (value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF)) return std::nullopt;
  return value;
}

}  // namespace

std::string XmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

absl::StatusOr<std::string> XmlUnescape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const size_t amp = text.find('&', i);
    if (amp == std::string_view::npos) {
      out.append(text.substr(i));
      break;
    }
    out.append(text.substr(i, amp - i));
    const size_t semi = text.find(';', amp);
    if (semi == std::string_view::npos || semi - amp > 12) {
      return absl::InvalidArgumentError(
          absl::StrCat("malformed XML entity in \"", std::string(text), "\""));
    }
    const std::string_view name = text.substr(amp + 1, semi - amp - 1);
    if (name == "amp") {
      out.push_back('&');
    } else if (name == "lt") {
      out.push_back('<');
    } else if (name == "gt") {
      out.push_back('>');
    } else if (name == "quot") {
      out.push_back('"');
    } else if (name == "apos") {
      out.push_back('\'');
    } else if (std::optional<uint32_t> cp = ParseCharRef(name)) {
      AppendUtf8(*cp, &out);
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown XML entity \"&", std::string(name),
                                                     ";\" in \"", std::string(text), "\""));
    }
    i = semi + 1;
  }
  return out;
}

std::vector<std::string_view> XmlElements(std::string_view xml, std::string_view tag) {
  std::vector<std::string_view> out;
  const std::string open = absl::StrCat("<", std::string(tag));
  const std::string close = absl::StrCat("</", std::string(tag), ">");
  size_t pos = 0;
  while ((pos = xml.find(open, pos)) != std::string_view::npos) {
    size_t after = pos + open.size();
    if (after >= xml.size()) break;
    const char next = xml[after];
    if (next != '>' && next != ' ' && next != '/' && next != '\t' && next != '\n' && next != '\r') {
      pos = after;  // a longer tag name that starts with `tag`
      continue;
    }
    const size_t gt = xml.find('>', after);
    if (gt == std::string_view::npos) break;
    if (xml[gt - 1] == '/') {  // <tag/>
      out.push_back(std::string_view());
      pos = gt + 1;
      continue;
    }
    const size_t end = xml.find(close, gt + 1);
    if (end == std::string_view::npos) break;
    out.push_back(xml.substr(gt + 1, end - gt - 1));
    pos = end + close.size();
  }
  return out;
}

std::optional<std::string> XmlFirstText(std::string_view xml, std::string_view tag) {
  std::vector<std::string_view> elements = XmlElements(xml, tag);
  if (elements.empty()) return std::nullopt;
  absl::StatusOr<std::string> text = XmlUnescape(elements.front());
  if (!text.ok()) return std::string(elements.front());
  return *std::move(text);
}

absl::StatusOr<ListObjectsPage> ParseListObjectsV2(std::string_view xml) {
  if (XmlElements(xml, "ListBucketResult").empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a ListObjectsV2 response: \"", std::string(xml.substr(0, 200)), "\""));
  }
  ListObjectsPage page;
  // Keys live in <Contents> (CommonPrefixes, StartAfter etc. are not objects).
  for (std::string_view contents : XmlElements(xml, "Contents")) {
    std::vector<std::string_view> keys = XmlElements(contents, "Key");
    if (keys.empty()) {
      return absl::InvalidArgumentError("ListObjectsV2 response: a <Contents> without <Key>");
    }
    absl::StatusOr<std::string> key = XmlUnescape(keys.front());
    if (!key.ok()) return key.status();
    page.keys.push_back(*std::move(key));
  }
  page.truncated = XmlFirstText(xml, "IsTruncated").value_or("false") == "true";
  if (page.truncated) {
    page.next_continuation_token = XmlFirstText(xml, "NextContinuationToken").value_or("");
    if (page.next_continuation_token.empty()) {
      return absl::InvalidArgumentError(
          "ListObjectsV2 response is truncated but has no NextContinuationToken");
    }
  }
  return page;
}

std::optional<S3ErrorBody> ParseS3Error(std::string_view xml) {
  std::vector<std::string_view> error = XmlElements(xml, "Error");
  if (error.empty()) return std::nullopt;
  S3ErrorBody body;
  body.code = XmlFirstText(error.front(), "Code").value_or("");
  body.message = XmlFirstText(error.front(), "Message").value_or("");
  return body;
}

std::string CompleteMultipartUploadXml(const std::vector<CompletedPart>& parts) {
  std::string xml = "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">";
  for (const CompletedPart& part : parts) {
    absl::StrAppend(&xml, "<Part><PartNumber>", part.part_number, "</PartNumber><ETag>",
                    XmlEscape(part.etag), "</ETag></Part>");
  }
  xml += "</CompleteMultipartUpload>";
  return xml;
}

}  // namespace caliber::storage
