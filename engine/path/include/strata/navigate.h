// Paths run over a plain Value (no storage), by the engine's navigation core: the same code
// and semantics as over a PState partition (docs/paths.md). Part of the module SDK
// (strata/module.h includes it); clients, which only build paths (strata/path.h), do not
// link it.
#pragma once

#include <cstdint>
#include <vector>

#include "strata/path.h"
#include "strata/status.h"
#include "strata/value.h"

namespace strata {

// Select returns every navigated value in navigation order; SelectOne requires exactly one
// (kNotFound for none, kInvalidArgument naming the count for more). Transform applies the
// terminal in place and returns how many times it was applied; on error *root may be
// partly transformed.
Result<std::vector<Value>> Select(const Value& root, const Path& path);
Result<Value> SelectOne(const Value& root, const Path& path);
Result<int64_t> Transform(Value* root, const Path& path);

}  // namespace strata
