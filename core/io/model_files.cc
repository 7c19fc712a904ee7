#include "core/io/model_files.h"

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"

namespace caliber {

namespace fs = std::filesystem;

absl::StatusOr<nlohmann::json> ReadConfigJson(const std::string& dir) {
  std::ifstream in(fs::path(dir) / "config.json");
  nlohmann::json config = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (config.is_discarded() || !config.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(dir, "/config.json: not a JSON object"));
  }
  return config;
}

absl::Status CopyTokenizerFiles(const std::string& from, const std::string& to) {
  std::error_code ec;
  for (const char* file : kTokenizerFiles) {
    const fs::path src = fs::path(from) / file;
    if (fs::exists(src, ec) &&
        !fs::copy_file(src, fs::path(to) / file, fs::copy_options::overwrite_existing, ec)) {
      return absl::InternalError(absl::StrCat("cannot copy ", src.string(), ": ", ec.message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace caliber
