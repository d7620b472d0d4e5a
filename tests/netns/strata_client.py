"""A Python-driver client of a stratad with the wordcount module, driven through pipes by
tests/netns/netns_test.py from another network namespace.

`strata_client.py HOST PORT` reads one command per line on stdin, a JSON object:
  {"op": "append", "sentence": S}   appends S to wordcount's *sentences
  {"op": "count", "word": W}        selects W's count in $$word_counts (null: none)
each with an optional "timeout" (seconds, default 30): the command goes through this
process's strata.Client of that timeout, made at its first use (it connects at its first
request and again after a lost connection), so a test can hold a patient client and an
impatient one. It writes one JSON line per command: {"ok": value} or {"error": exception
class name, "message": its text}, and ends at the end of stdin."""

import json
import sys

import strata
from strata import Path


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    clients = {}
    for line in sys.stdin:
        command = json.loads(line)
        timeout = float(command.get("timeout", 30))
        if timeout not in clients:
            clients[timeout] = strata.Client(host, port, timeout)
        client = clients[timeout]
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
    for client in clients.values():
        client.close()


if __name__ == "__main__":
    main()
