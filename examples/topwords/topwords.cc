// topwords: word counts and a global top 100, exact, as microbatch topologies. Shows two
// Aggregates in a row — agg::Count per word, whose [word, count] output feeds agg::TopN
// into a global PState — and GroupBy / EachGroup. Compare examples/wordcount: its stream
// counter may count a sentence twice after a crash, and a top-N kept by a stream through
// Global() would need its own bookkeeping; here the runtime commits each batch once
// (docs/modules.md, "Microbatch topologies"), so every count and the top list equal their
// recomputation from *sentences exactly.
//
//   *sentences        random partitioning; a record is a string
//   $$word_counts     map<string, int64>: word -> occurrences
//   $$top_words       global, map<string, list<list>>: "all" -> the 100 most frequent words
//                     as [word, count], by descending count, ties by ascending word
//   $$sentence_counts map<string, int64>: word -> how many sentences contain it
//
// Topology "count": split each sentence into words (lower-cased runs of ASCII letters and
// digits, as wordcount) -> Aggregate($$word_counts, the word, agg::Count()): the counts of
// a batch are combined on the sentence's partition, so one [word, n] per word and batch
// moves to the word's partition, which adds it; the Aggregate then passes on
// [word, count after the batch] for every word the batch changed -> Aggregate($$top_words,
// "all", agg::TopN(100, by count, id the word)) on partition 0 (a global PState), which
// keeps one item per word, the later replacing the earlier. Counts only grow, so the top
// list is exact (agg::TopN in docs/modules.md, "Aggregation").
//
// Topology "sentences": each word of a sentence with the sentence's place in the log
// [partition, offset] -> GroupBy(word) -> EachGroup adds, per word, the number of distinct
// sentences among its values (a sentence repeating a word counts once: something no
// combiner says, since it needs the group's values together).
//
// Select: key("the") of $$word_counts -> [7]; key("all") of $$top_words ->
// [[["the", 7], ["cat", 3], ...]]; key("the") of $$sentence_counts -> [5].
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "split_words.h"
#include "strata/module.h"

namespace {

using strata_examples::SplitWords;

using strata::Path;
using strata::Schema;
using strata::Status;
using strata::TopologyContext;
using strata::Value;

Status RequireString(const Value& sentence) {
  if (sentence.is_string()) return Status::Ok();
  return Status::InvalidArgument("*sentences: a record must be a string, got " +
                                 sentence.ToString());
}

constexpr int64_t kTopWords = 100;

void Define(strata::ModuleBuilder& m) {
  strata::DepotRef sentences =
      m.Depot("*sentences", strata::DepotPartitioning::Random(), Schema::String());
  strata::PStateRef counts =
      m.PState("$$word_counts", Schema::Map(Schema::String(), Schema::Int64()));
  strata::PStateRef top = m.GlobalPState(
      "$$top_words", Schema::Map(Schema::String(), Schema::List(Schema::List(Schema::Any()))));
  strata::PStateRef sentence_counts =
      m.PState("$$sentence_counts", Schema::Map(Schema::String(), Schema::Int64()));

  m.Microbatch("count")
      .Source(sentences)
      .Each([](TopologyContext& ctx, const Value& sentence) -> Status {
        STRATA_RETURN_IF_ERROR(RequireString(sentence));
        for (std::string& word : SplitWords(sentence.as_string())) ctx.Emit(Value(std::move(word)));
        return Status::Ok();
      })
      .Aggregate(
          counts, [](const Value& word) { return word; }, strata::agg::Count())
      // Receives [word, count]: one item of the top list.
      .Aggregate(
          top, [](const Value&) { return Value("all"); },
          strata::agg::TopN(
              kTopWords, [](const Value& item) { return item.as_list().at(1); },
              [](const Value& item) { return item.as_list().at(0); }));

  m.Microbatch("sentences")
      .Source(sentences)
      .Writes(sentence_counts)
      .Each([](TopologyContext& ctx, const Value& sentence) -> Status {
        STRATA_RETURN_IF_ERROR(RequireString(sentence));
        Value place = Value::ListOf({ctx.source().partition, ctx.source().offset});
        for (std::string& word : SplitWords(sentence.as_string())) {
          ctx.Emit(Value::ListOf({Value(std::move(word)), place}));
        }
        return Status::Ok();
      })
      .GroupBy([](const Value& occurrence) { return occurrence.as_list().at(0); })
      .EachGroup([sentence_counts](TopologyContext& ctx, const Value& word,
                                   const std::vector<Value>& occurrences) -> Status {
        std::set<Value> places;
        for (const Value& o : occurrences) places.insert(o.as_list().at(1));
        return ctx
            .Transform(sentence_counts,
                       Path().Key(word).NullTo(0).Add(static_cast<int64_t>(places.size())))
            .status();
      });
}

}  // namespace

STRATA_MODULE(topwords, Define)
