#!/usr/bin/python3
"""The cluster's fault tests (docs/cluster.md, "Fault tests"; issue 22): ZooKeeper and three
`stratad --cluster` nodes, each in its own network namespace (tests/cluster/lab.py);
wordcount, bank and social deployed with replication 3; the mixed workload of
tests/cluster/workload.py running throughout; and rounds of faults, each followed by the
checks of workload.check():

  kill      kill -9 of the leader of a module (wordcount, bank, social in turn); once a
            new leader acknowledged an append, the killed node is started again
  stop      SIGSTOP of a module's leader until another node leads it (past the 1 s session
            timeout), then SIGCONT
  isolate   the leader cut off from every other node, ZooKeeper and the clients
            (cluster.isolate) until another node leads, then healed
  restart   kill -9 of every node, then all started again
  rebalance `rebalance` (docs/cluster.md, "Rebalance") under the load: the leaderships spread
            one per node (the modules are deployed from one node, and the faults before move
            them), each move a leader change without a failure; the round ends once no
            group has a target left
  update    the module updated under the load to a new version of the same build, sent to
            a follower (the driver follows NOT_LEADER to the leader); every follower then
            reloads its copy from a snapshot (docs/cluster.md, "Changing a module in a
            cluster"); its time is from the update's start to the first append
            acknowledged after its answer

The nodes keep only --log-retention entries of each replica log (200 by default, against
stratad's 1,000,000), so that a node coming back after a fault often finds the entries it
lacks compacted away and catches up from a snapshot of the leader's rows (docs/cluster.md,
"Log compaction and snapshots"); the snapshots loaded are counted at the end.

Failover time: in every round but restart, a prober thread appends to the module (ack
`appended`) in a loop; the time from the fault to its first append acknowledged by another
node is printed as a JSON line {"fault", "round", "module", "failover_ms"} (restart: to the
first append acknowledged after the start), and at the end p50 and max per fault.

  sudo /usr/bin/python3 tests/cluster/faults.py [--rounds N] [--faults kill,stop,...]
      [--build build] [--seed S] [--keep]

Exit 0 when every check held; 1 with what differs otherwise (the data directories and logs
are then kept, and their directory printed). Needs root (network namespaces).
"""

import argparse
import json
import os
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import lab as lab_mod  # noqa: E402
import netns  # noqa: E402
import strata  # noqa: E402
import workload as wl  # noqa: E402
from strata import Ack  # noqa: E402

FAULTS = ("kill", "stop", "isolate", "restart", "rebalance", "update")


def say(*args):
    print(*args, flush=True)


class Prober:
    """Appends to `module` in a loop (ack `appended`) and keeps (monotonic time sent, time
    acknowledged) of every acknowledged append. In a cluster it goes through the Python
    driver given every node as a seed, as an application would: the driver follows
    NOT_LEADER redirects and retries through the other nodes during a failover."""

    def __init__(self, lab, module):
        self.lab = lab
        self.module = module
        self.acks = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prober")
        self._thread.start()

    def _run(self):
        depot = wl.DEPOTS[self.module][0]
        if not self.lab.clustered:
            router = lab_mod.Router(self.lab, timeout=1.0)
            try:
                self._probe(lambda n: router.once(self.module, lambda c: c.append(
                    self.module, depot, _probe_record(self.module, n), ack=Ack.APPENDED)))
            finally:
                router.close()
            return
        seeds = [n.address for n in self.lab.nodes]
        host, port = seeds[0].rsplit(":", 1)
        client = strata.Client(host, int(port), 1.0, seeds=seeds[1:])
        try:
            self._probe(lambda n: client.append(self.module, depot, _probe_record(self.module, n),
                                                ack=Ack.APPENDED))
        finally:
            client.close()

    def _probe(self, append):
        """Calls append(n) for n = 1, 2, ... until stopped, noting (sent, acked) of each
        acknowledged one."""
        n = 0
        while not self._stop.is_set():
            n += 1
            sent = time.monotonic()
            try:
                append(n)
            except (strata.StrataError, TimeoutError):
                self._stop.wait(0.01)
                continue
            self.acks.append((sent, time.monotonic()))

    def first_after(self, t, not_node=None):
        """When the first append sent after `t` was acknowledged; None: none yet. (After a
        kill, a stop or an isolation of the old leader, `not_node`, only another node can
        acknowledge an append sent after the fault: the old one is dead, frozen until the
        round resumes it, or unreachable.)"""
        for sent, acked in list(self.acks):
            if sent > t:
                return acked
        return None

    def wait_ack(self, t, not_node, timeout, what):
        return netns.wait_for(lambda: self.first_after(t, not_node), timeout, what)

    def stop(self):
        self._stop.set()
        self._thread.join()


def _probe_record(module, n):
    # Probes are records of the module like any other, checked as the workload's are not
    # (they are not recorded as acknowledged: the checks cover the workload's).
    if module == "wordcount":
        return "probe %d" % n
    if module == "bank":
        return {"account": "probe", "amount": 1}
    return {"from": "probe", "to": "u0"}


def run_round(lab, load, fault, round_, module, results):
    """One fault round: load, the fault, recovery, more load; answers the failover ms."""
    load.start()
    try:
        load.wait_progress(50, what="appends before the fault")
        leader = lab.leader_of(module) if lab.clustered else lab.nodes[0]
        if leader is None:
            raise AssertionError("no node leads %s before the fault" % module)
        say("round %d %s: module %s, leader %s" % (round_, fault, module, leader.id))
        prober = Prober(lab, module)
        try:
            prober.wait_ack(0, None, 60, "a probe append before the fault")
            t0 = time.monotonic()
            # The wall-clock time of the fault, to read the nodes' logs against.
            say("round %d %s: fault at %s" % (round_, fault, time.strftime(
                "%H:%M:%S", time.gmtime()) + ".%03dZ" % (time.time() % 1 * 1000)))
            if fault == "kill":
                leader.kill()
                t1 = prober.wait_ack(t0, leader.id, 60, "an append acknowledged by a new "
                                                        "leader of %s after kill -9" % module)
                leader.start()
            elif fault == "stop":
                leader.pause()
                t1 = prober.wait_ack(t0, leader.id, 60, "an append acknowledged by a new "
                                                        "leader of %s while %s is stopped"
                                     % (module, leader.id))
                leader.resume()
            elif fault == "isolate":
                lab.cluster.isolate(leader.ns)
                t1 = prober.wait_ack(t0, leader.id, 60, "an append acknowledged by a new "
                                                        "leader of %s while %s is isolated"
                                     % (module, leader.id))
                lab.cluster.heal()
            elif fault == "rebalance":
                host, port = lab.nodes[-1].address.rsplit(":", 1)
                with strata.connect(host, int(port), timeout=30.0) as admin:
                    def leaders():
                        return ", ".join("%s %s" % (g.module, g.leader or "-")
                                         for g in admin.placement().groups)
                    before = leaders()
                    admin.rebalance()
                    netns.wait_for(lambda: not any(g.target for g in admin.placement().groups),
                                   60, "every move of the rebalance done")
                    say("round %d rebalance: leaders %s before, %s after"
                        % (round_, before, leaders()))
                t1 = prober.wait_ack(t0, None, 60, "an append acknowledged after the "
                                                   "rebalance")
            elif fault == "update":
                # A new version of the same build, sent to a follower (the driver follows
                # NOT_LEADER to the leader); every follower then reloads its copy.
                other = next(n for n in lab.nodes if n.id != leader.id)
                host, port = other.address.rsplit(":", 1)
                with strata.connect(host, int(port), timeout=60.0) as admin:
                    updated = admin.update(lab.module_path(module))
                answered = time.monotonic()
                say("round %d update: %s is at version %d, answered after %d ms"
                    % (round_, module, updated.version, round((answered - t0) * 1000)))
                t1 = prober.wait_ack(answered, None, 60,
                                     "an append acknowledged after the update's answer")
            elif fault == "restart":
                for n in lab.nodes:
                    n.kill()
                for n in lab.nodes:
                    n.start()
                t1 = prober.wait_ack(t0, None, 120, "an append acknowledged after a restart "
                                                    "of every node")
            else:
                raise ValueError("unknown fault %s" % fault)
        finally:
            prober.stop()
        failover_ms = round((t1 - t0) * 1000)
        line = {"fault": fault, "round": round_, "module": module, "old_leader": leader.id,
                "failover_ms": failover_ms}
        say(json.dumps(line))
        results.setdefault(fault, []).append(failover_ms)
        for n in lab.nodes:
            n.wait_serving()
        load.wait_progress(50, what="appends after the recovery")
    finally:
        load.stop()


def body(lab, args):
    lab.start()
    say("lab: %d nodes %s, ZooKeeper at %s:%d, work directory %s"
        % (len(lab.nodes), ", ".join("%s=%s" % (n.id, n.address) for n in lab.nodes),
           lab.zk_ns.address, lab_mod.ZK_PORT, lab.workdir))
    served = lab_mod.serves_replicas(lab.nodes[0].http)
    if not served:
        say("lab: stratad has no GET /rest/<module>/replica (replication not built?): the module's "
            "leader is taken to be the node it was deployed to, and no digest is compared")
        lab.fallback_leader = lab.nodes[0]
    load = wl.Workload(lab, args.seed, partitions=args.partitions,
                       replication=min(3, len(lab.nodes)))
    load.deploy(lab.nodes[0])
    results = {}
    for r in range(1, args.rounds + 1):
        for i, fault in enumerate(args.faults):
            module = wl.MODULES[(r - 1 + i) % len(wl.MODULES)]
            started = time.monotonic()
            run_round(lab, load, fault, r, module, results)
            problems = wl.check(lab, load, served, say=say)
            say("round %d %s: %s (%.1f s)" % (r, fault, "checks hold" if not problems else
                                               "CHECKS FAILED", time.monotonic() - started))
            if problems:
                report(results)
                raise AssertionError("\n".join("round %d %s: %s" % (r, fault, p)
                                               for p in problems))
    say(json.dumps({"snapshots_loaded": snapshots_loaded(lab)}))
    return results


def snapshots_loaded(lab):
    """The snapshots the nodes loaded (their logs' "loaded a snapshot" lines)."""
    total = 0
    for n in lab.nodes:
        try:
            with open(n.log_path, errors="replace") as log:
                total += sum(1 for line in log if "loaded a snapshot" in line)
        except OSError:
            pass
    return total


def report(results):
    for fault, ms in results.items():
        say(json.dumps({"fault": fault, "rounds": len(ms), "failover_ms_p50":
                        round(statistics.median(ms)), "failover_ms_max": max(ms)}))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(here))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=1, help="rounds of each fault")
    parser.add_argument("--faults", default=",".join(FAULTS),
                        help="comma-separated, in this order each round: " + ", ".join(FAULTS))
    parser.add_argument("--build", default=os.path.join(root, "build"),
                        help="the build directory (bin/stratad, modules/)")
    parser.add_argument("--stratad", help="the stratad binary (default BUILD/bin/stratad)")
    parser.add_argument("--modules", help="the example modules (default BUILD/modules)")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--seed", default=os.environ.get("STRATA_FAULTS_SEED",
                                                         str(int(time.time()))))
    parser.add_argument("--single", action="store_true",
                        help="nodes without --cluster nor ZooKeeper (checks the workload and "
                             "its checks; only the restart fault makes sense)")
    parser.add_argument("--keep", action="store_true", help="keep the data and logs")
    parser.add_argument("--log-retention", type=int, default=200,
                        help="stratad --replica-log-retention (entries; 0 keeps whole logs)")
    args = parser.parse_args()
    args.faults = [f for f in args.faults.split(",") if f]
    for f in args.faults:
        if f not in FAULTS:
            parser.error("unknown fault %r (%s)" % (f, ", ".join(FAULTS)))
    stratad = args.stratad or os.path.join(args.build, "bin", "stratad")
    modules = args.modules or os.path.join(args.build, "modules")
    say("faults: seed %s (STRATA_FAULTS_SEED), %d round(s) of %s"
        % (args.seed, args.rounds, ", ".join(args.faults)))
    extra = [] if args.single else ["--replica-log-retention", str(args.log_retention)]
    lab = lab_mod.Lab(args.nodes, stratad, modules, clustered=not args.single, keep=args.keep,
                      stratad_args=extra)
    started = time.monotonic()
    try:
        results = lab.run(lambda l: body(l, args))
    except Exception as e:
        say("faults: FAILED (seed %s): %s: %s" % (args.seed, type(e).__name__, e))
        return 1
    report(results)
    say("faults: every check held (%.0f s)" % (time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
