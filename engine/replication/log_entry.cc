#include "replication/log_entry.h"

#include <optional>

#include <flatbuffers/flexbuffers.h>

namespace strata::replication {
namespace {

// Builders keep their buffers between entries; one grown past this is dropped.
constexpr size_t kMaxRetainedBuilderBytes = 1 << 20;

Status Bad(const std::string& what) { return Status::Corruption("replication log entry: " + what); }

// The entry's root map, checked against the FlexBuffers verifier first (the bytes are
// untrusted: they come from another node or from disk).
Result<flexbuffers::Map> RootMap(std::string_view bytes) {
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
  if (bytes.size() < 3 || !flexbuffers::VerifyBuffer(data, bytes.size())) {
    return Bad("not a FlexBuffers buffer");
  }
  flexbuffers::Reference root = flexbuffers::GetRoot(data, bytes.size());
  if (!root.IsMap()) return Bad("not a map");
  flexbuffers::Map map = root.AsMap();
  if (map.size() != 2) return Bad("unknown fields");
  return map;
}

Result<int64_t> EpochOf(const flexbuffers::Map& map) {
  flexbuffers::Reference epoch = map["epoch"];
  if (!epoch.IsInt() || epoch.AsInt64() < 0) return Bad("bad epoch");
  return epoch.AsInt64();
}

std::string BlobString(const flexbuffers::Reference& r) {
  flexbuffers::Blob blob = r.AsBlob();
  return std::string(reinterpret_cast<const char*>(blob.data()), blob.size());
}

Result<CapturedWrite> OpFrom(const flexbuffers::Reference& r, size_t index) {
  const std::string at = "op " + std::to_string(index);
  if (!r.IsUntypedVector()) return Bad(at + " is not a list of 5");
  flexbuffers::Vector f = r.AsVector();
  if (f.size() != 5) return Bad(at + " is not a list of 5");
  if (!f[0].IsString() || f[0].AsString().size() == 0) return Bad(at + ": no table name");
  if (!f[1].IsInt() || f[1].AsInt64() < 0 || f[1].AsInt64() > 1) return Bad(at + ": bad kind");
  if (!f[2].IsInt() || f[2].AsInt64() < 0 || f[2].AsInt64() > 2) return Bad(at + ": bad op");
  if (!f[4].IsBlob()) return Bad(at + ": the value is not bytes");
  CapturedWrite w;
  w.table = f[0].AsString().str();
  w.kind = static_cast<TableKind>(f[1].AsInt64());
  w.op = static_cast<WriteOp>(f[2].AsInt64());
  w.value = BlobString(f[4]);
  const bool log_table = w.kind == TableKind::kLog;
  if (log_table != (w.op == WriteOp::kPutRecord)) {
    return Bad(at + ": op does not fit the table kind");
  }
  if (log_table) {
    if (!f[3].IsInt() || f[3].AsInt64() < 0) return Bad(at + ": bad record key");
    w.record = f[3].AsInt64();
  } else {
    if (!f[3].IsBlob() || f[3].AsBlob().size() == 0) return Bad(at + ": bad key");
    w.key = BlobString(f[3]);
  }
  return w;
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
  STRATA_ASSIGN_OR_RETURN(flexbuffers::Map map, RootMap(bytes));
  return EpochOf(map);
}

Result<LogEntry> DecodeEntry(std::string_view bytes) {
  STRATA_ASSIGN_OR_RETURN(flexbuffers::Map map, RootMap(bytes));
  LogEntry entry;
  STRATA_ASSIGN_OR_RETURN(entry.epoch, EpochOf(map));
  flexbuffers::Reference ops = map["ops"];
  if (!ops.IsUntypedVector()) return Bad("no list of ops");
  flexbuffers::Vector list = ops.AsVector();
  entry.ops.reserve(list.size());
  for (size_t i = 0; i < list.size(); ++i) {
    STRATA_ASSIGN_OR_RETURN(CapturedWrite w, OpFrom(list[i], i));
    entry.ops.push_back(std::move(w));
  }
  return entry;
}

}  // namespace strata::replication
