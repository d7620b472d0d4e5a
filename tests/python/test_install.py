"""`pip install --no-index --no-build-isolation ./drivers/python` works without network over
Debian's Python packages (here into a virtualenv that sees them), and the installed package
talks to a real stratad."""

import os
import shutil
import subprocess
import sys
import tempfile

import harness

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def test_pip_install_offline_then_use():
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "python")  # a copy: pip builds in place
        shutil.copytree(os.path.join(ROOT, "drivers", "python"), source,
                        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
        venv = os.path.join(tmp, "venv")
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", venv], check=True)
        python = os.path.join(venv, "bin", "python")
        subprocess.run([python, "-m", "pip", "install", "--no-index", "--no-build-isolation",
                        "--quiet", source], check=True)
        with harness.Stratad(modules=["wordcount"], http=False) as server:
            script = (
                "import strata, sys\n"
                "assert strata.__file__.startswith(sys.prefix), strata.__file__\n"
                "with strata.connect('127.0.0.1', %d) as c:\n"
                "    c.append('wordcount', '*sentences', 'installed driver')\n"
                "    print(c.select_one('wordcount', '$$word_counts', "
                "strata.Path().key('installed')))\n" % server.port)
            env = dict(os.environ)
            env.pop("PYTHONPATH", None)  # the installed copy, not the source tree
            out = subprocess.run([python, "-c", script], env=env, cwd=tmp, check=True,
                                 capture_output=True, text=True).stdout
            assert out.strip() == "1"
