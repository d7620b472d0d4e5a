// wordcount: the smallest useful module. Shows a randomly partitioned depot, a step that
// emits several values per record, a hash partitioner between steps (each word goes to
// the partition that owns it), and a counter incremented with a transform path.
//
//   *sentences      random partitioning; a record is a string (its record schema)
//   $$word_counts   map<string, int64>: word -> occurrences
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
#include <cctype>
#include <string>
#include <vector>

#include "strata/module.h"

namespace {

// Lower-cased runs of ASCII letters and digits; every other byte separates words.
std::vector<std::string> SplitWords(const std::string& text) {
  std::vector<std::string> words;
  std::string current;
  for (char c : text) {
    unsigned char u = static_cast<unsigned char>(c);
    if (std::isalnum(u) != 0) {
      current.push_back(static_cast<char>(std::tolower(u)));
    } else if (!current.empty()) {
      words.push_back(std::move(current));
      current.clear();
    }
  }
  if (!current.empty()) words.push_back(std::move(current));
  return words;
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
      .Each([counts](TopologyContext& ctx, const Value& word) -> Status {
        return ctx.Transform(counts, Path().Key(word).Inc()).status();
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

STRATA_MODULE(wordcount, Define)
