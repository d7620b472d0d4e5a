// A valid module exercising every declaration kind, with one topology whose user code
// fails in each way user code can (loader_test calls its functions directly).
#include <sstream>
#include <stdexcept>
#include <string>

#include "strata/module.h"

namespace {

void Define(strata::ModuleBuilder& m) {
  using strata::Schema;
  auto events = m.Depot("*events", strata::DepotPartitioning::Hash(strata::Path().Key("user")),
                        Schema::Record({{"user", Schema::String()}, {"n", Schema::Int64()}}));
  auto sentences = m.Depot("*sentences", strata::DepotPartitioning::Random());
  m.Depot("*internal", strata::DepotPartitioning::NoClientAppends());
  auto counts = m.PState("$$word_counts", Schema::Map(Schema::String(), Schema::Int64()));
  m.GlobalPState("$$follows",
                 Schema::Map(Schema::String(), Schema::Set(Schema::String()).Subindexed()));

  // ops: 0 each (split, ack return), 1 hash partition, 2 each (count)
  m.Stream("count")
      .Source(sentences)
      .Each([](strata::TopologyContext& ctx, const strata::Value& sentence) {
        std::istringstream words(sentence.as_string());
        int64_t n = 0;
        for (std::string w; words >> w; ++n) ctx.Emit(w);
        ctx.SetAckReturn(n);
      })
      .HashPartition()
      .Each([counts](strata::TopologyContext& ctx, const strata::Value& word) {
        return ctx.Transform(counts, strata::Path().Key(word).NullTo(0).Inc()).status();
      });

  // ops: 0 each (throws std::runtime_error), 1 hash partition (key fn throws
  // std::out_of_range), 2 each (throws an int), 3 direct (as_int of a non-int throws
  // std::bad_variant_access), 4 each (returns an error), 5 filter, 6 global, 7 map
  m.Stream("faulty")
      .Source(events)
      .Source(sentences)
      .Each([](strata::TopologyContext&, const strata::Value& v) {
        throw std::runtime_error("cannot handle " + v.ToString());
      })
      .HashPartition(
          [](const strata::Value&) -> strata::Value { throw std::out_of_range("no key"); })
      .Each([](strata::TopologyContext&, const strata::Value&) { throw 42; })
      .Direct([](const strata::Value& v) { return v.as_int(); })
      .Each([](strata::TopologyContext&, const strata::Value& v) {
        return strata::Status::InvalidArgument("rejected " + v.ToString());
      })
      .Filter([](const strata::Value& v) { return v.is_int(); })
      .Global()
      .Map([](const strata::Value& v) { return strata::Value(v.as_int() * 2); });
}

}  // namespace

STRATA_MODULE(sample, Define)
