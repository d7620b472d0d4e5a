#include "session.h"

#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <ostream>
#include <sstream>
#include <thread>

#include "render.h"
#include "strata/json.h"
#include "strata/protocol/documents.h"

namespace strata::shell {
namespace {

namespace proto = strata::protocol;
using Outcome = Session::Outcome;

// Reads a module file of this machine; the error message otherwise.
std::optional<std::string> ReadModuleFile(const std::string& path, std::string* error) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    *error = "cannot read module file " + path + ": it is a directory";
    return std::nullopt;
  }
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    *error = "cannot read module file " + path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  // libstdc++ reports a read error (EIO, …) by throwing from the stream buffer.
  try {
    return std::string((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  } catch (const std::exception& e) {
    *error = "cannot read module file " + path + ": " + e.what();
    return std::nullopt;
  }
}

// The recompute among a module's running rebuilds, or null once it has finished.
const proto::RebuildProgress* RunningRecompute(const proto::StatsResult& stats) {
  for (const proto::ModuleStats& m : stats.modules) {
    for (const proto::RebuildProgress& r : m.rebuilds) {
      if (r.kind == "recompute") return &r;
    }
  }
  return nullptr;
}

// Whole percent of a rebuild, 0 to 100 (the total grows with appends; done may pass an
// older total).
int PercentDone(const proto::RebuildProgress& r) {
  if (r.records_total <= 0) return 0;
  return static_cast<int>(std::min<int64_t>(100, r.records_done * 100 / r.records_total));
}

// "[#########.....................]  45%  4500 / 10000 records" (partitions for a
// migration).
std::string ProgressBar(const proto::RebuildProgress& r) {
  constexpr int kWidth = 30;
  const int percent = PercentDone(r);
  const int filled = percent * kWidth / 100;
  char line[160];
  std::snprintf(line, sizeof line, "[%s%s] %3d%%  %lld / %lld %s", std::string(filled, '#').c_str(),
                std::string(kWidth - filled, '.').c_str(), percent,
                static_cast<long long>(r.records_done), static_cast<long long>(r.records_total),
                r.kind == "migration" ? "partitions" : "records");
  return line;
}

// Ctrl-C while a command watches progress or a subscription: the handler only records it,
// and the previous handling of SIGINT comes back when the watch ends. One watch at a time
// (the shell's main thread).
volatile std::sig_atomic_t interrupted = 0;

class InterruptWatch {
 public:
  InterruptWatch() {
    interrupted = 0;
    struct sigaction action {};
    action.sa_handler = [](int) { interrupted = 1; };
    sigemptyset(&action.sa_mask);
    installed_ = sigaction(SIGINT, &action, &previous_) == 0;
  }
  ~InterruptWatch() {
    if (installed_) sigaction(SIGINT, &previous_, nullptr);
  }
  InterruptWatch(const InterruptWatch&) = delete;
  InterruptWatch& operator=(const InterruptWatch&) = delete;
  bool fired() const { return interrupted != 0; }

 private:
  struct sigaction previous_ {};
  bool installed_ = false;
};

// The updates of one watched subscription, from the driver's I/O thread (Push) to the
// shell's main thread (Pop). Shared by both: the handler may outlive the watch until the
// driver drops it.
class WatchInbox {
 public:
  void Push(ClientResult<proto::SubscriptionUpdate> update) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      updates_.push_back(std::move(update));
    }
    ready_.notify_one();
  }
  // The oldest update not taken yet, waiting at most `wait` for one.
  std::optional<ClientResult<proto::SubscriptionUpdate>> Pop(std::chrono::milliseconds wait) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!ready_.wait_for(lock, wait, [&] { return !updates_.empty(); })) return std::nullopt;
    ClientResult<proto::SubscriptionUpdate> update = std::move(updates_.front());
    updates_.pop_front();
    return update;
  }

 private:
  std::mutex mu_;
  std::condition_variable ready_;
  std::deque<ClientResult<proto::SubscriptionUpdate>> updates_;  // guarded by mu_
};

// A diff as one --json line of watch: {"update": N, "op", "at", and the op's operands
// "key", "value", "index"} (a resync has no "at").
Value DiffDocument(int64_t update, const Diff& diff) {
  Value doc = proto::DiffDocument(diff);
  doc.Insert("update", update);
  if (diff.op == Diff::Op::kResync) doc.Erase("at");
  return doc;
}

// The line that reports a module that failed to load (and so serves no requests).
std::string FailedLine(const std::string& module, const std::string& load_error) {
  return module + " failed to load: " + load_error + "\n";
}

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

template <typename T, typename F>
std::vector<std::string> Names(const std::vector<T>& items, F name) {
  std::vector<std::string> out;
  for (const T& item : items) out.push_back(name(item));
  return out;
}

std::string Plural(int64_t n, const std::string& one, const std::string& many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

std::string Summary(const proto::ModuleInfo& m) {
  if (!m.load_error.empty()) {
    return m.name + ": " + Plural(m.partitions, "partition", "partitions") + ", FAILED to load";
  }
  return m.name + ": " + Plural(m.partitions, "partition", "partitions") + ", " +
         Plural(static_cast<int64_t>(m.depots.size()), "depot", "depots") + ", " +
         Plural(static_cast<int64_t>(m.pstates.size()), "PState", "PStates") + ", " +
         Plural(static_cast<int64_t>(m.topologies.size()), "topology", "topologies");
}

// What the failures line adds after the count: which failures are listed below, and the
// option that shows the next ones.
std::string FailurePageNote(const proto::ModuleStats& m, int64_t from, int64_t limit) {
  if (m.failures == 0 || limit == 0) return "";
  const int64_t listed = static_cast<int64_t>(m.failure_page.size());
  if (listed == 0) return " (none listed from " + std::to_string(from) + ")";
  std::string note =
      " (listed: " + std::to_string(from) + " to " + std::to_string(from + listed - 1);
  if (from + listed < m.failures) note += "; next: from=" + std::to_string(from + listed);
  return note + ")";
}

const proto::ModuleInfo* FindModule(const std::vector<proto::ModuleInfo>& modules,
                                    std::string_view name) {
  for (const auto& m : modules) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

std::vector<std::string> Split(std::string_view line) {
  std::vector<std::string> words;
  std::istringstream in{std::string(line)};
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

std::string_view KindName(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kServer:
      return "server";
    case ErrorKind::kConnection:
      return "connection";
    case ErrorKind::kTimeout:
      return "timeout";
    case ErrorKind::kProtocol:
      return "protocol";
    case ErrorKind::kArgument:
      return "argument";
  }
  return "?";
}

}  // namespace

Session::Session(SessionOptions options, std::ostream& out, std::ostream& err)
    : options_(std::move(options)), out_(out), err_(err) {}

Session::~Session() = default;

Outcome Session::Run(std::string_view text) {
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos || text[first] == '#') return Outcome::kOk;
  Parsed<Command> command = ParseCommand(text);
  if (!command.ok()) return ReportParseError(text, command.error());
  const auto start = std::chrono::steady_clock::now();
  Outcome outcome = Execute(*command, text);
  if (timing_ && command->kind != Command::Kind::kTiming && outcome != Outcome::kQuit) {
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    char line[64];
    std::snprintf(line, sizeof line, "(%.3f ms)\n", ms);
    (options_.json ? err_ : out_) << line;
  }
  out_.flush();
  return outcome;
}

Outcome Session::Execute(const Command& c, std::string_view text) {
  switch (c.kind) {
    case Command::Kind::kHelp:
      return Help(c);
    case Command::Kind::kModules:
      return Modules();
    case Command::Kind::kDescribe:
      return Describe(c);
    case Command::Kind::kDeploy:
      return Deploy(c);
    case Command::Kind::kUpdate:
      return Update(c);
    case Command::Kind::kRecompute:
      return Recompute(c);
    case Command::Kind::kDestroy:
      return Destroy(c);
    case Command::Kind::kAppend:
      return Append(c);
    case Command::Kind::kSelect:
    case Command::Kind::kSelectOne:
      return c.all_partitions ? SelectPage(c) : Select(c);
    case Command::Kind::kNext:
      return Next();
    case Command::Kind::kWatch:
    case Command::Kind::kWatchOne:
      return Watch(c);
    case Command::Kind::kInvoke:
      return Invoke(c);
    case Command::Kind::kScan:
      return Scan(c);
    case Command::Kind::kStats:
      return Stats(c);
    case Command::Kind::kPlacement:
      return Placement();
    case Command::Kind::kRebalance:
      return Rebalance();
    case Command::Kind::kTiming:
      timing_ = c.on;
      Emit(Value::MapOf({{"timing", c.on}}), std::string("timing ") + (c.on ? "on" : "off") + "\n");
      return Outcome::kOk;
    case Command::Kind::kQuit:
      return Outcome::kQuit;
  }
  return ReportError("unhandled command " + std::string(text));
}

bool Session::Connect() { return EnsureClient() != nullptr; }

std::string Session::ServerDescription() const {
  std::string where = options_.client.host + ":" + std::to_string(options_.client.port);
  if (!client_) return where;
  return "stratad " + client_->server_info().server_version + " at " + where;
}

Client* Session::EnsureClient() {
  if (client_) return client_.get();
  ClientResult<std::unique_ptr<Client>> client = Client::Connect(options_.client);
  if (!client.ok()) {
    ReportClientError(client.error());
    return nullptr;
  }
  client_ = std::move(*client);
  return client_.get();
}

void Session::Emit(const Value& json_document, const std::string& text) {
  if (options_.json) {
    out_ << ToJson(json_document) << "\n";
  } else {
    out_ << text;
  }
}

Outcome Session::ReportParseError(std::string_view text, const TextError& error) {
  if (options_.json) {
    out_ << ToJson(Value::MapOf(
                {{"error", Value::MapOf({{"kind", "syntax"},
                                         {"message", error.message},
                                         {"position", static_cast<int64_t>(error.position)}})}}))
         << "\n";
    return Outcome::kFailed;
  }
  // The command on one line (continuation lines were joined with spaces already; tabs
  // would misplace the caret).
  std::string line(text);
  std::replace_if(
      line.begin(), line.end(), [](char ch) { return ch == '\t' || ch == '\n' || ch == '\r'; },
      ' ');
  // Columns count UTF-8 code points up to the error's byte.
  size_t column = 0;
  for (size_t i = 0; i < error.position && i < line.size(); ++i) {
    if ((static_cast<unsigned char>(line[i]) & 0xC0) != 0x80) ++column;
  }
  err_ << "error: " << error.message << "\n  " << line << "\n  " << std::string(column, ' ')
       << "^\n";
  return Outcome::kFailed;
}

Outcome Session::ReportClientError(const ClientError& error) {
  const bool unreachable = error.kind == ErrorKind::kConnection;
  if (unreachable) modules_cache_.reset();
  std::string message = error.ToString();
  if (unreachable) {
    message = "cannot reach stratad at " + options_.client.host + ":" +
              std::to_string(options_.client.port) + ": " + error.message;
  }
  if (options_.json) {
    Value::Map e{{"kind", std::string(KindName(error.kind))},
                 {"message", unreachable ? message : error.message}};
    if (error.kind == ErrorKind::kServer)
      e.emplace_back("code", std::string(proto::ErrorCodeName(error.code)));
    out_ << ToJson(Value::MapOf({{"error", Value::MapOf(std::move(e))}})) << "\n";
  } else {
    err_ << "error: " << message << "\n";
  }
  return unreachable ? Outcome::kUnreachable : Outcome::kFailed;
}

Outcome Session::ReportError(const std::string& message) {
  if (options_.json) {
    out_ << ToJson(
                Value::MapOf({{"error", Value::MapOf({{"kind", "shell"}, {"message", message}})}}))
         << "\n";
  } else {
    err_ << "error: " << message << "\n";
  }
  return Outcome::kFailed;
}

Outcome Session::Help(const Command& c) {
  if (!c.word.empty()) {
    Emit(Value::MapOf({{"usage", std::string(CommandUsage(c.word))},
                       {"help", std::string(CommandHelp(c.word))}}),
         "usage: " + std::string(CommandUsage(c.word)) + "\n" + std::string(CommandHelp(c.word)) +
             "\n");
    return Outcome::kOk;
  }
  std::string text = "Commands (help COMMAND explains one; docs/shell.md has everything):\n";
  Value::List usages;
  for (const std::string& name : CommandNames()) {
    if (name == "exit") continue;
    text += "  " + std::string(CommandUsage(name)) + "\n";
    usages.emplace_back(std::string(CommandUsage(name)));
  }
  text +=
      "Values are JSON ({\"$set\": [...]} is a set). Paths: key(\"a\").all, [\"a\", \"b\"], "
      "(root).\n";
  Emit(Value::MapOf({{"commands", Value(std::move(usages))}}), text);
  return Outcome::kOk;
}

Outcome Session::Placement() {
  Client* client = EnsureClient();
  if (!client) return Outcome::kUnreachable;
  auto placement = client->Placement();
  if (!placement.ok()) return ReportClientError(placement.error());
  return ShowPlacement(*placement);
}

Outcome Session::Rebalance() {
  Client* client = EnsureClient();
  if (!client) return Outcome::kUnreachable;
  auto placement = client->Rebalance();
  if (!placement.ok()) return ReportClientError(placement.error());
  return ShowPlacement(*placement);
}

Outcome Session::ShowPlacement(const protocol::Placement& shown) {
  const protocol::Placement* placement = &shown;
  auto strings = [](const std::vector<std::string>& list) {
    Value::List out(list.begin(), list.end());
    return Value(std::move(out));
  };
  Value::List nodes, groups;
  Table node_table{{"node", "address"}, {}};
  for (const auto& n : placement->nodes) {
    nodes.push_back(Value::MapOf({{"id", n.id}, {"advertise", n.advertise}}));
    node_table.rows.push_back(
        {n.id + (n.id == placement->controller ? " (controller)" : ""), n.advertise});
  }
  Table group_table{
      {"module", "group", "leader", "epoch", "replicas", "in sync", "min_isr", "moving to"}, {}};
  for (const auto& g : placement->groups) {
    groups.push_back(Value::MapOf({{"module", g.module},
                                   {"group", g.group},
                                   {"leader", g.leader},
                                   {"leader_address", g.leader_address},
                                   {"epoch", g.epoch},
                                   {"replicas", strings(g.replicas)},
                                   {"isr", strings(g.isr)},
                                   {"min_isr", g.min_isr},
                                   {"target", strings(g.target)}}));
    group_table.rows.push_back(
        {g.module, std::to_string(g.group), g.leader.empty() ? "(none: offline)" : g.leader,
         std::to_string(g.epoch), Join(g.replicas), Join(g.isr), std::to_string(g.min_isr),
         g.target.empty() ? "-" : Join(g.target)});
  }
  std::string text = "node " + placement->node + ", controller " +
                     (placement->controller.empty() ? "(none)" : placement->controller) + "\n\n" +
                     RenderTable(node_table, 60);
  text +=
      placement->groups.empty() ? "no replicated modules\n" : "\n" + RenderTable(group_table, 60);
  Emit(Value::MapOf({{"node", placement->node},
                     {"controller", placement->controller},
                     {"nodes", Value(std::move(nodes))},
                     {"groups", Value(std::move(groups))}}),
       text);
  return Outcome::kOk;
}

Outcome Session::Modules() {
  Client* client = EnsureClient();
  if (!client) return Outcome::kUnreachable;
  auto modules = client->Modules();
  if (!modules.ok()) return ReportClientError(modules.error());
  modules_cache_ = *modules;
  Value::List docs;
  Table t{{"module", "partitions", "depots", "pstates", "topologies"}, {}};
  std::string failed;  // one line per module that failed to load, under the table
  for (const auto& m : *modules) {
    docs.push_back(proto::ModuleDocument(m));
    if (!m.load_error.empty()) {
      t.rows.push_back({m.name, std::to_string(m.partitions), "FAILED (see below)", "", ""});
      failed += FailedLine(m.name, m.load_error);
      continue;
    }
    t.rows.push_back({m.name, std::to_string(m.partitions),
                      Join(Names(m.depots, [](const auto& d) { return d.name; })),
                      Join(Names(m.pstates, [](const auto& p) { return p.name; })),
                      Join(Names(m.topologies, [](const auto& x) { return x.name; }))});
  }
  Emit(Value(std::move(docs)),
       modules->empty() ? "no modules deployed\n" : RenderTable(t, 60) + failed);
  return Outcome::kOk;
}

Outcome Session::Describe(const Command& c) {
  Client* client = EnsureClient();
  if (!client) return Outcome::kUnreachable;
  auto info = client->Describe(c.module);
  if (!info.ok()) return ReportClientError(info.error());
  const proto::ModuleInfo& m = *info;
  if (!m.load_error.empty()) {
    Emit(proto::ModuleDocument(m),
         "module " + Summary(m) + "\n" + FailedLine(m.name, m.load_error));
    return Outcome::kOk;
  }
  std::string text = "module " + Summary(m) + "\n";
  if (m.version > 0) text += "version " + std::to_string(m.version) + "\n";
  text += "\n";
  Table depots{{"depot", "partitioning", "record schema"}, {}};
  for (const auto& d : m.depots)
    depots.rows.push_back({d.name, d.partitioning, d.record_schema_text});
  Table pstates{{"pstate", "schema"}, {}};
  for (const auto& p : m.pstates) pstates.rows.push_back({p.name, p.schema_text});
  Table topologies{{"topology", "kind", "sources"}, {}};
  for (const auto& t : m.topologies) topologies.rows.push_back({t.name, t.kind, Join(t.sources)});
  // Schemas are the point of describe: wide cells.
  text += RenderTable(depots, 80) + "\n" + RenderTable(pstates, 100) + "\n" +
          RenderTable(topologies, 80);
  if (!m.queries.empty()) {
    Table queries{{"query", "parameters"}, {}};
    for (const auto& q : m.queries) {
      queries.rows.push_back({q.name, Join(Names(q.params, [](const proto::QueryParamInfo& p) {
                                return p.name + ": " + p.schema_text;
                              }))});
    }
    text += "\n" + RenderTable(queries, 100);
  }
  if (!m.depends_on.empty()) text += "depends on: " + Join(m.depends_on) + "\n";
  if (!m.dependents.empty()) text += "used by: " + Join(m.dependents) + "\n";
  Emit(proto::ModuleDocument(m), text);
  return Outcome::kOk;
}

Outcome Session::Deploy(const Command& c) {
  std::string error;
  std::optional<std::string> bytes = ReadModuleFile(c.word, &error);
  if (!bytes) return ReportError(error);
  Client* client = EnsureClient();
  if (!client) return Outcome::kUnreachable;
  auto info = client->DeployBytes(std::move(*bytes), c.partitions, c.replication, c.min_isr);
  modules_cache_.reset();
  if (!info.ok()) return ReportClientError(info.error());
  Emit(proto::ModuleDocument(*info), "deployed " + Summary(*info) + "\n");
  return Outcome::kOk;
}

Outcome Session::Update(const Command& c) {
  std::string error;
  std::optional<std::string> bytes = ReadModuleFile(c.word, &error);
  if (!bytes) return ReportError(error);
  Client* client = EnsureClient();
  if (!client) return Outcome::kUnreachable;
  ClientUpdateOptions options;
  options.drop = c.names;
  options.partitions = c.partitions;
  options.new_topologies_from_end = c.from_end;
  auto updated = client->UpdateBytes(std::move(*bytes), options);
  modules_cache_.reset();
  if (!updated.ok()) return ReportClientError(updated.error());
  const proto::Updated& u = *updated;
  char pause[64];
  std::snprintf(pause, sizeof pause, "%.1f ms", static_cast<double>(u.pause_us) / 1000.0);
  std::string text = "updated " + u.module.name + " to version " + std::to_string(u.version) +
                     " (appends paused " + pause + ")\n";
  auto list = [&](const char* what, const std::vector<std::string>& names) {
    if (!names.empty()) text += "  " + std::string(what) + ": " + Join(names) + "\n";
  };
  list("created", u.created);
  list("dropped", u.dropped);
  list("widened", u.widened);
  list("migrated", u.migrated);
  list("backfilling", u.backfilling);
  if (c.partitions > 0) text += "  partitions: " + std::to_string(u.module.partitions) + "\n";
  Emit(proto::UpdatedDocument(u), text);
  return Outcome::kOk;
}

Outcome Session::Recompute(const Command& c) {
  Client* client = EnsureClient();
  if (!client) return Outcome::kUnreachable;
  auto started = client->Recompute(c.module, c.names);
  if (!started.ok()) return ReportClientError(started.error());
  if (!options_.json) {
    out_ << "recompute of " << Join(started->pstates) << " of " << started->module
         << " started (Ctrl-C stops watching, not the recompute)\n";
    out_.flush();
  }
  return WatchRecompute(*client, started->module, started->pstates);
}

Outcome Session::WatchRecompute(Client& client, const std::string& module,
                                const std::vector<std::string>& pstates) {
  constexpr auto kPollInterval = std::chrono::milliseconds(200);
  constexpr auto kSleepSlice = std::chrono::milliseconds(10);
  InterruptWatch watch;
  const bool redraw = options_.terminal && !options_.json;
  int printed_tenth = -1;  // the last 10% step printed (a line per step when not redrawing)
  bool drawn = false;      // a redrawn line is on the screen
  auto result = [&](bool finished) {
    return Value::MapOf(
        {{"recompute", Value::MapOf({{"module", module},
                                     {"pstates", proto::StringListDocument(pstates)},
                                     {"finished", finished}})}});
  };
  while (true) {
    if (watch.fired()) {
      Emit(result(false), std::string(drawn ? "\n" : "") +
                              "stopped watching: the recompute goes on in the server (stats " +
                              module + " shows its progress)\n");
      return Outcome::kOk;
    }
    auto stats = client.Stats(module, 0, 0);
    if (!stats.ok()) {
      if (drawn) out_ << "\n";
      return ReportClientError(stats.error());
    }
    const proto::RebuildProgress* running = RunningRecompute(*stats);
    if (running == nullptr) {
      Emit(result(true), std::string(drawn ? "\n" : "") + "recompute of " + Join(pstates) + " of " +
                             module + " finished: the rebuilt PStates serve\n");
      return Outcome::kOk;
    }
    if (redraw) {
      out_ << "\r" << ProgressBar(*running) << "\033[K";
      out_.flush();
      drawn = true;
    } else if (!options_.json && PercentDone(*running) / 10 > printed_tenth) {
      printed_tenth = PercentDone(*running) / 10;
      out_ << ProgressBar(*running) << "\n";
      out_.flush();
    }
    for (auto slept = std::chrono::milliseconds(0); slept < kPollInterval && !watch.fired();
         slept += kSleepSlice) {
      std::this_thread::sleep_for(kSleepSlice);
    }
  }
}

Outcome Session::Destroy(const Command& c) {
  if (!c.yes) {
    if (!options_.confirm_destroy) {
      return ReportError("destroy deletes module " + c.module +
                         " and all its data: confirm with 'destroy " + c.module + " --yes'");
    }
    if (!options_.confirm_destroy(c.module)) {
      Emit(Value::MapOf({{"destroyed", Value()}}), "not destroyed\n");
      return Outcome::kOk;
    }
  }
  Client* client = EnsureClient();
  if (!client) return Outcome::kUnreachable;
  auto destroyed = client->Destroy(c.module);
  modules_cache_.reset();
  if (!destroyed.ok()) return ReportClientError(destroyed.error());
  Emit(Value::MapOf({{"destroyed", destroyed->module}}), "destroyed " + destroyed->module + "\n");
  return Outcome::kOk;
}

Outcome Session::Append(const Command& c) {
  Client* client = EnsureClient();
  if (!client) return Outcome::kUnreachable;
  auto result = client->Append(c.module, c.target, c.value, c.ack);
  if (!result.ok()) return ReportClientError(result.error());
  if (result->failure) {
    return ReportClientError(
        ClientError{ErrorKind::kServer, result->failure->code, result->failure->message});
  }
  std::string text;
  if (result->offset < 0) {
    text = "sent (ack=none: the server does not confirm it)\n";
  } else {
    text = "partition " + std::to_string(result->partition) + ", offset " +
           std::to_string(result->offset) +
           (c.ack == proto::AckLevel::kAppended ? " (durable, not waiting for topologies)" : "") +
           "\n";
  }
  for (const auto& [topology, value] : result->ack_returns) {
    if (!value.is_nil()) text += topology + " returned " + ToJson(value) + "\n";
  }
  Emit(proto::AppendResultDocument(*result), text);
  return Outcome::kOk;
}

Outcome Session::Select(const Command& c) {
  Client* client = EnsureClient();
  if (!client) return Outcome::kUnreachable;
  if (c.kind == Command::Kind::kSelectOne) {
    auto v = client->SelectOne(c.module, c.target, c.path, c.partition_key);
    if (!v.ok()) return ReportClientError(v.error());
    Emit(*v, RenderValue(*v));
    return Outcome::kOk;
  }
  auto values = client->Select(c.module, c.target, c.path, c.partition_key);
  if (!values.ok()) return ReportClientError(values.error());
  Value list(std::move(*values));
  // One map (e.g. a whole nested map at a key) reads best as its own table.
  const bool one_map = list.as_list().size() == 1 && list.as_list()[0].is_map();
  Emit(list, RenderValue(one_map ? list.as_list()[0] : list));
  return Outcome::kOk;
}

namespace {

// A page of [key, value] pairs (the default path, all) as a table of keys and values, in
// the server's order (key order within each partition, partition after partition);
// anything else as select shows values.
std::string RenderPage(const std::vector<Value>& values, const Path& path) {
  if (path.ToString() != Path().All().ToString()) return RenderValue(Value(values));
  Table table{{"key", "value"}, {}};
  for (const Value& pair : values) {
    if (!pair.is_list() || pair.as_list().size() != 2) return RenderValue(Value(values));
    table.rows.push_back({CellText(pair.as_list()[0]), CellText(pair.as_list()[1])});
  }
  return RenderTable(table, 80);
}

}  // namespace

Outcome Session::SelectPage(const Command& c) {
  Client* client = EnsureClient();
  if (!client) return Outcome::kUnreachable;
  page_ = PageCursor{c.module, c.target, c.path, c.limit, "", 0};
  return ShowPage(*client);
}

Outcome Session::Next() {
  if (!page_) return ReportError("no select … all-partitions to continue: run one first");
  if (page_->token.empty()) {
    return ReportError("the last select of " + page_->pstate +
                       " all-partitions showed its last page");
  }
  Client* client = EnsureClient();
  if (!client) return Outcome::kUnreachable;
  return ShowPage(*client);
}

Outcome Session::ShowPage(Client& client) {
  PageCursor& at = *page_;
  auto page = client.SelectPage(at.module, at.pstate, at.path, at.token, at.limit);
  if (!page.ok()) return ReportClientError(page.error());
  at.token = page->next_token;
  at.shown += static_cast<int64_t>(page->values.size());
  const bool more = !at.token.empty();
  std::string text = page->values.empty() ? "no entries\n" : RenderPage(page->values, at.path);
  if (more) {
    // With `all` each value is an entry; another path's values are what it selects (the
    // empty path: one view per partition part of a page).
    const bool entries = at.path.ToString() == Path().All().ToString();
    text += "(" + Plural(at.shown, entries ? "entry" : "value", entries ? "entries" : "values") +
            " shown so far; type next for more)\n";
  }
  Emit(Value::MapOf({{"values", Value(std::move(page->values))}, {"more", more}}), text);
  return Outcome::kOk;
}

Outcome Session::Watch(const Command& c) {
  constexpr auto kPollInterval = std::chrono::milliseconds(20);
  Client* client = EnsureClient();
  if (!client) return Outcome::kUnreachable;
  // Installed before subscribing: a Ctrl-C while the subscription starts stops it at once.
  InterruptWatch interrupt;
  auto inbox = std::make_shared<WatchInbox>();
  ClientSubscribeOptions options;
  options.partition_key = c.partition_key;
  options.one = c.kind == Command::Kind::kWatchOne;
  auto subscribed = client->Subscribe(
      c.module, c.target, c.path,
      [inbox](ClientResult<proto::SubscriptionUpdate> update) { inbox->Push(std::move(update)); },
      options);
  if (!subscribed.ok()) return ReportClientError(subscribed.error());
  if (options_.terminal && !options_.json) {
    out_ << "watching " << c.target << " " << c.path.ToString() << " of " << c.module
         << " (partition " << subscribed->partition << "); Ctrl-C stops\n";
  }
  // As select and select-one show it: one map (alone in a list) as a table.
  const Value& value = subscribed->value;
  const bool one_map =
      !options.one && value.is_list() && value.as_list().size() == 1 && value.as_list()[0].is_map();
  Emit(Value::MapOf({{"partition", subscribed->partition}, {"value", value}}),
       RenderValue(one_map ? value.as_list()[0] : value));
  out_.flush();
  int64_t shown = 0;
  while ((c.count == 0 || shown < c.count) && !interrupt.fired()) {
    std::optional<ClientResult<proto::SubscriptionUpdate>> next = inbox->Pop(kPollInterval);
    if (!next) continue;
    if (!next->ok()) return ReportClientError(next->error());  // the connection broke
    const proto::SubscriptionUpdate& update = next->value();
    if (update.ended) {
      Emit(Value::MapOf(
               {{"ended", proto::ErrorDocument(update.ended->code, update.ended->message)}}),
           "watch ended by the server: " + std::string(proto::ErrorCodeName(update.ended->code)) +
               ": " + update.ended->message + "\n");
      return Outcome::kOk;
    }
    ++shown;
    for (const Diff& diff : update.diffs) Emit(DiffDocument(shown, diff), DiffText(diff) + "\n");
    out_.flush();
  }
  if (interrupt.fired() && !options_.json) {
    out_ << "stopped watching after " << Plural(shown, "change", "changes") << "\n";
  }
  auto unsubscribed = client->Unsubscribe(subscribed->subscription);
  // NOT_FOUND: the server ended the subscription meanwhile (its end update is not shown).
  if (!unsubscribed.ok() && unsubscribed.error().code != proto::ErrorCode::kNotFound) {
    return ReportClientError(unsubscribed.error());
  }
  return Outcome::kOk;
}

Outcome Session::Invoke(const Command& c) {
  Client* client = EnsureClient();
  if (!client) return Outcome::kUnreachable;
  auto result = client->Invoke(c.module, c.target, c.args, c.timeout_ms);
  if (!result.ok()) return ReportClientError(result.error());
  Emit(*result, RenderValue(*result));
  return Outcome::kOk;
}

Outcome Session::Scan(const Command& c) {
  Client* client = EnsureClient();
  if (!client) return Outcome::kUnreachable;
  int first = c.partition, last = c.partition;
  if (c.partition < 0) {
    auto info = client->Describe(c.module);
    if (!info.ok()) return ReportClientError(info.error());
    first = 0;
    last = info->partitions - 1;
  }
  Value::List docs;
  Table t{{"partition", "offset", "record"}, {}};
  int64_t left = c.limit;
  for (int p = first; p <= last && left > 0; ++p) {
    auto records = client->ReadDepot(c.module, c.target, p, c.from, INT64_MAX, left);
    if (!records.ok()) return ReportClientError(records.error());
    for (const auto& r : *records) {
      docs.push_back(Value::MapOf({{"partition", p}, {"offset", r.offset}, {"record", r.value}}));
      t.rows.push_back({std::to_string(p), std::to_string(r.offset), ToJson(r.value)});
    }
    left -= static_cast<int64_t>(records->size());
  }
  std::string text = t.rows.empty() ? "no records\n" : RenderTable(t, 80);
  if (left <= 0) text += "(limit " + std::to_string(c.limit) + " reached: there may be more)\n";
  Emit(Value(std::move(docs)), text);
  return Outcome::kOk;
}

Outcome Session::Stats(const Command& c) {
  Client* client = EnsureClient();
  if (!client) return Outcome::kUnreachable;
  auto stats = client->Stats(c.module, c.from, c.limit);
  if (!stats.ok()) return ReportClientError(stats.error());
  const proto::ServerStats& s = stats->server;
  Value::List modules;
  char up[32];
  std::snprintf(up, sizeof up, "%.1f s", static_cast<double>(s.uptime_ms) / 1000.0);
  std::string text = "server: up " + std::string(up) + ", " +
                     Plural(s.connections, "connection", "connections") + " (" +
                     std::to_string(s.total_connections) + " since start), " +
                     Plural(s.requests, "request", "requests") + "\n";
  for (const proto::ModuleStats& m : stats->modules) {
    // Per depot and per topology, summed over partitions: the per-partition detail is in
    // the --json output.
    std::map<std::string, int64_t> records;
    for (const auto& d : m.depots) records[d.depot] += d.end_offset - d.start_offset;
    std::map<std::pair<std::string, std::string>, int64_t> lag;
    for (const auto& t : m.topologies) lag[{t.topology, t.depot}] += t.lag;
    text += "\nmodule " + m.module + "\n";
    if (!m.load_error.empty()) {
      text += FailedLine(m.module, m.load_error);
      modules.push_back(proto::ModuleStatsDocument(m));
      continue;
    }
    Table depots{{"depot", "records"}, {}};
    for (const auto& [name, n] : records) depots.rows.push_back({name, std::to_string(n)});
    Table topologies{{"topology", "depot", "lag"}, {}};
    for (const auto& [key, n] : lag)
      topologies.rows.push_back({key.first, key.second, std::to_string(n)});
    text += RenderTable(depots) + RenderTable(topologies);
    Table rebuilds{{"rebuild", "of", "progress"}, {}};
    for (const auto& r : m.rebuilds) {
      rebuilds.rows.push_back({r.kind, Join(r.names), ProgressBar(r)});
    }
    if (!rebuilds.rows.empty()) text += RenderTable(rebuilds, 80);
    Table microbatches{{"microbatch", "batch", "state"}, {}};
    for (const auto& mb : m.microbatches) {
      int64_t behind = 0;  // records of its depots not in a committed batch yet
      for (const auto& t : m.topologies) {
        if (t.topology == mb.topology) behind += t.lag;
      }
      std::string state = !mb.stalled.empty() ? "stalled: " + mb.stalled
                          : behind == 0       ? "caught up"
                                              : Plural(behind, "record", "records") + " to batch";
      microbatches.rows.push_back({mb.topology, std::to_string(mb.batch), std::move(state)});
    }
    if (!microbatches.rows.empty()) text += RenderTable(microbatches, 80);
    text += "failures: " + std::to_string(m.failures) + FailurePageNote(m, c.from, c.limit) + "\n";
    Table failures{{"topology", "depot", "partition", "offset", "message"}, {}};
    for (const auto& f : m.failure_page) {
      failures.rows.push_back(
          {f.topology, f.depot, std::to_string(f.partition), std::to_string(f.offset), f.message});
    }
    if (!failures.rows.empty()) text += RenderTable(failures, 80);
    Value doc = proto::ModuleStatsDocument(m);
    doc.Insert("failures_from", c.from);
    modules.push_back(std::move(doc));
  }
  Emit(Value::MapOf(
           {{"server", proto::ServerStatsDocument(s)}, {"modules", Value(std::move(modules))}}),
       text);
  return Outcome::kOk;
}

const std::vector<proto::ModuleInfo>& Session::CachedModules() {
  if (!modules_cache_) {
    modules_cache_.emplace();
    // Completion must not print: connect quietly, and complete nothing when that fails.
    if (!client_) {
      auto client = Client::Connect(options_.client);
      if (client.ok()) client_ = std::move(*client);
    }
    if (client_) {
      auto modules = client_->Modules();
      if (modules.ok()) {
        modules_cache_ = std::move(*modules);
      } else {
        modules_cache_.reset();
        static const std::vector<proto::ModuleInfo> kNone;
        return kNone;
      }
    }
  }
  return *modules_cache_;
}

std::vector<std::string> Session::Completions(std::string_view line) {
  std::vector<std::string> words = Split(line);
  const bool new_word = line.empty() || line.back() == ' ' || line.back() == '\t';
  if (new_word) words.emplace_back();
  const size_t index = words.size() - 1;
  const std::string& prefix = words.back();
  std::vector<std::string> candidates;
  if (index == 0) {
    candidates = CommandNames();
  } else {
    const std::string& cmd = words[0];
    const bool module_arg = cmd == "describe" || cmd == "destroy" || cmd == "stats" ||
                            cmd == "append" || cmd == "select" || cmd == "select-one" ||
                            cmd == "scan" || cmd == "recompute" || cmd == "invoke" ||
                            cmd == "watch" || cmd == "watch-one";
    if (index == 1 && (cmd == "help")) {
      candidates = CommandNames();
    } else if (index == 1 && cmd == "timing") {
      candidates = {"on", "off"};
    } else if (index == 1 && module_arg) {
      for (const auto& m : CachedModules()) candidates.push_back(m.name);
    } else if (index == 2 &&
               (cmd == "append" || cmd == "scan" || cmd == "select" || cmd == "select-one" ||
                cmd == "invoke" || cmd == "watch" || cmd == "watch-one")) {
      if (const proto::ModuleInfo* m = FindModule(CachedModules(), words[1])) {
        if (cmd == "invoke") {
          for (const auto& q : m->queries) candidates.push_back(q.name);
        } else if (cmd == "append" || cmd == "scan") {
          for (const auto& d : m->depots) candidates.push_back(d.name);
        } else {
          for (const auto& p : m->pstates) candidates.push_back(p.name);
        }
      }
    } else if (index >= 2 && cmd == "recompute") {
      if (const proto::ModuleInfo* m = FindModule(CachedModules(), words[1])) {
        for (const auto& p : m->pstates) candidates.push_back(p.name);
      }
    } else if (index == 3 && cmd == "select") {
      candidates = {"all-partitions"};
    } else if (index >= 3 && cmd == "scan") {
      candidates = {"partition=", "from=", "limit="};
    } else if (index >= 2 && cmd == "update") {
      candidates = {"drop=", "partitions=", "from=end"};
    }
  }
  std::vector<std::string> out;
  for (const std::string& c : candidates) {
    if (c.starts_with(prefix)) out.push_back(c);
  }
  return out;
}

}  // namespace strata::shell
