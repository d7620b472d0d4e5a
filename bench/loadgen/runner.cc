#include "runner.h"

#include <condition_variable>
#include <iostream>
#include <thread>

namespace strata::bench {
namespace {

using Clock = std::chrono::steady_clock;

// State shared by the phase and every callback; lives on RunPhase's stack, which waits for
// the last callback (in_flight == 0) before returning.
struct Phase {
  const OpSource* source = nullptr;
  const PhaseOptions* options = nullptr;
  Clock::time_point measure_start;
  Clock::time_point measure_end;  // max() without a time limit
  std::atomic<bool> stop{false};
  std::atomic<int64_t> measured{0};
  bool open_loop = false;  // options->rate > 0

  std::mutex done_mu;
  std::condition_variable done_cv;
  int64_t in_flight = 0;    // GUARDED_BY(done_mu)
  bool scheduling = false;  // GUARDED_BY(done_mu); the open-loop scheduler is still sending
};

struct Connection {
  Client* client = nullptr;
  Phase* phase = nullptr;
  std::mutex mu;
  std::mt19937_64 rng;                   // GUARDED_BY(mu)
  PhaseResult result;                    // GUARDED_BY(mu)
  int64_t completed_units = 0;           // GUARDED_BY(mu); measured or not, for progress
  Clock::time_point last_measured_at{};  // GUARDED_BY(mu)
};

void Finish(Phase& phase) {
  std::lock_guard lock(phase.done_mu);
  if (--phase.in_flight == 0) phase.done_cv.notify_all();
}

void SendNext(Connection& conn);

void OnResponse(Connection& conn, const Op& op, Clock::time_point sent,
                const ClientResult<Client::Body>& response) {
  const Clock::time_point now = Clock::now();
  Phase& phase = *conn.phase;
  std::string error;
  bool connection_lost = false;
  if (!response.ok()) {
    error = response.error().ToString();
    connection_lost = response.error().kind == ErrorKind::kConnection;
  } else {
    error = phase.source->check(op, *response);
  }
  {
    std::lock_guard lock(conn.mu);
    PhaseResult& r = conn.result;
    if (!error.empty()) {
      if (r.errors++ == 0) r.first_error = error;
    } else {
      conn.completed_units += op.units;
    }
    // Open loop: `sent` is the scheduled time; every request scheduled in the window counts,
    // however late its answer.
    const bool in_window = phase.open_loop ? sent < phase.measure_end : now <= phase.measure_end;
    if (error.empty() && sent >= phase.measure_start && in_window) {
      ++r.ops;
      r.units += op.units;
      r.extra_units += op.extra_units;
      conn.last_measured_at = now;
      r.latency[op.latency_class].Record(
          std::chrono::duration_cast<std::chrono::nanoseconds>(now - sent).count());
      if (phase.options->count > 0 &&
          phase.measured.fetch_add(op.units, std::memory_order_relaxed) + op.units >=
              phase.options->count) {
        phase.stop = true;
      }
    }
  }
  // A broken connection is not retried by sending into it again at full speed: this
  // connection stops and the error is reported.
  if (!phase.open_loop && !connection_lost && !phase.stop && Clock::now() < phase.measure_end) {
    SendNext(conn);
  }
  Finish(phase);
}

// Sends the connection's next request; its latency runs from `scheduled`, or from now when
// absent (closed loop). Returns false when the workload has nothing more to send.
bool Send(Connection& conn, std::optional<Clock::time_point> scheduled) {
  std::optional<Op> op;
  {
    std::lock_guard lock(conn.mu);
    op = conn.phase->source->next(conn.rng);
  }
  if (!op) return false;
  {
    std::lock_guard lock(conn.phase->done_mu);
    ++conn.phase->in_flight;
  }
  auto shared_op = std::make_shared<Op>(std::move(*op));
  protocol::RequestBody body = shared_op->body;
  const Clock::time_point sent = scheduled ? *scheduled : Clock::now();
  conn.client->SendAsync(std::move(body),
                         [&conn, shared_op, sent](ClientResult<Client::Body> response) {
                           OnResponse(conn, *shared_op, sent, response);
                         });
  return true;
}

void SendNext(Connection& conn) { Send(conn, std::nullopt); }

// The open-loop sender (its own thread): request i is due at start + i / rate and goes over
// connection i mod C. A scheduler that wakes late sends every overdue request at once;
// their latencies include the lateness. Ends at the end of the measured interval, on stop
// (count reached) or when the workload runs dry.
void Schedule(Phase& phase, const std::vector<std::unique_ptr<Connection>>& connections,
              Clock::time_point start) {
  const std::chrono::duration<double> period(1.0 / phase.options->rate);
  for (int64_t i = 0;; ++i) {
    const Clock::time_point due =
        start + std::chrono::duration_cast<Clock::duration>(period * static_cast<double>(i));
    if (due >= phase.measure_end || phase.stop) break;
    std::this_thread::sleep_until(due);
    if (!Send(*connections[i % connections.size()], due)) break;
  }
  std::lock_guard lock(phase.done_mu);
  phase.scheduling = false;
  phase.done_cv.notify_all();
}

}  // namespace

Histogram PhaseResult::AllLatencies() const {
  Histogram all = latency[0];
  all.Merge(latency[1]);
  return all;
}

PhaseResult RunPhase(const std::vector<Client*>& clients, const OpSource& source,
                     const PhaseOptions& options, uint64_t seed) {
  Phase phase;
  phase.source = &source;
  phase.options = &options;
  const Clock::time_point start = Clock::now();
  phase.measure_start = start + std::chrono::duration_cast<Clock::duration>(options.warmup);
  phase.measure_end =
      options.duration.count() > 0
          ? phase.measure_start + std::chrono::duration_cast<Clock::duration>(options.duration)
          : Clock::time_point::max();

  std::vector<std::unique_ptr<Connection>> connections;
  for (size_t i = 0; i < clients.size(); ++i) {
    auto conn = std::make_unique<Connection>();
    conn->client = clients[i];
    conn->phase = &phase;
    conn->rng.seed(seed * 1000003 + i);
    connections.push_back(std::move(conn));
  }
  phase.open_loop = options.rate > 0;
  std::thread scheduler;
  if (phase.open_loop) {
    phase.scheduling = true;
    scheduler = std::thread([&phase, &connections, start] { Schedule(phase, connections, start); });
  } else {
    for (int d = 0; d < options.pipeline; ++d) {
      for (auto& conn : connections) SendNext(*conn);
    }
  }

  // Wait for the end: time, count, or the generator running dry (nothing in flight).
  std::unique_lock lock(phase.done_mu);
  int64_t last_measured = 0;
  Clock::time_point last_report = Clock::now();
  while (phase.in_flight > 0 || phase.scheduling) {
    phase.done_cv.wait_for(lock, std::chrono::milliseconds(50));
    const Clock::time_point now = Clock::now();
    if (now >= phase.measure_end) phase.stop = true;
    if (options.progress && now - last_report >= std::chrono::seconds(1)) {
      int64_t done = 0;
      for (auto& conn : connections) {
        std::lock_guard conn_lock(conn->mu);
        done += conn->completed_units;
      }
      std::cerr << "  " << options.label << ": " << (done - last_measured)
                << " units in the last second" << (now < phase.measure_start ? " (warmup)" : "")
                << "\n";
      last_measured = done;
      last_report = now;
    }
  }
  lock.unlock();
  if (scheduler.joinable()) scheduler.join();
  const Clock::time_point end = Clock::now();

  PhaseResult total;
  Clock::time_point last_measured_at = phase.measure_start;
  for (auto& conn : connections) {
    std::lock_guard conn_lock(conn->mu);
    last_measured_at = std::max(last_measured_at, conn->last_measured_at);
    const PhaseResult& r = conn->result;
    total.ops += r.ops;
    total.units += r.units;
    total.extra_units += r.extra_units;
    if (total.errors == 0 && r.errors > 0) total.first_error = r.first_error;
    total.errors += r.errors;
    total.latency[0].Merge(r.latency[0]);
    total.latency[1].Merge(r.latency[1]);
  }
  // A timed phase measures its whole window; a counted or exhausted one ends with its last
  // measured response (not with the drain of requests sent after the count was reached).
  // An open-loop timed phase counts its requests however late they are answered, so its
  // window lasts until the last of those answers when that comes after the schedule's end
  // (a server that falls behind shows its achieved rate, not the offered one).
  const Clock::time_point measured_end =
      options.duration.count() > 0
          ? (phase.open_loop ? std::max(phase.measure_end, last_measured_at)
                             : std::min(end, phase.measure_end))
          : last_measured_at;
  total.seconds = std::chrono::duration<double>(measured_end - phase.measure_start).count();
  return total;
}

}  // namespace strata::bench
