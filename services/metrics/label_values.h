// The fixed value sets of every metric label. Labels never carry open-ended values (job ids,
// URIs, worker names): each distinct value is a time series kept forever by Prometheus, so a
// value outside its set is recorded as "other" (and means a caller needs updating).
#pragma once

#include <array>
#include <cstddef>
#include <span>
#include <string_view>

namespace caliber::metrics {

inline constexpr std::string_view kOther = "other";

inline constexpr std::array<std::string_view, 5> kJobStates = {"queued", "running", "succeeded",
                                                               "failed", "cancelled"};
inline constexpr std::array<std::string_view, 3> kQuantMethods = {"rtn", "gptq", "gptq_lora"};
inline constexpr std::array<std::string_view, 7> kLinearModules = {
    "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
inline constexpr std::array<std::string_view, 2> kStorageBackends = {"file", "s3"};
inline constexpr std::array<std::string_view, 5> kStorageOps = {"get", "head", "put", "delete",
                                                                "list"};
inline constexpr std::array<std::string_view, 2> kDirections = {"sent", "received"};
// The inputs of a decoder layer's linear groups (HeRo-Q's transformed Hessians).
inline constexpr std::array<std::string_view, 4> kLinearInputs = {"qkv", "o", "gate_up", "down"};

// Index of `value` in `set`, compared ASCII case-insensitively (so "QUEUED", the proto enum's
// name, counts as "queued"); set.size() when absent (the "other" slot).
size_t LabelIndex(std::string_view value, std::span<const std::string_view> set);

// The canonical label value: the set's own spelling, or "other".
std::string_view CanonicalLabel(std::string_view value, std::span<const std::string_view> set);

}  // namespace caliber::metrics
