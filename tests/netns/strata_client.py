"""A Python-driver client of a stratad with the wordcount module, driven through pipes by
tests/netns/netns_test.py from another network namespace.

`strata_client.py HOST PORT TIMEOUT` keeps one strata.Client (its requests bounded by
TIMEOUT seconds; it connects at the first request and again after a lost connection) and
reads one command per line on stdin, a JSON object:
  {"op": "append", "sentence": S}   appends S to wordcount's *sentences
  {"op": "count", "word": W}        selects W's count in $$word_counts (null: none)
and writes one JSON line per command: {"ok": value} or {"error": exception class name,
"message": its text}. It ends at the end of stdin."""

import json
import sys

import strata
from strata import Path


def main():
    host, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    client = strata.Client(host, port, timeout)
    for line in sys.stdin:
        command = json.loads(line)
        try:
            if command["op"] == "append":
                answer = {"ok": client.append("wordcount", "*sentences",
                                              command["sentence"]).offset}
            else:
                answer = {"ok": client.select_one("wordcount", "$$word_counts",
                                                  Path().key(command["word"]))}
        except strata.StrataError as e:
            answer = {"error": type(e).__name__, "message": str(e)}
        print(json.dumps(answer), flush=True)
    client.close()


if __name__ == "__main__":
    main()
