"""GET /metrics against a real stratad with the example modules (docs/metrics.md): the
exposition parses with Debian's python3-prometheus-client, every documented family is
there with its type, and the counters move with load — REST appends and selects, binary
requests (through the strata shell), topology steps, group-commit flushes.

Run by ctest (tests/http/CMakeLists.txt sets STRATAD and STRATA_MODULES)."""

import os
import re
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

# Every family of docs/metrics.md, by its name in the exposition, with its type. (The
# parser names a counter's family without the _total suffix; see Families.)
FAMILIES = {
    "strata_module_loaded": "gauge",
    "strata_depot_appends_total": "counter",
    "strata_depot_append_bytes_total": "counter",
    "strata_depot_records": "gauge",
    "strata_topology_processed_total": "counter",
    "strata_topology_lag_records": "gauge",
    "strata_step_duration_seconds": "histogram",
    "strata_module_failures": "gauge",
    "strata_inflight_records": "gauge",
    "strata_inflight_records_limit": "gauge",
    "strata_subscriptions": "gauge",
    "strata_subscription_events_total": "counter",
    "strata_wiredtiger_cache_bytes": "gauge",
    "strata_wiredtiger_cache_dirty_bytes": "gauge",
    "strata_wiredtiger_cache_max_bytes": "gauge",
    "strata_checkpoint_duration_seconds": "summary",
    "strata_checkpoint_last_duration_seconds": "gauge",
    "strata_log_flush_duration_seconds": "histogram",
    "strata_append_phase_seconds": "histogram",
    "strata_request_duration_seconds": "histogram",
    "strata_requests_total": "counter",
    "strata_open_connections": "gauge",
    "strata_connections_total": "counter",
    "strata_http_streams": "gauge",
    "strata_http_streams_refused_total": "counter",
    "strata_uptime_seconds": "gauge",
    "strata_build_info": "gauge",
    "process_start_time_seconds": "gauge",
    "process_resident_memory_bytes": "gauge",
}


def exposition_name(family):
    """The family's name as the exposition writes it (the parser drops a counter's _total)."""
    return family.name + "_total" if family.type == "counter" else family.name


class Scrape:
    """One parsed GET /metrics."""

    def __init__(self, server):
        status, headers, text = server.get("/metrics")
        if status != 200:
            raise AssertionError("GET /metrics answered %d: %s" % (status, text))
        self.content_type = headers.get("Content-Type", "")
        self.text = text
        self.families = {exposition_name(f): f for f in text_string_to_metric_families(text)}

    def value(self, sample_name, **labels):
        """The value of the one sample `sample_name` with exactly `labels` (0 when absent:
        request series appear at their first request)."""
        family_name = re.sub(r"_(bucket|sum|count)$", "", sample_name)
        family = self.families.get(family_name) or self.families.get(sample_name)
        if family is None:
            raise AssertionError("no family for %s in:\n%s" % (sample_name, self.text))
        found = [s.value for s in family.samples
                 if s.name == sample_name and s.labels == labels]
        if len(found) > 1:
            raise AssertionError("%d samples %s%s" % (len(found), sample_name, labels))
        return found[0] if found else 0.0

    def samples(self, sample_name):
        family_name = re.sub(r"_(bucket|sum|count)$", "", sample_name)
        return [s for s in self.families[family_name].samples if s.name == sample_name]


class MetricsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = harness.Stratad(modules=["wordcount", "mbbank"],
                                     extra_args=["--checkpoint-interval", "1s"])

    @classmethod
    def tearDownClass(cls):
        cls.server.cleanup()

    def shell(self, command):
        """Runs one strata shell command over the binary protocol; returns its output."""
        shell = os.path.join(os.path.dirname(harness.stratad_path()), "strata")
        host, port = self.server.address.rsplit(":", 1)
        done = subprocess.run([shell, "--host", host, "--port", port, "-c", command],
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        return done.stdout

    def test_every_family_is_present_with_its_type(self):
        scrape = Scrape(self.server)
        self.assertEqual(scrape.content_type, "text/plain; version=0.0.4")
        for name, kind in FAMILIES.items():
            self.assertIn(name, scrape.families, "family %s missing from:\n%s"
                          % (name, scrape.text))
            self.assertEqual(scrape.families[name].type, kind, name)
        self.assertEqual(sorted(scrape.families), sorted(FAMILIES),
                         "families not in docs/metrics.md (or this test)")
        # Every family has a help text; histograms have cumulative buckets ending at +Inf
        # with _count equal to the +Inf bucket.
        for family in scrape.families.values():
            self.assertTrue(family.documentation, family.name)
        for sample in scrape.samples("strata_log_flush_duration_seconds_bucket"):
            self.assertIn("le", sample.labels)
        buckets = scrape.samples("strata_log_flush_duration_seconds_bucket")
        self.assertEqual(buckets[-1].labels["le"], "+Inf")
        self.assertEqual([b.value for b in buckets], sorted(b.value for b in buckets))
        self.assertEqual(buckets[-1].value,
                         scrape.value("strata_log_flush_duration_seconds_count"))
        self.assertEqual(scrape.value("strata_module_loaded", module="wordcount"), 1)
        self.assertEqual(scrape.value("strata_module_loaded", module="mbbank"), 1)
        self.assertGreater(scrape.value("strata_wiredtiger_cache_bytes"), 0)
        self.assertEqual(scrape.value("strata_wiredtiger_cache_max_bytes"), 128 << 20)
        self.assertGreater(scrape.value("process_resident_memory_bytes"), 1 << 20)
        self.assertGreater(scrape.value("process_start_time_seconds"), 1.6e9)
        self.assertGreater(scrape.value("strata_inflight_records_limit"), 0)
        self.assertEqual(scrape.value("strata_build_info", version=scrape.samples(
            "strata_build_info")[0].labels["version"]), 1)
        # A microbatch topology's steps are its batches, labelled with its kind.
        self.assertIn(("mbbank", "ledger", "microbatch"),
                      {(s.labels["module"], s.labels["topology"], s.labels["kind"])
                       for s in scrape.samples("strata_step_duration_seconds_count")})

    def test_counters_move_with_load(self):
        before = Scrape(self.server)
        sentences = ["a b c", "the cat sat", "on the mat"]
        for sentence in sentences:
            status, _, body = self.server.post("/rest/wordcount/depot/*sentences/append",
                                               {"data": sentence, "ack": "processed"})
            self.assertEqual(status, 200, body)
        status, _, body = self.server.post(
            "/rest/wordcount/depot/*sentences/append",
            {"batch": ["x y", "y z"], "ack": "processed"})
        self.assertEqual(status, 200, body)
        status, _, body = self.server.post("/rest/wordcount/pstate/$$word_counts/selectOne",
                                           {"path": [["key", "the"]]})
        self.assertEqual(status, 200, body)
        self.shell("modules")
        self.shell("select-one wordcount $$word_counts key(\"the\")")
        after = Scrape(self.server)

        def moved(name, **labels):
            return after.value(name, **labels) - before.value(name, **labels)

        depot = {"module": "wordcount", "depot": "*sentences"}
        self.assertEqual(moved("strata_depot_appends_total", **depot), 5)
        self.assertEqual(moved("strata_depot_records", **depot), 5)
        # Each record is its encoded value: at least its characters.
        self.assertGreaterEqual(moved("strata_depot_append_bytes_total", **depot),
                                sum(len(s) for s in sentences + ["x y", "y z"]))
        topology = {"module": "wordcount", "topology": "count"}
        self.assertEqual(moved("strata_topology_processed_total", **topology), 5)
        # Every record was acknowledged processed: no lag left on any partition.
        for sample in after.samples("strata_topology_lag_records"):
            if sample.labels["module"] == "wordcount":
                self.assertEqual(sample.value, 0, sample)
        # A sentence event per record, then an event per word hop (13 words).
        self.assertGreaterEqual(
            moved("strata_step_duration_seconds_count", kind="stream", **topology), 5 + 13)
        self.assertGreater(moved("strata_step_duration_seconds_sum", kind="stream", **topology), 0)
        # The processed acks waited for the group commit's fsyncs.
        self.assertGreater(moved("strata_log_flush_duration_seconds_count"), 0)
        for phase in ("queued", "appended", "flush_wait", "processing"):
            self.assertGreater(moved("strata_append_phase_seconds_count", phase=phase), 0, phase)
        # Requests, by protocol and kind: the 4 REST appends, the REST point select, the
        # shell's hello, modules and select-one over the binary protocol.
        self.assertEqual(moved("strata_request_duration_seconds_count",
                               protocol="http", kind="append"), 4)
        self.assertEqual(moved("strata_request_duration_seconds_count",
                               protocol="http", kind="select_one"), 1)
        self.assertGreaterEqual(moved("strata_request_duration_seconds_count",
                                      protocol="http", kind="metrics"), 1)
        for kind in ("hello", "modules", "select_one"):
            self.assertGreaterEqual(moved("strata_request_duration_seconds_count",
                                          protocol="binary", kind=kind), 1, kind)
        self.assertGreater(moved("strata_request_duration_seconds_sum",
                                 protocol="http", kind="append"), 0)
        self.assertGreaterEqual(moved("strata_requests_total", protocol="http"), 5)
        self.assertGreaterEqual(moved("strata_requests_total", protocol="binary"), 4)
        self.assertGreaterEqual(moved("strata_connections_total", protocol="http"), 5)
        self.assertGreaterEqual(moved("strata_connections_total", protocol="binary"), 2)
        self.assertEqual(after.value("strata_inflight_records"), 0)
        self.assertGreater(after.value("strata_uptime_seconds"),
                           before.value("strata_uptime_seconds"))

    def test_checkpoints_are_counted(self):
        # WiredTiger checkpoints every --checkpoint-interval (1s for this server); wait
        # for one to complete.
        deadline = time.monotonic() + 60
        while True:
            scrape = Scrape(self.server)
            count = scrape.value("strata_checkpoint_duration_seconds_count")
            if count >= 1 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertGreaterEqual(count, 1, "no checkpoint within 60 s")
        self.assertGreaterEqual(scrape.value("strata_checkpoint_duration_seconds_sum"), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
