// Keys and rows of the engine's metadata tables (meta_tables.h).
#include "runtime/meta_tables.h"

#include "strata/key_codec.h"

namespace strata::runtime {

std::string ProgressKey(const std::string& module, const std::string& topology,
                        const std::string& depot, int partition) {
  std::string key;
  AppendKey(Value(module), &key);
  AppendKey(Value(topology), &key);
  AppendKey(Value(depot), &key);
  AppendKey(Value(partition), &key);
  return key;
}

std::string FailureKey(const std::string& module, const TopologyFailure& f) {
  std::string key = ProgressKey(module, f.topology, f.depot, f.partition);
  AppendKey(Value(f.offset), &key);
  return key;
}

std::string ShortFailureMessage(std::string message) {
  if (message.size() <= kMaxFailureMessageBytes) return message;
  constexpr size_t kMarkerRoom = 40;  // " … (N bytes more)" with N up to 20 digits
  size_t cut = kMaxFailureMessageBytes - kMarkerRoom;
  while (cut > 0 && (static_cast<unsigned char>(message[cut]) & 0xC0) == 0x80) --cut;
  const size_t more = message.size() - cut;
  message.resize(cut);
  message += " \u2026 (" + std::to_string(more) + " bytes more)";
  return message;
}

Value FailureToValue(const TopologyFailure& f) {
  return Value::MapOf({{"topology", f.topology},
                       {"depot", f.depot},
                       {"partition", f.partition},
                       {"offset", f.offset},
                       {"message", f.message}});
}

std::optional<TopologyFailure> FailureFromValue(const Value& v) {
  if (!v.is_map()) return std::nullopt;
  const Value* topology = v.Find("topology");
  const Value* depot = v.Find("depot");
  const Value* partition = v.Find("partition");
  const Value* offset = v.Find("offset");
  const Value* message = v.Find("message");
  if (!topology || !depot || !partition || !offset || !message || !topology->is_string() ||
      !depot->is_string() || !partition->is_int() || !offset->is_int() || !message->is_string()) {
    return std::nullopt;
  }
  // Rows recorded before messages were cut may hold a whole record: cut when read.
  return TopologyFailure{topology->as_string(), depot->as_string(),
                         static_cast<int>(partition->as_int()), offset->as_int(),
                         ShortFailureMessage(message->as_string())};
}

}  // namespace strata::runtime
