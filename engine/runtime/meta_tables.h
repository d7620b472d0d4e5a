// The engine's metadata tables (docs/runtime.md, "Deploy, destroy, metadata and on-disk
// layout"): their names, the keys of meta.progress and meta.failures, and the encoding of a
// failure row. Pure functions: any thread.
#pragma once

#include <optional>
#include <string>

#include "strata/engine.h"
#include "strata/value.h"

namespace strata::runtime {

inline constexpr const char* kModulesTable = "meta.modules";
inline constexpr const char* kProgressTable = "meta.progress";
inline constexpr const char* kFailuresTable = "meta.failures";

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

// A meta.failures row and back; nullopt when the row is not one (its message cut when read).
Value FailureToValue(const TopologyFailure& f);
std::optional<TopologyFailure> FailureFromValue(const Value& v);

}  // namespace strata::runtime
