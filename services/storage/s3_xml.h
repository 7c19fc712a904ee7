// The few S3 XML documents Caliber reads and writes (ListObjectsV2 pages, error bodies,
// multipart upload ids, the CompleteMultipartUpload request). S3's responses are flat,
// namespace-free and attribute-free where it matters, so a scanner for <Tag>text</Tag> is
// enough; text is entity-decoded (&amp; &lt; &gt; &quot; &apos; and numeric references),
// which keys containing '&' or '<' need.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace caliber::storage {

// Escapes text for an XML element body.
std::string XmlEscape(std::string_view text);
// Decodes entity and character references; InvalidArgument for a malformed one.
absl::StatusOr<std::string> XmlUnescape(std::string_view text);

// The raw (still escaped) contents of each <tag>...</tag> (or "" for <tag/>) in `xml`, in
// document order, not descending into matches.
std::vector<std::string_view> XmlElements(std::string_view xml, std::string_view tag);
// The decoded text of the first <tag> element, nullopt if there is none.
std::optional<std::string> XmlFirstText(std::string_view xml, std::string_view tag);

struct ListObjectsPage {
  std::vector<std::string> keys;  // decoded, in response order
  bool truncated = false;
  std::string next_continuation_token;
};
// A ListObjectsV2 response body. InvalidArgument if it is not one (no ListBucketResult, a
// truncated page without a continuation token, an undecodable key).
absl::StatusOr<ListObjectsPage> ParseListObjectsV2(std::string_view xml);

struct S3ErrorBody {
  std::string code;  // e.g. "NoSuchKey", "AccessDenied", "SignatureDoesNotMatch"
  std::string message;
};
// The <Error> document S3 sends with failures; nullopt for a body that is not one.
std::optional<S3ErrorBody> ParseS3Error(std::string_view xml);

struct CompletedPart {
  int part_number = 0;
  std::string etag;  // as returned by UploadPart, quotes included
};
std::string CompleteMultipartUploadXml(const std::vector<CompletedPart>& parts);

}  // namespace caliber::storage
