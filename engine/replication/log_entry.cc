#include "replication/log_entry.h"

#include <optional>

#include <flatbuffers/flexbuffers.h>

#include "strata/value.h"
#include "strata/value_codec.h"

namespace strata::replication {
namespace {

// Builders keep their buffers between entries; one grown past this is dropped.
constexpr size_t kMaxRetainedBuilderBytes = 1 << 20;

Status Bad(const std::string& what) { return Status::Corruption("replication log entry: " + what); }

Result<CapturedWrite> OpFromValue(const Value& v, size_t index) {
  const std::string at = "op " + std::to_string(index);
  if (!v.is_list() || v.as_list().size() != 5) return Bad(at + " is not a list of 5");
  const Value::List& f = v.as_list();
  if (!f[0].is_string() || f[0].as_string().empty()) return Bad(at + ": no table name");
  if (!f[1].is_int() || f[1].as_int() < 0 || f[1].as_int() > 1) return Bad(at + ": bad kind");
  if (!f[2].is_int() || f[2].as_int() < 0 || f[2].as_int() > 2) return Bad(at + ": bad op");
  if (!f[4].is_bytes()) return Bad(at + ": the value is not bytes");
  CapturedWrite w;
  w.table = f[0].as_string();
  w.kind = static_cast<TableKind>(f[1].as_int());
  w.op = static_cast<WriteOp>(f[2].as_int());
  w.value = f[4].as_bytes();
  const bool log_table = w.kind == TableKind::kLog;
  if (log_table != (w.op == WriteOp::kPutRecord)) {
    return Bad(at + ": op does not fit the table kind");
  }
  if (log_table) {
    if (!f[3].is_int() || f[3].as_int() < 0) return Bad(at + ": bad record key");
    w.record = f[3].as_int();
  } else {
    if (!f[3].is_bytes() || f[3].as_bytes().empty()) return Bad(at + ": bad key");
    w.key = f[3].as_bytes();
  }
  return w;
}

Result<Value> DecodeMap(std::string_view bytes) {
  Result<Value> v = DecodeValue(bytes);
  if (!v.ok()) return Bad(v.status().message());
  if (!v->is_map()) return Bad("not a map");
  return v;
}

const Value* Field(const Value& map, const char* name) {
  for (const auto& [k, value] : map.as_map()) {
    if (k.is_string() && k.as_string() == name) return &value;
  }
  return nullptr;
}

}  // namespace

// Builds what EncodeValue (strata/value_codec.h) builds for the Value of docs/cluster.md
// (a map with string keys is a FlexBuffers map, a list an untyped vector, an int Int, a
// string String, bytes a Blob), without building the Value: log_entry_test checks that
// the bytes are the same.
std::string EncodeEntry(int64_t epoch, std::span<const CapturedWrite* const> ops) {
  thread_local std::optional<flexbuffers::Builder> slot;
  if (!slot || slot->GetSize() > kMaxRetainedBuilderBytes) slot.emplace();
  flexbuffers::Builder& b = *slot;
  b.Clear();
  size_t map = b.StartMap();
  b.Key("epoch");
  b.Int(epoch);
  b.Key("ops");
  size_t list = b.StartVector();
  for (const CapturedWrite* w : ops) {
    size_t op = b.StartVector();
    b.String(w->table.data(), w->table.size());
    b.Int(static_cast<int64_t>(w->kind));
    b.Int(static_cast<int64_t>(w->op));
    if (w->kind == TableKind::kLog) {
      b.Int(w->record);
    } else {
      b.Blob(w->key.data(), w->key.size());
    }
    b.Blob(w->value.data(), w->value.size());
    b.EndVector(op, /*typed=*/false, /*fixed=*/false);
  }
  b.EndVector(list, /*typed=*/false, /*fixed=*/false);
  b.EndMap(map);
  b.Finish();
  const std::vector<uint8_t>& buffer = b.GetBuffer();
  return std::string(reinterpret_cast<const char*>(buffer.data()), buffer.size());
}

std::string EncodeEntry(const LogEntry& entry) {
  std::vector<const CapturedWrite*> ops;
  ops.reserve(entry.ops.size());
  for (const CapturedWrite& w : entry.ops) ops.push_back(&w);
  return EncodeEntry(entry.epoch, ops);
}

Result<int64_t> DecodeEntryEpoch(std::string_view bytes) {
  STRATA_ASSIGN_OR_RETURN(Value v, DecodeMap(bytes));
  const Value* epoch = Field(v, "epoch");
  if (epoch == nullptr || !epoch->is_int() || epoch->as_int() < 0) return Bad("bad epoch");
  return epoch->as_int();
}

Result<LogEntry> DecodeEntry(std::string_view bytes) {
  STRATA_ASSIGN_OR_RETURN(Value v, DecodeMap(bytes));
  const Value* epoch = Field(v, "epoch");
  const Value* ops = Field(v, "ops");
  if (epoch == nullptr || !epoch->is_int() || epoch->as_int() < 0) return Bad("bad epoch");
  if (ops == nullptr || !ops->is_list()) return Bad("no list of ops");
  if (v.as_map().size() != 2) return Bad("unknown fields");
  LogEntry entry;
  entry.epoch = epoch->as_int();
  entry.ops.reserve(ops->as_list().size());
  for (size_t i = 0; i < ops->as_list().size(); ++i) {
    STRATA_ASSIGN_OR_RETURN(CapturedWrite w, OpFromValue(ops->as_list()[i], i));
    entry.ops.push_back(std::move(w));
  }
  return entry;
}

}  // namespace strata::replication
