"""Live subscriptions (docs/drivers/python.md, "Live subscriptions"; the concept:
docs/subscriptions.md).

A subscription's updates are pushed by the server on the client's connection and read by
the client's event loop, which applies each update's diffs to the subscription's value as
the frame arrives (so ``value`` is always the latest value the driver has seen) and queues
the update for the application. The queue is bounded: at most ``max_queued`` updates, and
at most MAX_QUEUED_COPIES entries in the containers their values copied (an update's value
shares what did not change with the value before, but each container on the path to a
change is a copy). When an update arrives and the queue is full, the queued updates are
dropped and replaced by one update whose only diff is a "resync" to the current value
(``overflows`` counts how often). An application that reads slowly thus skips
intermediate states but never sees a wrong value, and the driver's memory stays bounded.
"""

import asyncio
import collections
import copy
import threading

from .diffs import Diff, applied
from .errors import ConnectionLost, RequestTimeout

__all__ = ["Update", "Subscription", "AsyncSubscription", "MAX_QUEUED_COPIES"]

MAX_QUEUED_COPIES = 1_000_000


class Update:
    """One change of a subscribed value: ``diffs`` (a list of strata.diffs.Diff, applied in
    order to the value before) and ``value`` (the value after them; read-only, it shares
    its unchanged parts with the values before)."""

    __slots__ = ("diffs", "value", "_copies")

    def __init__(self, diffs, value, copies=0):
        self.diffs = diffs
        self.value = value
        self._copies = copies  # entries of containers copied for this value (queue bound)

    def __repr__(self):
        return "Update(diffs=%r, value=%r)" % (self.diffs, self.value)


class _Closed(Exception):
    """The application closed the subscription: iteration stops."""


class Feed:
    """The state of one subscription shared by the event loop, which calls push() and end(),
    and the application, which calls take() (any other thread) or take_async() (the loop's
    thread). ``_lock`` guards the queue, ``_end`` and ``value``."""

    def __init__(self, subscription, partition, value, max_queued):
        self.id = subscription
        self.partition = partition
        self.value = value
        self.max_queued = max_queued
        self.overflows = 0
        self._queue = collections.deque()
        self._queued_copies = 0  # the sum of the queued updates' _copies
        self._end = None  # what iteration raises once the queue is empty: an error or _Closed
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._waiters = []  # futures of coroutines waiting in take_async (loop thread only)

    @property
    def open(self):
        return self._end is None

    def push(self, diffs):
        """Applies an update (event loop). Raises strata.InvalidArgument, the value
        unchanged, when the diffs do not fit it."""
        value, copies = applied(self.value, diffs)
        with self._lock:
            if self._end is not None:
                return
            self.value = value
            if (len(self._queue) >= self.max_queued or
                    self._queued_copies + copies > MAX_QUEUED_COPIES):
                # The current value is kept anyway: a resync to it costs no copy.
                self.overflows += 1
                self._queue.clear()
                self._queued_copies = copies = 0
                diffs = [Diff("resync", value=value)]
            self._queue.append(Update(diffs, value, copies))
            self._queued_copies += copies
            self._changed.notify_all()
        self._wake()

    def end(self, error):
        """Ends the subscription (event loop): take() raises ``error`` once the queued updates
        are taken. A later end() changes nothing."""
        with self._lock:
            if self._end is None:
                self._end = error
                self._changed.notify_all()
        self._wake()

    def close(self):
        """The application is done (event loop, or any thread once the loop is closed):
        queued updates are dropped, iteration stops."""
        with self._lock:
            self._queue.clear()
            self._queued_copies = 0
            self._end = _Closed()
            self._changed.notify_all()
        self._wake()

    def _wake(self):
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    def _next_locked(self):
        if self._queue:
            update = self._queue.popleft()
            self._queued_copies -= update._copies
            return update
        raise copy.copy(self._end)  # a copy: each raise gets its own traceback

    def take(self, timeout):
        """The next update, waiting up to ``timeout`` seconds (None: no limit)."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._queue or self._end is not None,
                                          timeout):
                raise RequestTimeout("no update within %g s" % timeout)
            return self._next_locked()

    async def take_async(self):
        """The next update (on the event loop of the client)."""
        while True:
            with self._lock:
                if self._queue or self._end is not None:
                    return self._next_locked()
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter


class AsyncSubscription:
    """A live subscription of :class:`strata.aio.Client` (``await client.subscribe(...)``):
    ``id``, ``partition``, ``value`` (kept current as updates arrive); ``async for update
    in subscription`` yields each Update. Iteration ends when close() is called; it raises
    the server's error (NotFound when the module is destroyed...) when the server ends the
    subscription, and strata.ConnectionLost when the connection is lost (subscribe again:
    the new subscription starts from the current value)."""

    def __init__(self, client, conn, feed):
        self._client = client
        self._conn = conn
        self._feed = feed

    id = property(lambda self: self._feed.id, doc="The server's id of the subscription.")
    partition = property(lambda self: self._feed.partition,
                         doc="The PState partition subscribed to.")
    value = property(lambda self: self._feed.value,
                     doc="The current value: the subscribed value after every update received.")
    overflows = property(lambda self: self._feed.overflows,
                         doc="How often the queue was full and replaced by one resync update.")

    def __aiter__(self):
        return self

    async def __anext__(self):
        try:
            return await self._feed.take_async()
        except _Closed:
            raise StopAsyncIteration from None

    async def next(self, timeout=None):
        """The next Update, waiting up to ``timeout`` seconds (None: no limit; then
        strata.RequestTimeout). Raises StopAsyncIteration after close()."""
        if timeout is None:
            return await self.__anext__()
        try:
            return await asyncio.wait_for(self.__anext__(), timeout)
        except asyncio.TimeoutError:
            raise RequestTimeout("no update within %g s" % timeout) from None

    async def close(self):
        """Unsubscribes (if the subscription is still open on the server) and stops the
        iteration; queued updates are dropped. Closing twice is harmless."""
        await self._client._unsubscribe(self._conn, self._feed)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    def __repr__(self):
        return "<strata.aio.Subscription %d partition %d>" % (self.id, self.partition)


class Subscription:
    """A live subscription of the blocking :class:`strata.Client` (``client.subscribe(...)``):
    ``id``, ``partition``, ``value`` (kept current as updates arrive, by the client's
    thread); iterating it (``for update in subscription``) blocks for each Update, as does
    next(timeout). It ends as :class:`AsyncSubscription` does. Any thread may use it; each
    update goes to one of the threads reading it."""

    def __init__(self, client, subscription):
        self._client = client
        self._aio = subscription
        self._feed = subscription._feed

    id = AsyncSubscription.id
    partition = AsyncSubscription.partition
    value = AsyncSubscription.value
    overflows = AsyncSubscription.overflows

    def __iter__(self):
        return self

    def __next__(self):
        return self.next()

    def next(self, timeout=None):
        """The next Update, waiting up to ``timeout`` seconds (None: no limit; then
        strata.RequestTimeout). Raises StopIteration after close()."""
        try:
            return self._feed.take(timeout)
        except _Closed:
            raise StopIteration from None

    def close(self):
        """Unsubscribes (if the subscription is still open on the server) and stops the
        iteration; queued updates are dropped. Closing twice is harmless."""
        try:
            self._client._run(self._aio.close())
        except ConnectionLost:  # the client is closed: so is the subscription
            self._feed.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "<strata.Subscription %d partition %d>" % (self.id, self.partition)
