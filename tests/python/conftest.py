"""Fixtures of the Python driver's tests: a real stratad (tests/http/harness.py, without
HTTP) with the example modules and the runtime's test modules rt_test (*kv: records
{key, value} stored in $$kv, the value returned as ack return [partition, value]) and qtest
(queries that fail, write or take their time)."""

import os

import pytest

import harness
import strata


def test_module_path(name):
    return os.path.join(os.environ["STRATA_BUILD_DIR"], "test-modules", name + ".so")


def start_server(**kw):
    return harness.Stratad(
        modules=["wordcount", "leaderboard", "social", "bank", "profiles"],
        extra_args=["--deploy", test_module_path("rt_test"),
                    "--deploy", test_module_path("query_test_module")],
        http=False, **kw)


@pytest.fixture(scope="session")
def server():
    s = start_server()
    yield s
    s.cleanup()


@pytest.fixture
def client(server):
    with strata.connect("127.0.0.1", server.port, timeout=60) as c:
        yield c
