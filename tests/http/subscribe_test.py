"""Live subscriptions over HTTP (docs/http.md, "Subscribe"): the Server-Sent Events stream of
GET /rest/MODULE/pstate/PSTATE/subscribe against a real stratad with wordcount. The diffs of
the `update` events, applied to the value of the `subscribed` event, give what a select
answers afterwards; errors before the stream are JSON errors; a closed stream gives its place
back (--http-max-streams); destroying the module and stopping the server end the stream with
an `ended` event.
"""

import http.client
import json
import signal
import time
import unittest
import urllib.parse

import harness


def url(module, pstate, path=None, partition_key=None, one=None):
    params = {}
    if path is not None:
        params["path"] = json.dumps(path)
    if partition_key is not None:
        params["partition_key"] = json.dumps(partition_key)
    if one is not None:
        params["one"] = "true" if one else "false"
    query = urllib.parse.urlencode(params)
    return "/rest/%s/pstate/%s/subscribe%s" % (module, pstate, "?" + query if query else "")


class EventStream:
    """One SSE request on a connection of its own; events() reads them as (name, data)."""

    def __init__(self, server, target):
        parsed = urllib.parse.urlsplit(server.base)
        self.conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
        self.conn.request("GET", target, headers={"Accept": "text/event-stream"})
        self.response = self.conn.getresponse()
        self.status = self.response.status
        self.headers = dict(self.response.headers)

    def error(self):
        """The JSON error body of a refused stream."""
        return json.loads(self.response.read())

    def next_event(self):
        """The next event as (name, parsed data); None when the stream ended. Comments
        (keep-alives) are skipped."""
        name, data = None, []
        while True:
            line = self.response.readline()
            if not line:
                return None
            line = line.decode().rstrip("\r\n")
            if line == "":
                if name is not None or data:
                    return name, json.loads("\n".join(data))
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)

    def close(self):
        self.conn.close()


def canonical(value):
    """A value in the JSON form with its sets' elements in one order, to compare values
    whose sets were built by diffs (added elements go at the end)."""
    if isinstance(value, dict):
        if set(value) == {"$set"}:
            return {"$set": sorted((canonical(e) for e in value["$set"]), key=json.dumps)}
        return {k: canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [canonical(e) for e in value]
    return value


def child(container, step):
    if isinstance(container, dict) and "$map" in container and len(container) == 1:
        for k, v in container["$map"]:
            if k == step:
                return v
        raise KeyError(step)
    return container[step]


def apply_diff(value, diff):
    """`diff` (the JSON form of an update's diff, docs/subscriptions.md) applied to `value`
    (the JSON form); returns the new value."""
    op = diff["op"]
    if op == "resync":
        return diff["value"]
    at = diff["at"]
    if op == "replace" and not at:
        return diff["value"]
    parent = value
    for step in at[:-1] if op == "replace" else at:
        parent = child(parent, step)
    if op == "replace":
        last = at[-1]
        if isinstance(parent, dict) and "$map" in parent and len(parent) == 1:
            parent["$map"] = [[k, diff["value"] if k == last else v] for k, v in parent["$map"]]
        else:
            parent[last] = diff["value"]
    elif op in ("key_set", "key_removed"):
        key = diff["key"]
        if isinstance(parent, dict) and "$map" in parent and len(parent) == 1:
            entries = [[k, v] for k, v in parent["$map"] if k != key]
            if op == "key_set":
                entries.append([key, diff["value"]])
            parent["$map"] = entries
        elif op == "key_set":
            parent[key] = diff["value"]
        else:
            del parent[key]
    elif op == "set_added":
        parent["$set"].append(diff["value"])
    elif op == "set_removed":
        parent["$set"].remove(diff["value"])
    elif op == "seq_insert":
        parent.insert(diff["index"], diff["value"])
    elif op == "seq_remove":
        del parent[diff["index"]]
    else:
        raise AssertionError("unknown diff op %r" % op)
    return value


# The fields each op uses (docs/subscriptions.md); an update carries only those.
OP_FIELDS = {
    "replace": {"op", "at", "value"},
    "key_set": {"op", "at", "key", "value"},
    "key_removed": {"op", "at", "key"},
    "set_added": {"op", "at", "value"},
    "set_removed": {"op", "at", "value"},
    "seq_insert": {"op", "at", "value", "index"},
    "seq_remove": {"op", "at", "index"},
    "resync": {"op", "at", "value"},
}


class StreamCase(unittest.TestCase):
    def open(self, server, target):
        stream = EventStream(server, target)
        self.addCleanup(stream.close)
        return stream

    def subscribed(self, stream):
        self.assertEqual(stream.status, 200, stream.status)
        self.assertTrue(stream.headers["Content-Type"].startswith("text/event-stream"),
                        stream.headers)
        name, data = stream.next_event()
        self.assertEqual(name, "subscribed", data)
        self.assertEqual(set(data), {"subscription", "partition", "value"}, data)
        return data

    def follow(self, stream, value, done):
        """Applies update events to `value` until done(value); returns it."""
        while not done(value):
            event = stream.next_event()
            self.assertIsNotNone(event, "the stream ended before the change arrived")
            name, data = event
            self.assertEqual(name, "update", data)
            self.assertTrue(data["diffs"], data)
            for diff in data["diffs"]:
                self.assertEqual(set(diff), OP_FIELDS[diff["op"]], diff)
                value = apply_diff(value, diff)
        return value

    def append(self, server, sentences):
        status, _, body = server.post("/rest/wordcount/depot/*sentences/append",
                                      {"batch": sentences, "ack": "processed"})
        self.assertEqual(status, 200, body)


class StreamTest(StreamCase):
    @classmethod
    def setUpClass(cls):
        cls.server = harness.Stratad(modules=["wordcount"])

    @classmethod
    def tearDownClass(cls):
        cls.server.cleanup()

    def test_updates_applied_to_the_first_value_equal_a_select(self):
        word = "ssefox"
        stream = self.open(self.server, url("wordcount", "$$word_counts", path=[],
                                            partition_key=word, one=True))
        first = self.subscribed(stream)
        self.assertIsInstance(first["value"], dict)
        self.assertNotIn(word, first["value"])
        self.append(self.server, ["the %s jumps" % word, "%s and %s" % (word, word),
                                  "no such word here", "the %s" % word])
        value = self.follow(stream, first["value"], lambda v: v.get(word) == 4)
        status, _, body = self.server.post("/rest/wordcount/pstate/word_counts/selectOne",
                                           {"path": [], "partition_key": word})
        self.assertEqual(status, 200, body)
        self.assertEqual(value, body["value"])

    def test_sets_of_a_subindexed_pstate(self):
        word = "sseranked"
        stream = self.open(self.server, url("wordcount", "$$ranking", path=[],
                                            partition_key=word, one=True))
        first = self.subscribed(stream)
        self.assertIn("$set", first["value"])
        self.append(self.server, [word, "%s %s" % (word, word)])
        value = self.follow(stream, first["value"],
                            lambda v: [-3, word] in v["$set"] and [-1, word] not in v["$set"])
        status, _, body = self.server.post("/rest/wordcount/pstate/ranking/selectOne",
                                           {"path": [], "partition_key": word})
        self.assertEqual(status, 200, body)
        self.assertEqual(canonical(value), canonical(body["value"]))

    def test_one_value_of_a_key_path(self):
        word = "ssekeyed"
        # Without partition_key the path's first key picks the partition; $$ may be left out.
        stream = self.open(self.server, url("wordcount", "word_counts",
                                            path=[["key", word]], one=True))
        first = self.subscribed(stream)
        self.assertIsNone(first["value"])
        self.append(self.server, [word])
        value = self.follow(stream, first["value"], lambda v: v == 1)
        self.append(self.server, [word + " " + word])
        value = self.follow(stream, value, lambda v: v == 3)
        status, _, body = self.server.post("/rest/wordcount/pstate/word_counts/selectOne",
                                           {"path": [["key", word]]})
        self.assertEqual(body, {"value": value})

    def test_a_list_of_values_without_one(self):
        word = "sselisted"
        stream = self.open(self.server, url("wordcount", "word_counts", path=[["key", word]]))
        first = self.subscribed(stream)
        self.assertEqual(first["value"], [None])
        value = first["value"]
        self.append(self.server, [word])
        value = self.follow(stream, value, lambda v: v == [1])
        status, _, body = self.server.post("/rest/wordcount/pstate/word_counts/select",
                                           {"path": [["key", word]]})
        self.assertEqual(body, {"values": value})

    def assert_error(self, target, status, code, method="GET"):
        got, headers, body = self.server.request(method, target)
        self.assertEqual(got, status, body)
        self.assertTrue(headers["Content-Type"].startswith("application/json"), headers)
        self.assertEqual(body["error"]["code"], code, body)
        self.assertTrue(body["error"]["message"], body)
        return body["error"]["message"]

    def test_errors_before_the_stream_are_json(self):
        message = self.assert_error(url("wordcount", "nope", path=[["key", "a"]]), 404,
                                    "NOT_FOUND")
        self.assertIn("nope", message)
        self.assert_error(url("nomodule", "word_counts", path=[["key", "a"]]), 404, "NOT_FOUND")
        message = self.assert_error(url("wordcount", "word_counts", path=[["bad"]]), 400,
                                    "INVALID_ARGUMENT")
        self.assertIn("bad", message)
        message = self.assert_error(
            "/rest/wordcount/pstate/word_counts/subscribe?path=%5B%5Bkey", 400,
            "INVALID_ARGUMENT")
        self.assertIn("path", message)
        message = self.assert_error(
            "/rest/wordcount/pstate/word_counts/subscribe?path=%5B%5D&partition_key=alice", 400,
            "INVALID_ARGUMENT")
        self.assertIn("partition_key", message)
        # A whole partition needs a partition key.
        self.assert_error(url("wordcount", "word_counts", path=[]), 400, "INVALID_ARGUMENT")
        self.assert_error(url("wordcount", "word_counts", path=[["key", "a"]]) + "&one=maybe",
                          400, "INVALID_ARGUMENT")
        self.assert_error(url("wordcount", "word_counts", path=[["key", "a"]]), 405,
                          "UNSUPPORTED", method="POST")


class StreamLimitTest(StreamCase):
    """--http-max-streams 2: a third stream is refused while REST keeps serving, and closed
    streams give their places back."""

    @classmethod
    def setUpClass(cls):
        cls.server = harness.Stratad(modules=["wordcount"], extra_args=["--http-max-streams", "2"])

    @classmethod
    def tearDownClass(cls):
        cls.server.cleanup()

    def metric(self, name):
        """The value of an unlabelled sample of GET /metrics."""
        status, _, text = self.server.get("/metrics")
        self.assertEqual(status, 200, text)
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        self.fail("no sample %s in /metrics" % name)

    TARGET = url("wordcount", "word_counts", path=[["key", "limited"]], one=True)

    def open_when_free(self):
        """A stream, once a place is free (a closed stream's place is given back when the
        server notices the close)."""
        deadline = time.monotonic() + 60
        while True:
            stream = EventStream(self.server, self.TARGET)
            if stream.status != 503:
                self.addCleanup(stream.close)
                return stream
            stream.close()
            self.assertLess(time.monotonic(), deadline, "a closed stream kept its place")
            time.sleep(0.05)

    def test_the_cap_refuses_and_closing_frees(self):
        streams = [self.open_when_free() for _ in range(2)]
        for s in streams:
            self.subscribed(s)
        refused = self.open(self.server, self.TARGET)
        self.assertEqual(refused.status, 503)
        self.assertEqual(refused.headers.get("Retry-After"), "1")
        error = refused.error()
        self.assertEqual(error["error"]["code"], "OVERLOADED", error)
        self.assertIn("--http-max-streams", error["error"]["message"])
        status, _, body = self.server.get("/rest/modules")
        self.assertEqual(status, 200, body)
        self.assertEqual(self.metric("strata_http_streams"), 2)
        self.assertGreaterEqual(self.metric("strata_http_streams_refused_total"), 1)
        for s in streams:
            s.close()
        # More streams than the cap, one after another: none keeps its place once closed.
        for _ in range(6):
            stream = self.open_when_free()
            self.subscribed(stream)
            stream.close()
        # Both places are free again.
        both = [self.open_when_free() for _ in range(2)]
        for s in both:
            self.subscribed(s)
        self.assertEqual(self.metric("strata_http_streams"), 2)


class StreamEndTest(StreamCase):
    def test_destroy_then_shutdown_end_the_streams(self):
        server = harness.Stratad(modules=["wordcount", "bank"], extra_args=["--http-admin"])
        try:
            stream = self.open(server, url("wordcount", "word_counts",
                                           path=[["key", "ended"]], one=True))
            self.subscribed(stream)
            status, _, body = server.request("DELETE", "/rest/wordcount?confirm=wordcount")
            self.assertEqual(status, 200, body)
            name, data = stream.next_event()
            self.assertEqual(name, "ended", data)
            self.assertEqual(data["error"]["code"], "NOT_FOUND", data)
            self.assertIn("wordcount", data["error"]["message"])
            self.assertIsNone(stream.next_event(), "the stream ends after its ended event")

            stream = self.open(server, url("bank", "balances", path=[["key", "alice"]],
                                           one=True))
            self.subscribed(stream)
            server.proc.send_signal(signal.SIGTERM)
            name, data = stream.next_event()
            self.assertEqual(name, "ended", data)
            self.assertEqual(data["error"]["code"], "SHUTTING_DOWN", data)
            self.assertIsNone(stream.next_event())
            self.assertEqual(server.proc.wait(timeout=90), 0, server.log())
        finally:
            server.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
