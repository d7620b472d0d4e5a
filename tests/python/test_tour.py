"""The tour of docs/drivers/python.md, run as the page says: the ```python blocks of its
section "A tour from Python", in order, form one script, run by this Python against a real
stratad with the tour's modules. Every line the script prints must be the one the page
shows in a `# -> ...` comment, in the same order, and the script must end without error:
a result the page shows wrongly fails this test."""

import itertools
import os
import re
import subprocess
import sys

import harness

DOC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "drivers",
                   "python.md")
SECTION = "## A tour from Python"
MODULES = ["wordcount", "leaderboard", "social", "bank", "profiles"]


def tour_script(heading=SECTION):
    """The ```python blocks of the page's section ``heading``, as one script, and how
    many there are."""
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    start = text.index("\n" + heading + "\n")
    end = text.find("\n## ", start + 1)
    section = text[start:] if end == -1 else text[start:end]
    blocks = re.findall(r"^```python\n(.*?)^```$", section, re.M | re.S)
    return "".join(blocks), len(blocks)


def shown_output(script):
    """The printed lines the page shows: the text after each `# -> `, in order."""
    return [m.group(1) for m in re.finditer(r"# -> (.*)$", script, re.M)]


def test_the_tour_prints_what_the_page_shows(tmp_path):
    script, blocks = tour_script()
    assert blocks >= 8, "the tour section has %d python blocks" % blocks
    shown = shown_output(script)
    assert len(shown) >= 30, "the tour shows only %d results" % len(shown)
    path = tmp_path / "tour.py"
    path.write_text(script, encoding="utf-8")
    with harness.Stratad(modules=MODULES, http=False) as server:
        env = dict(os.environ, STRATA_PORT=str(server.port))  # STRATA_MODULES: ctest's
        run = subprocess.run([sys.executable, str(path)], env=env, cwd=str(tmp_path),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=240)
        server_log = server.log()
    printed = run.stdout.decode("utf-8", "replace").splitlines()
    report = "\n".join(
        "%s %d\n  page:    %s\n  printed: %s" % ("ok  " if a == b else "DIFF", i + 1, a, b)
        for i, (a, b) in enumerate(itertools.zip_longest(shown, printed)))
    assert run.returncode == 0, "the tour script failed:\n%s\n%s\nstratad's log:\n%s" % (
        run.stderr.decode("utf-8", "replace"), report, server_log)
    assert printed == shown, "the tour printed other lines than the page shows:\n" + report
