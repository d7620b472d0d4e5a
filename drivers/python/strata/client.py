"""The blocking client: ``client = strata.connect(...)``.

It runs a :class:`strata.aio.Client` on an event loop in a background thread of its own, so
it is thread-safe: any number of threads may call it at once, their requests share the one
connection and are answered in any order. Methods, arguments and errors are the asyncio
client's (see strata.aio), without ``await``.

A live subscription (``client.subscribe(...)``) is read by the client's thread, which keeps
its value current; the application's threads iterate its updates (strata.subscription).
"""

import asyncio
import functools
import threading

from . import aio
from .errors import ConnectionLost
from .subscription import Subscription

__all__ = ["connect", "Client", "Subscription"]


def connect(host=aio.DEFAULT_HOST, port=aio.DEFAULT_PORT, timeout=30.0,
            client_name="strata-python/0.1", seeds=()):
    """A connected, thread-safe :class:`Client`. ``timeout`` (seconds, None: none) bounds
    connecting and each request. ``seeds``: more nodes of the same cluster ("HOST:PORT"),
    see strata.aio. Raises strata.ConnectionLost when no node can be reached."""
    client = Client(host, port, timeout, client_name, seeds)
    try:
        client._run(client._aio._connection())
    except BaseException:
        client.close()
        raise
    return client


def _blocking(name):
    method = getattr(aio.Client, name)

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        return self._run(method(self._aio, *args, **kwargs))

    return call


class Client:
    """A blocking client of one stratad, or of a cluster's nodes. Use :func:`connect`;
    close() when done (or use it as a context manager)."""

    def __init__(self, host=aio.DEFAULT_HOST, port=aio.DEFAULT_PORT, timeout=30.0,
                 client_name="strata-python/0.1", seeds=()):
        self._aio = aio.Client(host, port, timeout, client_name, seeds)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever,
                                        name="strata-client", daemon=True)
        self._thread.start()

    def _run(self, coroutine):
        if threading.current_thread() is self._thread:
            coroutine.close()
            raise RuntimeError("a blocking strata.Client call from its own event loop")
        if self._loop.is_closed():
            coroutine.close()
            raise ConnectionLost("the client is closed")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    @property
    def server_info(self):
        return self._aio.server_info

    def close(self):
        """Closes the connection and stops the client's thread."""
        if self._loop.is_closed():
            return
        if self._thread.is_alive():
            self._run(self._aio.close())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
        self._loop.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    modules = _blocking("modules")
    describe = _blocking("describe")
    deploy = _blocking("deploy")
    update = _blocking("update")
    recompute = _blocking("recompute")
    destroy = _blocking("destroy")
    append = _blocking("append")
    append_batch = _blocking("append_batch")
    select = _blocking("select")
    select_one = _blocking("select_one")
    select_page = _blocking("select_page")
    read_depot = _blocking("read_depot")
    stats = _blocking("stats")
    invoke = _blocking("invoke")
    placement = _blocking("placement")
    rebalance = _blocking("rebalance")

    def subscribe(self, module, pstate, path, partition_key=None, one=False, max_queued=1000):
        """A live :class:`strata.Subscription` of what ``path`` selects (see
        strata.aio.Client.subscribe); close() it when done, or use it as a context
        manager."""
        return Subscription(self, self._run(self._aio.subscribe(
            module, pstate, path, partition_key, one, max_queued)))
