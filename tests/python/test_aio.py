"""The asyncio client against a real stratad: many requests in flight on one connection,
answers out of order, a server restart under it."""

import asyncio

import strata
import strata.aio
from strata import Path


def run(coroutine):
    return asyncio.run(coroutine)


def test_ten_thousand_requests_pipelined_on_one_connection(server):
    async def main():
        async with await strata.aio.connect("127.0.0.1", server.port, timeout=120) as c:
            await c.append_batch("rt_test", "*kv",
                                 [{"key": "p-%d" % i, "value": i} for i in range(1000)])
            connections = (await c.stats()).server.total_connections
            answers = await asyncio.gather(*(
                c.select_one("rt_test", "$$kv", Path().key("p-%d" % (i % 1000)))
                for i in range(10000)))
            assert answers == [i % 1000 for i in range(10000)]
            appended = await asyncio.gather(*(
                c.append("rt_test", "*kv", {"key": "q-%d" % i, "value": -i})
                for i in range(2000)))
            assert [r.ack_returns["kv"][1] for r in appended] == [-i for i in range(2000)]
            # All of it on the one connection.
            assert (await c.stats()).server.total_connections == connections
    run(main())


def test_answers_come_back_out_of_order(server):
    async def main():
        async with await strata.aio.connect("127.0.0.1", server.port) as c:
            finished = []

            async def slow():
                await c.invoke("qtest", "slow", 400, timeout_ms=60000)
                finished.append("slow")

            async def fast():
                await asyncio.sleep(0.05)  # sent after the slow one
                for _ in range(20):
                    await c.describe("qtest")
                finished.append("fast")

            await asyncio.gather(slow(), fast())
            assert finished == ["fast", "slow"]
    run(main())


def test_errors_do_not_disturb_the_other_requests(server):
    async def main():
        async with await strata.aio.connect("127.0.0.1", server.port) as c:
            results = await asyncio.gather(
                c.describe("bank"), c.describe("no-such-module"),
                c.select("wordcount", "$$word_counts", [["kye"]]), c.invoke("qtest", "throws"),
                c.describe("wordcount"), return_exceptions=True)
            assert results[0].name == "bank" and results[4].name == "wordcount"
            assert [type(r) for r in results[1:4]] == [strata.NotFound, strata.InvalidArgument,
                                                       strata.QueryFailed]
    run(main())


def test_restart_fails_the_requests_in_flight_then_reconnects():
    from conftest import start_server
    server = start_server()

    async def main():
        c = await strata.aio.connect("127.0.0.1", server.port, timeout=60)
        await c.append("wordcount", "*sentences", "aio restart")
        in_flight = [asyncio.ensure_future(c.invoke("qtest", "slow", 20000)) for _ in range(5)]
        while len(c._conn.pending) < 5:
            await asyncio.sleep(0.01)
        await asyncio.get_running_loop().run_in_executor(None, lambda: server.restart(kill=True))
        results = await asyncio.gather(*in_flight, return_exceptions=True)
        assert all(isinstance(r, strata.ConnectionLost) for r in results), results
        # Many coroutines calling at once share one new connection.
        counts = await asyncio.gather(*(
            c.select_one("wordcount", "$$word_counts", Path().key("aio")) for _ in range(50)))
        assert counts == [counts[0]] * 50 and counts[0] >= 1  # at-least-once after kill -9
        assert (await c.stats()).server.connections == 1
        await c.close()
        try:
            await c.modules()
            raise AssertionError("a closed client answered")
        except strata.ConnectionLost as e:
            assert "closed" in str(e)

    try:
        run(main())
    finally:
        server.cleanup()


def test_connect_fails_with_connection_lost():
    async def main():
        try:
            await strata.aio.connect("127.0.0.1", 1, timeout=5)
        except strata.ConnectionLost as e:
            return str(e)
    assert "cannot connect to 127.0.0.1:1" in run(main())
