"""drivers/python/strata/wire/ is what scripts/generate-python-wire.sh makes of
protocol/strata.fbs now: run the script after changing the schema."""

import filecmp
import os
import subprocess
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def test_generated_wire_classes_match_the_schema():
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([os.path.join(ROOT, "scripts", "generate-python-wire.sh"), out],
                       check=True)
        fresh = os.path.join(out, "strata", "wire")
        committed = os.path.join(ROOT, "drivers", "python", "strata", "wire")
        names = sorted(n for n in os.listdir(fresh) if n.endswith(".py"))
        kept = sorted(n for n in os.listdir(committed) if n.endswith(".py"))
        assert kept == names, "files differ: run scripts/generate-python-wire.sh"
        _, mismatch, errors = filecmp.cmpfiles(fresh, committed, names, shallow=False)
        assert mismatch == [] and errors == [], (
            "stale: %s; run scripts/generate-python-wire.sh" % (mismatch + errors))
