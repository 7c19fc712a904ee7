#include "core/model/config.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "core/util/json_depth.h"
#include "nlohmann/json.hpp"

namespace caliber {
namespace {

using json = nlohmann::json;

// Debian's abseil keeps its own absl::string_view (ABSL_OPTION_USE_STD_STRING_VIEW is 0), so
// StrCat does not accept std::string_view pieces; convert them on the way in.
template <typename T>
decltype(auto) Piece(const T& value) {
  if constexpr (std::is_same_v<T, std::string_view>) {
    return absl::string_view(value.data(), value.size());
  } else {
    return (value);
  }
}
template <typename... Args>
std::string Cat(const Args&... args) {
  return absl::StrCat(Piece(args)...);
}

constexpr std::string_view kSupportedArchitectures =
    "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM";

// Values transformers' config classes use for fields a config.json may omit.
struct ArchDefaults {
  int max_position_embeddings;
  std::optional<int> head_dim;  // nullopt: hidden_size / num_attention_heads
  int sliding_window;           // when the window is enabled but its size is absent
  int max_window_layers;        // Qwen2/Qwen3 only
};

ArchDefaults DefaultsFor(Architecture arch) {
  switch (arch) {
    case Architecture::kLlama:
      return {2048, std::nullopt, 0, 0};
    case Architecture::kMistral:
      return {4096 * 32, std::nullopt, 4096, 0};
    case Architecture::kQwen2:
      return {32768, std::nullopt, 4096, 28};
    case Architecture::kQwen3:
      return {32768, 128, 4096, 28};
  }
  return {2048, std::nullopt, 0, 0};
}

// A short rendering of a JSON value for error messages. Containers are named, not dumped:
// the input may be hostile (huge or deeply nested) and dump() recurses.
std::string Describe(const json& value) {
  switch (value.type()) {
    case json::value_t::object:
      return "an object";
    case json::value_t::array:
      return "an array";
    case json::value_t::string: {
      constexpr size_t kMaxChars = 64;
      const std::string& s = value.get_ref<const std::string&>();
      const json shown = s.size() <= kMaxChars ? s : s.substr(0, kMaxChars) + "...";
      return shown.dump(-1, ' ', false, json::error_handler_t::replace);
    }
    default:
      return value.dump(-1, ' ', false, json::error_handler_t::replace);
  }
}

// A name from the config in single quotes ('yarn'), escaped and truncated like Describe.
std::string Quoted(std::string_view name) {
  const std::string escaped = Describe(json(name));
  return Cat("'", std::string_view(escaped).substr(1, escaped.size() - 2), "'");
}

// The value of a JSON integer if it fits in int64 (unsigned JSON integers may not).
std::optional<int64_t> AsInt64(const json& value) {
  if (value.is_number_unsigned()) {
    const uint64_t u = value.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (value.is_number_integer()) return value.get<int64_t>();
  return std::nullopt;
}

// Typed, validated access to the fields of one JSON object. Every error names the label,
// the field (with `prefix`, e.g. "rope_scaling.") and the offending value.
class FieldReader {
 public:
  FieldReader(const json& object, std::string_view label, std::string_view prefix = "")
      : object_(object), label_(label), prefix_(prefix) {}

  // The field's value; nullptr when absent or null (transformers treats None as unset).
  const json* Find(std::string_view key) const {
    const auto it = object_.find(std::string(key));
    if (it == object_.end() || it->is_null()) return nullptr;
    return &*it;
  }

  absl::Status Invalid(std::string_view key, std::string_view message) const {
    return absl::InvalidArgumentError(Cat(label_, ": ", prefix_, key, " ", message));
  }
  absl::Status Invalid(std::string_view key, std::string_view expectation,
                       const json& value) const {
    return Invalid(key, Cat("must be ", expectation, ", got ", Describe(value)));
  }

  // An integer in [min, max]; `fallback` when absent, an error when absent and no fallback.
  absl::StatusOr<int> Int(std::string_view key, int min, int max,
                          std::optional<int> fallback = std::nullopt) const {
    const json* value = Find(key);
    if (value == nullptr) {
      if (fallback.has_value()) return *fallback;
      return Invalid(key, "is missing");
    }
    const std::string expectation = Cat("an integer in [", min, ", ", max, "]");
    const std::optional<int64_t> v = AsInt64(*value);
    if (!v.has_value() || *v < min || *v > max) return Invalid(key, expectation, *value);
    return static_cast<int>(*v);
  }

  absl::StatusOr<int> PositiveInt(std::string_view key, int max,
                                  std::optional<int> fallback = std::nullopt) const {
    return Int(key, 1, max, fallback);
  }

  // A finite number > 0.
  absl::StatusOr<double> PositiveNumber(std::string_view key,
                                        std::optional<double> fallback = std::nullopt) const {
    const json* value = Find(key);
    if (value == nullptr) {
      if (fallback.has_value()) return *fallback;
      return Invalid(key, "is missing");
    }
    if (!value->is_number()) return Invalid(key, "a positive number", *value);
    const double v = value->get<double>();
    if (!std::isfinite(v) || v <= 0) return Invalid(key, "a positive number", *value);
    return v;
  }

  absl::StatusOr<bool> Bool(std::string_view key, bool fallback) const {
    const json* value = Find(key);
    if (value == nullptr) return fallback;
    if (!value->is_boolean()) return Invalid(key, "true or false", *value);
    return value->get<bool>();
  }

  // A string field; nullopt when absent.
  absl::StatusOr<std::optional<std::string>> String(std::string_view key) const {
    const json* value = Find(key);
    if (value == nullptr) return std::optional<std::string>();
    if (!value->is_string()) return Invalid(key, "a string", *value);
    return std::optional<std::string>(value->get<std::string>());
  }

  // Whether the key exists at all, null included.
  bool Present(std::string_view key) const { return object_.contains(std::string(key)); }

  std::string_view label() const { return label_; }

 private:
  const json& object_;
  std::string_view label_;
  std::string_view prefix_;
};

absl::StatusOr<Architecture> ArchitectureFromClassName(std::string_view name,
                                                       std::string_view label) {
  for (Architecture arch :
       {Architecture::kLlama, Architecture::kMistral, Architecture::kQwen2, Architecture::kQwen3}) {
    if (name == ArchitectureName(arch)) return arch;
  }
  return absl::InvalidArgumentError(Cat(label, ": unsupported architecture ", Quoted(name),
                                        " (supported: ", kSupportedArchitectures, ")"));
}

// `architectures[0]`, or `model_type` for configs written without `architectures`.
absl::StatusOr<Architecture> ResolveArchitecture(const FieldReader& fields) {
  if (const json* archs = fields.Find("architectures")) {
    if (!archs->is_array()) return fields.Invalid("architectures", "a list of strings", *archs);
    if (!archs->empty()) {
      const json& first = archs->front();
      if (!first.is_string()) {
        return fields.Invalid("architectures[0]", "a string", first);
      }
      return ArchitectureFromClassName(first.get_ref<const std::string&>(), fields.label());
    }
  }
  absl::StatusOr<std::optional<std::string>> model_type = fields.String("model_type");
  if (!model_type.ok()) return model_type.status();
  if (!model_type->has_value()) {
    return absl::InvalidArgumentError(
        Cat(fields.label(), ": neither 'architectures' nor 'model_type' names the model class"));
  }
  const std::string& type = **model_type;
  if (type == "llama") return Architecture::kLlama;
  if (type == "mistral") return Architecture::kMistral;
  if (type == "qwen2") return Architecture::kQwen2;
  if (type == "qwen3") return Architecture::kQwen3;
  return fields.Invalid("model_type", Cat("names an unsupported model ", Quoted(type),
                                          " (supported: llama, mistral, qwen2, qwen3)"));
}

// rope_scaling (or transformers v5's rope_parameters, which carries the same keys).
absl::StatusOr<RopeScaling> ParseRopeScaling(const json& value, std::string_view field,
                                             std::string_view label) {
  if (!value.is_object()) {
    return absl::InvalidArgumentError(
        Cat(label, ": ", field, " must be an object or null, got ", Describe(value)));
  }
  const std::string prefix = Cat(field, ".");
  const FieldReader fields(value, label, prefix);

  const json* type = fields.Find("rope_type");
  std::string_view type_key = "rope_type";
  if (type == nullptr) {
    type = fields.Find("type");
    type_key = "type";
  }
  if (type == nullptr) {
    return absl::InvalidArgumentError(Cat(label, ": ", field, " has no 'rope_type'"));
  }
  if (!type->is_string()) return fields.Invalid(type_key, "a string", *type);
  const std::string& name = type->get_ref<const std::string&>();

  RopeScaling scaling;
  if (name == "default") return scaling;
  if (name != "llama3") {
    return absl::InvalidArgumentError(Cat(label, ": unsupported ", field, " type ", Quoted(name),
                                          " (supported: llama3, default)"));
  }
  scaling.type = RopeScaling::Type::kLlama3;
  absl::StatusOr<double> factor = fields.PositiveNumber("factor");
  if (!factor.ok()) return factor.status();
  absl::StatusOr<double> low = fields.PositiveNumber("low_freq_factor");
  if (!low.ok()) return low.status();
  absl::StatusOr<double> high = fields.PositiveNumber("high_freq_factor");
  if (!high.ok()) return high.status();
  absl::StatusOr<int> original =
      fields.PositiveInt("original_max_position_embeddings", kMaxModelPositions);
  if (!original.ok()) return original.status();
  if (*high <= *low) {
    return fields.Invalid("high_freq_factor",
                          Cat("(", *high, ") must be greater than low_freq_factor (", *low, ")"));
  }
  scaling.factor = *factor;
  scaling.low_freq_factor = *low;
  scaling.high_freq_factor = *high;
  scaling.original_max_position_embeddings = *original;
  return scaling;
}

// One token id in [0, vocab_size).
absl::StatusOr<int> TokenId(const FieldReader& fields, std::string_view key, const json& value,
                            int vocab_size) {
  const std::optional<int64_t> id = AsInt64(value);
  if (!id.has_value() || *id < 0 || *id >= vocab_size) {
    return fields.Invalid(key, Cat("a token id in [0, ", vocab_size, ")"), value);
  }
  return static_cast<int>(*id);
}

// The shape fields: sizes, heads and head_dim, with their cross-checks.
absl::Status ParseShape(const FieldReader& fields, ModelConfig& c) {
  absl::StatusOr<int> v = fields.PositiveInt("hidden_size", kMaxModelDim);
  if (!v.ok()) return v.status();
  c.hidden_size = *v;
  v = fields.PositiveInt("intermediate_size", kMaxModelDim);
  if (!v.ok()) return v.status();
  c.intermediate_size = *v;
  v = fields.PositiveInt("num_hidden_layers", kMaxModelLayers);
  if (!v.ok()) return v.status();
  c.num_hidden_layers = *v;
  v = fields.PositiveInt("num_attention_heads", kMaxModelDim);
  if (!v.ok()) return v.status();
  c.num_attention_heads = *v;
  v = fields.PositiveInt("num_key_value_heads", kMaxModelDim, c.num_attention_heads);
  if (!v.ok()) return v.status();
  c.num_key_value_heads = *v;
  v = fields.PositiveInt("vocab_size", kMaxModelDim);
  if (!v.ok()) return v.status();
  c.vocab_size = *v;
  v = fields.PositiveInt("max_position_embeddings", kMaxModelPositions,
                         DefaultsFor(c.arch).max_position_embeddings);
  if (!v.ok()) return v.status();
  c.max_position_embeddings = *v;

  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    return fields.Invalid(
        "num_attention_heads",
        Cat("(", c.num_attention_heads, ") must be a multiple of num_key_value_heads (",
            c.num_key_value_heads, ")"));
  }

  const std::optional<int> default_head_dim = DefaultsFor(c.arch).head_dim;
  if (fields.Find("head_dim") != nullptr || default_head_dim.has_value()) {
    v = fields.PositiveInt("head_dim", kMaxModelDim, default_head_dim);
    if (!v.ok()) return v.status();
    c.head_dim = *v;
  } else {
    if (c.hidden_size % c.num_attention_heads != 0) {
      return fields.Invalid("hidden_size",
                            Cat("(", c.hidden_size, ") must be a multiple of num_attention_heads (",
                                c.num_attention_heads, ") when head_dim is not given"));
    }
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  if (c.head_dim % 2 != 0) {
    return fields.Invalid("head_dim", Cat("must be even for rotary embeddings, got ", c.head_dim));
  }
  if (static_cast<int64_t>(c.num_attention_heads) * c.head_dim > kMaxModelDim) {
    return fields.Invalid("num_attention_heads", Cat("(", c.num_attention_heads, ") x head_dim (",
                                                     c.head_dim, ") exceeds ", kMaxModelDim));
  }
  return absl::OkStatus();
}

// Norm epsilon, activation and rotary embedding parameters.
absl::Status ParseNumerics(const FieldReader& fields, ModelConfig& c) {
  absl::StatusOr<double> eps = fields.PositiveNumber("rms_norm_eps", 1e-6);
  if (!eps.ok()) return eps.status();
  c.rms_norm_eps = *eps;

  absl::StatusOr<std::optional<std::string>> act = fields.String("hidden_act");
  if (!act.ok()) return act.status();
  if (act->has_value() && **act != "silu") {
    return fields.Invalid("hidden_act", Cat("names an unsupported activation ", Quoted(**act),
                                            " (only silu is supported)"));
  }

  // transformers v5 moved rope_theta and the scaling into `rope_parameters`.
  const json* rope_parameters = fields.Find("rope_parameters");
  const bool nested_theta = fields.Find("rope_theta") == nullptr && rope_parameters != nullptr &&
                            rope_parameters->is_object();
  if (nested_theta) {
    absl::StatusOr<double> theta = FieldReader(*rope_parameters, fields.label(), "rope_parameters.")
                                       .PositiveNumber("rope_theta", 10000.0);
    if (!theta.ok()) return theta.status();
    c.rope_theta = *theta;
  } else {
    absl::StatusOr<double> theta = fields.PositiveNumber("rope_theta", 10000.0);
    if (!theta.ok()) return theta.status();
    c.rope_theta = *theta;
  }

  if (const json* scaling = fields.Find("rope_scaling")) {
    absl::StatusOr<RopeScaling> parsed = ParseRopeScaling(*scaling, "rope_scaling", fields.label());
    if (!parsed.ok()) return parsed.status();
    c.rope_scaling = *parsed;
  } else if (rope_parameters != nullptr) {
    absl::StatusOr<RopeScaling> parsed =
        ParseRopeScaling(*rope_parameters, "rope_parameters", fields.label());
    if (!parsed.ok()) return parsed.status();
    c.rope_scaling = *parsed;
  }
  return absl::OkStatus();
}

// Biases, q/k norms and the sliding window: the per-architecture differences.
absl::Status ParseArchitectureFeatures(const FieldReader& fields, ModelConfig& c) {
  absl::StatusOr<bool> tie = fields.Bool("tie_word_embeddings", false);
  if (!tie.ok()) return tie.status();
  c.tie_word_embeddings = *tie;

  absl::StatusOr<bool> flag = false;
  switch (c.arch) {
    case Architecture::kLlama:
      flag = fields.Bool("attention_bias", false);
      if (!flag.ok()) return flag.status();
      c.attention_bias = c.attention_output_bias = *flag;
      flag = fields.Bool("mlp_bias", false);
      if (!flag.ok()) return flag.status();
      c.mlp_bias = *flag;
      break;
    case Architecture::kMistral:
      break;
    case Architecture::kQwen2:
      c.attention_bias = true;  // hard-wired in Qwen2Attention; o_proj has none
      break;
    case Architecture::kQwen3:
      flag = fields.Bool("attention_bias", false);
      if (!flag.ok()) return flag.status();
      c.attention_bias = c.attention_output_bias = *flag;
      c.qk_norm = true;
      break;
  }

  const ArchDefaults defaults = DefaultsFor(c.arch);
  bool windowed = c.arch == Architecture::kMistral;
  if (c.arch == Architecture::kQwen2 || c.arch == Architecture::kQwen3) {
    flag = fields.Bool("use_sliding_window", false);
    if (!flag.ok()) return flag.status();
    windowed = *flag;
  }
  if (!windowed) return absl::OkStatus();
  // An explicit null disables the window; an absent key means transformers' default size.
  if (fields.Present("sliding_window")) {
    if (fields.Find("sliding_window") != nullptr) {
      absl::StatusOr<int> window = fields.PositiveInt("sliding_window", kMaxModelPositions);
      if (!window.ok()) return window.status();
      c.sliding_window = *window;
    }
  } else {
    c.sliding_window = defaults.sliding_window;
  }
  if (c.arch != Architecture::kMistral) {
    absl::StatusOr<int> first =
        fields.Int("max_window_layers", 0, kMaxModelLayers, defaults.max_window_layers);
    if (!first.ok()) return first.status();
    c.sliding_window_first_layer = *first;
  }
  return absl::OkStatus();
}

// bos_token_id (an id or null) and eos_token_id (an id, a list of ids, or null).
absl::Status ParseSpecialTokens(const FieldReader& fields, ModelConfig& c) {
  if (const json* bos = fields.Find("bos_token_id")) {
    absl::StatusOr<int> id = TokenId(fields, "bos_token_id", *bos, c.vocab_size);
    if (!id.ok()) return id.status();
    c.bos_token_id = *id;
  }
  if (const json* eos = fields.Find("eos_token_id")) {
    if (!eos->is_array()) {
      absl::StatusOr<int> id = TokenId(fields, "eos_token_id", *eos, c.vocab_size);
      if (!id.ok()) return id.status();
      c.eos_token_ids.push_back(*id);
      return absl::OkStatus();
    }
    for (size_t i = 0; i < eos->size(); ++i) {
      absl::StatusOr<int> id =
          TokenId(fields, Cat("eos_token_id[", i, "]"), (*eos)[i], c.vocab_size);
      if (!id.ok()) return id.status();
      c.eos_token_ids.push_back(*id);
    }
  }
  return absl::OkStatus();
}

// The integer QuantizationArgs of a compressed-tensors config group (`weights` or
// `input_activations`), as far as Caliber can load them.
struct IntQuantArgs {
  int bits = 8;
  bool sym = true;
  std::string strategy;
  int group_size = -1;   // positive for strategy "group"
  bool dynamic = false;
  std::string actorder;  // "", "group" or "weight" (aliases "dynamic"/"static" and booleans mapped)
};

absl::StatusOr<IntQuantArgs> ParseIntQuantArgs(const json& value, std::string_view label,
                                               const std::string& prefix) {
  const FieldReader f(value, label, prefix);
  IntQuantArgs a;
  absl::StatusOr<std::optional<std::string>> type = f.String("type");
  if (!type.ok()) return type.status();
  if (type->has_value() && **type != "int") {
    return f.Invalid("type", Cat(Quoted(**type), " is not supported (supported: int)"));
  }
  absl::StatusOr<int> bits = f.Int("num_bits", 1, 16, 8);
  if (!bits.ok()) return bits.status();
  a.bits = *bits;
  absl::StatusOr<bool> sym = f.Bool("symmetric", true);
  if (!sym.ok()) return sym.status();
  a.sym = *sym;
  if (const json* d = f.Find("dynamic")) {
    if (!d->is_boolean()) return f.Invalid("dynamic", "true or false", *d);
    a.dynamic = d->get<bool>();
  }
  absl::StatusOr<int> group = f.Int("group_size", -1, kMaxModelDim, -1);
  if (!group.ok()) return group.status();
  absl::StatusOr<std::optional<std::string>> strategy = f.String("strategy");
  if (!strategy.ok()) return strategy.status();
  if (strategy->has_value()) {
    a.strategy = **strategy;
  } else if (f.Find("group_size") == nullptr) {  // compressed-tensors infers it from group_size
    a.strategy = "tensor";
  } else {
    a.strategy = *group > 0 ? "group" : "channel";
  }
  if (a.strategy == "group") {
    if (*group <= 0) {
      return f.Invalid("group_size", Cat("must be positive for strategy 'group', got ", *group));
    }
    a.group_size = *group;
  } else if (*group > 0) {
    return f.Invalid("group_size", Cat("must be absent or -1 for strategy ", Quoted(a.strategy),
                                       ", got ", *group));
  }
  if (const json* order = f.Find("actorder")) {
    if (order->is_boolean()) {
      a.actorder = order->get<bool>() ? "group" : "";
    } else if (order->is_string() && (*order == "group" || *order == "dynamic")) {
      a.actorder = "group";
    } else if (order->is_string() && (*order == "weight" || *order == "static")) {
      a.actorder = "weight";
    } else {
      return f.Invalid("actorder", "null, a boolean, 'group', 'weight', 'dynamic' or 'static'",
                       *order);
    }
  }
  return a;
}

// quantization_config of a compressed-tensors checkpoint: the pack-quantized W·A16 / W·A8
// layouts Caliber writes (one config group targeting Linear, lm_head ignored).
absl::Status ParseCompressedTensors(const FieldReader& qf, ModelConfig& c) {
  absl::StatusOr<std::optional<std::string>> format = qf.String("format");
  if (!format.ok()) return format.status();
  if (!format->has_value() || **format != "pack-quantized") {
    return qf.Invalid("format", Cat(format->has_value() ? Quoted(**format) : "(missing)",
                                    " is not supported (supported: pack-quantized)"));
  }
  absl::StatusOr<std::optional<std::string>> status = qf.String("quantization_status");
  if (!status.ok()) return status.status();
  if (status->has_value() && **status != "compressed") {
    return qf.Invalid("quantization_status",
                      Cat(Quoted(**status), " is not supported (supported: compressed)"));
  }
  for (const char* unsupported : {"sparsity_config", "kv_cache_scheme", "transform_config"}) {
    const json* v = qf.Find(unsupported);
    if (v != nullptr && !(v->is_object() && v->empty())) {
      return qf.Invalid(unsupported, "is not supported (must be null or absent)");
    }
  }
  bool lm_head_ignored = false;
  if (const json* ignore = qf.Find("ignore")) {
    if (!ignore->is_array()) return qf.Invalid("ignore", "a list of strings", *ignore);
    for (const json& name : *ignore) {
      if (!name.is_string()) return qf.Invalid("ignore", "a list of strings", *ignore);
      lm_head_ignored = lm_head_ignored || name == "lm_head";
    }
  }
  if (!lm_head_ignored) {
    return qf.Invalid("ignore", "must list 'lm_head' (a quantized lm_head is not supported)");
  }
  const json* groups = qf.Find("config_groups");
  if (groups == nullptr || !groups->is_object() || groups->size() != 1) {
    return qf.Invalid("config_groups",
                      "must hold exactly one group (per-module schemes are not supported)");
  }
  const std::string group_name = groups->begin().key();
  const json& group = groups->begin().value();
  if (!group.is_object()) return qf.Invalid(Cat("config_groups.", group_name), "an object", group);
  const std::string prefix = Cat("quantization_config.config_groups.", group_name, ".");
  const FieldReader gf(group, qf.label(), prefix);
  const json* targets = gf.Find("targets");
  if (targets == nullptr || !targets->is_array() || targets->empty() ||
      !std::all_of(targets->begin(), targets->end(),
                   [](const json& t) { return t == "Linear"; })) {
    return gf.Invalid("targets", "must be [\"Linear\"] (other targets are not supported)");
  }
  if (gf.Find("output_activations") != nullptr) {
    return gf.Invalid("output_activations", "is not supported (must be null or absent)");
  }
  const json* weights = gf.Find("weights");
  if (weights == nullptr || !weights->is_object()) {
    return gf.Invalid("weights", "must be an object (weight quantization arguments)");
  }
  const std::string wprefix = Cat(prefix, "weights.");
  absl::StatusOr<IntQuantArgs> w = ParseIntQuantArgs(*weights, qf.label(), wprefix);
  if (!w.ok()) return w.status();
  const FieldReader wf(*weights, qf.label(), wprefix);
  if (w->bits != 2 && w->bits != 3 && w->bits != 4 && w->bits != 8) {
    return wf.Invalid("num_bits", Cat("must be 2, 3, 4 or 8, got ", w->bits));
  }
  if (w->strategy != "group" && w->strategy != "channel") {
    return wf.Invalid("strategy", Cat(Quoted(w->strategy), " is not supported (group, channel)"));
  }
  if (w->dynamic) return wf.Invalid("dynamic", "must be false for weights");
  CompressedTensorsQuantization ct;
  ct.bits = w->bits;
  ct.group_size = w->strategy == "group" ? w->group_size : -1;
  ct.sym = w->sym;
  ct.g_idx = w->actorder == "group";
  if (ct.g_idx && w->strategy != "group") {
    return wf.Invalid("actorder", "'group' needs strategy 'group'");
  }
  if (const json* acts = gf.Find("input_activations")) {
    if (!acts->is_object()) return gf.Invalid("input_activations", "an object or null", *acts);
    const std::string aprefix = Cat(prefix, "input_activations.");
    absl::StatusOr<IntQuantArgs> in = ParseIntQuantArgs(*acts, qf.label(), aprefix);
    if (!in.ok()) return in.status();
    const FieldReader af(*acts, qf.label(), aprefix);
    // What Caliber can evaluate: vLLM's dynamic per-token symmetric INT8 (core/quant/act_quant.h).
    if (in->bits != 8) return af.Invalid("num_bits", Cat("must be 8, got ", in->bits));
    if (!in->sym) return af.Invalid("symmetric", "must be true (asymmetric activations are not supported)");
    if (in->strategy != "token") {
      return af.Invalid("strategy", Cat(Quoted(in->strategy), " is not supported (token)"));
    }
    if (!in->dynamic) return af.Invalid("dynamic", "must be true (static activation scales are not supported)");
    ct.act_bits = in->bits;
  }
  c.compressed_tensors = ct;
  return absl::OkStatus();
}

// quantization_config of a checkpoint Caliber can load (and dequantize): GPTQ v1 and
// compressed-tensors pack-quantized.
absl::Status ParseQuantization(const FieldReader& fields, ModelConfig& c) {
  const json* q = fields.Find("quantization_config");
  if (q == nullptr) return absl::OkStatus();
  if (!q->is_object()) return fields.Invalid("quantization_config", "an object", *q);
  const FieldReader qf(*q, fields.label(), "quantization_config.");
  absl::StatusOr<std::optional<std::string>> method = qf.String("quant_method");
  if (!method.ok()) return method.status();
  if (method->has_value() && **method == "compressed-tensors") {
    return ParseCompressedTensors(qf, c);
  }
  if (!method->has_value() || **method != "gptq") {
    return qf.Invalid("quant_method", Cat(method->has_value() ? Quoted(**method) : "(missing)",
                                          " is not supported (supported: gptq, compressed-tensors)"));
  }
  absl::StatusOr<std::optional<std::string>> format = qf.String("checkpoint_format");
  if (!format.ok()) return format.status();
  if (format->has_value() && **format != "gptq") {
    return qf.Invalid("checkpoint_format",
                      Cat(Quoted(**format), " is not supported (supported: gptq)"));
  }
  GptqQuantization g;
  absl::StatusOr<int> bits = qf.Int("bits", 2, 8);
  if (!bits.ok()) return bits.status();
  if (*bits != 2 && *bits != 3 && *bits != 4 && *bits != 8) {
    return qf.Invalid("bits", "2, 3, 4 or 8", *qf.Find("bits"));
  }
  g.bits = *bits;
  absl::StatusOr<int> group = qf.Int("group_size", -1, kMaxModelDim, -1);
  if (!group.ok()) return group.status();
  if (*group == 0) return qf.Invalid("group_size", "-1 or positive", *qf.Find("group_size"));
  g.group_size = *group;
  absl::StatusOr<bool> desc_act = qf.Bool("desc_act", false);
  if (!desc_act.ok()) return desc_act.status();
  g.desc_act = *desc_act;
  absl::StatusOr<bool> sym = qf.Bool("sym", true);
  if (!sym.ok()) return sym.status();
  g.sym = *sym;
  c.gptq = g;
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return absl::NotFoundError(Cat(path, ": no such file"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(Cat(path, ": cannot be opened"));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return absl::InvalidArgumentError(Cat(path, ": read failed"));
  return text;
}

}  // namespace

std::string_view ArchitectureName(Architecture arch) {
  switch (arch) {
    case Architecture::kLlama:
      return "LlamaForCausalLM";
    case Architecture::kMistral:
      return "MistralForCausalLM";
    case Architecture::kQwen2:
      return "Qwen2ForCausalLM";
    case Architecture::kQwen3:
      return "Qwen3ForCausalLM";
  }
  return "unknown";
}

absl::StatusOr<ModelConfig> ModelConfig::FromJson(std::string_view json_text,
                                                  std::string_view label) {
  // Real configs are a few KB and a few levels deep; bound both before building a DOM.
  constexpr size_t kMaxConfigBytes = 4 << 20;
  constexpr int kMaxConfigDepth = 16;
  if (json_text.size() > kMaxConfigBytes) {
    return absl::InvalidArgumentError(
        Cat(label, ": ", std::to_string(json_text.size()), " bytes is too large for a config (limit ",
            std::to_string(kMaxConfigBytes), ")"));
  }
  if (!JsonNestingWithin(json_text, kMaxConfigDepth)) {
    return absl::InvalidArgumentError(
        Cat(label, ": nests deeper than ", std::to_string(kMaxConfigDepth), " levels"));
  }
  const json root = json::parse(json_text.begin(), json_text.end(), /*cb=*/nullptr,
                                /*allow_exceptions=*/false);
  if (root.is_discarded()) {
    return absl::InvalidArgumentError(Cat(label, ": not valid JSON"));
  }
  if (!root.is_object()) {
    return absl::InvalidArgumentError(Cat(label, ": must be a JSON object, got ", Describe(root)));
  }
  const FieldReader fields(root, label);
  ModelConfig c;
  absl::StatusOr<Architecture> arch = ResolveArchitecture(fields);
  if (!arch.ok()) return arch.status();
  c.arch = *arch;
  if (absl::Status s = ParseShape(fields, c); !s.ok()) return s;
  if (absl::Status s = ParseNumerics(fields, c); !s.ok()) return s;
  if (absl::Status s = ParseArchitectureFeatures(fields, c); !s.ok()) return s;
  if (absl::Status s = ParseSpecialTokens(fields, c); !s.ok()) return s;
  if (absl::Status s = ParseQuantization(fields, c); !s.ok()) return s;
  // Informational; transformers v5 writes `dtype` instead of `torch_dtype`.
  for (std::string_view key : {"torch_dtype", "dtype"}) {
    const json* dtype = fields.Find(key);
    if (dtype != nullptr && dtype->is_string() && c.torch_dtype.empty()) {
      c.torch_dtype = dtype->get<std::string>();
    }
  }
  return c;
}

absl::StatusOr<ModelConfig> ModelConfig::FromFile(const std::string& path) {
  std::error_code ec;
  const std::string file = std::filesystem::is_directory(path, ec)
                               ? (std::filesystem::path(path) / "config.json").string()
                               : path;
  absl::StatusOr<std::string> text = ReadFile(file);
  if (!text.ok()) return text.status();
  return FromJson(*text, file);
}

std::string LayerTensorName(int layer, std::string_view suffix) {
  return Cat("model.layers.", layer, ".", suffix);
}

}  // namespace caliber
