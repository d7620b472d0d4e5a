// RequestLatencies: how long stratad took to answer each request, a histogram per
// (protocol, kind), for GET /metrics (strata_request_duration_seconds, docs/metrics.md).
//
// Threading: Observe is called by every network and pool thread at the request rate; it
// takes no lock (a few string compares to find the histogram, then relaxed atomic adds to
// histograms that exist from the start). ForEach may run on any thread meanwhile.
#pragma once

#include <array>
#include <chrono>
#include <string_view>

#include "strata/histogram.h"

namespace strata::server {

// The protocols, and the request kinds of both (a kind that is not listed counts as "other").
inline constexpr std::array<std::string_view, 2> kRequestProtocols = {"binary", "http"};
inline constexpr std::array<std::string_view, 26> kRequestKinds = {
    "hello",       "deploy",    "modules",       "describe",      "destroy",
    "append",      "select",    "select_one",    "read_depot",    "stats",
    "update",      "recompute", "invoke",        "select_page",   "subscribe",
    "unsubscribe", "placement", "replica_fetch", "replica_epoch", "module_file",
    "lag",         "metrics",   "console",       "not_found",     "method_not_allowed",
    "other"};

class RequestLatencies {
 public:
  // Counts one request of `protocol` (one of kRequestProtocols; another is a caller's bug
  // and is not counted) and `kind` that took `elapsed`.
  void Observe(std::string_view protocol, std::string_view kind, std::chrono::nanoseconds elapsed);

  // Calls fn(protocol, kind, snapshot) for every (protocol, kind) observed at least once,
  // in the order of the two lists.
  template <typename F>
  void ForEach(F fn) const {
    for (size_t p = 0; p < kRequestProtocols.size(); ++p) {
      for (size_t k = 0; k < kRequestKinds.size(); ++k) {
        HistogramSnapshot snapshot = histograms_[p * kRequestKinds.size() + k].Snapshot();
        if (snapshot.count() > 0) fn(kRequestProtocols[p], kRequestKinds[k], snapshot);
      }
    }
  }

 private:
  std::array<DurationHistogram, kRequestProtocols.size() * kRequestKinds.size()> histograms_;
};

}  // namespace strata::server
