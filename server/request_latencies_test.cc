// The request latency table behind strata_request_duration_seconds: histograms by
// (protocol, kind), unknown kinds counted as "other", and the binary requests' kinds.
#include "request_latencies.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <string>

#include "dispatcher.h"

namespace strata::server {
namespace {

std::map<std::string, uint64_t> Counts(const RequestLatencies& latencies) {
  std::map<std::string, uint64_t> counts;
  latencies.ForEach(
      [&](std::string_view protocol, std::string_view kind, const HistogramSnapshot& snapshot) {
        counts[std::string(protocol) + "/" + std::string(kind)] = snapshot.count();
      });
  return counts;
}

TEST(RequestLatenciesTest, CountsByProtocolAndKindWithUnknownKindsAsOther) {
  RequestLatencies latencies;
  EXPECT_TRUE(Counts(latencies).empty());  // a series appears at its first request
  latencies.Observe("binary", "append", std::chrono::microseconds(50));
  latencies.Observe("binary", "append", std::chrono::microseconds(70));
  latencies.Observe("http", "select_one", std::chrono::microseconds(10));
  latencies.Observe("http", "no_such_kind", std::chrono::microseconds(10));
  latencies.Observe("carrier-pigeon", "append", std::chrono::microseconds(10));  // not counted
  EXPECT_EQ(Counts(latencies),
            (std::map<std::string, uint64_t>{
                {"binary/append", 2}, {"http/other", 1}, {"http/select_one", 1}}));
}

TEST(RequestLatenciesTest, EveryBinaryKindIsAKnownKind) {
  protocol::SelectRequest one;
  one.one = true;
  const protocol::RequestBody bodies[] = {protocol::Hello{},
                                          protocol::DeployRequest{},
                                          protocol::ListModulesRequest{},
                                          protocol::DescribeRequest{},
                                          protocol::DestroyRequest{},
                                          protocol::AppendRequest{},
                                          protocol::SelectRequest{},
                                          one,
                                          protocol::ReadDepotRequest{},
                                          protocol::StatsRequest{},
                                          protocol::UpdateRequest{},
                                          protocol::RecomputeRequest{},
                                          protocol::InvokeRequest{},
                                          protocol::SelectPageRequest{},
                                          protocol::SubscribeRequest{},
                                          protocol::UnsubscribeRequest{},
                                          protocol::PlacementRequest{},
                                          protocol::ReplicaFetchRequest{},
                                          protocol::ReplicaEpochRequest{},
                                          protocol::ModuleFileRequest{}};
  std::set<std::string_view> kinds;
  for (const protocol::RequestBody& body : bodies) {
    const std::string_view kind = RequestKindName(body);
    EXPECT_NE(std::find(kRequestKinds.begin(), kRequestKinds.end() - 1, kind),
              kRequestKinds.end() - 1)
        << kind;
    kinds.insert(kind);
  }
  EXPECT_EQ(kinds.size(), std::size(bodies));  // one kind each
  EXPECT_EQ(RequestKindName(one), "select_one");
}

}  // namespace
}  // namespace strata::server
