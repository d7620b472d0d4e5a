"""Live subscriptions in the Python driver: strata.diffs against ApplyDiff's semantics, and
subscriptions of the blocking and asyncio clients against a real stratad with wordcount
(the subscribed value, kept current from the pushed diffs, is compared with a select),
their ends (unsubscribe, an unknown PState, a destroyed module, a killed server) and the
bounded queue. STRATA_TEST_SEED sets the random seed (printed; pytest shows it on a
failure)."""

import asyncio
import os
import random
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

import flatbuffers

import harness
import strata
import test_tour
from strata import Diff, Path, apply_diff, apply_diffs
from strata.values import encode
from strata.wire import (Diff as WireDiff, Request, Response, SubscriptionUpdate, Subscribed,
                         UnsubscribeRequest, Unsubscribed, Welcome)
from strata.wire.DiffOp import DiffOp
from strata.wire.RequestBody import RequestBody
from strata.wire.ResponseBody import ResponseBody


def _seed():
    seed = int(os.environ.get("STRATA_TEST_SEED", random.randrange(1 << 30)))
    print("STRATA_TEST_SEED=%d" % seed)
    return random.Random(seed)


def _sentences(rng, words, n):
    return [" ".join(rng.choice(words) for _ in range(rng.randint(1, 6))) for _ in range(n)]


def _until_value(subscription, initial, expected, timeout=60):
    """Reads the updates of a subscription whose value was ``initial`` until one makes it
    ``expected``; answers them. Each update's diffs, applied to the value before, give its
    value, and the last one is the subscription's value."""
    updates = []
    before = initial
    while before != expected:
        update = subscription.next(timeout=timeout)
        assert apply_diffs(before, update.diffs) == update.value
        before = update.value
        updates.append(update)
    assert subscription.value == expected
    return updates


def _wait(condition, timeout=60):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within %g s" % timeout
        time.sleep(0.01)


# ---- strata.diffs ------------------------------------------------------------------------

def test_apply_diff_each_op_leaves_the_value_it_is_given_unchanged():
    value = {"alice": {"tags": {"a"}, "posts": ["p1", "p2"]}, "n": 1}
    steps = [
        (Diff("key_set", ["alice"], key="bio", value="hi"), lambda v: v["alice"]["bio"] == "hi"),
        (Diff("key_removed", [], key="n"), lambda v: "n" not in v),
        (Diff("set_added", ["alice", "tags"], value=["x", 1]),
         lambda v: v["alice"]["tags"] == {"a", ("x", 1)}),
        (Diff("set_removed", ["alice", "tags"], value="a"), lambda v: v["alice"]["tags"] == set()),
        (Diff("seq_insert", ["alice", "posts"], value="p0", index=0),
         lambda v: v["alice"]["posts"] == ["p0", "p1", "p2"]),
        (Diff("seq_insert", ["alice", "posts"], value="p3", index=2),
         lambda v: v["alice"]["posts"] == ["p1", "p2", "p3"]),
        (Diff("seq_remove", ["alice", "posts"], index=1), lambda v: v["alice"]["posts"] == ["p1"]),
        (Diff("replace", ["alice", "posts", 0], value={"t": 1}),
         lambda v: v["alice"]["posts"] == [{"t": 1}, "p2"]),
        (Diff("replace", [], value=7), lambda v: v == 7),
        (Diff("resync", value=[1, 2]), lambda v: v == [1, 2]),
    ]
    original = repr(value)
    for diff, check in steps:
        assert check(apply_diff(value, diff)), diff
        assert repr(value) == original, diff
    # Several diffs in one call: each container on the path is copied once, then changed.
    after = apply_diffs(value, [Diff("key_set", ["alice"], key="k%d" % i, value=i)
                                for i in range(5)] + [Diff("key_removed", ["alice"], key="k0")])
    assert sorted(after["alice"]) == ["k1", "k2", "k3", "k4", "posts", "tags"]
    assert after["alice"]["posts"] is value["alice"]["posts"]  # unchanged parts are shared
    assert repr(value) == original


@pytest.mark.parametrize("value, diff, why", [
    ({"a": 1}, Diff("key_set", ["b"], key="k", value=1),
     'step 0 ("b") is not a key of the map there'),
    ([1, 2], Diff("replace", [2], value=0), "step 0 (2) is not an index of the list there"),
    ([1, 2], Diff("replace", [True], value=0), "step 0 (true) is not an index of the list there"),
    ({"a": 1}, Diff("key_set", ["a", "x"], key="k", value=1), 'step 1 ("x") goes into a int'),
    ({"a": [1]}, Diff("key_set", ["a"], key="k", value=1),
     "the value there is a list, not a map"),
    ({"a": {}}, Diff("set_added", ["a"], value=1), "the value there is a map, not a set"),
    ({"a": {1}}, Diff("seq_insert", ["a"], value=1, index=0),
     "the value there is a set, not a list"),
    ([1, 2], Diff("seq_insert", [], value=1, index=3), "index 3 is out of range for 2 elements"),
    ([], Diff("seq_remove", [], index=0), "index 0 is out of range for 0 elements"),
    ([1], Diff("seq_remove", [], index=-1), "index -1 is out of range for 1 elements"),
])
def test_a_diff_that_does_not_fit_raises_invalid_argument(value, diff, why):
    original = repr(value)
    with pytest.raises(strata.InvalidArgument) as e:
        apply_diff(value, diff)
    assert why in e.value.message and diff.op in e.value.message
    assert repr(value) == original


def test_unknown_op_is_refused():
    with pytest.raises(strata.InvalidArgument, match="unknown diff op"):
        Diff("append")


# ---- the blocking client -----------------------------------------------------------------

def test_subscribe_to_a_key_and_to_a_partition_follows_random_appends(client):
    rng = _seed()
    words = ["sk%d" % i for i in range(12)]
    key = client.subscribe("wordcount", "$$word_counts", Path().key("sk0"), one=True)
    partition = client.subscribe("wordcount", "$$word_counts", [], partition_key="sk0")
    ranking = client.subscribe("wordcount", "$$ranking", [], partition_key="sk0")
    with key, partition, ranking:
        assert key.value is None  # one=True: nil when nothing is selected
        assert partition.partition == key.partition == ranking.partition
        assert partition.value == client.select("wordcount", "$$word_counts", [],
                                                partition_key="sk0")
        initial = [s.value for s in (key, partition, ranking)]
        for sentence in _sentences(rng, words, 300):
            client.append("wordcount", "*sentences", sentence)
        count = client.select_one("wordcount", "$$word_counts", Path().key("sk0"))
        updates = _until_value(key, initial[0], count)
        assert updates and all(d.op in ("replace", "resync") for u in updates for d in u.diffs)
        whole = client.select("wordcount", "$$word_counts", [], partition_key="sk0")
        updates = _until_value(partition, initial[1], whole)
        assert {d.op for u in updates for d in u.diffs} <= {"key_set", "resync"}
        assert all(client.select_one("wordcount", "$$word_counts", Path().key(w)) == n
                   for w, n in whole[0].items())
        _until_value(ranking, initial[2],
                     client.select("wordcount", "$$ranking", [], partition_key="sk0"))
        assert {(-n, w) for w, n in whole[0].items() if w in words} <= ranking.value[0]
    # Closed: iteration stops, a second close is harmless, later appends reach no one.
    assert list(key) == []
    key.close()
    client.append("wordcount", "*sentences", "sk0")
    with pytest.raises(StopIteration):
        partition.next(timeout=0)
    conn = client._aio._conn
    assert all(s.id not in conn.subscriptions for s in (key, partition, ranking))


def test_unsubscribe_is_answered_and_later_updates_are_ignored(client):
    sub = client.subscribe("wordcount", "$$word_counts", Path().key("su"), one=True)
    other = client.subscribe("wordcount", "$$word_counts", Path().key("su"), one=True)
    assert other.value is None
    client.append("wordcount", "*sentences", "su")
    sub.close()
    client.append("wordcount", "*sentences", "su su")
    count = client.select_one("wordcount", "$$word_counts", Path().key("su"))
    _until_value(other, None, count)
    assert sub.id not in client._aio._conn.subscriptions
    assert not client._aio._conn.releasing  # Unsubscribed came back
    other.close()


def test_a_thread_blocked_on_a_subscription_is_woken_by_an_update(client):
    with client.subscribe("wordcount", "$$word_counts", Path().key("st"), one=True) as sub:
        got = []
        t = threading.Thread(target=lambda: got.append(next(sub)))
        t.start()
        client.append("wordcount", "*sentences", "st")
        t.join(60)
        assert got and got[0].value == 1 == sub.value


def test_closing_the_client_wakes_a_thread_blocked_on_a_subscription(server):
    c = strata.connect("127.0.0.1", server.port, timeout=60)
    sub = c.subscribe("wordcount", "$$word_counts", Path().key("sc"), one=True)
    raised = []

    def read():
        try:
            next(sub)
        except strata.ConnectionLost as e:
            raised.append(e)

    t = threading.Thread(target=read)
    t.start()
    c.close()
    t.join(60)
    assert raised and "closed" in raised[0].message
    sub.close()  # harmless once the client is closed


def test_next_with_a_timeout_raises_request_timeout(client):
    with client.subscribe("wordcount", "$$word_counts", Path().key("quiet"), one=True) as sub:
        with pytest.raises(strata.RequestTimeout):
            sub.next(timeout=0.05)


def test_unknown_pstate_module_and_bad_path_are_refused(client):
    with pytest.raises(strata.NotFound, match=r"\$\$nope"):
        client.subscribe("wordcount", "$$nope", [], partition_key="x")
    with pytest.raises(strata.NotFound):
        client.subscribe("nope", "$$word_counts", Path().key("x"))
    with pytest.raises(strata.InvalidArgument):
        client.subscribe("wordcount", "$$word_counts", Path().key("x"), max_queued=0)
    assert not client._aio._conn.subscriptions


def test_a_full_queue_is_replaced_by_one_resync_and_the_value_stays_right(client):
    sub = client.subscribe("wordcount", "$$word_counts", [], partition_key="sq",
                           max_queued=2)
    with sub:
        initial = sub.value
        for i in range(40):
            client.append("wordcount", "*sentences", "sq sq%d" % i)
        whole = client.select("wordcount", "$$word_counts", [], partition_key="sq")
        _wait(lambda: sub.value == whole)  # kept as updates arrive, read or not
        queued = []
        while True:
            try:
                queued.append(sub.next(timeout=0))
            except strata.RequestTimeout:
                break
        assert 1 <= len(queued) <= 2
        assert apply_diffs(initial, [d for u in queued for d in u.diffs]) == whole
        if sub.overflows:
            assert queued[0].diffs == [Diff("resync", value=queued[0].value)]


def test_the_queue_is_bounded_by_the_entries_its_values_copied(client, monkeypatch):
    # Each update of the partition copies its list and map (2 entries or more): over 1.
    monkeypatch.setattr(strata.subscription, "MAX_QUEUED_COPIES", 1)
    with client.subscribe("wordcount", "$$word_counts", [], partition_key="sb") as sub:
        for i in range(5):
            client.append("wordcount", "*sentences", "sb")
        whole = client.select("wordcount", "$$word_counts", [], partition_key="sb")
        _wait(lambda: sub.value == whole)
        update = sub.next(timeout=0)
        assert update.diffs == [Diff("resync", value=whole)] and update.value == whole
        assert sub.overflows >= 1
        with pytest.raises(strata.RequestTimeout):
            sub.next(timeout=0)


def test_destroying_the_module_ends_the_subscription_with_not_found(client):
    sub = client.subscribe("bank", "$$balances", Path().key("acct"), one=True)
    assert sub.value is None
    client.append("bank", "*deposits", {"account": "acct", "amount": 5})
    _until_value(sub, None, 5)
    client.destroy("bank", confirm="bank")
    with pytest.raises(strata.NotFound, match="destroyed"):
        for _ in sub:
            pass
    with pytest.raises(strata.NotFound):  # and again: it stays ended
        sub.next(timeout=0)
    sub.close()
    assert sub.id not in client._aio._conn.subscriptions


def test_kill_9_raises_at_the_iterator_and_a_new_subscription_gets_the_current_value():
    from conftest import start_server
    server = start_server()
    try:
        with strata.connect("127.0.0.1", server.port, timeout=60) as c:
            sub = c.subscribe("wordcount", "$$word_counts", Path().key("sk9"), one=True)
            assert sub.value is None
            c.append("wordcount", "*sentences", "sk9 sk9")
            _until_value(sub, None, 2)
            raised = []

            def read():
                try:
                    for _ in sub:
                        pass
                except strata.StrataError as e:
                    raised.append(e)

            t = threading.Thread(target=read)
            t.start()
            server.restart(kill=True)
            t.join(60)
            assert len(raised) == 1 and isinstance(raised[0], strata.ConnectionLost), raised
            assert "subscribe again" in raised[0].message
            c.append("wordcount", "*sentences", "sk9")
            count = c.select_one("wordcount", "$$word_counts", Path().key("sk9"))
            assert count >= 3  # at-least-once after kill -9
            with c.subscribe("wordcount", "$$word_counts", Path().key("sk9"), one=True) as again:
                assert again.value == count
    finally:
        server.cleanup()


# ---- frames the real server cannot be made to send on cue --------------------------------

def _frame(request_id, body_type, build_body):
    b = flatbuffers.Builder(256)
    body = build_body(b)
    Response.Start(b)
    Response.AddId(b, request_id)
    Response.AddBodyType(b, body_type)
    Response.AddBody(b, body)
    b.Finish(Response.End(b))
    out = b.Output()
    return struct.pack("<I", len(out)) + out


def _welcome(b):
    version = b.CreateString("fake")
    Welcome.Start(b)
    Welcome.AddProtocolVersion(b, 1)
    Welcome.AddServerVersion(b, version)
    Welcome.AddMaxFrameSize(b, 1 << 20)
    Welcome.AddMaxInFlight(b, 16)
    return Welcome.End(b)


def _subscribed(subscription, partition, value):
    def build(b):
        data = b.CreateByteVector(encode(value))
        Subscribed.Start(b)
        Subscribed.AddSubscription(b, subscription)
        Subscribed.AddPartition(b, partition)
        Subscribed.AddValue(b, data)
        return Subscribed.End(b)
    return build


def _update(subscription, op, at, key, value):
    def build(b):
        at_data, key_data, value_data = (b.CreateByteVector(encode(v)) for v in (at, key, value))
        WireDiff.Start(b)
        WireDiff.AddOp(b, op)
        WireDiff.AddAt(b, at_data)
        WireDiff.AddKey(b, key_data)
        WireDiff.AddValue(b, value_data)
        diff = WireDiff.End(b)
        SubscriptionUpdate.StartDiffsVector(b, 1)
        b.PrependUOffsetTRelative(diff)
        diffs = b.EndVector()
        SubscriptionUpdate.Start(b)
        SubscriptionUpdate.AddSubscription(b, subscription)
        SubscriptionUpdate.AddDiffs(b, diffs)
        return SubscriptionUpdate.End(b)
    return build


def _unsubscribed(subscription):
    def build(b):
        Unsubscribed.Start(b)
        Unsubscribed.AddSubscription(b, subscription)
        return Unsubscribed.End(b)
    return build


def _read_request(conn):
    """(id, body type, body table) of the next request frame."""
    def exactly(n):
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            assert chunk, "the client closed the connection"
            data += chunk
        return data
    payload = exactly(struct.unpack("<I", exactly(4))[0])
    request = Request.Request.GetRootAs(payload, 0)
    return request.Id(), request.BodyType(), request.Body()


def test_updates_right_behind_subscribed_are_kept_and_strays_are_unsubscribed():
    """A server that writes Subscribed and its first updates in one write (stratad may): the
    first update is not lost; an update of an unknown subscription and one whose diff does
    not fit the value (which ends its subscription with ProtocolError) make the client
    unsubscribe them."""
    listener = socket.create_server(("127.0.0.1", 0))
    unsubscribed = []

    def serve():
        conn, _ = listener.accept()
        with conn:
            hello_id, _, _ = _read_request(conn)
            conn.sendall(_frame(hello_id, ResponseBody.Welcome, _welcome))
            subscribe_id, body_type, _ = _read_request(conn)
            assert body_type == RequestBody.SubscribeRequest
            conn.sendall(
                _frame(subscribe_id, ResponseBody.Subscribed, _subscribed(7, 3, {"a": 1})) +
                _frame(0, ResponseBody.SubscriptionUpdate,
                       _update(7, DiffOp.KEY_SET, [], "b", 2)) +
                _frame(0, ResponseBody.SubscriptionUpdate,
                       _update(99, DiffOp.KEY_SET, [], "c", 3)) +
                _frame(0, ResponseBody.SubscriptionUpdate,
                       _update(7, DiffOp.KEY_SET, ["absent"], "c", 3)))
            for _ in range(2):
                request_id, body_type, body = _read_request(conn)
                assert body_type == RequestBody.UnsubscribeRequest
                u = UnsubscribeRequest.UnsubscribeRequest()
                u.Init(body.Bytes, body.Pos)
                unsubscribed.append(u.Subscription())
                conn.sendall(_frame(request_id, ResponseBody.Unsubscribed,
                                    _unsubscribed(u.Subscription())))
            conn.recv(1)  # until the client closes

    server = threading.Thread(target=serve)
    server.start()
    try:
        with strata.connect("127.0.0.1", listener.getsockname()[1], timeout=30) as c:
            sub = c.subscribe("m", "$$p", [], partition_key="k")
            assert (sub.id, sub.partition) == (7, 3)
            first = sub.next(timeout=30)
            assert first.diffs == [Diff("key_set", [], key="b", value=2)]
            assert first.value == {"a": 1, "b": 2}
            with pytest.raises(strata.ProtocolError, match="absent"):
                sub.next(timeout=30)
            assert sub.value == {"a": 1, "b": 2}
            _wait(lambda: len(unsubscribed) == 2)
            assert sorted(unsubscribed) == [7, 99]
            sub.close()
    finally:
        server.join(30)
        listener.close()


# ---- asyncio -----------------------------------------------------------------------------

def test_asyncio_many_subscriptions_on_one_connection(server):
    rng = _seed()
    words = ["sa%d" % i for i in range(8)]

    async def main():
        async with await strata.aio.connect("127.0.0.1", server.port, timeout=60) as c:
            subs = [await c.subscribe("wordcount", "$$word_counts", Path().key(w), one=True)
                    for w in words]
            subs.append(await c.subscribe("wordcount", "$$word_counts", [],
                                          partition_key=words[0]))
            assert len({s.id for s in subs}) == len(subs)
            seen = [[] for _ in subs]

            async def follow(i):
                async for update in subs[i]:
                    seen[i].append(update)

            readers = [asyncio.ensure_future(follow(i)) for i in range(len(subs))]
            await asyncio.gather(*(c.append("wordcount", "*sentences", s)
                                   for s in _sentences(rng, words, 200)))
            expected = [await c.select_one("wordcount", "$$word_counts", Path().key(w))
                        for w in words]
            expected.append(await c.select("wordcount", "$$word_counts", [],
                                           partition_key=words[0]))
            while [s.value for s in subs] != expected:
                await asyncio.sleep(0.01)
            for s in subs:
                await s.close()
            await asyncio.gather(*readers)  # close() ends each async for
            for s, updates, value in zip(subs, seen, expected):
                assert updates[-1].value == value == s.value
            assert not c._conn.subscriptions

    asyncio.run(main())


def test_asyncio_subscription_ends_with_the_connection():
    from conftest import start_server
    server = start_server()

    async def main():
        c = await strata.aio.connect("127.0.0.1", server.port, timeout=60)
        async with await c.subscribe("wordcount", "$$word_counts", Path().key("ak"),
                                     one=True) as sub:
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: server.restart(kill=True))
            with pytest.raises(strata.ConnectionLost):
                async for _ in sub:
                    pass
            again = await c.subscribe("wordcount", "$$word_counts", Path().key("ak"), one=True)
            assert again.value is None
            await c.append("wordcount", "*sentences", "ak")
            assert (await again.next(timeout=60)).value == 1
            await again.close()
        await c.close()

    try:
        asyncio.run(main())
    finally:
        server.cleanup()


# ---- the page -----------------------------------------------------------------------------

def test_the_section_of_the_page_prints_what_it_shows(tmp_path):
    """docs/drivers/python.md, "Live subscriptions": its blocks form one script, run against
    a fresh stratad; every line it prints must be the one the page shows."""
    script, blocks = test_tour.tour_script("## Live subscriptions")
    assert blocks >= 3
    shown = test_tour.shown_output(script)
    path = tmp_path / "subscriptions.py"
    path.write_text(script, encoding="utf-8")
    with harness.Stratad(modules=["wordcount", "leaderboard"], http=False) as server:
        run = subprocess.run([sys.executable, str(path)],
                             env=dict(os.environ, STRATA_PORT=str(server.port)),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    assert run.returncode == 0, run.stderr.decode("utf-8", "replace")
    assert run.stdout.decode("utf-8", "replace").splitlines() == shown
