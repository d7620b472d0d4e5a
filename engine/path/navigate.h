// The navigation core (engine-internal): runs a Path over Nodes (path/node.h). One walker
// implements every navigator for select and for transform, whatever the nodes are made
// of (in-memory Values, blobs, subindexed containers). Semantics: docs/paths.md.
#pragma once

#include <cstdint>
#include <vector>

#include "path/node.h"
#include "strata/path.h"

namespace strata::nav {

// Every value `path` (which must have no terminal) navigates to from `root`, in
// navigation order.
Result<std::vector<Value>> SelectFrom(Node& root, const Path& path);

// Applies `path`'s terminal at every place it navigates to from `root`; returns how many
// places that was. Every node the walk creates is flushed before it returns; `root` is
// the caller's to flush. On error, writes already made through nodes are not undone.
Result<int64_t> TransformFrom(Node& root, const Path& path);

// The one value `path` navigates to: kNotFound when none, kInvalidArgument naming the count
// when several.
Result<Value> SelectOneFrom(Node& root, const Path& path);

}  // namespace strata::nav
