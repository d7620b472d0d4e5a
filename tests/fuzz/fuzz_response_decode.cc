// libFuzzer target for the C++ driver's response decoder: DecodeResponse
// (strata/protocol/messages.h) on untrusted frame payloads, as Client::Impl::HandleFrame
// (drivers/cpp/client_impl.cc) runs it on every frame a server sends.
//
// Asserted beyond "no crash": a rejection is kCorruption with a message (the driver then
// drops the connection with a protocol error); an accepted response has either an error
// with a message and no body, or no error; it re-encodes, decodes back to an equal
// response and encodes to the same bytes again; every value in it round-trips.
#include <cstddef>
#include <cstdint>
#include <string>
#include <variant>

#include "fuzz_checks.h"
#include "strata/protocol/messages.h"

namespace {

using namespace strata;
using namespace strata::protocol;

void CheckModuleValues(const ModuleInfo& m) {
  for (const DepotInfo& d : m.depots) fuzz::CheckValueRoundTrip(d.record_schema);
  for (const PStateInfo& p : m.pstates) fuzz::CheckValueRoundTrip(p.schema);
  for (const QueryInfo& q : m.queries) {
    for (const QueryParamInfo& p : q.params) fuzz::CheckValueRoundTrip(p.schema);
  }
}

void CheckValues(const ResponseBody& body) {
  if (const auto* m = std::get_if<ModuleInfo>(&body)) {
    CheckModuleValues(*m);
  } else if (const auto* l = std::get_if<ModuleList>(&body)) {
    for (const ModuleInfo& m : l->modules) CheckModuleValues(m);
  } else if (const auto* a = std::get_if<Appended>(&body)) {
    for (const AppendResult& r : a->results) {
      for (const auto& [topology, value] : r.ack_returns) fuzz::CheckValueRoundTrip(value);
    }
  } else if (const auto* s = std::get_if<Selected>(&body)) {
    for (const Value& v : s->values) fuzz::CheckValueRoundTrip(v);
  } else if (const auto* d = std::get_if<DepotRecords>(&body)) {
    for (const DepotRecord& r : d->records) fuzz::CheckValueRoundTrip(r.value);
  } else if (const auto* i = std::get_if<Invoked>(&body)) {
    fuzz::CheckValueRoundTrip(i->result);
  } else if (const auto* p = std::get_if<SelectedPage>(&body)) {
    for (const Value& v : p->values) fuzz::CheckValueRoundTrip(v);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Result<Response> decoded = DecodeResponse(data, size);
  if (!decoded.ok()) {
    fuzz::CheckRejectedWith(decoded, StatusCode::kCorruption, "DecodeResponse");
    STRATA_FUZZ_CHECK(!decoded.status().message().empty(), "rejections say what was wrong", "");
    return 0;
  }
  const Response& response = *decoded;
  if (response.error.has_value()) {
    STRATA_FUZZ_CHECK(std::holds_alternative<std::monostate>(response.body),
                      "an error response has no body", response.error->message);
  }
  CheckValues(response.body);
  const std::string encoded = EncodeResponse(response);
  Result<Response> again =
      DecodeResponse(reinterpret_cast<const uint8_t*>(encoded.data()), encoded.size());
  STRATA_FUZZ_CHECK(again.ok() && *again == response, "DecodeResponse(EncodeResponse(r)) == r",
                    "encoding: " + fuzz::Hex(encoded) +
                        (again.ok() ? std::string("\ndecoded differently")
                                    : "\nerror: " + again.status().ToString()));
  STRATA_FUZZ_CHECK(EncodeResponse(*again) == encoded, "EncodeResponse is deterministic",
                    "first: " + fuzz::Hex(encoded));
  return 0;
}
