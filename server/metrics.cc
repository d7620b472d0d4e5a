#include "metrics.h"

#include <unistd.h>

#include <cstdio>
#include <string_view>

#include "exposition.h"

namespace strata::server {
namespace {

// Resident set size from /proc/self/statm (its second field, in pages); -1 when unreadable.
int64_t ResidentBytes() {
  std::FILE* statm = std::fopen("/proc/self/statm", "r");
  if (statm == nullptr) return -1;
  long long size = 0;
  long long resident = 0;
  const int read = std::fscanf(statm, "%lld %lld", &size, &resident);
  std::fclose(statm);
  if (read != 2) return -1;
  return static_cast<int64_t>(resident) * sysconf(_SC_PAGESIZE);
}

double Seconds(std::chrono::nanoseconds d) { return static_cast<double>(d.count()) / 1e9; }

void EngineFamilies(const EngineMetrics& m, Exposition& out) {
  out.Family("strata_module_loaded", "gauge",
             "1 for a deployed module that serves, 0 for one that failed to load (see Stats).");
  for (const ModuleMetrics& module : m.modules) {
    out.Sample("strata_module_loaded", {{"module", module.module}},
               module.load_error.empty() ? 1 : 0);
  }
  out.Family("strata_depot_appends_total", "counter",
             "Records appended to the depot since the server started (client and topology "
             "appends).");
  for (const ModuleMetrics& module : m.modules) {
    for (const DepotMetrics& depot : module.depots) {
      out.Sample("strata_depot_appends_total", {{"module", module.module}, {"depot", depot.depot}},
                 static_cast<double>(depot.appends));
    }
  }
  out.Family("strata_depot_append_bytes_total", "counter",
             "Encoded bytes of the records appended to the depot since the server started.");
  for (const ModuleMetrics& module : m.modules) {
    for (const DepotMetrics& depot : module.depots) {
      out.Sample("strata_depot_append_bytes_total",
                 {{"module", module.module}, {"depot", depot.depot}},
                 static_cast<double>(depot.append_bytes));
    }
  }
  out.Family("strata_depot_records", "gauge",
             "Records the depot holds (end minus start offset, summed over its partitions).");
  for (const ModuleMetrics& module : m.modules) {
    for (const DepotMetrics& depot : module.depots) {
      out.Sample("strata_depot_records", {{"module", module.module}, {"depot", depot.depot}},
                 static_cast<double>(depot.records));
    }
  }
  out.Family("strata_topology_processed_total", "counter",
             "Source records the topology has fully processed: its processed offsets summed "
             "over its source depots and partitions (kept across restarts).");
  for (const ModuleMetrics& module : m.modules) {
    for (const TopologyMetrics& topology : module.topologies) {
      int64_t processed = 0;
      for (const TopologyPartitionStats& p : topology.partitions) processed += p.processed_offset;
      out.Sample("strata_topology_processed_total",
                 {{"module", module.module}, {"topology", topology.topology}},
                 static_cast<double>(processed));
    }
  }
  out.Family("strata_topology_lag_records", "gauge",
             "Records of the source depot partition the topology has not fully processed yet.");
  for (const ModuleMetrics& module : m.modules) {
    for (const TopologyMetrics& topology : module.topologies) {
      for (const TopologyPartitionStats& p : topology.partitions) {
        const std::string partition = std::to_string(p.partition);
        out.Sample("strata_topology_lag_records",
                   {{"module", module.module},
                    {"topology", topology.topology},
                    {"depot", p.depot},
                    {"partition", partition}},
                   static_cast<double>(p.lag));
      }
    }
  }
  out.Family("strata_step_duration_seconds", "histogram",
             "How long the topology's steps ran since the server started: per event of a "
             "stream topology (each attempt, without its event group's commit), per batch of "
             "a microbatch topology (to its commit).");
  for (const ModuleMetrics& module : m.modules) {
    for (const TopologyMetrics& topology : module.topologies) {
      out.Histogram(
          "strata_step_duration_seconds",
          {{"module", module.module}, {"topology", topology.topology}, {"kind", topology.kind}},
          topology.steps);
    }
  }
  out.Family("strata_module_failures", "gauge",
             "Records a topology of the module gave up on, as recorded now (Stats failures).");
  for (const ModuleMetrics& module : m.modules) {
    if (!module.load_error.empty()) continue;
    out.Sample("strata_module_failures", {{"module", module.module}},
               static_cast<double>(module.failures));
  }
  out.Family("strata_inflight_records", "gauge",
             "Client records admitted and not yet fully processed, over all modules.");
  out.Sample("strata_inflight_records", {}, static_cast<double>(m.in_flight_records));
  out.Family("strata_inflight_records_limit", "gauge",
             "The cap on in-flight records (--max-in-flight-records); appends wait beyond it.");
  out.Sample("strata_inflight_records_limit", {}, static_cast<double>(m.max_in_flight_records));
  out.Family("strata_subscriptions", "gauge",
             "Live subscriptions open now, over every connection and HTTP stream.");
  out.Sample("strata_subscriptions", {}, static_cast<double>(m.subscriptions));
  out.Family("strata_subscription_events_total", "counter",
             "Subscription events delivered (first values, changes, ends) since start.");
  out.Sample("strata_subscription_events_total", {}, static_cast<double>(m.subscription_events));

  out.Family("strata_wiredtiger_cache_bytes", "gauge", "Bytes in the WiredTiger cache.");
  if (m.cache_bytes >= 0) {
    out.Sample("strata_wiredtiger_cache_bytes", {}, static_cast<double>(m.cache_bytes));
  }
  out.Family("strata_wiredtiger_cache_dirty_bytes", "gauge",
             "Dirty bytes in the WiredTiger cache (modified, not yet written by a checkpoint "
             "or eviction).");
  if (m.cache_dirty_bytes >= 0) {
    out.Sample("strata_wiredtiger_cache_dirty_bytes", {}, static_cast<double>(m.cache_dirty_bytes));
  }
  out.Family("strata_wiredtiger_cache_max_bytes", "gauge",
             "The WiredTiger cache size (--cache-size-bytes).");
  out.Sample("strata_wiredtiger_cache_max_bytes", {}, static_cast<double>(m.cache_max_bytes));
  out.Family("strata_checkpoint_duration_seconds", "summary",
             "WiredTiger checkpoints completed since the server started and their total "
             "duration (measured by WiredTiger in whole milliseconds).");
  if (m.checkpoints >= 0) {
    out.Sample("strata_checkpoint_duration_seconds_sum", {}, m.checkpoint_seconds);
    out.Sample("strata_checkpoint_duration_seconds_count", {}, static_cast<double>(m.checkpoints));
  }
  out.Family("strata_checkpoint_last_duration_seconds", "gauge",
             "Duration of the most recent WiredTiger checkpoint (0 before the first).");
  if (m.checkpoints >= 0) {
    out.Sample("strata_checkpoint_last_duration_seconds", {}, m.last_checkpoint_seconds);
  }
  out.Family("strata_log_flush_duration_seconds", "histogram",
             "Group-commit log flushes (one fsync of the WiredTiger log each) and their "
             "durations since the server started.");
  out.Histogram("strata_log_flush_duration_seconds", {}, m.log_flushes);
  out.Family("strata_append_phase_seconds", "histogram",
             "Where client appends that reached their ack level spent their time, one "
             "observation per request: queued (admitted to depot append start), appended "
             "(the depot transaction), flush_wait (commit to durable), processing (durable to "
             "every topology done; ack processed only).");
  const std::pair<const char*, const HistogramSnapshot*> phases[] = {
      {"queued", &m.append_phases.queued},
      {"appended", &m.append_phases.appended},
      {"flush_wait", &m.append_phases.flush_wait},
      {"processing", &m.append_phases.processing}};
  for (const auto& [phase, histogram] : phases) {
    out.Histogram("strata_append_phase_seconds", {{"phase", phase}}, *histogram);
  }
}

void ServerFamilies(const ServerCounters& counters, Exposition& out) {
  out.Family("strata_request_duration_seconds", "histogram",
             "How long requests took, by protocol and kind, from decoding the request to "
             "handing its response to the connection's writer.");
  int64_t binary_requests = 0;
  int64_t http_requests = 0;
  counters.latencies.ForEach(
      [&](std::string_view protocol, std::string_view kind, const HistogramSnapshot& snapshot) {
        out.Histogram("strata_request_duration_seconds", {{"protocol", protocol}, {"kind", kind}},
                      snapshot);
        (protocol == "binary" ? binary_requests : http_requests) +=
            static_cast<int64_t>(snapshot.count());
      });
  out.Family("strata_requests_total", "counter", "Requests answered, by protocol.");
  out.Sample("strata_requests_total", {{"protocol", "binary"}},
             static_cast<double>(binary_requests));
  out.Sample("strata_requests_total", {{"protocol", "http"}}, static_cast<double>(http_requests));
  out.Family("strata_open_connections", "gauge", "Client connections open now, by protocol.");
  out.Sample("strata_open_connections", {{"protocol", "binary"}},
             static_cast<double>(counters.open_connections.load()));
  out.Sample("strata_open_connections", {{"protocol", "http"}},
             static_cast<double>(counters.http_open_connections.load()));
  out.Family("strata_connections_total", "counter",
             "Client connections accepted since the server started, by protocol.");
  out.Sample("strata_connections_total", {{"protocol", "binary"}},
             static_cast<double>(counters.total_connections.load()));
  out.Sample("strata_connections_total", {{"protocol", "http"}},
             static_cast<double>(counters.http_total_connections.load()));

  out.Family("strata_http_streams", "gauge",
             "Live subscription streams (Server-Sent Events) open now over HTTP.");
  out.Sample("strata_http_streams", {}, static_cast<double>(counters.http_open_streams.load()));
  out.Family("strata_http_streams_refused_total", "counter",
             "HTTP subscription streams refused because --http-max-streams were open.");
  out.Sample("strata_http_streams_refused_total", {},
             static_cast<double>(counters.http_refused_streams.load()));

  out.Family("strata_uptime_seconds", "gauge", "Seconds since the server started.");
  out.Sample("strata_uptime_seconds", {},
             Seconds(std::chrono::steady_clock::now() - counters.start));
  out.Family("strata_build_info", "gauge", "The stratad version, as a label; always 1.");
  out.Sample("strata_build_info", {{"version", STRATA_VERSION}}, 1);
  out.Family("process_start_time_seconds", "gauge",
             "When the server started, in seconds since the Unix epoch.");
  out.Sample("process_start_time_seconds", {}, Seconds(counters.start_wall.time_since_epoch()));
  out.Family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
  if (const int64_t rss = ResidentBytes(); rss >= 0) {
    out.Sample("process_resident_memory_bytes", {}, static_cast<double>(rss));
  }
}

void ClusterFamilies(const cluster::ClusterView& view, Exposition& out) {
  out.Family("strata_cluster_nodes", "gauge",
             "Live nodes of the cluster (their ZooKeeper registrations), as this node sees them.");
  out.Sample("strata_cluster_nodes", {}, static_cast<double>(view.nodes.size()));
  out.Family("strata_cluster_is_controller", "gauge",
             "1 while this node is the cluster's controller, else 0.");
  out.Sample("strata_cluster_is_controller", {}, view.is_controller ? 1 : 0);
}

}  // namespace

std::string PrometheusText(Engine& engine, const ServerCounters& counters,
                           const cluster::ClusterNode* cluster) {
  Exposition out;
  EngineFamilies(engine.Metrics(), out);
  ServerFamilies(counters, out);
  if (cluster != nullptr) ClusterFamilies(cluster->View(), out);
  return out.Take();
}

}  // namespace strata::server
