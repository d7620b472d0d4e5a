"""Quantiles of the server's own latency histograms over an interval: reads two /metrics
scrapes (before and after) and prints, for the append path's histograms, the count and the
p50 / p99 / p99.9 of the observations made between them (linear interpolation inside a
bucket, as PromQL's histogram_quantile does), as JSON.

Usage: histograms.py BEFORE.txt AFTER.txt
Needs Debian's python3-prometheus-client (its exposition parser).
"""

import json
import sys

from prometheus_client.parser import text_string_to_metric_families

# (name in the output, metric family, label filter)
SERIES = [
    ("request (server: decoded to response queued)", "strata_request_duration_seconds",
     {"protocol": "binary", "kind": "append"}),
    ("append: queued (admitted to depot append start)", "strata_append_phase_seconds",
     {"phase": "queued"}),
    ("append: depot transaction", "strata_append_phase_seconds", {"phase": "appended"}),
    ("append: flush wait (commit to durable)", "strata_append_phase_seconds",
     {"phase": "flush_wait"}),
    ("append: processing (durable to processed)", "strata_append_phase_seconds",
     {"phase": "processing"}),
    ("step (a record's ops, no commit)", "strata_step_duration_seconds", {}),
    ("log flush (one fsync of the log: group commit)", "strata_log_flush_duration_seconds", {}),
]


def buckets(path, family, labels):
    """Cumulative bucket counts {le: count}, summed over the series matching `labels`."""
    with open(path) as f:
        text = f.read()
    out = {}
    for fam in text_string_to_metric_families(text):
        if fam.name != family:
            continue
        for sample in fam.samples:
            if not sample.name.endswith("_bucket"):
                continue
            if any(sample.labels.get(k) != v for k, v in labels.items()):
                continue
            le = float(sample.labels["le"])
            out[le] = out.get(le, 0) + sample.value
    return out


def quantile(q, cumulative):
    """histogram_quantile over sorted (le, cumulative count) pairs."""
    total = cumulative[-1][1]
    if total == 0:
        return None
    rank = q * total
    lower_le, lower_count = 0.0, 0.0
    for le, count in cumulative:
        if count >= rank:
            if le == float("inf"):
                return lower_le
            span = count - lower_count
            return lower_le + (le - lower_le) * ((rank - lower_count) / span if span else 1)
        lower_le, lower_count = le, count
    return cumulative[-1][0]


def main():
    before_path, after_path = sys.argv[1:3]
    result = {}
    for name, family, labels in SERIES:
        before = buckets(before_path, family, labels)
        after = buckets(after_path, family, labels)
        delta = sorted((le, after[le] - before.get(le, 0)) for le in after)
        if not delta:
            result[name] = None
            continue
        ms = lambda s: None if s is None else round(s * 1000, 3)  # noqa: E731
        result[name] = {"count": int(delta[-1][1]), "p50_ms": ms(quantile(0.5, delta)),
                        "p99_ms": ms(quantile(0.99, delta)),
                        "p999_ms": ms(quantile(0.999, delta))}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
