#!/usr/bin/python3
"""W1 (word count appends, strata-bench) against a 3-node cluster (docs/cluster.md, "Fault
tests" and "Measurements"): the cost of replication and the spread over nodes.

ZooKeeper and three `stratad --cluster` nodes run in network namespaces (tests/cluster/lab.py,
as the fault tests do; root needed), strata-bench in the namespace of ZooKeeper and clients,
connected to the leader of the module it loads.

  replication  W1 on `wordcount` deployed with replication 3 and on `wordcount_b` deployed
               with replication 1, both led by node n1, alternated REPEAT times: records/s
               of each, and RF 3 / RF 1
  scaling      W1 with replication 1 on 1, 2 and 3 nodes: wordcount_b led by n1, wordcount_c
               by n2, wordcount_d by n3 (one module's group is led by one node, so one module
               per node); one strata-bench per module at once; their sum, and / 1 node;
               the series 1, 2, 3 repeated REPEAT times

  sudo /usr/bin/python3 bench/cluster-bench.py [--build build] [--duration 10] [--repeat 2]
      [--connections 16] [--ack processed]
      [--runs both|replication|scaling] [--keep]

Prints one JSON line per run and a table. All nodes and the load generator share this
machine's cores: on a small machine the scaling measures how the cores are shared, not
what separate machines would give.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "cluster"))

import lab as lab_mod  # noqa: E402


def say(*args):
    print(*args, flush=True)


def deploy(lab, node, path, replication):
    """Deploys the module at `path` through `node`, which then leads it."""
    router = lab_mod.Router(lab, timeout=60)
    try:
        lab_mod.deploy(router.client(node), path, 8, replication)
    finally:
        router.close()


def cpu_seconds(pid):
    """User + system CPU seconds of process `pid` so far (/proc/PID/stat)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def w1(lab, args, targets):
    """Runs one strata-bench W1 per (module, node) of `targets` at once; answers their JSON,
    each with "cpu": the cores each node and the load generators used over the run (from
    warmup to the end: CPU seconds / wall seconds)."""
    started = time.monotonic()
    before = {n.id: cpu_seconds(n.proc.pid) for n in lab.nodes}
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    procs = []
    for module, node in targets:
        host, port = node.address.rsplit(":", 1)
        argv = [args.bench, "--workload", "W1", "--module", module, "--host", host,
                "--port", port, "--duration", str(args.duration), "--warmup", str(args.warmup),
                "--connections", str(args.connections), "--ack", args.ack, "--json"]
        procs.append(lab.client_ns.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    results = []
    for p, (module, node) in zip(procs, targets):
        out, err = p.communicate()
        if p.returncode != 0:
            raise RuntimeError("strata-bench W1 on %s at %s failed (exit %d): %s"
                               % (module, node.id, p.returncode, err.decode()[-2000:]))
        results.append(json.loads(out))
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = {n.id: round((cpu_seconds(n.proc.pid) - before[n.id]) / wall, 2) for n in lab.nodes}
    cpu["strata-bench"] = round((after.ru_utime + after.ru_stime - children.ru_utime -
                                 children.ru_stime) / wall, 2)
    for r in results:
        r["cpu"] = cpu
    return results


def body(lab, args):
    lab.start()
    n1, n2, n3 = lab.nodes
    served = lab_mod.serves_replicas(n1.http)
    if not served:
        lab.fallback_leader = n1
    deploy(lab, n1, lab.module_path("wordcount"), 3)
    deploy(lab, n1, os.path.join(args.bench_modules, "wordcount_b.so"), 1)
    deploy(lab, n2, os.path.join(args.bench_modules, "wordcount_c.so"), 1)
    deploy(lab, n3, os.path.join(args.bench_modules, "wordcount_d.so"), 1)
    rf = {3: [], 1: []}
    if served and args.runs != "scaling":
        for i in range(args.repeat):
            for factor, module in ((3, "wordcount"), (1, "wordcount_b")):
                r = w1(lab, args, [(module, n1)])[0]
                rf[factor].append(r["units_per_s"])
                say(json.dumps({"run": "replication", "rf": factor, "module": module,
                                "records_per_s": r["units_per_s"],
                                "p50_ms": r["latency_ms"]["p50"], "p99_ms": r["latency_ms"]["p99"],
                                "cores": r["cpu"], "errors": r["errors"]}))
    scaling = {}
    spread = [("wordcount_b", n1), ("wordcount_c", n2), ("wordcount_d", n3)]
    for i in range(args.repeat if args.runs != "replication" else 0):
        for nodes in (1, 2, 3):
            runs = w1(lab, args, spread[:nodes])
            total = sum(r["units_per_s"] for r in runs)
            scaling[nodes] = max(scaling.get(nodes, 0), total)
            say(json.dumps({"run": "scaling", "nodes": nodes, "records_per_s": total,
                            "per_module": [r["units_per_s"] for r in runs],
                            "cores": runs[0]["cpu"], "errors": sum(r["errors"] for r in runs)}))
    say("")
    say("W1 (%s acks, %d connections per strata-bench, %g s each), 3-node cluster"
        % (args.ack, args.connections, args.duration))
    say("%-34s %14s %8s" % ("run", "records/s", "ratio"))
    if served and args.runs != "scaling":
        best = {f: max(v) for f, v in rf.items()}
        say("%-34s %14.0f %8s" % ("RF 1 (wordcount_b, led by n1)", best[1], "1.00"))
        say("%-34s %14.0f %8.2f" % ("RF 3 (wordcount, led by n1)", best[3],
                                    best[3] / best[1]))
        # The machine's speed drifts between runs: the ratio of each back-to-back pair.
        pairs = sorted(r3 / r1 for r3, r1 in zip(rf[3], rf[1]))
        say("RF 3 / RF 1 of each back-to-back pair: %s (median %.2f)"
            % (", ".join("%.2f" % x for x in pairs), pairs[len(pairs) // 2]))
    for nodes in sorted(scaling):
        say("%-34s %14.0f %8.2f" % ("RF 1 on %d node(s), one module each" % nodes,
                                     scaling[nodes], scaling[nodes] / scaling[1]))
    if not served:
        say("(stratad without replication: every module is served by the node it was "
            "deployed to)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--repeat", type=int, default=2,
                        help="RF 3 / RF 1 pairs, and 1, 2, 3-node series, each alternated (the "
                             "best of each is compared)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--runs", default="both", choices=("both", "replication", "scaling"),
                        help="which of the two measurements to make")
    parser.add_argument("--keep", action="store_true",
                        help="keep the nodes' data directories and logs (the path is printed)")
    parser.add_argument("--ack", default="processed", choices=("none", "appended", "processed"))
    args = parser.parse_args()
    args.bench = os.path.join(args.build, "bin", "strata-bench")
    args.bench_modules = os.path.join(args.build, "bench-modules")
    lab = lab_mod.Lab(3, os.path.join(args.build, "bin", "stratad"),
                      os.path.join(args.build, "modules"), keep=args.keep)
    lab.run(lambda l: body(l, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
