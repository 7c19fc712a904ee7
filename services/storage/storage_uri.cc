#include "services/storage/storage.h"

namespace caliber::storage {

std::string JoinUri(std::string_view base, std::string_view name) {
  while (!base.empty() && base.back() == '/') base.remove_suffix(1);
  while (!name.empty() && name.front() == '/') name.remove_prefix(1);
  std::string out(base);
  out += '/';
  out += name;
  return out;
}

}  // namespace caliber::storage
