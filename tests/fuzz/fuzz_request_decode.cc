// libFuzzer target for request validation (strata/protocol/messages.h): DecodeRequest on
// untrusted frame payloads, as stratad runs it on every frame.
//
// Asserted beyond "no crash": a rejection carries BAD_FRAME, UNSUPPORTED or
// INVALID_ARGUMENT with a message, and the id whenever the code is not BAD_FRAME; an
// accepted request satisfies the documented rules (names non-empty, records non-empty,
// exactly one deploy or update source, partitions in [1, 1024] (update: [0, 1024]), drop
// and recompute names non-empty, a recompute names a PState, an invoke's timeout in
// [1, 3600000], a page limit in [1, 10000]), re-encodes, decodes back to an
// equal request and encodes to the same bytes again; every value in it round-trips.
#include <cstddef>
#include <cstdint>
#include <string>
#include <variant>

#include "fuzz_checks.h"
#include "strata/protocol/messages.h"

namespace {

using namespace strata;
using namespace strata::protocol;

void CheckRules(const Request& r) {
  auto named = [](const std::string& s, const char* what) {
    STRATA_FUZZ_CHECK(!s.empty(), "accepted requests name their targets", what);
  };
  if (const auto* d = std::get_if<DeployRequest>(&r.body)) {
    STRATA_FUZZ_CHECK(d->path.empty() != d->so_bytes.empty(), "deploy has exactly one source",
                      "path " + fuzz::Shorten(d->path));
    STRATA_FUZZ_CHECK(d->partitions >= 1 && d->partitions <= 1024, "deploy partitions in range",
                      std::to_string(d->partitions));
  } else if (const auto* u = std::get_if<UpdateRequest>(&r.body)) {
    STRATA_FUZZ_CHECK(u->path.empty() != u->so_bytes.empty(), "update has exactly one source",
                      "path " + fuzz::Shorten(u->path));
    STRATA_FUZZ_CHECK(u->partitions >= 0 && u->partitions <= 1024, "update partitions in range",
                      std::to_string(u->partitions));
    for (const std::string& name : u->drop) named(name, "update drop");
  } else if (const auto* c = std::get_if<RecomputeRequest>(&r.body)) {
    named(c->module, "recompute module");
    STRATA_FUZZ_CHECK(!c->pstates.empty(), "recompute names a PState", "");
    for (const std::string& name : c->pstates) named(name, "recompute pstate");
  } else if (const auto* d = std::get_if<DescribeRequest>(&r.body)) {
    named(d->module, "describe module");
  } else if (const auto* d = std::get_if<DestroyRequest>(&r.body)) {
    named(d->module, "destroy module");
  } else if (const auto* a = std::get_if<AppendRequest>(&r.body)) {
    named(a->module, "append module");
    named(a->depot, "append depot");
    STRATA_FUZZ_CHECK(!a->records.empty(), "append has records", "");
    for (const Value& v : a->records) fuzz::CheckValueRoundTrip(v);
  } else if (const auto* s = std::get_if<SelectRequest>(&r.body)) {
    named(s->module, "select module");
    named(s->pstate, "select pstate");
    fuzz::CheckValueRoundTrip(s->path);
    if (s->partition_key.has_value()) fuzz::CheckValueRoundTrip(*s->partition_key);
  } else if (const auto* d = std::get_if<ReadDepotRequest>(&r.body)) {
    named(d->module, "read module");
    named(d->depot, "read depot");
    STRATA_FUZZ_CHECK(d->partition >= 0 && d->from >= 0 && d->from <= d->to && d->limit >= 1,
                      "read range valid", "");
  } else if (const auto* i = std::get_if<InvokeRequest>(&r.body)) {
    named(i->module, "invoke module");
    named(i->query, "invoke query");
    STRATA_FUZZ_CHECK(i->timeout_ms >= 1 && i->timeout_ms <= kMaxInvokeTimeoutMs,
                      "invoke timeout in range", std::to_string(i->timeout_ms));
    for (const Value& v : i->args) fuzz::CheckValueRoundTrip(v);
  } else if (const auto* p = std::get_if<SelectPageRequest>(&r.body)) {
    named(p->module, "select page module");
    named(p->pstate, "select page pstate");
    STRATA_FUZZ_CHECK(p->limit >= 1 && p->limit <= kMaxPageLimit, "page limit in range",
                      std::to_string(p->limit));
    fuzz::CheckValueRoundTrip(p->path);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto decoded = DecodeRequest(data, size);
  if (const auto* e = std::get_if<RequestError>(&decoded)) {
    const ErrorCode code = e->error.code;
    STRATA_FUZZ_CHECK(code == ErrorCode::kBadFrame || code == ErrorCode::kUnsupported ||
                          code == ErrorCode::kInvalidArgument,
                      "DecodeRequest rejects with BAD_FRAME, UNSUPPORTED or INVALID_ARGUMENT",
                      std::string(ErrorCodeName(code)) + ": " + e->error.message);
    STRATA_FUZZ_CHECK(!e->error.message.empty(), "rejections say what was wrong", "");
    STRATA_FUZZ_CHECK(code == ErrorCode::kBadFrame || e->id.has_value(),
                      "a request that verified is answered with its id", e->error.message);
    return 0;
  }
  const Request& request = std::get<Request>(decoded);
  CheckRules(request);
  const std::string encoded = EncodeRequest(request);
  auto again = DecodeRequest(reinterpret_cast<const uint8_t*>(encoded.data()), encoded.size());
  const auto* back = std::get_if<Request>(&again);
  STRATA_FUZZ_CHECK(back != nullptr && *back == request, "DecodeRequest(EncodeRequest(r)) == r",
                    "encoding: " + fuzz::Hex(encoded) +
                        (back == nullptr ? "\nerror: " + std::get<RequestError>(again).error.message
                                         : std::string("\ndecoded differently")));
  STRATA_FUZZ_CHECK(EncodeRequest(*back) == encoded, "EncodeRequest is deterministic",
                    "first: " + fuzz::Hex(encoded));
  return 0;
}
