#include "request_latencies.h"

#include <algorithm>

namespace strata::server {

void RequestLatencies::Observe(std::string_view protocol, std::string_view kind,
                               std::chrono::nanoseconds elapsed) {
  const auto p = std::find(kRequestProtocols.begin(), kRequestProtocols.end(), protocol);
  if (p == kRequestProtocols.end()) return;
  // Not found: the last kind, "other".
  const auto k = std::find(kRequestKinds.begin(), kRequestKinds.end() - 1, kind);
  histograms_[(p - kRequestProtocols.begin()) * kRequestKinds.size() + (k - kRequestKinds.begin())]
      .Observe(elapsed);
}

}  // namespace strata::server
