// GET /metrics: the engine's and the server's counters in the Prometheus text format 0.0.4
// (served with Content-Type: text/plain; version=0.0.4). docs/metrics.md lists every
// family with its type, labels and meaning.
#pragma once

#include <string>

#include "cluster_node.h"
#include "dispatcher.h"
#include "strata/engine.h"

namespace strata::server {

// The whole exposition. Thread-safe, any thread, any time: it reads Engine::Metrics (no
// table is read; a few WiredTiger statistics), the counters' atomics, /proc/self/statm and,
// with --cluster (`cluster` not null), the node's cached view of the cluster.
// Its size grows with modules × topologies × source partitions (the lag is per partition).
std::string PrometheusText(Engine& engine, const ServerCounters& counters,
                           const cluster::ClusterNode* cluster = nullptr);

}  // namespace strata::server
