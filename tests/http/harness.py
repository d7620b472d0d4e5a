"""A real stratad for the HTTP tests: started in a temporary directory on free loopback
ports (binary protocol and HTTP), ready once it printed both "listening on HOST:PORT" and
"HTTP on http://HOST:PORT/", stopped (SIGTERM, then SIGKILL) by stop() or at exit.

The tests get the paths of stratad and of the example modules from the environment, which
tests/http/CMakeLists.txt sets: STRATAD (the binary), STRATA_MODULES (the directory of
the example modules' .so files) and STRATA_BUILD_DIR (for artefacts such as screenshots).
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request


def stratad_path():
    return os.environ["STRATAD"]


def module_path(name):
    return os.path.join(os.environ["STRATA_MODULES"], name + ".so")


class Stratad:
    """stratad with `modules` (names of example modules, e.g. ["wordcount"]) deployed."""

    def __init__(self, modules=(), extra_args=(), partitions=None):
        self.dir = tempfile.mkdtemp(prefix="strata-http-test-")
        self.log_path = os.path.join(self.dir, "stratad.log")
        args = [stratad_path(), "--data-dir", os.path.join(self.dir, "data"),
                "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
                "--cache-size", "128MB"]
        for m in modules:
            args += ["--deploy", module_path(m)]
        args += list(extra_args)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self._log)
        self.address = None   # binary protocol "HOST:PORT"
        self.base = None      # "http://HOST:PORT"
        deadline = time.monotonic() + 60
        while self.address is None or self.base is None:
            line = self.proc.stdout.readline().decode()
            if not line:
                raise RuntimeError("stratad exited before it was ready:\n" + self.log())
            if line.startswith("listening on "):
                self.address = line.split()[-1]
            elif line.startswith("HTTP on "):
                self.base = line.split()[-1].rstrip("/")
            if time.monotonic() > deadline:
                raise RuntimeError("stratad not ready within 60 s:\n" + self.log())

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def request(self, method, path, body=None, headers=None, raw=None, timeout=60):
        """Sends one request; returns (status, headers, parsed JSON or text). `body` is
        sent as JSON text (a str is sent as is), `raw` as bytes."""
        data = None
        hdrs = dict(headers or {})
        if raw is not None:
            data = raw
        elif body is not None:
            data = (body if isinstance(body, str) else json.dumps(body)).encode()
            hdrs.setdefault("Content-Type", "application/json")
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                status, rh, text = r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            status, rh, text = e.code, dict(e.headers), e.read()
        ctype = rh.get("Content-Type", "")
        if ctype.startswith("application/json"):
            return status, rh, json.loads(text)
        return status, rh, text.decode(errors="replace")

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        self.proc.stdout.close()

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()
