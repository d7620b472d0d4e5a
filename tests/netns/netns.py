"""A cluster of Linux network namespaces for fault tests: nodes on a private bridge, with
network partitions, one-way packet loss, process pauses and kills (tests/netns/README.md).

    with netns.Cluster(3) as cluster:
        n1, n2, n3 = cluster.nodes
        server = n1.run(["stratad", "--listen", n1.address + ":7000", ...])
        netns.wait_port(n1, 7000, timeout=30)
        cluster.isolate(n1)          # n1 neither reaches nor is reached by n2, n3
        cluster.heal()               # every fault of the network undone

Layout. A cluster is n node namespaces and one hub namespace holding a Linux bridge `br0`.
Node k (1-based) has a veth `eth0` whose peer `p<k>` is a port of the bridge, the address
10.213.S.k/24 on `eth0` and its loopback up; S is the cluster's serial number in its process
(1, 2, ...; modulo 254). Nothing is made in the namespace the tests run in: each cluster is
a network of its own, which no other cluster (of this process or another) can reach, so
equal addresses in two test processes never meet. Names: `<prefix>-n<k>` and `<prefix>-hub`,
the prefix being `strata-<pid>-<S>` unless given.

Faults of the network drop packets silently, as a partition between machines does: a drop
from node A to node B is an `ip rule` in B's namespace, `from <A's address> blackhole`,
placed before the lookup of the local routing table (moved from preference 0 to
_LOCAL_RULE_PREF when the node is made), so B's kernel discards what A sends before
delivering it, ARP requests included. A's packets leave; nothing answers or refuses; A's
requests end by their own timeouts, and so do its connection attempts (or with EHOSTUNREACH
after about 3 s when A has no cached ARP entry for B). The processes of both nodes keep
running.

Cleanup (Cluster.cleanup, run by the context manager, on an exception in its body and at
interpreter exit) kills every process left in the cluster's namespaces, whoever started it,
and deletes the namespaces: their veths and the bridge go with them. A run killed before
its cleanup (SIGKILL, a ctest timeout) leaves its namespaces; cleanup_stale() deletes those
whose creating process is dead.

Everything here needs root and iproute2's `ip`: Cluster() raises NetnsUnavailable,
with what is missing, otherwise. Python standard library only. One thread at a time makes
a cluster, injects its faults and cleans it up; Node.socket() and Node.connect() may be
called from any thread.
"""

import atexit
import ctypes
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

__all__ = ["Cluster", "Node", "NetnsUnavailable", "cleanup_stale", "pause", "resume",
           "wait_port", "wait_for", "list_namespaces", "require_netns"]

PREFIX = "strata-"   # of the names Cluster gives when it is given no prefix
SUBNET = "10.213"    # node k of cluster S: 10.213.S.k/24
_DROP_RULE_PREF = 100
_LOCAL_RULE_PREF = 1000
_CLONE_NEWNET = 0x40000000
_serials = itertools.count(1)
_libc = ctypes.CDLL(None, use_errno=True)
# The `ip` command used: root's PATH has /usr/sbin, another user's may not (require_netns
# then says what is wrong).
IP = shutil.which("ip") or next((p for p in ("/usr/sbin/ip", "/sbin/ip") if os.path.exists(p)),
                                 "ip")


class NetnsUnavailable(RuntimeError):
    """This machine or user cannot make network namespaces (not root, no `ip netns`)."""


def _ip(*args):
    """Runs `ip ARGS`; answers its stdout; raises RuntimeError with its stderr on failure."""
    run = subprocess.run([IP, *args], capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError("ip %s failed (exit %d): %s"
                           % (" ".join(args), run.returncode, run.stderr.strip()))
    return run.stdout


def require_netns():
    """Raises NetnsUnavailable, saying what is missing, unless this process can make network
    namespaces (root, iproute2's `ip netns`)."""
    if os.geteuid() != 0:
        raise NetnsUnavailable("network namespaces need root: this process runs as uid %d"
                               % os.geteuid())
    try:
        subprocess.run([IP, "netns", "list"], capture_output=True, check=True)
    except FileNotFoundError:
        raise NetnsUnavailable("`ip` (iproute2) is neither on PATH nor in /usr/sbin, /sbin") from None
    except subprocess.CalledProcessError as e:
        raise NetnsUnavailable("`ip netns list` failed: %s"
                               % e.stderr.decode(errors="replace").strip()) from None


def list_namespaces(prefix=PREFIX):
    """The names of the network namespaces (`ip netns list`) starting with `prefix`."""
    names = (line.split()[0] for line in _ip("netns", "list").splitlines() if line.strip())
    return sorted(n for n in names if n.startswith(prefix))


def _process_state(pid):
    """The state letter of /proc/<pid>/stat (R, S, T stopped, Z zombie...)."""
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def _pid_alive(pid):
    try:
        return _process_state(pid) not in ("Z", "X")
    except FileNotFoundError:
        return False


def wait_for(condition, timeout, what):
    """Calls `condition` until it answers true, then answers that value; raises TimeoutError
    naming `what` when `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("%s: not within %g s" % (what, timeout))
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def _delete_namespace(name, timeout=30):
    """Kills every process in namespace `name` (SIGKILL, stopped ones too), waits until none
    is left, deletes the namespace; answers False when the namespace vanished meanwhile
    (another process's cleanup_stale deleted it). A process that cannot die within
    `timeout` (stuck in the kernel) keeps the namespace's network alive but not its name."""
    def empty():
        pids = [int(p) for p in _ip("netns", "pids", name).split()]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return not any(_pid_alive(p) for p in pids)

    try:
        try:
            wait_for(empty, timeout, "the processes of namespace %s to die" % name)
        finally:
            _ip("netns", "delete", name)
    except RuntimeError:
        if os.path.exists("/run/netns/" + name):
            raise
        return False
    return True


def cleanup_stale(prefix=PREFIX):
    """Deletes the namespaces left by killed runs: those named `<prefix><pid>-...` whose
    process `pid` is dead (or a zombie), with every process still inside them. Answers the
    names it deleted (not those another process's cleanup_stale deleted at the same time).
    Namespaces of live processes (this one's included) are left alone; a recycled pid keeps
    its dead predecessor's namespaces until the pid dies."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)-")
    deleted = []
    for name in list_namespaces(prefix):
        m = pattern.match(name)
        if m and not _pid_alive(int(m.group(1))) and _delete_namespace(name):
            deleted.append(name)
    return deleted


def enter_namespace(name):
    """Moves the calling thread (only it) into network namespace `name`."""
    fd = os.open("/run/netns/" + name, os.O_RDONLY)
    try:
        if _libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, "setns into %s: %s" % (name, os.strerror(err)))
    finally:
        os.close(fd)


def _in_namespace(name, fn):
    """Calls `fn()` on a new thread moved into network namespace `name`; answers its value.
    Sockets it creates belong to that namespace for their whole life, whichever thread uses
    them after."""
    result = {}

    def body():
        try:
            enter_namespace(name)
            result["value"] = fn()
        except BaseException as e:  # handed to the caller's thread
            result["error"] = e

    thread = threading.Thread(target=body, name="netns-" + name)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


class Node:
    """One node of a Cluster: a network namespace with the address `address` on `eth0`.
    Made by Cluster; lives until the cluster's cleanup."""

    def __init__(self, cluster, index, name, address):
        self.cluster = cluster
        self.index = index      # 1-based
        self.name = name        # the namespace's name
        self.address = address  # "10.213.S.k"
        self._procs = []

    def __repr__(self):
        return "Node(%s, %s)" % (self.name, self.address)

    def _argv(self, cmd):
        argv = ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        return [IP, "netns", "exec", self.name] + argv

    def run(self, cmd, **popen_kwargs):
        """Starts `cmd` (an argument list, or a string run by /bin/sh -c) in the node's
        namespace: a subprocess.Popen of the command itself (`ip netns exec` execs it, so
        its pid and signals are the command's). The node remembers it for kill()."""
        proc = subprocess.Popen(self._argv(cmd), **popen_kwargs)
        self._procs.append(proc)
        return proc

    def check_output(self, cmd, **kwargs):
        """subprocess.check_output of `cmd` run in the node's namespace (as run())."""
        return subprocess.check_output(self._argv(cmd), **kwargs)

    def kill(self, sig=signal.SIGKILL):
        """Sends `sig` to each process run() started that has not exited; answers them."""
        alive = [p for p in self._procs if p.poll() is None]
        for p in alive:
            p.send_signal(sig)
        return alive

    def socket(self, family=socket.AF_INET, type=socket.SOCK_STREAM):
        """A socket of the node's namespace, used from this process: it binds to and
        connects from the node's addresses."""
        return _in_namespace(self.name, lambda: socket.socket(family, type))

    def connect(self, host, port, timeout):
        """A TCP connection from this node to host:port; `timeout` (seconds) bounds the
        connection attempt and becomes the socket's timeout. Raises OSError (socket.timeout
        included) when it cannot connect."""
        s = self.socket()
        try:
            s.settimeout(timeout)
            s.connect((host, port))
        except BaseException:
            s.close()
            raise
        return s

    def _reap(self):
        for p in self._procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass


class Cluster:
    """n nodes on one bridge (see the module docstring); a context manager whose exit (and
    the interpreter's) cleans up. `prefix` names the namespaces (`<prefix>-n1`...); it must
    not be in use, and cleanup_stale() only knows the default `strata-<pid>-<S>` names.
    Raises NetnsUnavailable when namespaces cannot be made here."""

    def __init__(self, n, prefix=None):
        require_netns()
        if n < 1 or n > 253:
            raise ValueError("a cluster has 1 to 253 nodes, not %d" % n)
        serial = next(_serials)
        if prefix is None:
            existing = list_namespaces()
            while any(name.startswith("%s%d-%d-" % (PREFIX, os.getpid(), serial))
                      for name in existing):  # left by an earlier process with this pid
                serial = next(_serials)
            prefix = "%s%d-%d" % (PREFIX, os.getpid(), serial)
        self.prefix = prefix
        self.subnet = "%s.%d" % (SUBNET, (serial - 1) % 254 + 1)
        self.hub = prefix + "-hub"
        self.nodes = []
        self._made = []      # namespaces made, deleted by cleanup
        self._drops = set()  # (from node, to node) pairs whose packets are dropped
        atexit.register(self.cleanup)
        try:
            self._make(n)
        except BaseException:
            self.cleanup()
            raise

    def _add_namespace(self, name):
        _ip("netns", "add", name)
        self._made.append(name)
        _ip("-n", name, "link", "set", "lo", "up")

    def _make(self, n):
        self._add_namespace(self.hub)
        _ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.hub, "link", "set", "br0", "up")
        for k in range(1, n + 1):
            node = Node(self, k, "%s-n%d" % (self.prefix, k), "%s.%d" % (self.subnet, k))
            self._add_namespace(node.name)
            port = "p%d" % k
            _ip("-n", node.name, "link", "add", "eth0", "type", "veth",
                "peer", "name", port, "netns", self.hub)
            _ip("-n", self.hub, "link", "set", port, "master", "br0", "up")
            _ip("-n", node.name, "addr", "add", node.address + "/24", "dev", "eth0")
            _ip("-n", node.name, "link", "set", "eth0", "up")
            # Drop rules must come before the local table's lookup, which delivers locally.
            _ip("-n", node.name, "rule", "add", "pref", str(_LOCAL_RULE_PREF), "table", "local")
            _ip("-n", node.name, "rule", "del", "pref", "0", "table", "local")
            self.nodes.append(node)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()

    def cleanup(self):
        """Kills every process in the cluster's namespaces and deletes them (idempotent).
        Raises the first failure after trying every namespace."""
        failure = None
        made, self._made = self._made, []
        for name in reversed(made):
            try:
                _delete_namespace(name)
            except Exception as e:
                failure = failure or e
        for node in self.nodes:
            node._reap()
        atexit.unregister(self.cleanup)
        if failure is not None:
            raise failure

    # ---- faults of the network ----

    def drop(self, source, target):
        """One-way loss: packets from `source` to `target` are lost (at target's entry);
        those from target to source still arrive. TCP needs both ways, so no connection
        between the two completes; UDP shows the asymmetry."""
        if (source, target) in self._drops or source is target:
            return
        _ip("-n", target.name, "rule", "add", "pref", str(_DROP_RULE_PREF),
            "from", source.address, "blackhole")
        self._drops.add((source, target))

    def _undrop(self, source, target):
        _ip("-n", target.name, "rule", "del", "pref", str(_DROP_RULE_PREF),
            "from", source.address, "blackhole")
        self._drops.discard((source, target))

    def partition(self, *sides):
        """Splits the network: no packet passes between nodes of different sides (lists of
        nodes); nodes within a side, and nodes of no side, are not affected by this call.
        Faults already in place stay (heal() undoes them all)."""
        for i, side in enumerate(sides):
            for other in sides[i + 1:]:
                for a in side:
                    for b in other:
                        self.drop(a, b)
                        self.drop(b, a)

    def isolate(self, node):
        """`node` neither reaches nor is reached by any other node; its processes run on."""
        self.partition([node], [n for n in self.nodes if n is not node])

    def heal(self, node=None):
        """Undoes every network fault involving `node` (both directions), or every fault of
        the cluster when `node` is None."""
        for source, target in list(self._drops):
            if node is None or node in (source, target):
                self._undrop(source, target)

    # ---- faults of processes ----

    def pause(self, proc):
        return pause(proc)

    def resume(self, proc):
        return resume(proc)


def _pid(proc):
    return proc if isinstance(proc, int) else proc.pid


def pause(proc, timeout=10):
    """SIGSTOPs `proc` (a Popen or a pid) and returns once the kernel shows it stopped. Its
    sockets stay open: the kernel still completes TCP handshakes on its listening sockets,
    but nothing reads or answers."""
    pid = _pid(proc)
    os.kill(pid, signal.SIGSTOP)
    wait_for(lambda: _process_state(pid) == "T", timeout, "pid %d to stop" % pid)


def resume(proc, timeout=10):
    """SIGCONTs `proc` (a Popen or a pid) and returns once it is no longer stopped."""
    pid = _pid(proc)
    os.kill(pid, signal.SIGCONT)
    wait_for(lambda: _process_state(pid) != "T", timeout, "pid %d to continue" % pid)


def wait_port(node, port, timeout, host=None):
    """Waits until a TCP connection from `node` to host:port (host: the node's address)
    succeeds, i.e. something listens there; raises TimeoutError after `timeout` seconds."""
    host = host or node.address

    def accepts():
        try:
            node.connect(host, port, timeout=1).close()
            return True
        except OSError:
            return False

    wait_for(accepts, timeout, "%s:%d to accept connections from %s" % (host, port, node.name))
