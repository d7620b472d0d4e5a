"""A real stratad for the HTTP and Python driver tests: started in a temporary directory on
free loopback ports (binary protocol and, unless http=False, HTTP), ready once it printed
"listening on HOST:PORT" (and "HTTP on http://HOST:PORT/"), stopped (SIGTERM, then SIGKILL)
by stop() or at exit.

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
    """stratad with `modules` (names of example modules, e.g. ["wordcount"]) deployed;
    `http=False` runs it without its HTTP listener (tests of the binary protocol)."""

    def __init__(self, modules=(), extra_args=(), http=True):
        self.dir = tempfile.mkdtemp(prefix="strata-http-test-")
        self.log_path = os.path.join(self.dir, "stratad.log")
        self._http = http
        self._args = ["--data-dir", os.path.join(self.dir, "data"), "--cache-size", "128MB"]
        for m in modules:
            self._args += ["--deploy", module_path(m)]
        self._args += list(extra_args)
        self._log = open(self.log_path, "ab")
        self._start("127.0.0.1:0", "127.0.0.1:0")

    def _start(self, listen, http):
        args = [stratad_path(), "--listen", listen, "--http", http if self._http else "off"]
        self.proc = subprocess.Popen(args + self._args, stdout=subprocess.PIPE, stderr=self._log)
        self.address = None   # binary protocol "HOST:PORT"
        self.base = None      # "http://HOST:PORT"
        deadline = time.monotonic() + 60
        while self.address is None or (self._http and self.base is None):
            line = self.proc.stdout.readline().decode()
            if not line:
                raise RuntimeError("stratad exited before it was ready:\n" + self.log())
            if line.startswith("listening on "):
                self.address = line.split()[-1]
            elif line.startswith("HTTP on "):
                self.base = line.split()[-1].rstrip("/")
            if time.monotonic() > deadline:
                raise RuntimeError("stratad not ready within 60 s:\n" + self.log())

    @property
    def port(self):
        """The binary protocol's port."""
        return int(self.address.rsplit(":", 1)[1])

    def restart(self, kill=False):
        """Stops the server (SIGTERM, or SIGKILL with `kill`) and starts it again on the same
        data and ports."""
        listen, base = self.address, self.base
        if kill:
            self.proc.kill()
            self.proc.wait()
        self._stop_process()
        self._start(listen, base[len("http://"):] if base else "off")

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

    def _stop_process(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()

    def stop(self):
        self._stop_process()
        self._log.close()

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()
