#include "replication/group.h"

#include <charconv>
#include <vector>

#include "strata/key_codec.h"

namespace strata::replication {
namespace {

std::vector<std::string_view> SplitDots(std::string_view name) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t dot = name.find('.', start);
    parts.push_back(name.substr(start, dot == std::string_view::npos ? dot : dot - start));
    if (dot == std::string_view::npos) return parts;
    start = dot + 1;
  }
}

std::optional<int> ParsePartition(std::string_view text) {
  int value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < 0) return std::nullopt;
  return value;
}

// meta.progress and meta.failures keys: enc(module) enc(topology) enc(depot) enc(partition) …
std::optional<TableOwner> OwnerOfProgressKey(std::string_view key) {
  Result<std::vector<Value>> parts = DecodeKeyTuple(key);
  if (!parts.ok() || parts->size() < 4 || !(*parts)[0].is_string() || !(*parts)[2].is_string() ||
      !(*parts)[3].is_int()) {
    return std::nullopt;
  }
  const std::string& depot = (*parts)[2].as_string();
  if (depot == "$batch" || depot == "$plan")
    return TableOwner{(*parts)[0].as_string(), kModuleWide};
  return TableOwner{(*parts)[0].as_string(), static_cast<int>((*parts)[3].as_int())};
}

// meta.outbox keys enc(module) enc(n) and meta.modules keys enc(module).
std::optional<TableOwner> OwnerOfModuleKey(std::string_view key) {
  Result<Value> module = DecodeKeyPrefix(&key);
  if (!module.ok() || !module->is_string()) return std::nullopt;
  return TableOwner{module->as_string(), kModuleWide};
}

}  // namespace

std::optional<TableOwner> OwnerOf(std::string_view table, std::string_view key) {
  if (table == "meta.progress" || table == "meta.failures") return OwnerOfProgressKey(key);
  if (table == "meta.outbox" || table == "meta.modules") return OwnerOfModuleKey(key);
  std::vector<std::string_view> parts = SplitDots(table);
  if ((parts[0] == "depot" || parts[0] == "pstate") && parts.size() == 4) {
    std::optional<int> partition = ParsePartition(parts[3]);
    if (!partition) return std::nullopt;
    return TableOwner{std::string(parts[1]), *partition};
  }
  if (parts[0] == "rescale" && parts.size() == 3)
    return TableOwner{std::string(parts[1]), kModuleWide};
  return std::nullopt;
}

std::string GroupId::ToString() const { return module + "/" + std::to_string(group); }

GroupLayout::GroupLayout(int groups, std::map<std::string, int> per_module)
    : groups_(std::max(groups, 1)), per_module_(std::move(per_module)) {}

int GroupLayout::Groups(const std::string& module) const {
  auto it = per_module_.find(module);
  return it == per_module_.end() ? groups_ : std::max(it->second, 1);
}

int GroupLayout::GroupOfPartition(const std::string& module, int partition) const {
  return partition == kModuleWide ? 0 : partition % Groups(module);
}

std::optional<GroupId> GroupLayout::GroupOf(std::string_view table, std::string_view key) const {
  std::optional<TableOwner> owner = OwnerOf(table, key);
  if (!owner) return std::nullopt;
  int group = GroupOfPartition(owner->module, owner->partition);
  return GroupId{std::move(owner->module), group};
}

}  // namespace strata::replication
