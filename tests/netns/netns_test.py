"""The network-namespace harness (tests/netns/netns.py) does what the cluster's fault tests
rely on: nodes reach each other; isolate, partition and a one-way drop cut exactly what
they say and heal restores it; a paused process does not answer until resumed; cleanup
leaves nothing, also after an exception and for a killed run; two clusters do not meet;
and a real stratad in one namespace serves a Python-driver client in another, whose
requests fail by their timeout while the server is isolated and succeed after heal.

Needs root and `ip netns`: without them every test FAILS (a skipped harness test would
hide a harness that CI cannot run). Environment (tests/netns/CMakeLists.txt): STRATAD,
STRATA_MODULES, PYTHONPATH with drivers/python.
"""

import concurrent.futures
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import netns  # noqa: E402

PYTHON = sys.executable
ECHO_PORT = 7007
UDP_PORT = 7008
FAIL_FAST = 0.5      # seconds a connection attempt that must fail is given
SUCCEED_WITHIN = 30  # seconds a connection that must work is retried for


def root_links():
    """The names of the network interfaces of the namespace the test runs in."""
    out = subprocess.check_output([netns.IP, "-o", "link", "show"], text=True)
    return sorted(line.split(":")[1].strip().split("@")[0] for line in out.splitlines())


def setUpModule():
    try:
        netns.require_netns()
    except netns.NetnsUnavailable as e:
        raise AssertionError("netns_test cannot run here (it fails rather than skips: CI "
                             "has root and `ip netns`): %s" % e) from None
    netns.cleanup_stale()


def start_echo_servers(cluster):
    servers = [node.run([PYTHON, os.path.join(HERE, "echo_server.py"), node.name, node.address,
                         str(ECHO_PORT)]) for node in cluster.nodes]
    for node in cluster.nodes:
        netns.wait_port(node, ECHO_PORT, timeout=SUCCEED_WITHIN)
    return servers


def exchange(source, target, timeout):
    """Connects from `source` to target's echo server and answers its reply."""
    with source.connect(target.address, ECHO_PORT, timeout) as s:
        s.sendall(b"ping")
        return s.recv(4096).decode()


class HarnessTestCase(unittest.TestCase):
    def assertReaches(self, source, target):
        def answered():
            try:
                return exchange(source, target, timeout=2)
            except OSError:
                return None

        reply = netns.wait_for(answered, SUCCEED_WITHIN, "%s to reach %s" % (source, target))
        self.assertEqual(reply, target.name + ":ping")

    def assertCannotReach(self, source, target):
        self.assertNoneReach([(source, target)])

    def assertNoneReach(self, pairs):
        """Each (source, target) exchange fails within FAIL_FAST; tried at once."""
        def attempt(pair):
            try:
                return exchange(pair[0], pair[1], timeout=FAIL_FAST)
            except OSError:
                return None

        with concurrent.futures.ThreadPoolExecutor(len(pairs)) as pool:
            replies = list(pool.map(attempt, pairs))
        self.assertEqual([(a, b, r) for (a, b), r in zip(pairs, replies) if r is not None], [])

    def assertAllReachAll(self, nodes):
        for a in nodes:
            for b in nodes:
                if a is not b:
                    self.assertReaches(a, b)


class NetworkFaultTest(HarnessTestCase):
    def test_isolate_cuts_one_node_both_ways_and_heal_restores_it(self):
        with netns.Cluster(3) as cluster:
            n1, n2, n3 = cluster.nodes
            self.assertEqual(len({n.address for n in cluster.nodes}), 3)
            servers = start_echo_servers(cluster)
            self.assertAllReachAll(cluster.nodes)

            cluster.isolate(n1)
            self.assertNoneReach([(n1, n2), (n1, n3), (n2, n1), (n3, n1)])
            self.assertReaches(n2, n3)
            self.assertReaches(n3, n2)
            self.assertReaches(n1, n1)  # its own network still works
            self.assertTrue(all(s.poll() is None for s in servers), "a server died")

            cluster.heal(n1)
            self.assertAllReachAll(cluster.nodes)

    def test_isolation_stalls_an_established_connection_until_heal(self):
        with netns.Cluster(2) as cluster:
            n1, n2 = cluster.nodes
            listener = n1.socket()
            listener.bind((n1.address, ECHO_PORT))
            listener.listen()
            client = n2.connect(n1.address, ECHO_PORT, timeout=SUCCEED_WITHIN)
            server, _ = listener.accept()
            cluster.isolate(n1)
            client.sendall(b"during")
            server.settimeout(FAIL_FAST)
            with self.assertRaises(socket.timeout):
                server.recv(100)
            cluster.heal()
            server.settimeout(SUCCEED_WITHIN)  # delivered by TCP's retransmission
            self.assertEqual(server.recv(100), b"during")
            for s in (client, server, listener):
                s.close()

    def test_partition_separates_two_sides(self):
        with netns.Cluster(3) as cluster:
            n1, n2, n3 = cluster.nodes
            start_echo_servers(cluster)
            cluster.partition([n1], [n2, n3])
            self.assertNoneReach([(n1, n2), (n1, n3), (n2, n1), (n3, n1)])
            self.assertReaches(n2, n3)
            self.assertReaches(n3, n2)
            cluster.heal()
            self.assertAllReachAll(cluster.nodes)

            # Partitions add up: n1 | n2 | n3.
            cluster.partition([n1], [n2, n3])
            cluster.partition([n2], [n3])
            self.assertNoneReach([(n2, n3), (n3, n2), (n3, n1)])
            cluster.heal(n2)  # n1 stays cut from n3
            self.assertReaches(n1, n2)
            self.assertReaches(n2, n3)
            self.assertNoneReach([(n1, n3), (n3, n1)])
            cluster.heal()
            self.assertAllReachAll(cluster.nodes)

    def test_drop_loses_one_direction_only(self):
        with netns.Cluster(2) as cluster:
            n1, n2 = cluster.nodes
            sockets = {}
            for node in (n1, n2):
                s = sockets[node] = node.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind((node.address, UDP_PORT))

            def delivered(source, target, timeout):
                sockets[source].sendto(source.name.encode(), (target.address, UDP_PORT))
                sockets[target].settimeout(timeout)
                try:
                    return sockets[target].recv(100) == source.name.encode()
                except socket.timeout:
                    return False

            def delivers(source, target):
                netns.wait_for(lambda: delivered(source, target, 0.2), SUCCEED_WITHIN,
                               "a datagram from %s to %s" % (source, target))

            cluster.drop(n1, n2)
            delivers(n2, n1)
            self.assertFalse(delivered(n1, n2, FAIL_FAST))
            cluster.heal()
            delivers(n1, n2)
            for s in sockets.values():
                s.close()


class ProcessFaultTest(HarnessTestCase):
    def test_paused_server_does_not_answer_until_resumed(self):
        with netns.Cluster(2) as cluster:
            n1, n2 = cluster.nodes
            server, _ = start_echo_servers(cluster)
            self.assertReaches(n2, n1)
            cluster.pause(server)
            # The kernel still accepts the connection; nobody answers it.
            self.assertCannotReach(n2, n1)
            cluster.resume(server)
            self.assertReaches(n2, n1)

    def test_node_kill_signals_what_the_node_started(self):
        with netns.Cluster(2) as cluster:
            n1, n2 = cluster.nodes
            server, _ = start_echo_servers(cluster)
            self.assertEqual(n1.kill(signal.SIGKILL), [server])
            self.assertEqual(server.wait(timeout=SUCCEED_WITHIN), -signal.SIGKILL)
            with self.assertRaises(ConnectionRefusedError):
                exchange(n2, n1, timeout=SUCCEED_WITHIN)
            self.assertEqual(n1.kill(), [])


class CleanupTest(HarnessTestCase):
    def test_cleanup_leaves_no_namespace_link_or_process(self):
        links = root_links()
        with netns.Cluster(3) as cluster:
            servers = start_echo_servers(cluster)
            made = netns.list_namespaces(cluster.prefix)
            self.assertEqual(made, sorted([n.name for n in cluster.nodes] + [cluster.hub]))
            self.assertEqual(root_links(), links)  # nothing is made in the root namespace
        self.assertEqual(netns.list_namespaces(cluster.prefix + "-"), [])
        self.assertEqual(root_links(), links)
        self.assertEqual([s.returncode for s in servers], [-signal.SIGKILL] * 3)

    def test_cleanup_runs_when_the_body_raises(self):
        links = root_links()

        class Boom(Exception):
            pass

        with self.assertRaises(Boom):
            with netns.Cluster(2) as cluster:
                sleeper = cluster.nodes[0].run(["sleep", "1000"])
                cluster.isolate(cluster.nodes[0])
                raise Boom()
        self.assertEqual(netns.list_namespaces(cluster.prefix + "-"), [])
        self.assertEqual(root_links(), links)
        self.assertEqual(sleeper.returncode, -signal.SIGKILL)

    def test_cleanup_stale_deletes_what_a_killed_run_left(self):
        # The killed run names its namespaces as Cluster does, `<family><pid>-<S>`, in a
        # family of this test's own, which no other run's cleanup_stale() touches.
        family = "strata-stale%d-" % os.getpid()
        child = subprocess.Popen(
            [PYTHON, "-c", "\n".join([
                "import os, sys; sys.path.insert(0, %r); import netns" % HERE,
                "cluster = netns.Cluster(2, prefix='%s%%d-1' %% os.getpid())" % family,
                "sleeper = cluster.nodes[1].run(['sleep', '1000'])",
                "print(cluster.prefix, sleeper.pid, flush=True)",
                "sys.stdin.read()"])],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        prefix, sleeper = child.stdout.readline().split()
        sleeper = int(sleeper)
        child.kill()  # no cleanup runs
        child.wait()
        child.stdin.close()
        child.stdout.close()
        left = netns.list_namespaces(prefix + "-")
        self.assertEqual(left, [prefix + "-hub", prefix + "-n1", prefix + "-n2"])
        self.assertTrue(netns._pid_alive(sleeper))
        with netns.Cluster(1) as live:  # a live run's namespaces are not stale
            self.assertEqual(netns.cleanup_stale(family), left)
            self.assertEqual(netns.list_namespaces(prefix + "-"), [])
            deleted = netns.cleanup_stale()  # other runs' leftovers, if any: never a live run's
            self.assertEqual([n for n in deleted if n.startswith(live.prefix + "-")], [])
            self.assertEqual(len(netns.list_namespaces(live.prefix + "-")), 2)
        netns.wait_for(lambda: not netns._pid_alive(sleeper), SUCCEED_WITHIN,
                       "the killed run's sleep to die")

    def test_two_clusters_at_once_do_not_collide(self):
        with netns.Cluster(2) as a, netns.Cluster(2) as b:
            self.assertNotEqual(a.prefix, b.prefix)
            self.assertEqual(set(netns.list_namespaces(a.prefix + "-"))
                             & set(netns.list_namespaces(b.prefix + "-")), set())
            start_echo_servers(a)
            start_echo_servers(b)
            self.assertAllReachAll(a.nodes)
            self.assertAllReachAll(b.nodes)
            self.assertCannotReach(a.nodes[0], b.nodes[1])  # separate networks
            b.isolate(b.nodes[0])
            self.assertReaches(a.nodes[0], a.nodes[1])
            self.assertCannotReach(b.nodes[1], b.nodes[0])
        self.assertEqual(netns.list_namespaces(a.prefix + "-"), [])
        self.assertEqual(netns.list_namespaces(b.prefix + "-"), [])


class StratadAcrossNamespacesTest(unittest.TestCase):
    """A real stratad (wordcount) on node 1, Python-driver clients on node 2."""

    # Seconds: the driver's bound on connecting and on each request, for the requests that
    # must fail (short, so the test is fast) and for those that must succeed (long, so a
    # loaded machine does not fail them; it also outlasts TCP's retransmission after heal).
    IMPATIENT = 2
    PATIENT = 30

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="strata-netns-test-")
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)
        self.cluster = netns.Cluster(2)
        self.addCleanup(self.cluster.cleanup)
        self.server_node, self.client_node = self.cluster.nodes

    def start_stratad(self, port=0):
        """Starts stratad on the server node's address (`port` 0: a free one) with the
        test's data directory; answers its port once it listens. self.stratad is the Popen."""
        log = open(os.path.join(self.dir, "stratad.log"), "ab")
        self.addCleanup(log.close)
        proc = self.stratad = self.server_node.run(
            [os.environ["STRATAD"], "--listen", "%s:%d" % (self.server_node.address, port),
             "--http", "off",
             "--data-dir", os.path.join(self.dir, "data"), "--cache-size", "128MB",
             "--deploy", os.path.join(os.environ["STRATA_MODULES"], "wordcount.so")],
            stdout=subprocess.PIPE, stderr=log, text=True)
        self.addCleanup(proc.stdout.close)
        for line in proc.stdout:
            if line.startswith("listening on "):
                host, port = line.split()[-1].rsplit(":", 1)
                self.assertEqual(host, self.server_node.address)
                return int(port)
        self.fail("stratad exited before it listened:\n" + self.stratad_log())

    def stratad_log(self):
        with open(os.path.join(self.dir, "stratad.log"), errors="replace") as f:
            return f.read()

    def start_client(self, port):
        client = self.client_node.run(
            [PYTHON, os.path.join(HERE, "strata_client.py"), self.server_node.address, str(port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.addCleanup(client.stdout.close)
        self.addCleanup(client.stdin.close)
        return client

    def command(self, client, timeout=PATIENT, **command):
        """Sends one command to the client process, through its driver client of `timeout`
        seconds; answers its JSON answer. The client answers within that timeout (plus its
        start); the bound here only keeps a hung client from hanging the test."""
        client.stdin.write(json.dumps(dict(command, timeout=timeout)) + "\n")
        client.stdin.flush()
        ready, _, _ = select.select([client.stdout], [], [], timeout * 2 + 30)
        self.assertTrue(ready, "the client did not answer %s" % command)
        line = client.stdout.readline()
        self.assertTrue(line, "the client exited")
        return json.loads(line)

    def test_client_fails_by_its_timeout_while_the_server_is_isolated_and_works_after_heal(self):
        port = self.start_stratad()
        client = self.start_client(port)
        self.assertIn("ok", self.command(client, op="append", sentence="alpha beta alpha"))
        self.assertEqual(self.command(client, op="count", word="alpha"), {"ok": 2})
        # The impatient client's connection is established before the fault too.
        self.assertEqual(self.command(client, self.IMPATIENT, op="count", word="beta"),
                         {"ok": 1})

        self.cluster.isolate(self.server_node)
        during = self.command(client, self.IMPATIENT, op="append", sentence="gamma")
        self.assertEqual(during.get("error"), "RequestTimeout", during)
        # A new client cannot connect.
        fresh = self.start_client(port)
        refused = self.command(fresh, self.IMPATIENT, op="count", word="alpha")
        self.assertEqual(refused.get("error"), "ConnectionLost", refused)
        self.assertIn("cannot connect to %s:%d" % (self.server_node.address, port),
                      refused["message"])

        self.cluster.heal()
        self.assertIn("ok", self.command(client, op="append", sentence="delta"))
        self.assertEqual(self.command(client, op="count", word="delta"), {"ok": 1})
        self.assertEqual(self.command(fresh, op="count", word="alpha"), {"ok": 2})
        # The impatient client's connection (not lost by the timeout) works again.
        netns.wait_for(
            lambda: self.command(client, self.IMPATIENT, op="count", word="delta") == {"ok": 1},
            SUCCEED_WITHIN, "the impatient client to be answered after heal")
        # The append that timed out may have run (its bytes were sent): once, if at all.
        self.assertIn(self.command(client, op="count", word="gamma")["ok"], (None, 1))

    def test_kill9_and_restart_on_the_same_address_keep_acknowledged_appends(self):
        port = self.start_stratad()
        client = self.start_client(port)
        self.assertIn("ok", self.command(client, op="append", sentence="epsilon epsilon"))
        self.assertEqual(self.server_node.kill(signal.SIGKILL), [self.stratad])
        self.stratad.wait()
        down = self.command(client, op="count", word="epsilon")
        self.assertIn(down.get("error"), ("ConnectionLost", "RequestTimeout"), down)
        self.assertEqual(self.start_stratad(port), port)
        # The client reconnects at its next request. A stream topology is at-least-once
        # across a crash (docs/modules.md): the sentence counts twice or more.
        self.assertGreaterEqual(self.command(client, op="count", word="epsilon")["ok"], 2)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # as Ctrl-C: cleanups run
    unittest.main()
