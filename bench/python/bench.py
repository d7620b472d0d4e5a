"""The Python driver's side of bench/python.sh: one process, one asyncio connection,
``--pipeline`` requests in flight, for ``--duration`` seconds after ``--warmup``.

  selects: point selects of wordcount's $$word_counts, key "w<k>", k uniform in 1..keyspace
           (strata-bench's W2; the words must be loaded)
  appends: one-word sentences "w<k>" appended to wordcount's *sentences, ack processed
           (strata-bench's W1 with batch 1)

Prints one JSON document: {"workload", "units_per_s", "latency_ms": {"p50", "p99"}}.
"""

import argparse
import asyncio
import json
import random
import time

import strata
import strata.aio


async def run(args):
    client = await strata.aio.connect(args.host, args.port, timeout=60)
    rng = random.Random(args.seed)
    path = strata.Path()
    if args.workload == "selects":
        def request():
            return client.select_one("wordcount", "$$word_counts",
                                     path.key("w%d" % rng.randint(1, args.keyspace)))
    else:
        def request():
            return client.append("wordcount", "*sentences", "w%d" % rng.randint(1, args.keyspace))

    latencies = []
    done = 0
    measuring = False
    stop_at = time.perf_counter() + args.warmup + args.duration
    clock = time.perf_counter

    async def lane():
        nonlocal done
        while clock() < stop_at:
            start = clock()
            result = await request()
            if args.workload == "selects" and not (isinstance(result, int) and result >= 1):
                raise AssertionError("a loaded word read %r" % (result,))
            if measuring:
                latencies.append(clock() - start)
                done += 1

    async def measure():
        nonlocal measuring
        await asyncio.sleep(args.warmup)
        measuring = True
        return clock()

    lanes = [asyncio.ensure_future(lane()) for _ in range(args.pipeline)]
    started = await measure()
    await asyncio.gather(*lanes)
    elapsed = clock() - started
    await client.close()
    latencies.sort()
    print(json.dumps({
        "workload": args.workload, "units_per_s": round(done / elapsed),
        "latency_ms": {"p50": round(latencies[len(latencies) // 2] * 1000, 3),
                       "p99": round(latencies[int(len(latencies) * 0.99)] * 1000, 3)}}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workload", choices=["selects", "appends"], required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7450)
    parser.add_argument("--pipeline", type=int, default=256)
    parser.add_argument("--keyspace", type=int, default=100000)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--seed", type=int, default=42)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
