// mbwordcount: the examples' wordcount (examples/wordcount) as a microbatch topology, for
// bench_microbatch (docs/performance.md, "Microbatch topologies"). Same depot, same split,
// same view; the count is an Aggregate with agg::Count, so a batch combines each word's
// occurrences on the sentence's partition and sends one [word, n] per word and batch to the
// word's partition. Only the topology kind differs from wordcount, so the two rates compare
// the executors.
//
//   *sentences      random partitioning; a record is a string
//   $$word_counts   map<string, int64>: word -> occurrences (exact)
#include <string>
#include <vector>

#include "split_words.h"
#include "strata/module.h"

namespace {

using strata_examples::SplitWords;

void Define(strata::ModuleBuilder& m) {
  using strata::Schema;
  using strata::Status;
  using strata::TopologyContext;
  using strata::Value;

  strata::DepotRef sentences =
      m.Depot("*sentences", strata::DepotPartitioning::Random(), Schema::String());
  strata::PStateRef counts =
      m.PState("$$word_counts", Schema::Map(Schema::String(), Schema::Int64()));

  m.Microbatch("count")
      .Source(sentences)
      .Each([](TopologyContext& ctx, const Value& sentence) -> Status {
        if (!sentence.is_string()) {
          return Status::InvalidArgument("*sentences: a record must be a string, got " +
                                         sentence.ToString());
        }
        for (std::string& word : SplitWords(sentence.as_string())) ctx.Emit(Value(std::move(word)));
        return Status::Ok();
      })
      .Aggregate(
          counts, [](const Value& word) { return word; }, strata::agg::Count());
}

}  // namespace

STRATA_MODULE(mbwordcount, Define)
