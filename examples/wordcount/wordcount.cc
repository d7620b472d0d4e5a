// wordcount: the smallest useful module. Shows a randomly partitioned depot, a step that
// emits several values per record, a hash partitioner between steps (each word goes to
// the partition that owns it), and a counter incremented with a transform path.
//
//   *sentences      random partitioning; a record is a string (its record schema)
//   $$word_counts   map<string, int64>: word -> occurrences
//   $$ranking       subindexed set<list>: [-count, word] for each word of the partition,
//                   written with its count: in set order, the most frequent first (an
//                   index of $$word_counts by count, local to each partition)
//
// and a query (docs/modules.md, "Queries"):
//
//   top-words(n)    the n most frequent words, 1 <= n <= 10,000: [[word, count], ...],
//                   count descending, ties by word ascending. Each partition sends the
//                   first n of its $$ranking (a range read, however many words it has),
//                   the origin merges them (agg::TopN) and keeps the first n.
//
// Counting is not idempotent: after a crash a replayed sentence is counted again (stream
// topologies are at-least-once), so a count is never below its recomputation from
// *sentences, and equal to it when no crash interrupted processing.
//
// Built twice (examples/CMakeLists.txt): wordcount.so, and wordcount_v2.so (WORDCOUNT_V2),
// the next version of the same module, which adds a view — the README's update tour:
//
//   $$word_lengths  map<int64, int64>: word length -> occurrences, kept by the new
//                   topology "lengths"; `update` backfills it from every sentence already
//                   in *sentences.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "split_words.h"
#include "strata/module.h"

namespace {

using strata_examples::SplitWords;

// The largest n top-words answers. agg::TopN takes its size when the query is built, not
// per invocation, so the merge keeps this many and the last step trims to n.
constexpr int64_t kMaxTopWords = 10'000;

// The query's argument n, or kInvalidArgument.
strata::Result<int64_t> TopWordsN(const strata::Value& args) {
  const strata::Value& n = args.as_list()[0];  // an int64: the parameter's schema
  if (n.as_int() < 1 || n.as_int() > kMaxTopWords) {
    return strata::Status::InvalidArgument("top-words: n must be 1 to " +
                                           std::to_string(kMaxTopWords) + ", not " +
                                           std::to_string(n.as_int()));
  }
  return n.as_int();
}

void Define(strata::ModuleBuilder& m) {
  using strata::Path;
  using strata::Schema;
  using strata::Status;
  using strata::TopologyContext;
  using strata::Value;

  // A record that is not a string is refused at append (SCHEMA_VIOLATION), before the log.
  strata::DepotRef sentences =
      m.Depot("*sentences", strata::DepotPartitioning::Random(), Schema::String());
  strata::PStateRef counts =
      m.PState("$$word_counts", Schema::Map(Schema::String(), Schema::Int64()));
  strata::PStateRef ranking =
      m.PState("$$ranking", Schema::Set(Schema::List(Schema::Any())).Subindexed());

  m.Stream("count")
      .Source(sentences)
      .Each([](TopologyContext& ctx, const Value& sentence) -> Status {
        if (!sentence.is_string()) {
          return Status::InvalidArgument("*sentences: a record must be a string, got " +
                                         sentence.ToString());
        }
        for (std::string& word : SplitWords(sentence.as_string())) ctx.Emit(Value(std::move(word)));
        return Status::Ok();
      })
      .HashPartition()  // by the word itself: Select(Path().Key(word)) finds it
      .Each([counts, ranking](TopologyContext& ctx, const Value& word) -> Status {
        STRATA_ASSIGN_OR_RETURN(Value old, ctx.SelectOne(counts, Path().Key(word).NullTo(0)));
        const int64_t count = old.as_int() + 1;
        STRATA_RETURN_IF_ERROR(ctx.Transform(counts, Path().Key(word).Set(count)).status());
        if (count > 1) {
          STRATA_RETURN_IF_ERROR(
              ctx.Transform(ranking, Path().Key(Value::ListOf({-old.as_int(), word})).Remove())
                  .status());
        }
        return ctx.Transform(ranking, Path().AddToSet(Value::ListOf({-count, word}))).status();
      });

  // Each partition's top n travels as [word, count, n] items: n rides along to the last
  // step, which trims the merge (at most kMaxTopWords items) to the n asked for.
  m.Query("top-words")
      .Param("n", Schema::Int64())
      .Each([](TopologyContext& ctx, const Value& args) -> Status {
        STRATA_ASSIGN_OR_RETURN(int64_t n, TopWordsN(args));
        ctx.Emit(Value(n));
        return Status::Ok();
      })
      .AllPartitions()
      .Each([ranking](TopologyContext& ctx, const Value& n) -> Status {
        // The partition's first n [-count, word] in set order: its top n.
        STRATA_ASSIGN_OR_RETURN(std::vector<Value> top,
                                ctx.Select(ranking, Path().Range({.limit = n.as_int()}).All()));
        for (const Value& ranked : top) {
          const Value::List& entry = ranked.as_list();
          ctx.Emit(Value::ListOf({entry[1], -entry[0].as_int(), n}));
        }
        return Status::Ok();
      })
      .Origin()
      .Combine(strata::agg::TopN(
          kMaxTopWords, [](const Value& item) { return item.as_list()[1]; },
          [](const Value& item) { return item.as_list()[0]; }))
      .Each([](TopologyContext& ctx, const Value& top) {
        // After a Combine the query answers the one value its last step emits.
        const Value::List& items = top.as_list();
        const size_t n = items.empty() ? 0 : static_cast<size_t>(items[0].as_list()[2].as_int());
        Value::List answer;
        for (size_t i = 0; i < items.size() && i < n; ++i) {
          const Value::List& item = items[i].as_list();
          answer.push_back(Value::ListOf({item[0], item[1]}));
        }
        ctx.Emit(Value(std::move(answer)));
      });

#ifdef WORDCOUNT_V2
  strata::PStateRef lengths =
      m.PState("$$word_lengths", Schema::Map(Schema::Int64(), Schema::Int64()));
  m.Stream("lengths")
      .Source(sentences)
      .Each([](TopologyContext& ctx, const Value& sentence) {
        for (const std::string& word : SplitWords(sentence.as_string())) {
          ctx.Emit(Value(static_cast<int64_t>(word.size())));
        }
      })
      .HashPartition()  // by the length: Select(Path().Key(length)) finds it
      .Each([lengths](TopologyContext& ctx, const Value& length) -> Status {
        return ctx.Transform(lengths, Path().Key(length).Inc()).status();
      });
#endif
}

}  // namespace

#ifdef WORDCOUNT_NAME
// The same module under another name (bench/CMakeLists.txt: several in one cluster). The
// indirection expands WORDCOUNT_NAME before STRATA_MODULE stringifies it.
#define WORDCOUNT_MODULE(name) STRATA_MODULE(name, Define)
WORDCOUNT_MODULE(WORDCOUNT_NAME)
#else
STRATA_MODULE(wordcount, Define)
#endif
