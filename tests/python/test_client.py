"""The blocking client against a real stratad: every request, its errors, many threads on
one client, and a server that restarts under it."""

import os
import threading
import time

import pytest

import harness
import strata
from strata import Ack, Path


def test_modules_and_describe(client):
    names = {m.name for m in client.modules()}
    assert names == {"wordcount", "leaderboard", "social", "bank", "profiles", "rt_test",
                     "qtest"}
    bank = client.describe("bank")
    assert bank.version == 1 and bank.partitions == 8 and bank.load_error is None
    deposits = bank.depots[0]
    assert deposits.name == "*deposits"
    assert deposits.partitioning == 'hash(key("account"))'
    assert deposits.record_schema_text == "record{account: string, amount: int64}"
    assert deposits.record_schema == {"type": "record",
                                      "fields": {"account": "string", "amount": "int64"}}
    assert [q.name for q in bank.queries] == ["total-money"]
    wordcount = client.describe("wordcount")
    assert wordcount.dependents == ["leaderboard"]
    assert client.describe("leaderboard").depends_on == ["wordcount"]
    assert wordcount.topologies[0].kind == "stream"
    assert wordcount.queries[0].params[0].schema_text == "int64"
    assert client.server_info.protocol_version == 1
    assert client.server_info.max_in_flight > 0


@pytest.mark.parametrize("ack", list(Ack))
def test_append_at_each_ack_level(client, ack):
    result = client.append("rt_test", "*kv", {"key": "ack-%d" % ack, "value": int(ack)}, ack=ack)
    if ack == Ack.NONE:
        assert (result.offset, result.ack_returns) == (-1, {})  # the partition is known
        return
    assert result.partition >= 0 and result.offset >= 0
    if ack in (Ack.PROCESSED, Ack.PROCESSED_STREAMS):
        assert result.ack_returns == {"kv": [result.partition, int(ack)]}
        assert client.select_one("rt_test", "$$kv", Path().key("ack-%d" % ack)) == int(ack)
    else:
        assert result.ack_returns == {}


def test_append_batch_answers_each_record_in_order(client):
    records = [{"key": "batch-%d" % i, "value": i} for i in range(50)]
    results = client.append_batch("rt_test", "kv", records)
    assert [r.ack_returns["kv"][1] for r in results] == list(range(50))
    assert all(r.ack_returns["kv"][0] == r.partition for r in results)
    with pytest.raises(strata.InvalidArgument):
        client.append_batch("rt_test", "*kv", [])


def test_ack_returns_and_failures_of_a_topology(client):
    r = client.append("profiles", "*registrations",
                      {"username": "py-alice", "display_name": "Alice"})
    assert r.failure is None
    registered = r.ack_returns["register"]
    assert registered["status"] == "registered"
    again = client.append("profiles", "*registrations",
                          {"username": "py-alice", "display_name": "Other"})
    assert again.ack_returns["register"] == {"id": registered["id"], "status": "taken"}
    assert client.select_one("profiles", "$$profiles", Path().key(registered["id"])) == {
        "username": "py-alice", "display_name": "Alice"}
    # One record: the failure is raised, with the record's result (it is in the depot).
    with pytest.raises(strata.TopologyFailed) as failed:
        client.append("bank", "*deposits", {"account": "py-a", "amount": -5})
    assert failed.value.code == "TOPOLOGY_FAILED" and "amount" in failed.value.message
    assert failed.value.result.offset >= 0
    assert client.read_depot("bank", "*deposits", partition=failed.value.result.partition,
                             from_offset=failed.value.result.offset)[0].value["amount"] == -5
    # A batch: per record.
    results = client.append_batch("bank", "*deposits", [{"account": "py-a", "amount": 5},
                                                        {"account": "py-a", "amount": -6}])
    assert results[0].failure is None
    assert isinstance(results[1].failure, strata.TopologyFailed)


def test_select_select_one_and_paths(client):
    client.append("wordcount", "*sentences", "py the quick fox and the lazy fox")
    assert client.select_one("wordcount", "$$word_counts", Path().key("quick")) >= 1
    assert client.select("wordcount", "word_counts", [["key", "lazy"]]) == [
        client.select_one("wordcount", "word_counts", '[["key", "lazy"]]')]
    # A partition key: the partition holding "fox", then a range over that partition only.
    in_partition = client.select("wordcount", "$$word_counts",
                                 Path().range(from_="f", to="g"), partition_key="fox")
    assert "fox" in in_partition[0]
    assert client.select_one("wordcount", "$$word_counts", Path().key("no-such-word")) is None
    with pytest.raises(strata.NotFound):
        client.select_one("wordcount", "$$word_counts", Path().must("no-such-word"))
    with pytest.raises(strata.InvalidArgument, match="unknown path step"):
        client.select("wordcount", "$$word_counts", [["kye", "x"]])
    with pytest.raises(strata.InvalidArgument):
        client.select("wordcount", "$$word_counts", "[[not json")


def test_path_builder_wire_form():
    p = (Path().key("a", "b").must(1).nth(0).first().last().all().map_keys().map_vals()
         .size().range(from_="m", from_inclusive=False, to="z", to_inclusive=True, limit=5,
                       reverse=True)
         .filter("gt", 75, on=Path().nth(1)).filter("exists").null_to([]))
    assert p.to_value() == [
        ["key", "a", "b"], ["must", 1], ["nth", 0], ["first"], ["last"], ["all"],
        ["map_keys"], ["map_vals"], ["size"],
        ["range", {"from": "m", "from_inclusive": False, "to": "z", "to_inclusive": True,
                   "limit": 5, "reverse": True}],
        ["filter", "gt", 75, [["nth", 1]]], ["filter", "exists"], ["null_to", []]]
    assert Path().range().to_value() == [["range", {}]]
    for bad in (lambda: Path().key(), lambda: Path().nth(-1), lambda: Path().filter("like", 1),
                lambda: Path().filter("eq")):
        with pytest.raises(ValueError):
            bad()


def test_select_page_walks_a_whole_pstate(client):
    client.append_batch("rt_test", "*kv", [{"key": "page-%03d" % i, "value": i} for i in range(45)])
    seen, token, pages = [], None, 0
    while True:
        page = client.select_page("rt_test", "$$kv", [["all"]], token=token, limit=10)
        seen += page.values
        pages += 1
        if page.next_token is None:
            break
        token = page.next_token
    keys = [k for k, _ in seen]
    assert len(keys) == len(set(keys))
    assert {"page-%03d" % i for i in range(45)} <= set(keys)
    assert pages >= 5


def test_read_depot(client):
    r = client.append("rt_test", "*kv", {"key": "depot-read", "value": "x"})
    records = client.read_depot("rt_test", "*kv", partition=r.partition, from_offset=r.offset)
    assert records[0].offset == r.offset and records[0].value == {"key": "depot-read", "value": "x"}
    assert client.read_depot("rt_test", "*kv", partition=r.partition, from_offset=0,
                             to_offset=1, limit=5)[0].offset == 0
    with pytest.raises(strata.InvalidArgument):
        client.read_depot("rt_test", "*kv", partition=-1)


def test_stats(client):
    client.append_batch("bank", "*deposits", [{"account": "py-stats", "amount": -1}])
    everything = client.stats()
    assert everything.server.connections >= 1 and everything.server.requests > 0
    assert {m.module for m in everything.modules} >= {"bank", "wordcount"}
    bank = client.stats("bank", failures_limit=1)
    assert [m.module for m in bank.modules] == ["bank"]
    stats = bank.modules[0]
    assert stats.failures >= 1 and len(stats.failure_page) == 1
    assert stats.failure_page[0].topology == "deposit"
    assert len(stats.depots) == 16 and all(t.lag >= 0 for t in stats.topologies)


def test_invoke(client):
    client.append("wordcount", "*sentences", "py invoke invoke invoke")
    top = client.invoke("wordcount", "top-words", 50)
    assert ["invoke", client.select_one("wordcount", "$$word_counts", Path().key("invoke"))] in top
    assert isinstance(client.invoke("bank", "total-money"), int)
    with pytest.raises(strata.QueryFailed, match="no answer today"):
        client.invoke("qtest", "throws")
    with pytest.raises(strata.Timeout):
        client.invoke("qtest", "slow", 2000, timeout_ms=100)
    with pytest.raises(strata.NotFound):
        client.invoke("qtest", "no-such-query")


def test_errors_carry_code_and_message(client):
    with pytest.raises(strata.NotFound) as e:
        client.describe("no-such-module")
    assert e.value.code == "NOT_FOUND" and "no-such-module" in e.value.message
    assert isinstance(e.value, strata.StrataError)
    with pytest.raises(strata.SchemaViolation, match="amount"):
        client.append("bank", "*deposits", {"account": "a", "amount": "ten"})
    with pytest.raises(strata.NotFound):
        client.append("bank", "*no-such-depot", 1)
    with pytest.raises(strata.ConfirmationRequired):
        client.destroy("bank", confirm="not-bank")
    assert client.describe("bank").name == "bank"  # still there
    with pytest.raises(strata.InvalidArgument):
        client.deploy(12)


def test_a_request_over_max_frame_size_is_refused_before_it_is_sent(client):
    big = "x" * (client.server_info.max_frame_size + 1)
    with pytest.raises(strata.FrameTooLarge):
        client.append("rt_test", "*kv", {"key": "big", "value": big})
    assert client.select_one("rt_test", "$$kv", Path().key("big")) is None  # same connection


def test_many_threads_share_one_client(client):
    client.append_batch("rt_test", "*kv", [{"key": "t-%d" % i, "value": i} for i in range(100)])
    errors = []

    def work(seed):
        try:
            for i in range(200):
                k = (seed * 7 + i) % 100
                assert client.select_one("rt_test", "$$kv", Path().key("t-%d" % k)) == k
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_a_client_timeout_fails_the_request_not_the_client(server):
    with strata.connect("127.0.0.1", server.port, timeout=0.5) as c:
        with pytest.raises(strata.RequestTimeout, match="no answer within 0.5 s"):
            c.invoke("qtest", "slow", 3000)
        assert c.describe("qtest").name == "qtest"


def test_unreachable_server():
    with pytest.raises(strata.ConnectionLost, match="cannot connect to 127.0.0.1:1"):
        strata.connect("127.0.0.1", 1, timeout=5)


def test_restart_mid_session_raises_once_then_reconnects():
    from conftest import start_server
    server = start_server()
    try:
        with strata.connect("127.0.0.1", server.port, timeout=30) as c:
            c.append("wordcount", "*sentences", "before restart")
            # A request in flight when the server dies fails; it is not re-sent.
            in_flight = []
            t = threading.Thread(target=lambda: in_flight.append(
                pytest.raises(strata.ConnectionLost, c.invoke, "qtest", "slow", 20000)))
            t.start()
            while not _has_in_flight(c):
                time.sleep(0.01)
            server.restart(kill=True)
            t.join()
            assert "connection lost" in str(in_flight[0].value)
            # The next call connects again. (Stream topologies are at-least-once: after a
            # kill -9 a counted word may have been counted again.)
            before = c.select_one("wordcount", "$$word_counts", Path().key("before"))
            assert before >= 1
            # A connection that broke while idle is replaced on the next call.
            server.restart()
            assert c.select_one("wordcount", "$$word_counts", Path().key("before")) == before
            assert c.read_depot("wordcount", "*sentences", partition=c.append(
                "wordcount", "*sentences", "after").partition)[-1].value == "after"
            server.stop()
            with pytest.raises(strata.ConnectionLost):
                c.modules()
            with pytest.raises(strata.ConnectionLost, match="cannot connect"):
                c.modules()
    finally:
        server.cleanup()


def _has_in_flight(c):
    conn = c._aio._conn
    return conn is not None and bool(conn.pending)


def test_deploy_update_recompute_destroy():
    server = harness.Stratad(http=False)
    modules = os.environ["STRATA_MODULES"]
    try:
        with strata.connect("127.0.0.1", server.port, timeout=120) as c:
            info = c.deploy(os.path.join(modules, "wordcount.so"), partitions=4)
            assert (info.name, info.partitions, info.version) == ("wordcount", 4, 1)
            with open(os.path.join(modules, "bank.so"), "rb") as f:
                assert c.deploy(f.read()).name == "bank"
            with pytest.raises(strata.AlreadyExists):
                c.deploy(os.path.join(modules, "bank.so"))
            c.append("wordcount", "*sentences", "one two two")
            updated = c.update(os.path.join(modules, "wordcount_v2.so"))
            assert updated.version == 2 and updated.module.version == 2
            assert "lengths" in updated.backfilling or "lengths" in [
                t.name for t in updated.module.topologies]
            started = c.recompute("wordcount", "word_counts")
            assert started.pstates == ["$$word_counts"]
            while c.stats("wordcount").modules[0].rebuilds:
                pass
            assert c.select_one("wordcount", "$$word_counts", Path().key("two")) == 2
            assert c.destroy("bank", confirm="bank") == "bank"
            assert [m.name for m in c.modules()] == ["wordcount"]
    finally:
        server.cleanup()
