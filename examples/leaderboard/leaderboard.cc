// leaderboard: a module that depends on another (docs/modules.md, "Module dependencies").
// It consumes wordcount's *sentences through a mirror depot — with progress of its own,
// from the first sentence wordcount ever logged — and reads wordcount's $$word_counts
// through a mirror PState. wordcount must be deployed first, with the same partition count;
// wordcount cannot be destroyed (or updated without *sentences or $$word_counts) while
// leaderboard is deployed.
//
//   *sentences         mirror of wordcount/*sentences (appends go to wordcount)
//   $$words_by_letter  map<string, map<string, int64> subindexed>: first letter -> word ->
//                      occurrences, kept by stream topology "letters"
//   query leaders(letter, n)
//                      the n most frequent words starting with `letter`, ranked by
//                      wordcount's $$word_counts: [[word, count], ...], count descending,
//                      then word ascending. It runs on the partition that owns the letter:
//                      its own view says which words start with it, wordcount's says how
//                      often each occurs.
//   query podium(letter)
//                      {"overall": [word, count], "letter": [word, count]}: wordcount's most
//                      frequent word, from wordcount's query top-words(1) invoked through
//                      a mirror query, beside the letter's, from this module's leaders
//                      (either nil when there is none). A query at the origin that invokes
//                      other queries, of another module and of its own.
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "split_words.h"
#include "strata/module.h"

namespace {

using strata_examples::SplitWords;

void Define(strata::ModuleBuilder& m) {
  using strata::Path;
  using strata::Schema;
  using strata::Status;
  using strata::TopologyContext;
  using strata::Value;

  strata::DepotRef sentences = m.MirrorDepot("wordcount", "*sentences");
  strata::PStateRef word_counts = m.MirrorPState("wordcount", "$$word_counts");
  strata::QueryRef top_words = m.MirrorQuery("wordcount", "top-words");
  strata::PStateRef by_letter = m.PState(
      "$$words_by_letter",
      Schema::Map(Schema::String(), Schema::Map(Schema::String(), Schema::Int64()).Subindexed()));

  m.Stream("letters")
      .Source(sentences)
      .Each([](TopologyContext& ctx, const Value& sentence) -> Status {
        if (!sentence.is_string()) {
          return Status::InvalidArgument("*sentences: a record must be a string, got " +
                                         sentence.ToString());
        }
        for (std::string& word : SplitWords(sentence.as_string())) ctx.Emit(Value(std::move(word)));
        return Status::Ok();
      })
      // By the first letter: Select(Path().Key(letter)) finds every word starting with it.
      .HashPartition([](const Value& word) { return Value(word.as_string().substr(0, 1)); })
      .Each([by_letter](TopologyContext& ctx, const Value& word) -> Status {
        const Value letter(word.as_string().substr(0, 1));
        return ctx.Transform(by_letter, Path().Key(letter).Key(word).Inc()).status();
      });

  m.Query("leaders")
      .Param("letter", Schema::String())
      .Param("n", Schema::Int64())
      .HashPartition([](const Value& args) { return args.as_list().at(0); })
      .Each([by_letter, word_counts](TopologyContext& ctx, const Value& args) -> Status {
        const Value& letter = args.as_list().at(0);
        const int64_t n = args.as_list().at(1).as_int();
        if (n < 0)
          return Status::InvalidArgument("leaders: n must be >= 0, not " + std::to_string(n));
        STRATA_ASSIGN_OR_RETURN(std::vector<Value> words,
                                ctx.Select(by_letter, Path().Key(letter).MapKeys()));
        std::vector<std::pair<int64_t, std::string>> ranked;
        for (const Value& word : words) {
          strata::Result<Value> count = ctx.SelectOne(word_counts, Path().Key(word));
          // Not counted by wordcount yet (it processes the same sentences on its own).
          if (!count.ok() && count.status().code() == strata::StatusCode::kNotFound) continue;
          if (!count.ok()) return count.status();  // a storage error or a timeout: say so
          if (!count->is_int()) continue;
          ranked.emplace_back(-count->as_int(), word.as_string());
        }
        const size_t keep = std::min(ranked.size(), static_cast<size_t>(n));
        std::partial_sort(ranked.begin(), ranked.begin() + static_cast<std::ptrdiff_t>(keep),
                          ranked.end());
        // One value per word, in rank order: the query's result is their list.
        for (size_t i = 0; i < keep; ++i) {
          ctx.Emit(Value::ListOf({Value(ranked[i].second), Value(-ranked[i].first)}));
        }
        return Status::Ok();
      })
      .Origin();

  m.Query("podium")
      .Param("letter", Schema::String())
      .Each([top_words](TopologyContext& ctx, const Value& args) -> Status {
        STRATA_ASSIGN_OR_RETURN(Value overall, ctx.Invoke(top_words, {Value(1)}));
        STRATA_ASSIGN_OR_RETURN(Value letter, ctx.Invoke(strata::QueryRef{"leaders"},
                                                         {args.as_list().at(0), Value(1)}));
        const auto first = [](const Value& list) {
          return list.as_list().empty() ? Value() : list.as_list()[0];
        };
        ctx.Emit(Value::MapOf({{"overall", first(overall)}, {"letter", first(letter)}}));
        return Status::Ok();
      })
      .Combine(strata::agg::Last());
}

}  // namespace

STRATA_MODULE(leaderboard, Define)
