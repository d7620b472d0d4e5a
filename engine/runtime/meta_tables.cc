// Keys and rows of the engine's metadata tables (meta_tables.h).
#include "runtime/meta_tables.h"

#include "strata/key_codec.h"

namespace strata::runtime {

std::string_view BareName(std::string_view name) {
  while (!name.empty() && (name.front() == '*' || name.front() == '$')) name.remove_prefix(1);
  return name;
}

std::string DeployedModuleFile(const std::string& module) { return "modules/" + module + ".so"; }

std::string TablePrefix(std::string_view kind, std::string_view module, std::string_view declared,
                        int generation) {
  std::string prefix =
      std::string(kind) + std::string(module) + "." + std::string(BareName(declared));
  if (generation > 0) prefix += "@" + std::to_string(generation);
  return prefix + ".";
}

Value ModuleRowToValue(const ModuleRow& row) {
  Value::Map fields = {{Value("partitions"), Value(row.partitions)},
                       {Value("file"), Value(row.file)},
                       {Value("version"), Value(row.version)}};
  if (!row.checksum.empty()) fields.emplace_back(Value("checksum"), Value(row.checksum));
  if (row.depot_generation != 0) {
    fields.emplace_back(Value("depot_generation"), Value(row.depot_generation));
  }
  Value::Map generations;
  for (const auto& [pstate, generation] : row.pstate_generations) {
    if (generation != 0) generations.emplace_back(Value(pstate), Value(generation));
  }
  if (!generations.empty()) {
    fields.emplace_back(Value("pstate_generations"), Value::MapOf(std::move(generations)));
  }
  return Value::MapOf(std::move(fields));
}

Result<ModuleRow> ModuleRowFromValue(const std::string& module, const Value& v) {
  const auto malformed = [&] {
    return Status::Corruption("the metadata of module " + module +
                              " is malformed: " + v.ToString());
  };
  if (!v.is_map()) return malformed();
  ModuleRow row;
  const Value* partitions = v.Find("partitions");
  const Value* file = v.Find("file");
  if (partitions == nullptr || file == nullptr || !partitions->is_int() || !file->is_string() ||
      partitions->as_int() < 1 || partitions->as_int() > (1 << 20)) {
    return malformed();
  }
  row.partitions = static_cast<int>(partitions->as_int());
  row.file = file->as_string();
  if (const Value* checksum = v.Find("checksum")) {
    if (!checksum->is_string()) return malformed();
    row.checksum = checksum->as_string();
  }
  for (auto [field, target] :
       {std::pair{"version", &row.version}, std::pair{"depot_generation", &row.depot_generation}}) {
    if (const Value* n = v.Find(field)) {
      if (!n->is_int() || n->as_int() < 0 || n->as_int() > INT32_MAX) return malformed();
      *target = static_cast<int>(n->as_int());
    }
  }
  if (const Value* generations = v.Find("pstate_generations")) {
    if (!generations->is_map()) return malformed();
    for (const auto& [name, generation] : generations->as_map()) {
      if (!name.is_string() || !generation.is_int() || generation.as_int() < 0 ||
          generation.as_int() > INT32_MAX) {
        return malformed();
      }
      row.pstate_generations[name.as_string()] = static_cast<int>(generation.as_int());
    }
  }
  return row;
}

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

Value ProgressToValue(int64_t processed, bool backfilling) {
  if (!backfilling) return Value(processed);
  return Value::MapOf({{"offset", processed}, {"backfill", true}});
}

std::optional<Progress> ProgressFromValue(const Value& v) {
  if (v.is_int()) return Progress{v.as_int(), false};
  const Value* offset = v.is_map() ? v.Find("offset") : nullptr;
  const Value* backfill = v.is_map() ? v.Find("backfill") : nullptr;
  if (offset == nullptr || !offset->is_int() || backfill == nullptr || !backfill->is_bool()) {
    return std::nullopt;
  }
  return Progress{offset->as_int(), backfill->as_bool()};
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
