"""The disk's own durable-write latency, for comparison with the server's: COUNT times, a
4 KiB pwrite at the end of a file in DIR followed by fdatasync (what a log flush costs at
least), timed one by one. Prints {"count", "p50_ms", "p99_ms", "p999_ms", "max_ms"} as JSON.

Usage: fsync_probe.py DIR [COUNT]
"""

import json
import os
import sys
import time


def main():
    directory = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    path = os.path.join(directory, "fsync-probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    block = b"\0" * 4096
    times = []
    try:
        for i in range(count):
            start = time.perf_counter()
            os.pwrite(fd, block, i * 4096)
            os.fdatasync(fd)
            times.append(time.perf_counter() - start)
    finally:
        os.close(fd)
        os.unlink(path)
    times.sort()
    pick = lambda q: round(times[min(len(times) - 1, int(q * len(times)))] * 1000, 3)  # noqa: E731
    print(json.dumps({"count": count, "p50_ms": pick(0.5), "p99_ms": pick(0.99),
                      "p999_ms": pick(0.999), "max_ms": round(times[-1] * 1000, 3)}))


if __name__ == "__main__":
    main()
