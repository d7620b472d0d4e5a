// The engine's metadata tables (docs/runtime.md, "Deploy, destroy, metadata and on-disk
// layout"): their names, the keys of meta.progress and meta.failures, and the encoding of a
// failure row. Pure functions: any thread.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "strata/engine.h"
#include "strata/value.h"

namespace strata::runtime {

inline constexpr const char* kModulesTable = "meta.modules";
inline constexpr const char* kProgressTable = "meta.progress";
inline constexpr const char* kFailuresTable = "meta.failures";

// A meta.modules row (key: the encoded module name). Rows written before a field existed
// lack it: version 1, generations 0, no checksum (LoadDeployedModule records it).
struct ModuleRow {
  int partitions = 0;
  std::string file;      // the plugin's copy, relative to the data directory
  std::string checksum;  // ModuleFileChecksum of `file`; empty: not recorded yet
  int version = 1;
  int depot_generation = 0;                       // of every depot's tables
  std::map<std::string, int> pstate_generations;  // by PState name; absent: 0
};
Value ModuleRowToValue(const ModuleRow& row);
// kCorruption naming the module and the row when it is malformed.
Result<ModuleRow> ModuleRowFromValue(const std::string& module, const Value& v);

// The kinds of a module's tables: "<kind><module>.…" (docs/storage.md).
inline constexpr const char* kTableKinds[] = {"depot.", "pstate.", "rescale."};

// "*sentences" -> "sentences", "$$counts" -> "counts": tables are named without the sigil.
std::string_view BareName(std::string_view declared);
// The prefix of the tables of one depot or PState ("depot." or "pstate." as `kind`) in one
// generation: "<kind><module>.<bare>." or "<kind><module>.<bare>@<generation>.".
// "modules/<module>.so": where Deploy keeps a module's plugin file, relative to the data
// directory (an update keeps "modules/<module>.v<N>.so").
std::string DeployedModuleFile(const std::string& module);

std::string TablePrefix(std::string_view kind, std::string_view module, std::string_view declared,
                        int generation);

// The meta.progress key of (module, topology, depot, partition).
std::string ProgressKey(const std::string& module, const std::string& topology,
                        const std::string& depot, int partition);
// The meta.failures key of a failure: its progress key, then its offset.
std::string FailureKey(const std::string& module, const TopologyFailure& f);

// Cuts `message` to at most kMaxFailureMessageBytes, the marker that says how much was cut
// included (so cutting twice changes nothing), at a UTF-8 character boundary: a step's
// error often quotes its whole record, which may be megabytes, and every failure travels
// in stats responses.
std::string ShortFailureMessage(std::string message);

// A meta.progress row: the offset below which every record is processed, as an int for a
// live topology and as {"offset": n, "backfill": true} while it catches up; and back
// (nullopt when the row is neither).
Value ProgressToValue(int64_t processed, bool backfilling);
struct Progress {
  int64_t processed = 0;
  bool backfilling = false;
};
std::optional<Progress> ProgressFromValue(const Value& v);

// A migration's marker in meta.progress (migration.cc): key (module, "$migration", PState,
// partition), value {"id", "after": the encoded key last rewritten, "done"}.
std::string MigrationMarkerKey(const std::string& module, const std::string& pstate, int partition);
Value MigrationMarker(const std::string& id, const std::string& after, bool done);

// A meta.failures row and back; nullopt when the row is not one (its message cut when read).
Value FailureToValue(const TopologyFailure& f);
std::optional<TopologyFailure> FailureFromValue(const Value& v);

}  // namespace strata::runtime
