#include "command.h"

#include <algorithm>
#include <charconv>
#include <optional>
#include <utility>

namespace strata::shell {
namespace {

struct CommandSpec {
  std::string_view name;
  Command::Kind kind;
  std::string_view usage;
  std::string_view help;
};

constexpr CommandSpec kCommands[] = {
    {"help", Command::Kind::kHelp, "help [COMMAND]", "Lists the commands, or explains one."},
    {"modules", Command::Kind::kModules, "modules",
     "Lists the deployed modules with their partitions, depots, PStates and topologies."},
    {"describe", Command::Kind::kDescribe, "describe MODULE",
     "Shows a module's depots (with their partitioning), PStates (with their schemas), "
     "topologies (with the depots they consume), queries (with their parameters) and the "
     "modules it depends on and that depend on it."},
    {"deploy", Command::Kind::kDeploy, "deploy FILE [partitions=N] [replication=R] [min_isr=M]",
     "Reads the module plugin FILE (a .so) on this machine and deploys it to the server with N "
     "partitions (default 8). FILE is one word (no spaces). In a cluster (docs/cluster.md), R "
     "nodes keep a replica (default: min(3, live nodes)) and an append needs M in-sync replicas "
     "(default: 1 when R <= 2, else 2)."},
    {"update", Command::Kind::kUpdate, "update FILE [drop=NAME,NAME…] [partitions=N] [from=end]",
     "Reads the module plugin FILE (a .so) on this machine and replaces the running code of the "
     "deployed module of the same name with it, keeping its data: same-named depots keep their "
     "records, PStates their values, topologies their progress; new depots and PStates are "
     "created and new topologies backfill from offset 0 (from=end: they start at the end of "
     "their sources). Names the new build no longer declares (depots, PStates, topologies) must "
     "be listed in drop= (comma-separated): their data is deleted. partitions=N rescales the "
     "module to N partitions. Shows the new version, what was created, dropped, widened and is "
     "backfilling, and how long appends were paused. docs/modules.md, \"Changing a deployed "
     "module\", has the rules."},
    {"recompute", Command::Kind::kRecompute, "recompute MODULE PSTATE…",
     "Rebuilds the PStates from the module's depots, from offset 0, while the live ones keep "
     "serving; when the rebuild has caught up it replaces them in one step. Shows a progress "
     "bar (records done / total) until then; Ctrl-C stops watching, not the recompute (stats "
     "MODULE shows its progress)."},
    {"destroy", Command::Kind::kDestroy, "destroy MODULE [--yes]",
     "Deletes a module and all its data. Asks for confirmation when run interactively; "
     "scripts and -c must add --yes."},
    {"append", Command::Kind::kAppend,
     "append MODULE DEPOT VALUE [ack=none|appended|processed|streams]",
     "Appends the JSON VALUE to a depot. ack=processed (default) waits until every topology "
     "consuming the depot has processed it (a microbatch: committed the batch holding it) and "
     "shows their ack returns; streams waits for the stream topologies only; appended waits "
     "until it is durable; none does not wait."},
    {"select", Command::Kind::kSelect,
     "select MODULE PSTATE [partition_key=JSON] PATH | select MODULE PSTATE all-partitions "
     "[PATH] [limit=N]",
     "Every value PATH navigates to in the PState, e.g. select wordcount $$word_counts "
     "key(\"the\"). PATH is the rest of the line: the readable form (key(\"a\").all) or a JSON "
     "array of keys ([\"a\", \"b\"]). The server reads the partition of the path's first key, "
     "or of partition_key (needed by a path that does not start with key, e.g. (root), the "
     "whole partition). Transforms are not sent: a path ending with set, inc, … is refused. "
     "With all-partitions it browses the whole PState (a map or set) a page at a time: the "
     "next N (default 100, at most 10000) top-level entries in key order, partition after "
     "partition, with PATH (default all: key and value) applied to each partition's part of them "
     "as one sorted view "
     "(map_keys: the keys alone); next shows the following page."},
    {"select-one", Command::Kind::kSelectOne, "select-one MODULE PSTATE [partition_key=JSON] PATH",
     "Like select, but PATH must navigate to exactly one value, which is shown alone."},
    {"watch", Command::Kind::kWatch, "watch MODULE PSTATE [partition_key=JSON] PATH [count=N]",
     "Subscribes to what PATH selects in the PState, read as select reads it (the same PATH and "
     "partition_key=), and shows the current value, then each change as it commits: its diffs, "
     "one per line (e.g. key_set [\"alice\"] \"bio\" = \"hi\": the map at [\"alice\"] "
     "maps \"bio\" to \"hi\"; docs/subscriptions.md has every kind). It goes on until Ctrl-C, "
     "or, with count=N (the last word), until N changes were shown; then it unsubscribes. A "
     "watch the server ends (the module destroyed, the PState dropped by an update, the server "
     "stopping) shows the reason."},
    {"watch-one", Command::Kind::kWatchOne,
     "watch-one MODULE PSTATE [partition_key=JSON] PATH [count=N]",
     "Like watch, but watches the one value PATH selects (null while it selects none), as "
     "select-one shows it."},
    {"next", Command::Kind::kNext, "next",
     "Shows the next page of the last select … all-partitions (with its PATH and limit)."},
    {"invoke", Command::Kind::kInvoke, "invoke MODULE QUERY [ARG…] [timeout=MS]",
     "Runs query QUERY of the module with the JSON values ARG… as its arguments (one per "
     "parameter, in order: describe MODULE lists them) and shows its result as select shows "
     "values. timeout=MS (default 10000, at most 3600000) bounds how long it may run: past it "
     "the query fails with TIMEOUT."},
    {"scan", Command::Kind::kScan, "scan MODULE DEPOT [partition=P] [from=OFFSET] [limit=N]",
     "Reads a depot's records in offset order: of partition P, or of every partition in turn "
     "when partition= is absent, starting at OFFSET (default 0) in each, at most N records in "
     "all (default 100)."},
    {"stats", Command::Kind::kStats, "stats [MODULE] [from=N] [limit=N]",
     "Server counters, and per module the records of each depot, the progress and lag of each "
     "topology, how many records its topologies gave up on, and those failures from position N "
     "(default 0), at most N of them (default 100, at most 1000, 0 for the count alone), in "
     "topology, depot, partition, offset order."},
    {"placement", Command::Kind::kPlacement, "placement",
     "In a cluster (docs/cluster.md): the nodes, the controller, and for each module the node "
     "that leads it, its leader epoch, its replicas and which of them are in sync, as the node "
     "the shell is connected to sees it."},
    {"rebalance", Command::Kind::kRebalance, "rebalance",
     "In a cluster (docs/cluster.md, \"Rebalance\"): asks the controller to spread the "
     "modules' replicas and leaderships evenly over the live nodes (e.g. after adding a node), "
     "and shows the placement with each group's target. The moves run in the background: a new "
     "replica copies its leader, then the group switches; placement shows the progress."},
    {"timing", Command::Kind::kTiming, "timing on|off",
     "Shows (or stops showing) how long each command took, measured in the shell."},
    {"quit", Command::Kind::kQuit, "quit", "Leaves the shell (so do exit and Ctrl-D)."},
};

const CommandSpec* FindSpec(std::string_view name) {
  if (name == "exit") return FindSpec("quit");
  for (const CommandSpec& spec : kCommands) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

constexpr std::string_view kPartitionKey = "partition_key=";
constexpr std::string_view kAllPartitions = "all-partitions";
constexpr std::string_view kTimeout = "timeout=";
constexpr std::string_view kLimit = "limit=";
constexpr std::string_view kCount = "count=";

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

struct Word {
  std::string_view text;
  size_t start = 0;
};

class CommandParser {
 public:
  explicit CommandParser(std::string_view text) : text_(text) {}

  Parsed<Command> Parse() {
    std::optional<Word> name = NextWord();
    if (!name) return TextError{0, "empty command (type help for the list)"};
    const CommandSpec* spec = FindSpec(name->text);
    if (spec == nullptr) {
      return TextError{name->start, "unknown command '" + std::string(name->text) +
                                        "' (type help for the list)"};
    }
    spec_ = spec;
    Command c;
    c.kind = spec->kind;
    switch (c.kind) {
      case Command::Kind::kHelp:
        if (std::optional<Word> w = NextWord()) {
          if (FindSpec(w->text) == nullptr) {
            return TextError{w->start, "no command '" + std::string(w->text) + "' to explain"};
          }
          c.word = w->text;
        }
        break;
      case Command::Kind::kModules:
      case Command::Kind::kPlacement:
      case Command::Kind::kRebalance:
      case Command::Kind::kQuit:
      case Command::Kind::kNext:
        break;
      case Command::Kind::kDescribe:
        if (!Required("MODULE", &c.module)) return *error_;
        break;
      case Command::Kind::kStats:
        while (std::optional<Word> w = NextWord()) {
          const auto [name, value, at] = SplitOption(*w);
          bool ok = false;
          if (name.empty() && c.module.empty() && w->text.find('=') == std::string_view::npos) {
            c.module = w->text;
            ok = true;
          } else if (name == "from") {
            ok = Int64(value, at, 0, &c.from);
          } else if (name == "limit") {
            int limit = 0;
            ok = Int(value, at, 0, static_cast<int>(protocol::kMaxStatsFailuresLimit), &limit);
            c.limit = limit;
          }
          if (!ok) return Unexpected(*w);
        }
        break;
      case Command::Kind::kDeploy:
        if (!Required("FILE", &c.word)) return *error_;
        while (std::optional<Word> w = NextWord()) {
          const auto [name, value, at] = SplitOption(*w);
          bool ok = false;
          if (name == "partitions") {
            ok = Int(value, at, 1, 1 << 16, &c.partitions);
          } else if (name == "replication") {
            ok = Int(value, at, 1, protocol::kMaxReplication, &c.replication);
          } else if (name == "min_isr") {
            ok = Int(value, at, 1, protocol::kMaxReplication, &c.min_isr);
          }
          if (!ok) return Unexpected(*w);
        }
        break;
      case Command::Kind::kUpdate:
        if (!Required("FILE", &c.word)) return *error_;
        c.partitions = 0;
        while (std::optional<Word> w = NextWord()) {
          const auto [name, value, at] = SplitOption(*w);
          bool ok = false;
          if (name == "drop") {
            ok = NameList(value, at, &c.names);
          } else if (name == "partitions") {
            ok = Int(value, at, 1, protocol::kMaxPartitions, &c.partitions);
          } else if (name == "from") {
            ok = value == "end";
            if (!ok) {
              error_ = TextError{at,
                                 "from takes end (new topologies then start at the end of "
                                 "their sources instead of backfilling), found '" +
                                     std::string(value) + "'"};
            }
            c.from_end = ok;
          }
          if (!ok) return Unexpected(*w);
        }
        break;
      case Command::Kind::kRecompute:
        if (!Required("MODULE", &c.module)) return *error_;
        while (std::optional<Word> w = NextWord()) c.names.emplace_back(w->text);
        if (c.names.empty()) return Missing("PSTATE");
        break;
      case Command::Kind::kDestroy:
        if (!Required("MODULE", &c.module)) return *error_;
        if (std::optional<Word> w = NextWord()) {
          if (w->text != "--yes")
            return TextError{w->start, "expected --yes or the end of the command"};
          c.yes = true;
        }
        break;
      case Command::Kind::kAppend:
        if (!Required("MODULE", &c.module) || !Required("DEPOT", &c.target)) return *error_;
        if (!Rest()) return Missing("VALUE");
        {
          Parsed<Value> v = ParseJsonAt(text_, &pos_);
          if (!v.ok()) return v.error();
          c.value = std::move(*v);
        }
        while (std::optional<Word> w = NextWord()) {
          const auto [name, value, at] = SplitOption(*w);
          if (name != "ack" || !Ack(value, at, &c.ack)) return Unexpected(*w);
        }
        break;
      case Command::Kind::kInvoke:
        if (!Required("MODULE", &c.module) || !Required("QUERY", &c.target)) return *error_;
        // Arguments are JSON values, so an option word (timeout=) cannot be one.
        while (Rest()) {
          if (text_.substr(pos_).starts_with(kTimeout)) {
            const Word w = *NextWord();
            const auto [name, value, at] = SplitOption(w);
            if (!Int64(value, at, 1, &c.timeout_ms)) return *error_;
            if (c.timeout_ms > protocol::kMaxInvokeTimeoutMs) {
              return TextError{
                  at, "expected an integer <= " + std::to_string(protocol::kMaxInvokeTimeoutMs) +
                          ", found " + std::string(value)};
            }
            continue;
          }
          Parsed<Value> arg = ParseJsonAt(text_, &pos_);
          if (!arg.ok()) return arg.error();
          c.args.push_back(std::move(*arg));
        }
        break;
      case Command::Kind::kSelect:
      case Command::Kind::kSelectOne:
      case Command::Kind::kWatch:
      case Command::Kind::kWatchOne: {
        const bool watch = c.kind == Command::Kind::kWatch || c.kind == Command::Kind::kWatchOne;
        if (!Required("MODULE", &c.module) || !Required("PSTATE", &c.target)) return *error_;
        if (!watch && Rest() && IsWordAt(kAllPartitions)) {
          if (c.kind == Command::Kind::kSelectOne) {
            return TextError{pos_, "select-one reads one partition: use select " + c.module + " " +
                                       c.target + " all-partitions"};
          }
          pos_ += kAllPartitions.size();
          if (!PagedSelect(&c)) return *error_;
          break;
        }
        if (Rest() && text_.substr(pos_).starts_with(kPartitionKey)) {
          pos_ += kPartitionKey.size();
          Parsed<Value> key = ParseJsonAt(text_, &pos_);
          if (!key.ok()) return key.error();
          c.partition_key = std::move(*key);
        }
        size_t end = text_.size();
        if (watch) {
          std::optional<size_t> option = TrailingOption(kCount, 1, INT64_MAX, &c.count);
          if (!option) return *error_;
          end = *option;
        }
        if (!Rest() || pos_ >= end) return Missing("PATH (write (root) for the whole PState)");
        const size_t start = pos_;
        Parsed<Path> path = ParsePathText(text_.substr(start, end - start));
        if (!path.ok()) return TextError{start + path.error().position, path.error().message};
        if (path->terminal()) {
          return TextError{start, std::string(watch ? "watch" : "select") +
                                      " paths are for reading: the shell sends no transforms "
                                      "(this path ends with a terminal: " +
                                      path->ToString() + ")"};
        }
        c.path = std::move(*path);
        pos_ = text_.size();
        break;
      }
      case Command::Kind::kScan:
        if (!Required("MODULE", &c.module) || !Required("DEPOT", &c.target)) return *error_;
        while (std::optional<Word> w = NextWord()) {
          const auto [name, value, at] = SplitOption(*w);
          bool ok = false;
          if (name == "partition") {
            ok = Int(value, at, 0, 1 << 16, &c.partition);
          } else if (name == "from") {
            ok = Int64(value, at, 0, &c.from);
          } else if (name == "limit") {
            ok = Int64(value, at, 1, &c.limit);
          }
          if (!ok) return Unexpected(*w);
        }
        break;
      case Command::Kind::kTiming: {
        std::optional<Word> w = NextWord();
        if (!w) return Missing("on or off");
        if (w->text != "on" && w->text != "off")
          return TextError{w->start, "timing takes on or off"};
        c.on = w->text == "on";
        break;
      }
    }
    if (std::optional<Word> extra = NextWord()) {
      return TextError{extra->start, "unexpected '" + std::string(extra->text) +
                                         "': usage: " + std::string(spec->usage)};
    }
    return c;
  }

 private:
  std::optional<Word> NextWord() {
    if (!Rest()) return std::nullopt;
    size_t start = pos_;
    while (pos_ < text_.size() && !IsSpace(text_[pos_])) ++pos_;
    return Word{text_.substr(start, pos_ - start), start};
  }
  // Whether `word` stands at pos_ as a whole word.
  bool IsWordAt(std::string_view word) const {
    const std::string_view rest = text_.substr(pos_);
    return rest.starts_with(word) && (rest.size() == word.size() || IsSpace(rest[word.size()]));
  }
  // The rest of `select MODULE PSTATE all-partitions`: [PATH] [limit=N]. The path is
  // everything before a last word limit=N; none means `all` (key and value pairs).
  bool PagedSelect(Command* c) {
    c->all_partitions = true;
    c->path = Path().All();
    std::optional<size_t> option = TrailingOption(kLimit, 1, protocol::kMaxPageLimit, &c->limit);
    if (!option) return false;
    const size_t end = *option;
    const std::string_view path_text = text_.substr(pos_, end - pos_);
    if (path_text.find_first_not_of(" \t\r\n") != std::string_view::npos) {
      Parsed<Path> path = ParsePathText(path_text);
      if (!path.ok()) {
        error_ = TextError{pos_ + path.error().position, path.error().message};
        return false;
      }
      if (path->terminal()) {
        error_ = TextError{pos_,
                           "select paths are for reading: the shell sends no transforms "
                           "(this path ends with a terminal: " +
                               path->ToString() + ")"};
        return false;
      }
      c->path = std::move(*path);
    }
    pos_ = text_.size();
    return true;
  }
  // An option word NAME=N (min <= N <= max) that is the last word of the text, after
  // pos_: sets *out and returns where the text before it ends; the end of the text when
  // there is none; nullopt after recording the error of a bad N.
  std::optional<size_t> TrailingOption(std::string_view name, int64_t min, int64_t max,
                                       int64_t* out) {
    size_t end = text_.size();
    while (end > pos_ && IsSpace(text_[end - 1])) --end;
    size_t last = end;
    while (last > pos_ && !IsSpace(text_[last - 1])) --last;
    if (last == end || !text_.substr(last, end - last).starts_with(name)) return text_.size();
    const size_t at = last + name.size();
    const std::string_view value = text_.substr(at, end - at);
    if (!Int64(value, at, min, out)) return std::nullopt;
    if (*out > max) {
      error_ = TextError{
          at, "expected an integer <= " + std::to_string(max) + ", found " + std::string(value)};
      return std::nullopt;
    }
    return last;
  }
  // Skips white space; whether anything follows.
  bool Rest() {
    while (pos_ < text_.size() && IsSpace(text_[pos_])) ++pos_;
    return pos_ < text_.size();
  }
  TextError Missing(std::string_view what) {
    error_ = TextError{text_.size(),
                       "missing " + std::string(what) + ": usage: " + std::string(spec_->usage)};
    return *error_;
  }
  bool Required(std::string_view what, std::string* out) {
    std::optional<Word> w = NextWord();
    if (!w) {
      Missing(what);
      return false;
    }
    *out = w->text;
    return true;
  }
  struct OptionWord {
    std::string_view name;   // before '=' ("" when the word has none)
    std::string_view value;  // after '='
    size_t value_start = 0;
  };
  static OptionWord SplitOption(const Word& w) {
    size_t eq = w.text.find('=');
    if (eq == std::string_view::npos) return {};
    return {w.text.substr(0, eq), w.text.substr(eq + 1), w.start + eq + 1};
  }
  // The error already recorded for `w` (a bad option value), else "unexpected WORD".
  TextError Unexpected(const Word& w) {
    if (!error_) {
      error_ = TextError{
          w.start, "unexpected '" + std::string(w.text) + "': usage: " + std::string(spec_->usage)};
    }
    return *error_;
  }
  bool Int64(std::string_view v, size_t at, int64_t min, int64_t* out) {
    int64_t n = 0;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec != std::errc() || end != v.data() + v.size() || n < min) {
      error_ = TextError{
          at, "expected an integer >= " + std::to_string(min) + ", found '" + std::string(v) + "'"};
      return false;
    }
    *out = n;
    return true;
  }
  bool Int(std::string_view v, size_t at, int min, int max, int* out) {
    int64_t n = 0;
    if (!Int64(v, at, min, &n)) return false;
    if (n > max) {
      error_ = TextError{
          at, "expected an integer <= " + std::to_string(max) + ", found " + std::string(v)};
      return false;
    }
    *out = static_cast<int>(n);
    return true;
  }
  // Comma-separated names, none empty, appended to *out.
  bool NameList(std::string_view v, size_t at, std::vector<std::string>* out) {
    size_t start = 0;
    while (true) {
      const size_t comma = std::min(v.find(',', start), v.size());
      if (comma == start) {
        error_ = TextError{at + start,
                           "expected a name (drop=NAME,NAME…), found '" + std::string(v) + "'"};
        return false;
      }
      out->emplace_back(v.substr(start, comma - start));
      if (comma == v.size()) return true;
      start = comma + 1;
    }
  }
  bool Ack(std::string_view v, size_t at, protocol::AckLevel* out) {
    if (v == "none") {
      *out = protocol::AckLevel::kNone;
    } else if (v == "appended") {
      *out = protocol::AckLevel::kAppended;
    } else if (v == "processed") {
      *out = protocol::AckLevel::kProcessed;
    } else if (v == "streams") {
      *out = protocol::AckLevel::kProcessedStreams;
    } else {
      error_ = TextError{
          at, "ack must be none, appended, processed or streams, found '" + std::string(v) + "'"};
      return false;
    }
    return true;
  }

  std::string_view text_;
  size_t pos_ = 0;
  const CommandSpec* spec_ = nullptr;
  std::optional<TextError> error_;
};

}  // namespace

const std::vector<std::string>& CommandNames() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const CommandSpec& spec : kCommands) out.emplace_back(spec.name);
    out.emplace_back("exit");
    return out;
  }();
  return names;
}

std::string_view CommandUsage(std::string_view name) {
  const CommandSpec* spec = FindSpec(name);
  return spec ? spec->usage : std::string_view();
}

std::string_view CommandHelp(std::string_view name) {
  const CommandSpec* spec = FindSpec(name);
  return spec ? spec->help : std::string_view();
}

Parsed<Command> ParseCommand(std::string_view text) { return CommandParser(text).Parse(); }

bool NeedsMoreInput(std::string_view text) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '(' || c == '[' || c == '{') {
      ++depth;
    } else if (c == ')' || c == ']' || c == '}') {
      --depth;
    }
  }
  return in_string || depth > 0;
}

}  // namespace strata::shell
