// The shell's commands (docs/shell.md): parsing one command's text into a Command. Pure
// functions, thread-safe; errors carry the byte offset in the command text.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "path_text.h"
#include "strata/path.h"
#include "strata/protocol/messages.h"
#include "strata/value.h"

namespace strata::shell {

struct Command {
  enum class Kind : uint8_t {
    kHelp,
    kModules,
    kDescribe,
    kDeploy,
    kUpdate,
    kRecompute,
    kDestroy,
    kAppend,
    kSelect,
    kSelectOne,
    kNext,
    kWatch,
    kWatchOne,
    kInvoke,
    kScan,
    kStats,
    kPlacement,
    kRebalance,
    kTiming,
    kQuit,
  };
  Kind kind = Kind::kHelp;
  // describe, destroy, append, select, select-one, watch, watch-one, scan, recompute, invoke,
  // stats ("" = all)
  std::string module;
  // the depot (append, scan), the PState (select, select-one, watch, watch-one) or the query
  // (invoke)
  std::string target;
  std::string word;  // help: the command asked about; deploy, update: the file
  // update: the names to drop; recompute: the PStates
  std::vector<std::string> names;
  Value value;                                              // append
  std::vector<Value> args;                                  // invoke
  int64_t timeout_ms = 10'000;                              // invoke
  Path path;                                                // select, watch (and -one)
  std::optional<Value> partition_key;                       // select, watch (and -one)
  bool all_partitions = false;                              // select … all-partitions
  protocol::AckLevel ack = protocol::AckLevel::kProcessed;  // append
  int partitions = 8;                                       // deploy; update: 0 = keep
  int replication = 0;    // deploy in a cluster: 0 = the cluster's default
  int min_isr = 0;        // deploy in a cluster: 0 = the default
  bool from_end = false;  // update from=end
  bool yes = false;       // destroy --yes
  bool on = false;        // timing on|off
  int partition = -1;     // scan: -1 = every partition
  int64_t from = 0;       // scan; stats: first failure
  // scan; select all-partitions: entries per page; stats: failures listed
  int64_t limit = 100;
  int64_t count = 0;  // watch: the changes to show before it stops (0: until Ctrl-C)
};

// Every command name, for help and completion, in the order help lists them.
const std::vector<std::string>& CommandNames();
// One line of usage per command name ("" for an unknown name).
std::string_view CommandUsage(std::string_view name);
// The longer description help prints for one command.
std::string_view CommandHelp(std::string_view name);

// Parses one command (a line, or continuation lines joined by spaces).
Parsed<Command> ParseCommand(std::string_view text);

// Whether `text` ends inside a JSON string or with an unclosed ( [ or {: the shell then
// reads a continuation line.
bool NeedsMoreInput(std::string_view text);

}  // namespace strata::shell
