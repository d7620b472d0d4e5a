"""A Strata cluster in Linux network namespaces, for the fault tests (tests/cluster/faults.py)
and the cluster benchmark (bench/cluster-bench.py); docs/cluster.md, "Fault tests".

    lab = Lab(nodes=3, stratad=..., modules=...)   # namespaces n1..n3 (stratad), n4 (ZooKeeper,
    lab.run(body)                                  # and the client: body runs there); cleanup

Node k runs `stratad --cluster zk://<n4>:2181/strata --node-id n<k> --advertise <nk>:7450
--cluster-session-timeout 1s --auto-rebalance off` with its data in the lab's work directory; ZooKeeper
(scripts/zk-local.sh run) and every client of the test run in the last namespace, so
`cluster.isolate(node)` cuts a node off from ZooKeeper and from the clients alike. `body`
runs on a thread moved into that namespace (setns applies to one thread, and threads it
starts inherit it): the Python driver and urllib reach the nodes at their own addresses,
while the test process itself stays in its namespace, so the harness's cleanup (which kills
every process inside the namespaces) never kills the test.

Leaders: `Router` sends a module's requests to the node that leads the module's replica
group, found from GET /rest/<module>/replica on every node (the replica whose role is
"leader" at the highest epoch); a node that holds no copy answers 404 and counts as no
answer. With a single node (no --cluster), that node.

Needs root and iproute2 (tests/netns/README.md); /usr/bin/python3, standard library plus
the Python driver (drivers/python).
"""

import concurrent.futures
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "netns"))
sys.path.insert(0, os.path.join(ROOT, "drivers", "python"))

import netns  # noqa: E402
import strata  # noqa: E402

PROTOCOL_PORT = 7450
HTTP_PORT = 7451
ZK_PORT = 2181


def replica_path(module):
    """The HTTP path of a node's copy of `module` (docs/http.md): {"module", "group",
    "role" ("leader" or "follower"), "epoch", "log_end", "applied_end", "durable_end",
    "high_watermark", "isr", "digest"}."""
    return "/rest/%s/replica" % urllib.parse.quote(module, safe="")


def serves_replicas(host_port, timeout=2.0):
    """Whether the stratad at host_port has the endpoint GET /rest/<module>/replica (it
    answers 404 "no endpoint ..." otherwise); None when it does not answer."""
    try:
        urllib.request.urlopen("http://%s%s" % (host_port, replica_path("-")),
                               timeout=timeout).read()
        return True
    except urllib.error.HTTPError as e:
        return "no endpoint" not in e.read().decode(errors="replace")
    except (OSError, ValueError):
        return None


def leading(replica):
    """Whether a GET /rest/<module>/replica answer is the leader's."""
    return replica.get("role") == "leader" or replica.get("leading") is True


def deploy(client, path, partitions, replication=None):
    """Deploys the module at `path` through `client` (whose node then leads it) with
    `replication` (None: without, for a stratad not in a cluster)."""
    if replication is None:
        return client.deploy(path, partitions=partitions)
    return client.deploy(path, partitions=partitions, replication=replication)


def http_get(host_port, path, timeout=1.0):
    """GET http://host_port/path as JSON; None when it cannot be had (no answer in time, a
    connection refused, a status other than 200)."""
    try:
        with urllib.request.urlopen("http://%s%s" % (host_port, path), timeout=timeout) as r:
            return json.loads(r.read().decode())
    except (OSError, ValueError, urllib.error.URLError):
        return None


class StrataNode:
    """One stratad of the lab, in namespace `ns` (a netns.Node). start() may be called again
    after a kill: same flags, same data directory, its log appended to."""

    def __init__(self, lab, ns, node_id):
        self.lab = lab
        self.ns = ns
        self.id = node_id
        self.address = "%s:%d" % (ns.address, PROTOCOL_PORT)
        self.http = "%s:%d" % (ns.address, HTTP_PORT)
        self.data_dir = os.path.join(lab.workdir, node_id)
        self.log_path = os.path.join(lab.workdir, node_id + ".log")
        self.proc = None
        self.paused = False

    def __repr__(self):
        return "%s(%s)" % (self.id, self.address)

    def argv(self):
        argv = [self.lab.stratad, "--data-dir", self.data_dir, "--listen", self.address,
                "--http", self.http, "--task-threads", "2", "--threads", "1",
                "--cache-size", "128MB"]
        if self.lab.clustered:
            argv += ["--cluster", "zk://%s:%d/strata" % (self.lab.zk_ns.address, ZK_PORT),
                     "--node-id", self.id, "--advertise", self.address,
                     "--cluster-session-timeout", self.lab.session_timeout,
                     # Leaders move only when a fault or the test moves them: the failover
                     # times and the measurements depend on where they are.
                     "--auto-rebalance", "off"]
        return argv + list(self.lab.stratad_args)

    def start(self):
        with open(self.log_path, "ab") as log:
            self.proc = self.ns.run(self.argv(), stdout=log, stderr=subprocess.STDOUT)
        self.paused = False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """kill -9, and waits until the process is gone."""
        if self.alive():
            if self.paused:
                self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait()
        self.paused = False

    def pause(self):
        netns.pause(self.proc)
        self.paused = True

    def resume(self):
        netns.resume(self.proc)
        self.paused = False

    def wait_serving(self, timeout=60):
        """Waits until its protocol and HTTP ports accept connections (from the client
        namespace) and, in a cluster, its view has every node of the lab and a controller."""
        def serving():
            if not self.alive():
                raise RuntimeError("%s exited (code %s); its log: %s"
                                   % (self.id, self.proc.returncode, self.log_path))
            if not self.lab.clustered:
                return _accepts(self.address)
            view = http_get(self.http, "/rest/cluster")
            return view is not None and view.get("controller") and \
                len(view.get("nodes", [])) == len(self.lab.nodes)
        netns.wait_for(serving, timeout, "%s to serve and see the whole cluster" % self.id)


def _accepts(host_port):
    host, port = host_port.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
        return True
    except OSError:
        return False


class Lab:
    """`nodes` stratad nodes and one namespace for ZooKeeper and the clients. `clustered`
    False: the nodes run without --cluster (and no ZooKeeper is started)."""

    def __init__(self, nodes, stratad, modules, session_timeout="1s", clustered=True,
                 stratad_args=(), keep=False):
        self.stratad = stratad
        self.modules_dir = modules
        self.session_timeout = session_timeout
        self.clustered = clustered
        self.stratad_args = list(stratad_args)
        self.keep = keep
        self.workdir = tempfile.mkdtemp(prefix="strata-faults-")
        netns.cleanup_stale()
        self.cluster = netns.Cluster(nodes + 1)
        self.zk_ns = self.cluster.nodes[-1]
        self.client_ns = self.zk_ns
        self.nodes = [StrataNode(self, ns, "n%d" % ns.index) for ns in self.cluster.nodes[:-1]]
        self.zk = None
        # Threads of leader_of's requests; made on first use, on a thread of the client
        # namespace (their threads inherit it).
        self._pool = concurrent.futures.ThreadPoolExecutor(16, thread_name_prefix="lab-http")
        # The leader assumed when no node serves GET /rest/<module>/replica (a stratad without
        # replication, where the node a module was deployed to serves it): set by the test.
        self.fallback_leader = None

    def module_path(self, name):
        return os.path.join(self.modules_dir, name + ".so")

    def node(self, node_id):
        return next(n for n in self.nodes if n.id == node_id)

    def start(self):
        if self.clustered:
            with open(os.path.join(self.workdir, "zookeeper.log"), "ab") as log:
                self.zk = self.zk_ns.run([os.path.join(ROOT, "scripts", "zk-local.sh"), "run",
                                          os.path.join(self.workdir, "zk"), str(ZK_PORT),
                                          self.zk_ns.address],
                                         stdout=log, stderr=subprocess.STDOUT)
            netns.wait_port(self.zk_ns, ZK_PORT, timeout=60)
        for n in self.nodes:
            n.start()
        for n in self.nodes:
            n.wait_serving()

    def run(self, body):
        """Runs body(self) on a thread in the client namespace, then cleans up (also on an
        exception); answers body's value or raises its exception."""
        result = {}

        def thread():
            try:
                netns.enter_namespace(self.client_ns.name)
                result["value"] = body(self)
            except BaseException as e:  # handed to the caller
                result["error"] = e

        t = threading.Thread(target=thread, name="lab-client")
        t.start()
        try:
            t.join()
        except KeyboardInterrupt:
            result.setdefault("error", KeyboardInterrupt())
        self.cleanup(failed="error" in result)
        if "error" in result:
            raise result["error"]
        return result.get("value")

    def cleanup(self, failed=False):
        self.cluster.cleanup()
        if failed or self.keep:
            print("lab: data and logs kept in %s" % self.workdir, flush=True)
        else:
            subprocess.run(["rm", "-rf", self.workdir])

    # ---- what the nodes say (call from the client namespace) ----

    def replicas(self, module, timeout=1.0):
        """{node id: GET /rest/<module>/replica of that node} for the nodes that answer it
        (live, not paused, reachable, holding a copy of the module)."""
        live = [n for n in self.nodes if n.alive() and not n.paused]
        if not live:
            return {}
        with concurrent.futures.ThreadPoolExecutor(len(live)) as pool:
            answers = pool.map(lambda n: (n.id, _group0(http_get(
                n.http, replica_path(module), timeout))), live)
            return {node_id: a for node_id, a in answers if a is not None}

    def leader_of(self, module, exclude=()):
        """The node that leads `module`'s group by the replicas' own word (role "leader",
        highest epoch), or None. It answers once a majority of the nodes answered (a copy's
        state or 404), so that a paused or cut-off node does not delay it by its timeout.
        Without --cluster: the first live node."""
        if not self.clustered:
            live = [n for n in self.nodes if n.alive()]
            return live[0] if live else None
        live = [n for n in self.nodes if n.alive() and not n.paused]
        if not live:
            return None
        futures = {self._pool.submit(http_get, n.http, replica_path(module), 1.0): n
                   for n in live}
        enough = min(len(self.nodes) // 2 + 1, len(live))
        answered, copies, best = 0, 0, None
        try:
            for f in concurrent.futures.as_completed(futures, timeout=1.5):
                answered += 1
                r, node = _group0(f.result()), futures[f]
                copies += r is not None
                if r is not None and leading(r) and node.id not in exclude and \
                        (best is None or r.get("epoch", 0) > best[1]):
                    best = (node, r.get("epoch", 0))
                if best is not None and answered >= enough:
                    break
        except concurrent.futures.TimeoutError:
            pass
        if copies == 0 and best is None and self.fallback_leader is not None:
            return self.fallback_leader if self.fallback_leader.alive() else None
        return best[0] if best else None


def _group0(answer):
    """The replica state of group 0 in a GET /rest/<module>/replica answer: the object
    itself, or the element of group 0 of a list (or of its "groups"), once modules have
    several groups."""
    if isinstance(answer, dict) and isinstance(answer.get("groups"), list):
        answer = answer["groups"]
    if isinstance(answer, list):
        return next((g for g in answer if isinstance(g, dict) and g.get("group", 0) == 0), None)
    return answer if isinstance(answer, dict) else None


# Errors after which a request may succeed at another node or later: the connection (a
# dead, paused or cut-off node), a node that does not lead, a group without enough replicas,
# an append that lost its leadership while it waited (ABORTED: may or may not be kept).
RETRYABLE = ("CONNECTION", "CLIENT_TIMEOUT", "NOT_LEADER", "NOT_ENOUGH_REPLICAS", "ABORTED",
             "UNAVAILABLE", "TIMEOUT", "OVERLOADED", "NOT_FOUND", "UNKNOWN_19", "UNKNOWN_20")


def retryable(error):
    return isinstance(error, strata.StrataError) and (
        getattr(error, "code", None) in RETRYABLE or
        isinstance(error, (strata.ConnectionLost, strata.RequestTimeout)))


class Router:
    """Clients of the lab's nodes (one connection per node, made at first use), and the
    leader of each module as last found. One Router per thread."""

    def __init__(self, lab, timeout=2.0):
        self.lab = lab
        self.timeout = timeout
        self._clients = {}
        self._leaders = {}

    def client(self, node):
        c = self._clients.get(node.id)
        if c is None:
            host, port = node.address.rsplit(":", 1)
            c = self._clients[node.id] = strata.Client(host, int(port), self.timeout)
        return c

    def forget(self, module, node=None):
        self._leaders.pop(module, None)
        if node is not None:
            c = self._clients.pop(node.id, None)
            if c is not None:
                c.close()

    def leader(self, module, timeout=60.0):
        node = self._leaders.get(module)
        if node is None or not node.alive():
            node = netns.wait_for(lambda: self.lab.leader_of(module), timeout,
                                  "a leader of module %s" % module)
            self._leaders[module] = node
        return node

    def once(self, module, call):
        """call(client of the module's leader) once; answers (value, leader node). On an
        error the leader is forgotten (found again at the next call) and the error raised."""
        node = self.leader(module)
        try:
            return call(self.client(node)), node
        except strata.StrataError as e:
            self.forget(module, node if isinstance(e, (strata.ConnectionLost,
                                                       strata.RequestTimeout)) else None)
            raise

    def call(self, module, call, timeout=60.0):
        """call(client of the module's leader), retried at the leader found again while the
        error is retryable, until `timeout` seconds pass. For reads and for appends whose
        repetition is harmless."""
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            try:
                return self.once(module, call)[0]
            except strata.StrataError as e:
                if not retryable(e) or time.monotonic() > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def close(self):
        for c in self._clients.values():
            c.close()
        self._clients.clear()
