// libFuzzer target for the replication log's entry decoder (engine/replication/log_entry.h):
// DecodeEntry on untrusted bytes, as a follower runs it on every entry a leader ships and
// on every entry it reads back from its own log (docs/cluster.md, "Entry encoding").
//
// Asserted beyond "no crash": rejections are kCorruption; DecodeEntryEpoch agrees with
// DecodeEntry on what it accepts; an accepted entry re-encodes (EncodeEntry) to bytes that
// decode to the same entry and re-encode to the same bytes.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "replication/log_entry.h"

namespace {

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "fuzz_replog_entry: %s\n", what.c_str());
  std::abort();
}

bool SameOps(const strata::replication::LogEntry& a, const strata::replication::LogEntry& b) {
  if (a.epoch != b.epoch || a.ops.size() != b.ops.size()) return false;
  for (size_t i = 0; i < a.ops.size(); ++i) {
    const strata::CapturedWrite& x = a.ops[i];
    const strata::CapturedWrite& y = b.ops[i];
    if (x.table != y.table || x.kind != y.kind || x.op != y.op || x.key != y.key ||
        x.record != y.record || x.value != y.value) {
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata;
  using namespace strata::replication;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  Result<LogEntry> entry = DecodeEntry(bytes);
  Result<int64_t> epoch = DecodeEntryEpoch(bytes);
  if (!entry.ok()) {
    if (entry.status().code() != StatusCode::kCorruption) {
      Fail("DecodeEntry rejected with " + entry.status().ToString() + ", not kCorruption");
    }
    if (!epoch.ok() && epoch.status().code() != StatusCode::kCorruption) {
      Fail("DecodeEntryEpoch rejected with " + epoch.status().ToString());
    }
    return 0;
  }
  if (!epoch.ok() || *epoch != entry->epoch) Fail("DecodeEntryEpoch disagrees with DecodeEntry");
  const std::string encoded = EncodeEntry(*entry);
  Result<LogEntry> again = DecodeEntry(encoded);
  if (!again.ok()) Fail("a re-encoded entry does not decode: " + again.status().ToString());
  if (!SameOps(*entry, *again)) Fail("a re-encoded entry decodes to another entry");
  if (EncodeEntry(*again) != encoded) Fail("EncodeEntry is not deterministic");
  return 0;
}
