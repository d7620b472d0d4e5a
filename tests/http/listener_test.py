"""stratad's HTTP listener: a port in use fails the start before the data directory is
touched (httplib's default SO_REUSEPORT would let two servers share it), --http off serves
no HTTP, and a missing console directory is a warning with / answering 404 JSON."""

import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402


class ListenerTest(unittest.TestCase):
    def test_port_in_use_fails_the_start_before_the_data_directory(self):
        with harness.Stratad() as first:
            port = first.base.rsplit(":", 1)[1]
            with tempfile.TemporaryDirectory() as tmp:
                data = os.path.join(tmp, "data")
                run = subprocess.run(
                    [harness.stratad_path(), "--data-dir", data, "--listen", "127.0.0.1:0",
                     "--http", "127.0.0.1:" + port],
                    capture_output=True, text=True, timeout=60)
                self.assertNotEqual(run.returncode, 0)
                self.assertIn("cannot listen for HTTP on 127.0.0.1:" + port, run.stderr)
                self.assertFalse(os.path.exists(data), "the refused start created its data dir")
            # The first server still answers.
            status, _, body = first.get("/rest/modules")
            self.assertEqual(status, 200)
            self.assertEqual(body, {"modules": []})

    def test_http_off_serves_no_http(self):
        with tempfile.TemporaryDirectory() as tmp:
            proc = subprocess.Popen(
                [harness.stratad_path(), "--data-dir", os.path.join(tmp, "data"),
                 "--listen", "127.0.0.1:0", "--http", "off"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            try:
                line = proc.stdout.readline()
                self.assertTrue(line.startswith("listening on "), line)
            finally:
                proc.terminate()
                rest = proc.communicate(timeout=60)[0]
            self.assertNotIn("HTTP on", rest)
            self.assertEqual(proc.returncode, 0)

    def test_missing_console_is_a_warning_and_a_json_404(self):
        with tempfile.TemporaryDirectory() as empty:
            with harness.Stratad(extra_args=["--console-dir", empty]) as server:
                status, headers, body = server.get("/")
                self.assertEqual(status, 404)
                self.assertEqual(body["error"]["code"], "NOT_FOUND")
                self.assertIn("console", server.log())
                # The API is served all the same.
                self.assertEqual(server.get("/rest/modules")[0], 200)


if __name__ == "__main__":
    unittest.main()
