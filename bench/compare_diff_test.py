#!/usr/bin/python3
"""Tests of bench/compare-diff.py on the small compare.sh JSON files of
bench/testdata/compare-diff: old.json against a run within the threshold (pass.json), one
with a ratio 20 % lower (drop.json), one without a row and a peer (missing.json), one whose
Strata run failed (strata-failed.json) and a truncated file (malformed.json). Runs the
script as `make compare` users do, through its command line; standard library only."""

import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "compare-diff.py")
DATA = os.path.join(HERE, "testdata", "compare-diff")


def run(*args):
    """(exit status, stdout, stderr) of compare-diff.py with fixture names or paths."""
    paths = [os.path.join(DATA, a) if a.endswith(".json") and os.sep not in a else a for a in args]
    done = subprocess.run([sys.executable, SCRIPT, *paths], capture_output=True, text=True,
                          timeout=60)
    return done.returncode, done.stdout, done.stderr


class CompareDiffTest(unittest.TestCase):
    def test_ratios_within_the_threshold_pass(self):
        code, out, err = run("old.json", "pass.json")
        self.assertEqual(code, 0, out + err)
        self.assertIn("no ratio fell by more than 15%", out)
        self.assertNotIn("FELL", out)
        # Every ratio of both files is listed, old → new, with the systems' names.
        self.assertIn("W1-closed  Strata ÷ PostgreSQL", out)
        self.assertIn("2.40×  2.16×  -10.0%", out)
        self.assertIn("Strata ÷ Redis (appendfsync always)", out)
        # A fall of exactly 15 % is not more than 15 %.
        self.assertIn("-15.0%", out)
        self.assertIn("7 ratios compared", out)

    def test_a_ratio_that_fell_more_than_the_threshold_is_flagged(self):
        code, out, err = run("old.json", "drop.json")
        self.assertEqual(code, 1, out + err)
        self.assertIn("2.40×  1.92×  -20.0%  FELL", out)
        self.assertIn("1 flagged", out)
        self.assertIn("W1-closed: Strata ÷ PostgreSQL fell 2.40× → 1.92× (-20.0%)", out)
        self.assertIn("commit 0000000000000000000000000000000000000003-dirty", out)

    def test_the_threshold_is_configurable(self):
        code, out, _ = run("--threshold", "25", "old.json", "drop.json")
        self.assertEqual(code, 0, out)
        self.assertIn("no ratio fell by more than 25%", out)
        code, out, _ = run("--threshold", "5", "old.json", "pass.json")
        self.assertEqual(code, 1, out)
        self.assertIn("2 flagged", out)

    def test_missing_rows_and_peers_are_reported_not_flagged(self):
        code, out, err = run("old.json", "missing.json")
        self.assertEqual(code, 0, out + err)
        self.assertIn("W3: row missing in NEW", out)
        self.assertIn("missing in NEW: no Redis (appendfsync always) figure", out)
        self.assertEqual(err, "")

    def test_new_rows_are_reported(self):
        code, out, _ = run("missing.json", "old.json")
        self.assertEqual(code, 0, out)
        self.assertIn("W3: new row (not in OLD)", out)
        self.assertIn("new in NEW", out)

    def test_a_failed_strata_run_is_flagged(self):
        code, out, err = run("old.json", "strata-failed.json")
        self.assertEqual(code, 1, out + err)
        self.assertIn("W2-closed: Strata ÷ PostgreSQL: Strata has no figure (its run failed)", out)

    def test_a_malformed_file_is_an_error_not_a_crash(self):
        code, out, err = run("old.json", "malformed.json")
        self.assertEqual(code, 2, out + err)
        self.assertIn("malformed.json: not JSON", err)
        self.assertNotIn("Traceback", err)

    def test_other_unreadable_inputs_are_errors(self):
        with tempfile.TemporaryDirectory() as tmp:
            cases = {"list.json": "[]", "no-variant.json": '{"rows": [{"ratios": {}}]}',
                     "bad-ratio.json": '{"rows": [{"variant": "W1", "ratios": {"strata/redis": "x"}}]}',
                     "twice.json": '{"rows": [{"variant": "W1"}, {"variant": "W1"}]}'}
            expected = {"list.json": 'no "rows" list', "no-variant.json": 'row 0 has no "variant"',
                        "bad-ratio.json": "is not a number", "twice.json": "appears twice"}
            for name, text in cases.items():
                path = os.path.join(tmp, name)
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text)
                code, out, err = run(os.path.join(DATA, "old.json"), path)
                self.assertEqual(code, 2, f"{name}: {out}{err}")
                self.assertIn(expected[name], err, name)
                self.assertNotIn("Traceback", err, name)
            code, _, err = run("old.json", os.path.join(tmp, "absent.json"))
            self.assertEqual(code, 2)
            self.assertIn("cannot read", err)


if __name__ == "__main__":
    unittest.main()
