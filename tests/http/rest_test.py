"""The REST API (docs/http.md) against a real stratad with the example modules and the
runtime's test modules rt_test (a depot of any records, *kv, whose topology stores and
returns them) and qtest (queries that fail, time out, …): every endpoint, the same answers
as the binary protocol (through the shell `strata --json`), values in the lossless JSON
form (docs/values.md), every error, keep-alive under concurrency, and SIGTERM with requests
in flight.

Most classes share one server (started once, see shared()); tests that count records use
keys of their own. The admin endpoints, the body limit and the shutdown get servers of
their own.
"""

import base64
import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import time
import unittest
import urllib.parse

import harness


def test_module_path(name):
    return os.path.join(os.environ["STRATA_BUILD_DIR"], "test-modules", name + ".so")


def strata_shell_path():
    return os.path.join(os.path.dirname(harness.stratad_path()), "strata")


class Double(float):
    """A JSON number with `.` or `e`: unequal to an int, so 1 and 1.0 compare different
    (the JSON form keeps them apart, docs/values.md)."""

    def __eq__(self, other):
        return isinstance(other, Double) and float.__eq__(self, other)

    def __ne__(self, other):
        return not self.__eq__(other)

    __hash__ = float.__hash__


def loads(text):
    return json.loads(text, parse_float=Double)


class Client:
    """One keep-alive HTTP connection to `server` (reconnects when the server closed it)."""

    def __init__(self, server, timeout=60):
        parsed = urllib.parse.urlsplit(server.base)
        self.host, self.port = parsed.hostname, parsed.port
        self.timeout = timeout
        self.conn = None

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(self, method, path, body=None, raw=None, headers=None):
        """Returns (status, headers, body): the body parsed by loads() when it is JSON."""
        hdrs = dict(headers or {})
        data = raw
        if raw is None and body is not None:
            data = (body if isinstance(body, str) else json.dumps(body)).encode()
            hdrs.setdefault("Content-Type", "application/json")
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, body=data, headers=hdrs)
                r = self.conn.getresponse()
                text = r.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # An idle keep-alive connection the server closed: once more on a new one.
                self.close()
                if attempt == 1:
                    raise
        rh = {k.lower(): v for k, v in r.getheaders()}
        if r.getheader("Connection", "").lower() == "close":
            self.close()
        if rh.get("content-type", "").startswith("application/json"):
            return r.status, rh, loads(text)
        return r.status, rh, text.decode(errors="replace")

    def get(self, path):
        return self.request("GET", path)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)


def quoted(name):
    return urllib.parse.quote(name, safe="")


_shared = None


def shared():
    """The server most classes use: the example modules, rt_test and qtest. 32 HTTP threads:
    an open keep-alive connection holds one, and ConcurrencyTest's 16 come on top of the
    classes' own."""
    global _shared
    if _shared is None:
        _shared = harness.Stratad(
            modules=["wordcount", "leaderboard", "social", "bank", "profiles"],
            extra_args=["--deploy", test_module_path("rt_test"),
                        "--deploy", test_module_path("query_test_module"),
                        "--http-threads", "32"])
    return _shared


def tearDownModule():
    if _shared is not None:
        _shared.cleanup()


class RestCase(unittest.TestCase):
    server = None  # set by setUpClass

    @classmethod
    def setUpClass(cls):
        if cls.server is None:
            cls.server = shared()
        cls.client = Client(cls.server)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()

    # Requests, checked for a 2xx status unless `status` says otherwise.
    def call(self, method, path, body=None, status=200, **kw):
        got, headers, answer = self.client.request(method, path, body=body, **kw)
        self.assertEqual(got, status, f"{method} {path} {body!r} answered {answer!r}")
        self.assertTrue(headers.get("content-type", "").startswith("application/json"),
                        f"{method} {path}: Content-Type {headers.get('content-type')}")
        return answer

    def error(self, method, path, body=None, status=400, code="INVALID_ARGUMENT",
              says=(), **kw):
        """Expects an error answer; returns its message after checking it names `says`."""
        answer = self.call(method, path, body, status=status, **kw)
        self.assertEqual(set(answer), {"error"}, answer)
        self.assertEqual(answer["error"]["code"], code, answer)
        message = answer["error"]["message"]
        self.assertIsInstance(message, str)
        self.assertTrue(message, answer)
        for words in ([says] if isinstance(says, str) else says):
            self.assertIn(words, message, f"{method} {path} {body!r}")
        return message

    def append(self, module, depot, body, status=200):
        return self.call("POST", f"/rest/{module}/depot/{quoted(depot)}/append", body, status)

    def select(self, module, pstate, path, partition_key=None, one=False):
        body = {"path": path}
        if partition_key is not None:
            body["partition_key"] = partition_key
        answer = self.call("POST", f"/rest/{module}/pstate/{quoted(pstate)}/"
                           f"{'selectOne' if one else 'select'}", body)
        return answer["value"] if one else answer["values"]

    def invoke(self, module, query, args, **extra):
        return self.call("POST", f"/rest/{module}/query/{query}/invoke",
                         dict(args=args, **extra))["result"]

    def read(self, module, depot, **params):
        query = urllib.parse.urlencode(params)
        return self.call("GET", f"/rest/{module}/depot/{quoted(depot)}?{query}")

    def page_all(self, module, pstate, path, limit):
        """Every page's values, in order, following next_token until it is null."""
        values, token, pages = [], None, 0
        while True:
            body = {"path": path, "limit": limit}
            if token is not None:
                body["token"] = token
            answer = self.call("POST", f"/rest/{module}/pstate/{pstate}/page", body)
            self.assertEqual(set(answer), {"values", "next_token"})
            values += answer["values"]
            pages += 1
            token = answer["next_token"]
            if token is None:
                return values, pages
            self.assertEqual(set(token), {"$bytes"}, token)

    def shell(self, *commands):
        """Runs the commands in one `strata --json -c` (the binary protocol); one parsed
        document per command."""
        host, port = self.server.address.rsplit(":", 1)
        run = subprocess.run([strata_shell_path(), "--host", host, "--port", port, "--json",
                              "--keep-going",
                              "-c", "\n".join(commands)],
                             capture_output=True, timeout=120)
        lines = run.stdout.decode().splitlines()
        self.assertEqual(len(lines), len(commands),
                         f"{commands}: {run.stdout!r} {run.stderr!r}")
        return [loads(line) for line in lines]


# ---------------------------------------------------------------------------------------
class EndpointTest(RestCase):
    """Every endpoint of docs/http.md, with the example modules."""

    def test_append_single_at_each_ack_level(self):
        path = "/rest/wordcount/depot/*sentences/append"
        # none: the partition the record was sent to, offset -1 (docs/protocol.md).
        none = self.call("POST", path, {"data": "ack none", "ack": "none"})
        self.assertEqual((none["offset"], none["ack_returns"]), (-1, {}))
        self.assertTrue(0 <= none["partition"] < 8, none)
        for ack in ("appended", "processed_streams", "processed"):
            r = self.call("POST", path, {"data": f"ack {ack}", "ack": ack})
            self.assertEqual(set(r), {"partition", "offset", "ack_returns"}, r)
            self.assertTrue(0 <= r["partition"] < 8 and r["offset"] >= 0, r)
            # Records are where the answer says, at once (durable at "appended").
            self.assertEqual(
                self.read("wordcount", "*sentences", partition=r["partition"],
                          **{"from": r["offset"]}, limit=1)["records"],
                [{"offset": r["offset"], "value": f"ack {ack}"}])
            if ack == "appended":
                self.assertEqual(r["ack_returns"], {})
            else:
                # wordcount's topology returns nothing: listed with null.
                self.assertEqual(r["ack_returns"], {"count": None})
        # The default ack is processed: the count is there when the answer is.
        before = self.select("wordcount", "$$word_counts", [["key", "defaultack"]], one=True)
        self.append("wordcount", "*sentences", {"data": "defaultack"})
        self.assertEqual(
            self.select("wordcount", "$$word_counts", [["key", "defaultack"]], one=True),
            (before or 0) + 1)

    def test_append_batch_at_each_ack_level(self):
        for ack in ("none", "appended", "processed_streams", "processed"):
            records = [{"account": f"batch-{ack}-{i}", "amount": 10 + i} for i in range(3)]
            r = self.append("bank", "*deposits", {"batch": records, "ack": ack})
            self.assertEqual(set(r), {"results"}, r)
            self.assertEqual(len(r["results"]), 3)
            for i, result in enumerate(r["results"]):
                if ack == "none":
                    self.assertEqual((result["offset"], result["ack_returns"]), (-1, {}))
                    continue
                self.assertGreaterEqual(result["offset"], 0)
                read = self.read("bank", "*deposits", partition=result["partition"],
                                 **{"from": result["offset"]}, limit=1)
                self.assertEqual(read["records"][0]["value"], records[i])
                expected = ({} if ack == "appended" else
                            {"deposit": {"status": "ok", "balance": 10 + i}})
                self.assertEqual(result["ack_returns"], expected)
        # A batch of one is a batch: {"results": [...]}.
        r = self.append("wordcount", "*sentences", {"batch": ["one"], "ack": "appended"})
        self.assertEqual(len(r["results"]), 1)

    def test_ack_returns_of_profiles_and_a_failure(self):
        first = self.append("profiles", "*registrations", {"data": {"username": "ack-ann"}})
        self.assertEqual(first["ack_returns"]["register"]["status"], "registered")
        ann = first["ack_returns"]["register"]["id"]
        again = self.append("profiles", "*registrations", {"data": {"username": "ack-ann"}})
        self.assertEqual(again["ack_returns"], {"register": {"status": "taken", "id": ann}})
        self.assertEqual(again["partition"], first["partition"])  # hash("username")
        self.assertEqual(again["offset"], first["offset"] + 1)
        self.assertEqual(self.select("profiles", "$$users_by_name", [["key", "ack-ann"]],
                                     one=True), ann)
        self.assertEqual(self.select("profiles", "$$profiles", [["key", ann], ["must", "username"]],
                                     one=True), "ack-ann")
        # A record the topology refuses is appended all the same: status 200 with a failure.
        failed = self.append("profiles", "*registrations", {"data": {"username": ""}})
        self.assertEqual(set(failed), {"partition", "offset", "ack_returns", "failure"})
        self.assertEqual(failed["failure"]["code"], "TOPOLOGY_FAILED")
        self.assertIn("username", failed["failure"]["message"])
        self.assertEqual(
            self.read("profiles", "*registrations", partition=failed["partition"],
                      **{"from": failed["offset"]})["records"][0]["value"], {"username": ""})

    def test_fields_not_listed_are_ignored(self):
        r = self.append("wordcount", "*sentences",
                        {"data": "ignored fields", "ack": "appended", "priority": 5})
        self.assertEqual(set(r), {"partition", "offset", "ack_returns"})
        self.assertEqual(self.invoke("bank", "total-money", [], comment="x"),
                         self.invoke("bank", "total-money", []))

    def test_select_and_select_one(self):
        self.append("bank", "*deposits", {"batch": [{"account": "sel-a", "amount": 5},
                                                    {"account": "sel-a", "amount": 7}]})
        self.assertEqual(self.select("bank", "$$balances", [["key", "sel-a"]]), [12])
        self.assertEqual(self.select("bank", "$$balances", [["key", "sel-a"]], one=True), 12)
        # Without the $$, and percent-encoded.
        self.assertEqual(self.select("bank", "balances", [["key", "sel-a"]], one=True), 12)
        self.assertEqual(self.call("POST", "/rest/bank/pstate/%24%24balances/selectOne",
                                   {"path": [["key", "sel-a"]]}), {"value": 12})
        # Nothing there: key navigates to null.
        self.assertEqual(self.select("bank", "$$balances", [["key", "sel-none"]]), [None])
        self.assertEqual(self.select("bank", "$$balances", [["key", "sel-none"], ["all"]]), [])
        self.assertIsNone(self.select("bank", "$$balances", [["key", "sel-none"]], one=True))
        # partition_key with a path that does not start with a key: the whole partition.
        part = self.select("bank", "$$balances", [], partition_key="sel-a", one=True)
        self.assertEqual(part["sel-a"], 12)
        # A range on a subindexed structure (social's timeline, newest first).
        self.append("social", "*follows", {"data": {"from": "sel-bob", "to": "sel-alice"}})
        self.append("social", "*posts", {"batch": [
            {"author": "sel-alice", "id": i, "text": f"post {i}"} for i in range(1, 6)]})
        timeline = self.select("social", "$$timelines",
                               [["key", "sel-bob"], ["range", {"limit": 2}], ["all"]])
        self.assertEqual(timeline, [[[-5, "sel-alice"], {"author": "sel-alice", "id": 5}],
                                    [[-4, "sel-alice"], {"author": "sel-alice", "id": 4}]])
        reverse = self.select("social", "$$timelines",
                              [["key", "sel-bob"], ["range", {"limit": 2, "reverse": True}],
                               ["map_keys"]], partition_key="sel-bob")
        self.assertEqual(reverse, [[-1, "sel-alice"], [-2, "sel-alice"]])
        bounded = self.select("social", "$$timelines",
                              [["key", "sel-bob"],
                               ["range", {"from": [-4, "sel-alice"], "to": [-2, "sel-alice"]}],
                               ["map_vals"], ["must", "id"]])
        self.assertEqual(bounded, [4, 3])
        self.assertEqual(self.select("social", "$$timelines", [["key", "sel-bob"], ["size"]],
                                     one=True), 5)

    def test_page_across_partitions(self):
        words = [f"page{i:02d}" for i in range(40)]
        self.append("wordcount", "*sentences", {"data": " ".join(words)})
        self.append("wordcount", "*sentences", {"data": " ".join(words[:10])})
        entries, pages = self.page_all("wordcount", "word_counts", [["all"]], limit=7)
        keys = [k for k, _ in entries]
        self.assertEqual(len(keys), len(set(keys)), "an entry on two pages")
        self.assertGreaterEqual(pages, len(keys) // 7)
        counts = dict(entries)
        for i, w in enumerate(words):
            self.assertEqual(counts[w], 2 if i < 10 else 1, w)
        # The default path [] answers each partition's slice of the page as a map.
        slices, _ = self.page_all("wordcount", "$$word_counts", [], limit=10000)
        merged = {}
        for s in slices:
            self.assertIsInstance(s, dict)
            self.assertFalse(set(s) & set(merged))
            merged.update(s)
        self.assertEqual(merged, counts)
        # A page of 1 entry.
        answer = self.call("POST", "/rest/wordcount/pstate/word_counts/page",
                           {"path": [["map_keys"]], "limit": 1})
        self.assertEqual(len(answer["values"]), 1)

    def test_invoke(self):
        self.append("wordcount", "*sentences",
                    {"data": "invq invq invq invq invq invq invq invq invq invq invq invq "
                             "invr invr invr invr invr invr invr invr invr invr invr"})
        top = self.invoke("wordcount", "top-words", [2])
        self.assertEqual(top[:2], [["invq", 12], ["invr", 11]])
        self.assertEqual(self.invoke("wordcount", "top-words", [2], timeout_ms=60000), top)
        # leaderboard mirrors wordcount's query: its leaders of a letter.
        self.assertEqual(self.invoke("leaderboard", "leaders", ["i", 2]), top[:2])
        # bank's total is the money deposited.
        total = self.invoke("bank", "total-money", [])
        self.append("bank", "*deposits", {"data": {"account": "inv-a", "amount": 1000}})
        self.assertEqual(self.invoke("bank", "total-money", []), total + 1000)
        self.assertEqual(self.call("POST", "/rest/bank/query/total-money/invoke", ""),
                         {"result": total + 1000})  # an empty body: args [] by default
        # social's timeline joins the posts' texts.
        self.append("social", "*follows", {"data": {"from": "inv-bob", "to": "inv-al"}})
        self.append("social", "*posts", {"batch": [
            {"author": "inv-al", "id": i, "text": f"hello {i}"} for i in range(1, 4)]})
        self.assertEqual(self.invoke("social", "timeline", ["inv-bob", 2]),
                         [{"author": "inv-al", "id": 3, "text": "hello 3"},
                          {"author": "inv-al", "id": 2, "text": "hello 2"}])
        # qtest's sum and a query that invokes another.
        self.append("qtest", "*items", {"batch": [{"key": "inv-x", "value": 40},
                                                  {"key": "inv-y", "value": 2}]})
        self.assertEqual(self.invoke("qtest", "get", ["inv-x"]), 40)
        self.assertEqual(self.invoke("qtest", "sum-twice", []),
                         2 * self.invoke("qtest", "sum", []))

    def test_read_depot(self):
        records = [{"account": "read-a", "amount": i} for i in range(1, 8)]
        r = self.append("bank", "*deposits", {"batch": records, "ack": "appended"})
        p = r["results"][0]["partition"]
        first = r["results"][0]["offset"]
        self.assertEqual([x["offset"] for x in r["results"]], list(range(first, first + 7)))
        # Page through with limit and next.
        got, offset = [], first
        while True:
            answer = self.read("bank", "*deposits", partition=p, **{"from": offset}, limit=3)
            self.assertEqual(set(answer), {"records", "next"})
            self.assertLessEqual(len(answer["records"]), 3)
            got += answer["records"]
            if not answer["records"]:
                self.assertEqual(answer["next"], offset)
                break
            self.assertEqual(answer["next"], answer["records"][-1]["offset"] + 1)
            offset = answer["next"]
        mine = [x for x in got if x["offset"] < first + 7]
        self.assertEqual(mine, [{"offset": first + i, "value": records[i]} for i in range(7)])
        # to: an exclusive end.
        answer = self.read("bank", "*deposits", partition=p, **{"from": first + 1},
                           to=first + 3)
        self.assertEqual([x["offset"] for x in answer["records"]], [first + 1, first + 2])
        self.assertEqual(answer["next"], first + 3)
        # Defaults: partition 0, from 0, limit 100.
        self.assertEqual(self.call("GET", "/rest/bank/depot/*deposits"),
                         self.read("bank", "*deposits", partition=0, **{"from": 0}, limit=100))

    def test_modules_and_describe(self):
        listed = self.call("GET", "/rest/modules")
        self.assertEqual(set(listed), {"modules"})
        names = {m["name"] for m in listed["modules"]}
        self.assertEqual(names, {"wordcount", "leaderboard", "social", "bank", "profiles",
                                 "rt_test", "qtest"})
        wordcount = self.call("GET", "/rest/wordcount")
        self.assertIn(wordcount, listed["modules"])
        # The shape the shell's --json output shows too: schemas in wire form and as text,
        # load_error only on a module that failed to load.
        self.maxDiff = None
        self.assertEqual(wordcount, {
            "name": "wordcount", "version": 1, "partitions": 8,
            "depots": [{"name": "*sentences", "partitioning": "random",
                        "record_schema": "string", "record_schema_text": "string"}],
            "pstates": [{"name": "$$word_counts", "schema": {"global": False, "schema": {
                            "type": "map", "key": "string", "value": "int64"}},
                         "schema_text": "map<string, int64>"},
                        {"name": "$$ranking", "schema": wordcount["pstates"][1]["schema"],
                         "schema_text": "subindexed set<list<any>>"}],
            "topologies": [{"name": "count", "kind": "stream", "sources": ["*sentences"]}],
            "queries": [{"name": "top-words", "params": [{"name": "n", "schema": "int64",
                                                           "schema_text": "int64"}]}],
            "depends_on": [], "dependents": ["leaderboard"]})
        leaderboard = self.call("GET", "/rest/leaderboard")
        self.assertEqual(leaderboard["depends_on"], ["wordcount"])
        bank = self.call("GET", "/rest/bank")
        self.assertEqual(bank["depots"][0]["partitioning"], 'hash(key("account"))')
        self.assertEqual(bank["depots"][0]["record_schema_text"],
                         "record{account: string, amount: int64}")

    def test_stats(self):
        # Two deposits the topology refuses: failures, listed a page at a time.
        for amount in (-1, -2):
            r = self.append("bank", "*deposits", {"data": {"account": "stats-a", "amount": amount}})
            self.assertEqual(r["failure"]["code"], "TOPOLOGY_FAILED")
        stats = self.call("GET", "/rest/bank/stats")
        self.assertEqual(set(stats), {"module", "depots", "topologies", "failures",
                                      "failure_page", "rebuilds", "microbatches"})
        self.assertEqual(stats["module"], "bank")
        self.assertGreaterEqual(stats["failures"], 2)
        self.assertEqual(len(stats["failure_page"]), stats["failures"])
        self.assertEqual(set(stats["failure_page"][0]),
                         {"topology", "depot", "partition", "offset", "message"})
        self.assertEqual(len(stats["depots"]), 16)  # 2 depots x 8 partitions
        self.assertEqual(set(stats["depots"][0]),
                         {"depot", "partition", "start_offset", "end_offset"})
        self.assertEqual(set(stats["topologies"][0]),
                         {"topology", "depot", "partition", "processed_offset", "lag"})
        one = self.call("GET", "/rest/bank/stats?failures_from=1&failures_limit=1")
        self.assertEqual(one["failure_page"], stats["failure_page"][1:2])
        self.assertEqual(one["failures"], stats["failures"])
        none = self.call("GET", "/rest/bank/stats?failures_limit=0")
        self.assertEqual(none["failure_page"], [])
        beyond = self.call("GET", f"/rest/bank/stats?failures_from={stats['failures']}")
        self.assertEqual(beyond["failure_page"], [])
        # The server's figures and every module's.
        everything = self.call("GET", "/rest/stats")
        self.assertEqual(set(everything), {"server", "modules"})
        self.assertEqual(set(everything["server"]),
                         {"uptime_ms", "connections", "total_connections", "requests"})
        self.assertGreater(everything["server"]["requests"], 0)
        self.assertEqual({m["module"] for m in everything["modules"]},
                         {"wordcount", "leaderboard", "social", "bank", "profiles", "rt_test",
                          "qtest"})

    def test_lag(self):
        lag = self.call("GET", "/rest/wordcount/lag")
        self.assertIsInstance(lag, dict)
        # The history is a placeholder ({}) until the console branch lands; then it has
        # "topologies" (docs/http.md).
        if lag:
            self.assertIsInstance(lag["topologies"], dict)
        self.error("GET", "/rest/nope/lag", status=404, code="NOT_FOUND", says="nope")

    def test_admin_endpoints_refused_without_http_admin(self):
        with open(harness.module_path("wordcount"), "rb") as f:
            so = f.read()
        octet = {"Content-Type": "application/octet-stream"}
        for method, path, body, kw in [
                ("POST", "/rest/modules?partitions=4", None, {"raw": so, "headers": octet}),
                ("POST", "/rest/modules", {"path": harness.module_path("wordcount")}, {}),
                ("PUT", "/rest/modules", None, {"raw": so, "headers": octet}),
                ("POST", "/rest/wordcount/recompute", {"pstates": ["$$word_counts"]}, {}),
                ("DELETE", "/rest/wordcount?confirm=wordcount", None, {})]:
            self.error(method, path, body, status=403, code="UNSUPPORTED",
                       says="--http-admin", **kw)
        # Nothing changed.
        self.assertEqual(self.call("GET", "/rest/wordcount")["version"], 1)


# ---------------------------------------------------------------------------------------
class BinaryProtocolTest(RestCase):
    """REST answers what the binary protocol (the shell, through the C++ driver) answers."""

    def test_appends_give_the_same_ack_returns(self):
        # The same record through each: same partition, the next offset, equal returns.
        value = {"$map": [[1, {"$bytes": "AAH/"}], ["s", {"$set": [2.5, 1]}]]}
        record = {"key": "bin-kv", "value": value}
        [shell] = self.shell("append rt_test *kv " + json.dumps(record))
        rest = self.append("rt_test", "*kv", {"data": record})
        self.assertEqual(rest["partition"], shell["partition"])
        self.assertEqual(rest["offset"], shell["offset"] + 1)
        self.assertEqual(rest["ack_returns"], shell["ack_returns"])
        self.assertEqual(rest["ack_returns"]["kv"][1],
                         {"$map": [[1, {"$bytes": "AAH/"}], ["s", {"$set": [1, Double(2.5)]}]]})
        # profiles: registered through one, taken through the other, same id.
        [s] = self.shell('append profiles *registrations {"username": "bin-zoe"}')
        r = self.append("profiles", "*registrations", {"data": {"username": "bin-zoe"}})
        self.assertEqual(s["ack_returns"]["register"]["status"], "registered")
        self.assertEqual(r["ack_returns"]["register"],
                         {"status": "taken", "id": s["ack_returns"]["register"]["id"]})
        # ack levels: appended has no returns in either; none has offset -1 in both.
        [s] = self.shell('append bank *deposits {"account": "bin-a", "amount": 1} ack=appended')
        r = self.append("bank", "*deposits",
                        {"data": {"account": "bin-a", "amount": 1}, "ack": "appended"})
        self.assertEqual((s["ack_returns"], s["partition"]), (r["ack_returns"], r["partition"]))
        [s] = self.shell('append bank *deposits {"account": "bin-a", "amount": 1} ack=none')
        self.assertEqual(s["offset"], -1)
        # A failure: the shell reports TOPOLOGY_FAILED, REST a result with "failure".
        [s] = self.shell('append bank *deposits {"account": "bin-a", "amount": -5}')
        r = self.append("bank", "*deposits", {"data": {"account": "bin-a", "amount": -5}})
        self.assertEqual(s["error"]["code"], r["failure"]["code"])

    def test_selects_pages_invokes_and_reads_agree(self):
        self.append("wordcount", "*sentences", {"data": "bin alpha beta beta gamma gamma gamma"})
        self.append("social", "*follows", {"data": {"from": "bin-bob", "to": "bin-al"}})
        self.append("social", "*posts", {"batch": [
            {"author": "bin-al", "id": i, "text": f"t{i}"} for i in range(1, 5)]})
        shell = self.shell(
            'select-one wordcount $$word_counts key("gamma")',
            'select wordcount $$word_counts partition_key="gamma" all',
            'select social $$timelines key("bin-bob").range({"limit": 3, "reverse": true}).all',
            'select social $$timelines key("bin-bob").map_keys',
            'select wordcount $$word_counts all-partitions limit=4',
            'invoke wordcount top-words 5',
            'invoke social timeline "bin-bob" 3',
            'invoke bank total-money',
            'invoke qtest keys-over 1000000',
            'scan wordcount *sentences partition=2 limit=1000',
            'describe wordcount')
        rest = [
            self.select("wordcount", "$$word_counts", [["key", "gamma"]], one=True),
            self.select("wordcount", "$$word_counts", [["all"]], partition_key="gamma"),
            self.select("social", "$$timelines", [["key", "bin-bob"],
                                                  ["range", {"limit": 3, "reverse": True}],
                                                  ["all"]]),
            self.select("social", "$$timelines", [["key", "bin-bob"], ["map_keys"]]),
            self.call("POST", "/rest/wordcount/pstate/word_counts/page",
                      {"path": [["all"]], "limit": 4})["values"],
            self.invoke("wordcount", "top-words", [5]),
            self.invoke("social", "timeline", ["bin-bob", 3]),
            self.invoke("bank", "total-money", []),
            self.invoke("qtest", "keys-over", [1000000]),
            self.read("wordcount", "*sentences", partition=2, limit=1000)["records"],
            self.call("GET", "/rest/wordcount"),
        ]
        self.assertEqual(shell[0], 3)
        for i in range(4):
            self.assertEqual(rest[i], shell[i], f"select {i}")
        self.assertEqual(rest[4], shell[4]["values"])
        for i in range(5, 9):
            self.assertEqual(rest[i], shell[i], f"invoke {i}")
        self.assertEqual(rest[9], [{"offset": r["offset"], "value": r["record"]}
                                   for r in shell[9]])
        described = shell[10]
        self.assertEqual(rest[10], described)  # one document shape for both

    def test_whole_pstate_paged_both_ways(self):
        self.append("wordcount", "*sentences", {"data": "binpage one two three four five six"})
        rest, _ = self.page_all("wordcount", "word_counts", [["map_keys"]], limit=5)
        commands = ["select wordcount $$word_counts all-partitions map_keys limit=5"]
        commands += ["next"] * (len(rest) // 5 + 1)
        pages = self.shell(*commands)
        shell = []
        for page in pages:
            if "error" in page:  # `next` after the last page
                break
            shell += page["values"]
            if not page["more"]:
                break
        self.assertEqual(rest, shell)
        self.assertEqual(len(rest), len(set(rest)))

    def test_errors_carry_the_same_codes(self):
        shell = self.shell('invoke wordcount top-words "three"',
                           'invoke wordcount top-words 0',
                           'append bank *deposits {"account": 1}',
                           'describe nope',
                           'invoke qtest throws')
        rest = [
            self.call("POST", "/rest/wordcount/query/top-words/invoke", {"args": ["three"]},
                      status=400),
            self.call("POST", "/rest/wordcount/query/top-words/invoke", {"args": [0]},
                      status=500),
            self.call("POST", "/rest/bank/depot/*deposits/append", {"data": {"account": 1}},
                      status=400),
            self.call("GET", "/rest/nope", status=404),
            self.call("POST", "/rest/qtest/query/throws/invoke", {}, status=500),
        ]
        for s, r in zip(shell, rest):
            self.assertEqual(s["error"]["kind"], "server", s)
            self.assertEqual(r["error"]["code"], s["error"]["code"])
            self.assertEqual(r["error"]["message"], s["error"]["message"])


# ---------------------------------------------------------------------------------------
class ValueTest(RestCase):
    """Values in the JSON form round trip through REST: appended to rt_test's *kv (any
    record), returned by its topology, stored in $$kv (map<string, any>) and read back."""

    def round_trip(self, value_json, expected_json=None):
        """Appends {"key": K, "value": VALUE} as JSON text and checks that the ack return,
        the select and the depot read all give `expected_json` (default: the same)."""
        expected = loads(expected_json or value_json)
        self.__class__.n = getattr(self.__class__, "n", 0) + 1
        key = f"val-{self.__class__.n}"
        body = '{"data": {"key": "%s", "value": %s}}' % (key, value_json)
        r = self.append("rt_test", "*kv", body)
        self.assertEqual(r["ack_returns"]["kv"][1], expected, value_json)
        self.assertEqual(self.select("rt_test", "$$kv", [["key", key]], one=True), expected)
        record = self.read("rt_test", "*kv", partition=r["partition"],
                           **{"from": r["offset"]}, limit=1)["records"][0]["value"]
        self.assertEqual(record, {"key": key, "value": expected})
        return r

    def test_scalars(self):
        self.round_trip("1")
        self.round_trip("1.0")
        self.round_trip("-0.0")
        self.round_trip("0.1")
        self.round_trip("1e300", "1e+300")
        self.round_trip("true")
        self.round_trip("null")
        self.round_trip('"snow \\u2603 \\n tab\\t"')
        self.round_trip(str(2**63 - 1))
        self.round_trip(str(-2**63))
        self.round_trip("-0", "0")

    def test_int_and_double_stay_apart(self):
        status, _, text = self.rawpost('{"data": {"key": "val-int", "value": [1, 1.0, 2e0]}}')
        self.assertEqual(status, 200)
        self.assertIn("[1,1.0,2.0]", text)  # kv's ack return: [partition, value]
        self.assertEqual(self.select("rt_test", "$$kv", [["key", "val-int"]], one=True),
                         [1, Double(1.0), Double(2.0)])
        self.assertNotEqual(self.select("rt_test", "$$kv", [["key", "val-int"]], one=True),
                            [1, 1, 2])

    def rawpost(self, body, path="/rest/rt_test/depot/*kv/append"):
        conn = http.client.HTTPConnection(*self.server.base[len("http://"):].split(":"),
                                          timeout=60)
        try:
            conn.request("POST", path, body=body if isinstance(body, bytes) else body.encode(),
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            return r.status, r.getheaders(), r.read().decode()
        finally:
            conn.close()

    def test_tagged_forms(self):
        self.round_trip('{"$bytes": "AAH/"}')
        self.round_trip('{"$bytes": ""}')
        self.round_trip('{"$set": [3, 1, 2]}', '{"$set": [1, 2, 3]}')
        self.round_trip('{"$set": []}')
        # In key order: int < bytes < list (docs/values.md, "Total order").
        self.round_trip('{"$map": [[[1, 2], "b"], [1, "a"], [{"$bytes": "AA=="}, null]]}',
                        '{"$map": [[1, "a"], [{"$bytes": "AA=="}, null], [[1, 2], "b"]]}')
        self.round_trip('{"$map": [["b", 1], ["a", 2]]}', '{"a": 2, "b": 1}')
        self.round_trip('{"$map": [["$set", 1]]}')  # a reserved tag as the only key
        self.round_trip('{"$other": 1}')  # not a tag: a plain map
        self.round_trip('{"$set": 1, "x": 2}')  # two members: a plain map
        for text in ('"NaN"', '"-NaN"', '"Infinity"', '"-Infinity"'):
            self.round_trip('{"$double": %s}' % text)
        invalid = base64.b64encode(b"\xff\xfe\xc0\x80 \xed\xa0\x80").decode()
        self.round_trip('{"$string": "%s"}' % invalid)
        # Invalid UTF-8 as a map key, a select key and in a path's range.
        key = {"$string": base64.b64encode(b"k\xff").decode()}
        self.append("rt_test", "*kv", {"data": {"key": key, "value": "invalid key"}})
        self.assertEqual(self.select("rt_test", "$$kv", [["key", key]], one=True),
                         "invalid key")

    def test_nesting(self):
        # The body is one level (the object), "data" a second, "value" a third, then the
        # value's own lists: 64 levels in all parse, 65 do not.
        def body(levels):
            return ('{"data": {"key": "val-deep", "value": ' + "[" * (levels - 2) + "1" +
                    "]" * (levels - 2) + "}}")
        ok = self.rawpost(body(64))
        self.assertEqual(ok[0], 200, ok)
        status, _, text = self.rawpost(body(65))
        self.assertEqual(status, 400, text)
        error = loads(text)["error"]
        self.assertEqual(error["code"], "INVALID_ARGUMENT")
        self.assertIn("64", error["message"])

    def test_bad_values(self):
        for text, says in [
                ('{"data": {"key": "x", "value": 9223372036854775808}}', "offset"),
                ('{"data": {"key": "x", "value": -9223372036854775809}}', "offset"),
                ('{"data": {"key": "x", "value": 1e400}}', "offset"),
                ('{"data": {"key": "x", "value": {"$bytes": "not base64!"}}}', "offset"),
                ('{"data": {"key": "x", "value": {"$double": "nan"}}}', "offset"),
                ('{"data": {"key": "x", "value": {"$set": [1, 1]}}}', "offset"),
                ('{"data": {"key": "x", "value": {"$map": [[1, 2], [1, 3]]}}}', "offset"),
                ('{"data": {"key": "x", "value": {"$map": [[1]]}}}', "offset"),
                ('{"data": {"key": "x", "value": {"a": 1, "a": 2}}}', "offset"),
                (b'{"data": "\xff"}', "offset")]:
            status, _, answer = self.rawpost(text)
            self.assertEqual(status, 400, (text, answer))
            error = loads(answer)["error"]
            self.assertEqual(error["code"], "INVALID_ARGUMENT", text)
            self.assertIn("not JSON", error["message"], text)
            self.assertIn(says, error["message"], text)


# ---------------------------------------------------------------------------------------
class ErrorTest(RestCase):
    """Each error: its status, its code and a message that says what was wrong."""

    APPEND = "/rest/wordcount/depot/*sentences/append"

    def test_bodies_that_are_not_requests(self):
        self.error("POST", self.APPEND, '{"data": ', says=("not JSON", "offset"))
        self.error("POST", self.APPEND, "{} x", says=("not JSON", "offset"))
        self.error("POST", self.APPEND, '["a"]', says="must be a JSON object, got list")
        self.error("POST", self.APPEND, '"a"', says="must be a JSON object")
        self.error("POST", self.APPEND, {}, says=("data", "batch", "neither"))
        self.error("POST", self.APPEND, "", says="neither")
        self.error("POST", self.APPEND, {"data": "a", "batch": ["b"]}, says="both")
        self.error("POST", self.APPEND, {"data": "a", "ack": 1}, says=('"ack"', "string"))
        self.error("POST", self.APPEND, {"data": "a", "ack": "durable"},
                   says=("durable", "none, appended, processed_streams, processed"))
        self.error("POST", self.APPEND, {"batch": "a"}, says=('"batch"', "list"))
        self.error("POST", self.APPEND, {"batch": []}, says='"batch"')
        self.error("POST", self.APPEND, {"batch": ["x"] * 10001}, says="10000")
        select = "/rest/wordcount/pstate/word_counts/select"
        self.error("POST", select, {"path": "x"}, says="path")
        self.error("POST", select, {"path": [["kye", "a"]]}, says="kye")
        self.error("POST", select, {"path": [["key", "a"], ["set", 1]]}, says="terminal")
        self.error("POST", select, {"path": [["all"]]}, says="partition")
        # selectOne: two values are an error, and so is none at all (a key that is absent
        # navigates to one null: {"value": null}, EndpointTest).
        self.append("social", "*follows", {"batch": [{"from": f"err-{i}", "to": "err-star"}
                                                     for i in range(2)]})
        one = "/rest/social/pstate/followers/selectOne"
        self.error("POST", one, {"path": [["key", "err-star"], ["all"]]}, says="not one")
        self.error("POST", one, {"path": [["key", "err-nobody"], ["all"]]}, status=404,
                   code="NOT_FOUND", says="nothing")
        page = "/rest/wordcount/pstate/word_counts/page"
        self.error("POST", page, {"limit": "2"}, says=('"limit"', "integer"))
        self.error("POST", page, {"limit": 2.0}, says=('"limit"', "integer"))
        self.error("POST", page, {"limit": 0}, says="limit")
        self.error("POST", page, {"limit": 10001}, says="limit")
        self.error("POST", page, {"token": "abc"}, says="next_token")
        self.error("POST", page, {"token": {"$bytes": "AAAA"}}, says="token")
        invoke = "/rest/wordcount/query/top-words/invoke"
        self.error("POST", invoke, {"args": 3}, says=('"args"', "list"))
        self.error("POST", invoke, {"args": [3], "timeout_ms": "1"}, says="timeout_ms")
        self.error("POST", invoke, {"args": [3], "timeout_ms": 0}, says="timeout_ms")
        self.error("POST", invoke, {"args": [3], "timeout_ms": 3600001}, says="timeout_ms")
        self.error("POST", invoke, {"args": []}, says=("takes 1 argument", "not 0"))
        self.error("POST", invoke, {"args": [1, 2]}, says="not 2")
        self.error("POST", invoke, {"args": ["x"]}, code="SCHEMA_VIOLATION",
                   says=("argument 1", "int64"))

    def raw_exchange(self, request):
        """Sends `request` (bytes) on a new connection; returns (status, parsed body)."""
        parsed = urllib.parse.urlsplit(self.server.base)
        with socket.create_connection((parsed.hostname, parsed.port), timeout=60) as s:
            s.sendall(request)
            answer = b""
            while chunk := s.recv(65536):
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        return int(head.split()[1]), loads(body)

    def test_post_without_a_body(self):
        # `curl -X POST URL` sends neither Content-Length nor a body: an empty body, the
        # defaults (RFC 9112, 6.3), answered at once (not after --http-timeout, 400).
        for path, status, answer in [
                ("/rest/bank/query/total-money/invoke", 200, "result"),
                ("/rest/bank/pstate/balances/page", 200, "values"),
                ("/rest/bank/depot/*deposits/append", 400, "error"),
                ("/rest/bank/depot/*deposits", 405, "error")]:
            got = self.raw_exchange(f"POST {path} HTTP/1.1\r\nHost: x\r\n"
                                    f"Connection: close\r\n\r\n".encode())
            self.assertEqual(got[0], status, got)
            self.assertIn(answer, got[1])

    def test_schema_violation(self):
        self.error("POST", self.APPEND, {"data": 5}, code="SCHEMA_VIOLATION",
                   says=("string", "*sentences"))
        self.error("POST", "/rest/bank/depot/*deposits/append",
                   {"batch": [{"account": "ok", "amount": 1}, {"account": "x", "amount": "ten"}]},
                   code="SCHEMA_VIOLATION", says=("record 1", "amount", "no record"))
        self.assertEqual(self.select("bank", "$$balances", [["key", "ok"]], one=True), None)

    def test_unknown_names(self):
        for method, path, body, says in [
                ("GET", "/rest/nope", None, "nope"),
                ("GET", "/rest/nope/stats", None, "nope"),
                ("GET", "/rest/nope/depot/*x", None, "nope"),
                ("POST", "/rest/nope/depot/*x/append", {"data": 1}, "nope"),
                ("POST", "/rest/wordcount/depot/*nope/append", {"data": "a"}, "*nope"),
                ("GET", "/rest/wordcount/depot/*nope", None, "*nope"),
                ("POST", "/rest/wordcount/pstate/nope/select", {"path": []}, "$$nope"),
                ("POST", "/rest/wordcount/pstate/nope/selectOne", {"path": []}, "$$nope"),
                ("POST", "/rest/wordcount/pstate/nope/page", {}, "$$nope"),
                ("POST", "/rest/wordcount/query/nope/invoke", {}, "nope"),
                ("POST", "/rest/nope/query/x/invoke", {}, "nope"),
                # A name that is not UTF-8: the message is still a JSON string.
                ("GET", "/rest/%FF", None, "\\xff")]:
            self.error(method, path, body, status=404, code="NOT_FOUND", says=says)

    def test_unknown_urls_and_methods(self):
        for path in ("/rest/", "/rest//stats", "/rest/wordcount/depot", "/rest/a/b/c/d/e",
                     "/rest/wordcount/pstate/word_counts/selectAll", "/nope"):
            self.error("GET", path, status=404, code="NOT_FOUND", says=path)
        for method, path, says in [
                ("GET", self.APPEND, "POST"),
                ("PUT", "/rest/stats", "GET"),
                ("DELETE", "/rest/modules", "GET, POST, PUT"),
                ("POST", "/rest/wordcount", "GET, DELETE"),
                ("GET", "/rest/wordcount/query/top-words/invoke", "POST"),
                ("GET", "/rest/wordcount/pstate/word_counts/select", "POST"),
                ("POST", "/rest/wordcount/depot/*sentences", "GET"),
                ("PATCH", "/rest/wordcount/stats", "GET")]:
            self.error(method, path, "" if method in ("POST", "PUT", "PATCH") else None,
                       status=405, code="UNSUPPORTED", says=says)

    def test_bad_query_parameters(self):
        depot = "/rest/wordcount/depot/*sentences"
        for query, says in [("partition=-1", "partition=-1"), ("partition=8", "8"),
                            ("partition=x", "partition=x"), ("limit=0", "limit=0"),
                            ("limit=abc", "limit=abc"), ("limit=10001", "limit=10001"),
                            ("from=-1", "from=-1"), ("from=5&to=2", "from"),
                            ("limit=", "limit=")]:
            self.error("GET", f"{depot}?{query}", says=says)
        for query in ("failures_limit=1001", "failures_limit=-1", "failures_from=-1",
                      "failures_from=x"):
            self.error("GET", f"/rest/bank/stats?{query}", says=query.split("=")[0])
            self.error("GET", f"/rest/stats?{query}", says=query.split("=")[0])

    def test_query_failures_and_timeouts(self):
        self.error("POST", "/rest/qtest/query/throws/invoke", {}, status=500,
                   code="QUERY_FAILED", says="no answer today")
        self.error("POST", "/rest/qtest/query/writes/invoke", {}, status=500,
                   code="QUERY_FAILED")
        self.error("POST", "/rest/wordcount/query/top-words/invoke", {"args": [0]}, status=500,
                   code="QUERY_FAILED", says="n must be 1 to 10000")
        # Past timeout_ms: 504 once the steps running end (a step is not interrupted).
        self.error("POST", "/rest/qtest/query/slow/invoke", {"args": [400], "timeout_ms": 50},
                   status=504, code="TIMEOUT", says="timeout")
        # The server goes on serving.
        self.assertEqual(sorted(self.invoke("qtest", "slow", [1], timeout_ms=30000)),
                         list(range(8)))


# ---------------------------------------------------------------------------------------
class ConcurrencyTest(RestCase):
    THREADS = 16
    REQUESTS = 200

    def test_keep_alive_connections_in_parallel(self):
        failures = []
        connections = []

        def work(t):
            client = Client(self.server)
            try:
                for i in range(0, self.REQUESTS, 2):
                    key = f"conc-{t}-{i}"
                    status, _, r = client.post("/rest/rt_test/depot/*kv/append",
                                               {"data": {"key": key, "value": [t, i]}})
                    if status != 200 or r["ack_returns"]["kv"][1] != [t, i]:
                        failures.append((key, status, r))
                    status, _, r = client.post("/rest/rt_test/pstate/kv/selectOne",
                                               {"path": [["key", key]]})
                    if status != 200 or r != {"value": [t, i]}:
                        failures.append((key, status, r))
                connections.append(client.conn is not None)
            except Exception as e:  # noqa: BLE001 - reported below
                failures.append((t, repr(e)))
            finally:
                client.close()

        before = self.call("GET", "/rest/stats")["server"]["total_connections"]
        threads = [threading.Thread(target=work, args=(t,)) for t in range(self.THREADS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=240)
            self.assertFalse(th.is_alive(), "a client thread hangs")
        self.assertEqual(failures, [])
        self.assertEqual(len(connections), self.THREADS)
        # Keep-alive: about one connection per thread, not one per request.
        after = self.call("GET", "/rest/stats")["server"]["total_connections"]
        self.assertLess(after - before, self.THREADS * 4)


# ---------------------------------------------------------------------------------------
class AdminTest(RestCase):
    """deploy (bytes and path), update, recompute and destroy with --http-admin."""

    @classmethod
    def setUpClass(cls):
        cls.server = harness.Stratad(extra_args=["--http-admin"])
        cls.client = Client(cls.server)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.server.cleanup()

    def test_deploy_update_recompute_destroy(self):
        with open(harness.module_path("wordcount"), "rb") as f:
            so = f.read()
        octet = {"Content-Type": "application/octet-stream"}
        deployed = self.call("POST", "/rest/modules?partitions=4", raw=so, headers=octet,
                             status=201)
        self.assertEqual((deployed["name"], deployed["partitions"], deployed["version"]),
                         ("wordcount", 4, 1))
        self.assertEqual(deployed, self.call("GET", "/rest/wordcount"))
        self.error("POST", "/rest/modules?partitions=4", raw=so, headers=octet, status=409,
                   code="ALREADY_EXISTS", says="wordcount")
        self.error("POST", "/rest/modules?partitions=0", raw=so, headers=octet,
                   says="partitions")
        self.error("POST", "/rest/modules", raw=b"not a module", headers=octet,
                   says="module")
        # From a path on the server, partitions in the body.
        social = self.call("POST", "/rest/modules",
                           {"path": harness.module_path("social"), "partitions": 2}, status=201)
        self.assertEqual((social["name"], social["partitions"]), ("social", 2))
        self.error("POST", "/rest/modules", {"path": "/nonexistent/m.so"}, status=404,
                   code="NOT_FOUND", says="/nonexistent")
        self.error("POST", "/rest/modules", {"path": 5}, says='"path"')
        self.assertEqual({m["name"] for m in self.call("GET", "/rest/modules")["modules"]},
                         {"wordcount", "social"})

        self.append("wordcount", "*sentences", {"batch": ["a bb ccc", "dd e"]})
        with open(harness.module_path("wordcount_v2"), "rb") as f:
            v2 = f.read()
        updated = self.call("PUT", "/rest/modules", raw=v2, headers=octet)
        self.assertEqual(set(updated), {"module", "version", "created", "dropped", "widened",
                                        "backfilling", "migrated", "pause_us"})
        self.assertEqual(updated["version"], 2)
        self.assertEqual(updated["module"]["version"], 2)
        self.assertEqual(updated["created"], ["$$word_lengths"])
        self.assertEqual(updated["backfilling"], ["lengths"])
        self.assertEqual(updated["dropped"], [])
        # The backfill counts the words already in *sentences.
        deadline = time.monotonic() + 60
        while self.select("wordcount", "$$word_lengths", [["key", 2]], one=True) != 2:
            self.assertLess(time.monotonic(), deadline, "the backfill does not finish")
            time.sleep(0.05)
        # The same build again: version 3, nothing created.
        again = self.call("PUT", "/rest/modules",
                          {"path": harness.module_path("wordcount_v2")})
        self.assertEqual((again["version"], again["created"]), (3, []))
        # Going back to v1 needs the drops.
        self.error("PUT", "/rest/modules", raw=so, headers=octet, says="drop")
        back = self.call("PUT", "/rest/modules?drop=$$word_lengths,lengths", raw=so,
                         headers=octet)
        self.assertEqual(sorted(back["dropped"]), ["$$word_lengths", "lengths"])

        started = self.call("POST", "/rest/wordcount/recompute", {"pstates": ["word_counts"]})
        self.assertEqual(started["module"], "wordcount")
        self.assertEqual(started["pstates"], ["$$word_counts"])
        deadline = time.monotonic() + 60
        while self.call("GET", "/rest/wordcount/stats")["rebuilds"]:
            self.assertLess(time.monotonic(), deadline, "the recompute does not finish")
            time.sleep(0.05)
        self.assertEqual(self.select("wordcount", "$$word_counts", [["key", "bb"]], one=True), 1)
        self.error("POST", "/rest/wordcount/recompute", {"pstates": []}, says="pstates")
        self.error("POST", "/rest/wordcount/recompute", {"pstates": ["nope"]},
                   status=404, code="NOT_FOUND", says="nope")

        self.error("DELETE", "/rest/wordcount", status=409, code="CONFIRMATION_REQUIRED",
                   says="wordcount")
        self.error("DELETE", "/rest/wordcount?confirm=social", status=409,
                   code="CONFIRMATION_REQUIRED")
        self.assertEqual(self.call("DELETE", "/rest/wordcount?confirm=wordcount"),
                         {"module": "wordcount"})
        self.error("GET", "/rest/wordcount", status=404, code="NOT_FOUND")
        self.error("DELETE", "/rest/wordcount?confirm=wordcount", status=404, code="NOT_FOUND")
        # Deployed again from bytes, it starts empty.
        self.call("POST", "/rest/modules?partitions=2", raw=so, headers=octet, status=201)
        self.assertEqual(self.select("wordcount", "$$word_counts", [["key", "bb"]], one=True),
                         None)


# ---------------------------------------------------------------------------------------
class BodyLimitTest(RestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = harness.Stratad(modules=["wordcount"], extra_args=["--http-max-body", "2KB"])
        cls.client = Client(cls.server)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.server.cleanup()

    def test_body_over_the_limit(self):
        path = "/rest/wordcount/depot/*sentences/append"
        small = json.dumps({"data": "x" * 1900})
        self.assertLessEqual(len(small), 2048)
        self.call("POST", path, small)
        big = json.dumps({"data": "x" * 3000})
        self.error("POST", path, big, status=413, code="FRAME_TOO_LARGE",
                   says="--http-max-body")
        # Refused before it was read, not appended.
        records = self.call("GET", "/rest/wordcount/stats")["depots"]
        self.assertEqual(sum(d["end_offset"] for d in records), 1)
        # The server goes on serving (on a new connection if it closed this one).
        self.client.close()
        self.call("GET", "/rest/wordcount")


# ---------------------------------------------------------------------------------------
class ShutdownTest(unittest.TestCase):
    def test_sigterm_with_requests_in_flight(self):
        server = harness.Stratad(
            extra_args=["--deploy", test_module_path("rt_test"),
                        "--deploy", test_module_path("query_test_module")])
        try:
            answers, errors, started = [], [], threading.Barrier(9)

            def work(t):
                client = Client(server, timeout=90)
                started.wait()
                try:
                    for i in range(1000):
                        if t % 2:
                            r = client.post("/rest/qtest/query/slow/invoke",
                                            {"args": [50], "timeout_ms": 30000})
                        else:
                            r = client.post("/rest/rt_test/depot/*slow/append",
                                            {"data": 20 + i})
                        answers.append((r[0], r[2]))
                except (ConnectionError, http.client.HTTPException, OSError) as e:
                    errors.append(e)  # a clean close or a refused connection
                finally:
                    client.close()

            threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
            for th in threads:
                th.start()
            started.wait()
            # Wait until requests are being answered, then stop the server.
            deadline = time.monotonic() + 60
            while len(answers) < 8:
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.01)
            server.proc.send_signal(signal.SIGTERM)
            self.assertEqual(server.proc.wait(timeout=90), 0, server.log())
            for th in threads:
                th.join(timeout=90)
                self.assertFalse(th.is_alive(), "a request hangs after the server stopped")
            self.assertEqual(len(errors), 8, "every client ends on a closed connection")
            for status, body in answers:
                self.assertIsInstance(body, dict, body)
                if status != 200:
                    self.assertIn(body["error"]["code"], ("SHUTTING_DOWN", "TIMEOUT",
                                                           "TOPOLOGY_FAILED"), body)
        finally:
            server.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
