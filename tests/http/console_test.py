"""The web console rendered by a real browser against a real stratad (docs/console.md).

Starts stratad with the example modules wordcount and social, appends sentences through the
REST API, then loads the console in headless Chromium with a URL hash that opens a browse of
wordcount's $$word_counts, and checks the rendered DOM: the module names in the sidebar, a lag
chart (an <svg> with a drawn line) for wordcount's topology "count", and the browse result (the
word "fox" with its count in the results table). A screenshot of the same view is saved to
$STRATA_BUILD_DIR/console.png (default: the current directory).

A select's result updates live (an EventSource on …/subscribe): that test drives Chromium
over the DevTools protocol on a pipe (--dump-dom cannot: its virtual time stops while the
event stream is open), appends through the REST API and waits for the page to show the new
value; browsing elsewhere closes the stream (the server, at --http-max-streams 1, then
accepts another).

Run: STRATAD=… STRATA_MODULES=… /usr/bin/python3 tests/http/console_test.py
(CHROMIUM names the browser; default `chromium` on PATH. Without one the test exits 77,
which ctest reports as skipped.)
"""

import fcntl
import html.parser
import http.client
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stratad  # noqa: E402

CONSOLE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "server",
                           "console")
# Markup in a record must reach the page as text, never as elements.
MARKUP = "<b>bold</b> <img src=x onerror=this.title=1>"
SENTENCES = ["the quick brown fox", "the fox jumps over the lazy dog", "a dog and a cat", MARKUP]


def chromium_path():
    return shutil.which(os.environ.get("CHROMIUM", "chromium"))


class Node:
    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent, self.children = tag, dict(attrs), parent, []

    def text(self):
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def walk(self):
        for c in self.children:
            if isinstance(c, Node):
                yield c
                yield from c.walk()

    def find_all(self, tag=None, cls=None, **attrs):
        for n in self.walk():
            if tag and n.tag != tag:
                continue
            if cls and cls not in n.attrs.get("class", "").split():
                continue
            if any(n.attrs.get(k.replace("_", "-")) != v for k, v in attrs.items()):
                continue
            yield n

    def find(self, *args, **kw):
        return next(self.find_all(*args, **kw), None)


class TreeBuilder(html.parser.HTMLParser):
    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
            "source", "track", "wbr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {}, None)
        self.cur = self.root

    def handle_starttag(self, tag, attrs):
        node = Node(tag, attrs, self.cur)
        self.cur.children.append(node)
        if tag not in self.VOID:
            self.cur = node

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, attrs, self.cur))

    def handle_endtag(self, tag):
        n = self.cur
        while n is not None and n.tag != tag:
            n = n.parent
        if n is not None and n.parent is not None:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.children.append(data)


def parse_dom(text):
    builder = TreeBuilder()
    builder.feed(text)
    return builder.root


def hash_value(value):
    # As the console writes its hash: percent-encoded, JSON punctuation and `$` as typed.
    return urllib.parse.quote(value, safe="$[],:*{}")


class DevTools:
    """Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe:
    it reads commands on its fd 3 and writes answers and events on its fd 4, each a JSON
    text ended by a NUL byte), attached to its one page. Standard library only."""

    def __init__(self, chromium, profile):
        to_read, to_write = os.pipe()
        from_read, from_write = os.pipe()
        # Above 4, so that placing them at 3 and 4 in the child cannot overwrite each other.
        child_in = fcntl.fcntl(to_read, fcntl.F_DUPFD_CLOEXEC, 10)
        child_out = fcntl.fcntl(from_write, fcntl.F_DUPFD_CLOEXEC, 10)
        for fd in (to_read, from_write):
            os.close(fd)

        def place_pipes():
            os.dup2(child_in, 3)
            os.dup2(child_out, 4)

        self.proc = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu",
             "--user-data-dir=" + profile, "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            close_fds=False, preexec_fn=place_pipes)
        os.close(child_in)
        os.close(child_out)
        self._write, self._read = to_write, from_read
        self._buffer = b""
        self._id = 0
        self.session = None
        targets = self.call("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = self.call("Target.attachToTarget",
                                 {"targetId": page["targetId"], "flatten": True})["sessionId"]

    def _message(self, deadline):
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from chromium's DevTools pipe")
            if select.select([self._read], [], [], left)[0]:
                chunk = os.read(self._read, 1 << 16)
                if not chunk:
                    raise RuntimeError("chromium closed its DevTools pipe")
                self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)

    def call(self, method, params=None, timeout=60):
        self._id += 1
        command = {"id": self._id, "method": method, "params": params or {}}
        if self.session:
            command["sessionId"] = self.session
        data = json.dumps(command).encode() + b"\0"
        while data:
            data = data[os.write(self._write, data):]
        deadline = time.monotonic() + timeout
        while True:
            message = self._message(deadline)
            if message.get("id") == self._id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression, done, what, timeout=60):
        """Evaluates `expression` until done(its value); returns the value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if done(value):
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: the page shows {value!r}")
            time.sleep(0.05)

    def close(self):
        self.proc.kill()
        self.proc.wait()
        os.close(self._write)
        os.close(self._read)


# What the PState browser shows: the scalar result and the live indicator.
SHOWN_JS = """(() => {
  const result = document.getElementById('browser-result');
  const scalar = result && result.querySelector('pre.scalar');
  const live = document.getElementById('browser-live');
  return {value: scalar ? scalar.textContent : null,
          live: live ? live.textContent : null,
          result: result ? result.textContent : null};
})()"""


class ConsoleTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.chromium_bin = chromium_path()
        # One event stream at most: the live test sees the console give its stream back.
        cls.server = Stratad(["wordcount", "social"],
                             extra_args=["--console-dir", os.path.abspath(CONSOLE_DIR),
                                         "--http-max-streams", "1"])
        cls.profile = tempfile.mkdtemp(prefix="strata-console-chromium-")

    @classmethod
    def tearDownClass(cls):
        cls.server.cleanup()
        shutil.rmtree(cls.profile, ignore_errors=True)

    def chromium(self, url, *args):
        """Runs headless Chromium on `url` and returns its stdout."""
        cmd = [self.chromium_bin, "--headless", "--no-sandbox", "--disable-gpu",
               "--user-data-dir=" + self.profile, "--virtual-time-budget=10000", *args, url]
        done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=180)
        self.assertEqual(done.returncode, 0, done.stderr.decode(errors="replace")[-2000:])
        return done.stdout.decode(errors="replace")

    def wait_for_lag_sample(self, module, topology):
        """Waits (60 s at most) until the lag history has a sample of the topology."""
        deadline = time.monotonic() + 60
        while True:
            status, _, body = self.server.get(f"/rest/{module}/lag")
            self.assertEqual(status, 200, body)
            if body["topologies"].get(topology):
                return
            self.assertLess(time.monotonic(), deadline, f"no lag sample of {topology}: {body}")
            time.sleep(0.2)

    def test_console_shows_modules_lag_and_a_pstate_browse(self):
        s = self.server
        for sentence in SENTENCES:
            status, _, body = s.post("/rest/wordcount/depot/*sentences/append",
                                     {"data": sentence, "ack": "processed"})
            self.assertEqual(status, 200, body)
        status, _, body = s.post("/rest/wordcount/pstate/$$word_counts/selectOne",
                                 {"path": [["key", "fox"]]})
        self.assertEqual((status, body), (200, {"value": 2}))
        self.wait_for_lag_sample("wordcount", "count")

        status, headers, page = s.get("/")
        self.assertEqual(status, 200)
        self.assertIn("console.js", page)

        url = (f"{s.base}/#module=wordcount&pstate={hash_value('$$word_counts')}&op=page"
               f"&path={hash_value('[]')}&limit=100")
        dom = parse_dom(self.chromium(url, "--dump-dom"))
        shown = dom.text()

        sidebar = dom.find(id="sidebar")
        self.assertIsNotNone(sidebar, shown[:2000])
        names = [n.text() for n in sidebar.find_all("span", cls="module-name")]
        self.assertEqual(sorted(names), ["social", "wordcount"], shown[:2000])

        figure = dom.find("figure", cls="chart", data_topology="count")
        self.assertIsNotNone(figure, "no lag chart for topology count: " + shown[:2000])
        chart = figure.find("svg", cls="lag-chart")
        self.assertIsNotNone(chart, "the lag chart has no <svg>")
        line = chart.find("path", cls="lag-line")
        self.assertIsNotNone(line, "the lag chart draws no line")
        self.assertRegex(line.attrs.get("d", ""), r"^M[0-9.]+,[0-9.]+")
        labels = [t.text() for t in chart.find_all("text", cls="axis-label")]
        self.assertEqual(labels, ["time", "records"])

        result = dom.find(id="browser-result")
        self.assertIsNotNone(result)
        self.assertIsNone(result.find(cls="error"), result.text())
        table = result.find("table", cls="values-table")
        self.assertIsNotNone(table, "no results table: " + result.text())
        rows = {}
        for tr in table.find_all("tr"):
            cells = [td.text() for td in tr.find_all("td")]
            if len(cells) == 2:
                rows[cells[0]] = cells[1]
        self.assertEqual(rows.get('"fox"'), "2", rows)
        self.assertEqual(rows.get('"the"'), "3", rows)
        self.assertEqual(rows.get('"dog"'), "2", rows)

        # A view opened from a hash runs a select of one key too: test_selected_value_updates_live.

        # An error of the API is shown with its code and message.
        url = (f"{s.base}/#module=wordcount&pstate={hash_value('$$word_counts')}&op=select"
               f"&path={hash_value(json.dumps([['kye', 'the']]))}")
        result = parse_dom(self.chromium(url, "--dump-dom")).find(id="browser-result")
        error = result.find(cls="error")
        self.assertIsNotNone(error, result.text())
        self.assertIn("INVALID_ARGUMENT", error.text())
        self.assertIn("kye", error.text())

        # The depot viewer, opened from a hash, lists records with their offsets.
        records = []
        for p in range(8):
            status, _, body = s.get(f"/rest/wordcount/depot/*sentences?partition={p}&limit=10")
            self.assertEqual(status, 200, body)
            records += [(p, r["offset"], r["value"]) for r in body["records"]]
        self.assertEqual(sorted(r[2] for r in records), sorted(SENTENCES))
        partition, offset, value = next(r for r in records if r[2] == MARKUP)
        url = f"{s.base}/#module=wordcount&depot=*sentences&partition={partition}&from=0"
        result = parse_dom(self.chromium(url, "--dump-dom")).find(id="depot-result")
        self.assertIsNotNone(result)
        cells = [[td.text() for td in tr.find_all("td")] for tr in result.find_all("tr")]
        self.assertIn([str(offset), json.dumps(value)], cells, result.text())
        self.assertIsNone(result.find("img"), "a record's markup became an element")
        self.assertIsNone(result.find("b"), "a record's markup became an element")

        # The screenshot of the browse view, for people (docs/console.md describes it).
        shot = os.path.join(os.environ.get("STRATA_BUILD_DIR", "."), "console.png")
        if os.path.exists(shot):
            os.remove(shot)
        url = (f"{s.base}/#module=wordcount&pstate={hash_value('$$word_counts')}&op=page"
               f"&path={hash_value('[]')}&limit=100")
        self.chromium(url, "--screenshot=" + os.path.abspath(shot), "--window-size=1400,1800")
        with open(shot, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n", "the screenshot is no PNG")
        print("screenshot:", os.path.abspath(shot))

    def stream_status(self):
        """The status of a new event stream (the server serves one at a time)."""
        parsed = urllib.parse.urlsplit(self.server.base)
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
        try:
            path = urllib.parse.quote(json.dumps([["key", "probe"]]))
            conn.request("GET", f"/rest/wordcount/pstate/word_counts/subscribe?path={path}")
            return conn.getresponse().status
        finally:
            conn.close()

    def test_selected_value_updates_live(self):
        s = self.server
        word = "livefox"
        profile = tempfile.mkdtemp(prefix="strata-console-devtools-")
        browser = DevTools(self.chromium_bin, profile)
        try:
            url = (f"{s.base}/#module=wordcount&pstate={hash_value('$$word_counts')}"
                   f"&op=selectOne&path={hash_value(json.dumps([['key', word]]))}")
            browser.call("Page.navigate", {"url": url})
            browser.wait_for(SHOWN_JS, lambda v: v["value"] == "null" and v["live"] == "● live",
                             "the select of an absent key, live")
            for sentence, count in ((word, "1"), (f"{word} {word}", "3")):
                status, _, body = s.post("/rest/wordcount/depot/*sentences/append",
                                         {"data": sentence, "ack": "processed"})
                self.assertEqual(status, 200, body)
                browser.wait_for(SHOWN_JS, lambda v, c=count: v["value"] == c and v["live"],
                                 f"the count {count} after an append")
            # Browsing elsewhere closes the stream: the server's only place is free again.
            browser.evaluate("location.hash = '#module=wordcount'; true")
            browser.wait_for(SHOWN_JS, lambda v: v["live"] is None, "the module page")
            deadline = time.monotonic() + 60
            while self.stream_status() != 200:
                self.assertLess(time.monotonic(), deadline, "the console kept its event stream")
                time.sleep(0.05)
        finally:
            browser.close()
            shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    if chromium_path() is None:
        print("no chromium found (set CHROMIUM): skipped")
        sys.exit(77)
    unittest.main()
