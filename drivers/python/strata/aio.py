"""The asyncio client: ``client = await strata.aio.connect(...)``.

One TCP connection carries every request; each gets its own id and may be answered out of
order, so any number of coroutines can have requests in flight on one client at once
(``asyncio.gather`` of 10,000 selects is fine: the server reads them as fast as it serves
them). Frames queued in one event-loop turn go out in one write.

A lost connection fails the requests waiting on it with :class:`strata.ConnectionLost`
(never re-sent: they may or may not have run), and ends the subscriptions on it with the
same error; the next call connects again.

Live subscriptions (``await client.subscribe(...)``, strata.subscription) share the
connection: their updates are pushed by the server between the answers.

Clusters (docs/drivers/python.md, "Clusters"): ``seeds`` lists more nodes ("HOST:PORT").
The client keeps one connection per node it talks to and sends a request about a module to
the node that leads it: a NotLeader answer naming the leader is followed (at most 3 times
per request) and remembered for the module; a NotLeader without a leader, or — once the
client knows more than one node — a connection that fails, forgets it and retries through
the seeds after 0.05 s, then every 0.1 s, until the request's timeout. A request written on a
connection that then broke is retried only when running it twice changes nothing (reads,
queries, describe, stats, placement, subscribe); an append (deploy, destroy, update,
recompute) fails with ConnectionLost, as on a single server.
"""

import asyncio
import os
import struct

from . import messages
from .errors import (ConnectionLost, FrameTooLarge, InvalidArgument, NotFound, NotLeader,
                     ProtocolError, RequestTimeout)
from .path import path_value
from .subscription import AsyncSubscription as Subscription
from .subscription import Feed
from .types import Ack
from .values import encode
from .wire.ResponseBody import ResponseBody

__all__ = ["connect", "Client", "Subscription"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7450
_CLIENT_NAME = "strata-python/0.1"
_INT64_MAX = (1 << 63) - 1
_unpack_u32_from = struct.Struct("<I").unpack_from
_MAX_REDIRECTS = 3
_FIRST_BACKOFF = 0.05  # seconds
_MAX_BACKOFF = 0.1
_RETRY_BUDGET_WITHOUT_TIMEOUT = 30.0  # seconds a request retries when timeout is None


async def connect(host=DEFAULT_HOST, port=DEFAULT_PORT, timeout=30.0, client_name=_CLIENT_NAME,
                  seeds=()):
    """A connected :class:`Client`. ``timeout`` (seconds, None: none) bounds connecting and
    each request. ``seeds``: more nodes of the same cluster, "HOST:PORT" each, tried in turn
    after host:port. Raises ConnectionLost when no node can be reached."""
    client = Client(host, port, timeout, client_name, seeds)
    await client._connection()
    return client


def _address(host, port):
    return "[%s]:%s" % (host, port) if ":" in host else "%s:%s" % (host, port)


def _split_address(address):
    """(host, port) of "HOST:PORT" or "[v6]:PORT"; InvalidArgument otherwise."""
    host, sep, port = address.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        host = ""  # an IPv6 literal must be bracketed: "::1:7450" has no one meaning
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidArgument("%r is not a HOST:PORT address" % (address,))
    return host, int(port)


def _encoded(what, value):
    try:
        return encode(value)
    except ValueError as e:
        raise InvalidArgument("%s: %s" % (what, e)) from None


def _encoded_path(path):
    try:
        return encode(path_value(path))
    except ValueError as e:
        raise InvalidArgument("path: %s" % e) from None


class _Connection(asyncio.Protocol):
    """One TCP connection: frames in and out, requests waiting by id."""

    def __init__(self):
        self.transport = None
        self.pending = {}  # id -> (future, decode the body, expected body type)
        self.subscriptions = {}  # subscription id -> Feed, open on this connection
        self.releasing = set()  # subscription ids being unsubscribed: their pushes are ignored
        self.next_id = None  # the client's request id allocator
        self.address = None  # "HOST:PORT" of the node
        self.closed = False
        self.welcome = None
        self._in = bytearray()
        self._out = []
        self._lost_reason = None

    def connection_made(self, transport):
        self.transport = transport

    def send(self, frame):
        if not self._out:
            asyncio.get_running_loop().call_soon(self._flush)
        self._out.append(frame)

    def _flush(self):
        frames, self._out = self._out, []
        if not self.closed:
            self.transport.write(b"".join(frames))

    def data_received(self, data):
        buf = self._in
        buf += data
        pos, end = 0, len(buf)
        while end - pos >= 4:
            size = _unpack_u32_from(buf, pos)[0]
            if end - pos - 4 < size:
                break
            self._dispatch(bytes(buf[pos + 4:pos + 4 + size]))
            pos += 4 + size
        if pos:
            del buf[:pos]

    def _dispatch(self, payload):
        try:
            request_id, error, body_type, body = messages.read_response(payload)
        except ProtocolError as e:
            self._close(e)
            return
        entry = self.pending.pop(request_id, None)
        if entry is None:
            if request_id == 0 and error is not None:  # about the connection: it closes
                self._lost_reason = error
            elif request_id == 0 and body_type == ResponseBody.SubscriptionUpdate:
                self._push(body)
            return  # the answer to a request that timed out
        future, decode_body, expected = entry
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        elif body_type != expected:
            future.set_exception(ProtocolError("expected a %s response, got %s" % (
                messages.body_name(expected), messages.body_name(body_type))))
        else:
            try:
                future.set_result(decode_body(body))
            except Exception as e:  # a response this driver cannot read
                future.set_exception(ProtocolError("unreadable %s response: %s" % (
                    messages.body_name(body_type), e)))

    def _push(self, body):
        try:
            subscription, diffs, ended = messages.subscription_update(body)
        except Exception as e:  # a push this driver cannot read
            self._close(ProtocolError("unreadable SubscriptionUpdate: %s" % e))
            return
        feed = self.subscriptions.get(subscription)
        if feed is None:
            # Closed by the application (its pushes until Unsubscribed are ignored), or one
            # whose Subscribed nobody waited for any more (timed out, cancelled): release it.
            if subscription not in self.releasing:
                self.release(subscription)
            return
        if ended is not None:
            del self.subscriptions[subscription]
            feed.end(ended)
            return
        try:
            feed.push(diffs)
        except InvalidArgument as e:  # a bug of the server or of this driver
            del self.subscriptions[subscription]
            feed.end(ProtocolError("subscription %d: %s" % (subscription, e.message)))
            self.release(subscription)

    def release(self, subscription):
        """Sends UnsubscribeRequest; answers a future of its answer. Pushes for the
        subscription are ignored until then (none follow Unsubscribed)."""
        self.releasing.add(subscription)
        request_id = self.next_id()
        future = asyncio.get_running_loop().create_future()

        def done(f):
            self.releasing.discard(subscription)
            if not f.cancelled():
                f.exception()  # retrieved: a release nobody awaits may fail unseen

        future.add_done_callback(done)
        self.pending[request_id] = (future, messages.unsubscribed, ResponseBody.Unsubscribed)
        self.send(messages.unsubscribe(request_id, subscription))
        return future

    def expire(self, request_id, timeout):
        entry = self.pending.pop(request_id, None)
        if entry is not None and not entry[0].done():
            entry[0].set_exception(RequestTimeout("no answer within %g s" % timeout))

    def _close(self, reason):
        if self._lost_reason is None:
            self._lost_reason = reason
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc):
        self.closed = True
        reason = self._lost_reason
        message = "connection lost"
        if reason is not None:
            message += " (%s)" % reason
        elif exc is not None:
            message += " (%s)" % exc
        pending, self.pending = self.pending, {}
        for future, _, _ in pending.values():
            if not future.done():
                future.set_exception(ConnectionLost(message + "; the request may or may not "
                                                    "have been executed"))
        self.end_subscriptions(message + "; subscribe again for the current value")

    def end_subscriptions(self, message):
        """Ends the iteration of every subscription on this connection with ConnectionLost."""
        feeds, self.subscriptions = self.subscriptions, {}
        for feed in feeds.values():
            feed.end(ConnectionLost(message))


class Client:
    """A client of one stratad; see the module docstring. Use :func:`connect`."""

    def __init__(self, host=DEFAULT_HOST, port=DEFAULT_PORT, timeout=30.0,
                 client_name=_CLIENT_NAME, seeds=()):
        self.host, self.port, self.timeout = host, port, timeout
        self._client_name = client_name
        self._seeds = [_address(host, port)]
        for seed in seeds:
            _split_address(seed)
            if seed not in self._seeds:
                self._seeds.append(seed)
        self._home = None  # the node for requests about no module: the first that answered
        self._conns = {}  # address -> _Connection
        self._connecting = {}  # address -> the future of the connection being opened
        self._leaders = {}  # module -> address of its leader, as last learned
        self._redirected = False  # a NotLeader named a leader once: the client knows a cluster
        self._next_seed = 0
        self._next_id = 1
        self._closed = False

    # ---- connection ----

    @property
    def _conn(self):
        """The connection to the home node (None before the first)."""
        return self._conns.get(self._home)

    async def _connection(self, address=None):
        """The open connection to ``address`` (None: the home node; the first seed that
        answers becomes it), connecting once if needed."""
        if self._closed:
            raise ConnectionLost("the client is closed")
        if address is None:
            if self._home is None:
                return await self._connect_first()
            address = self._home
        conn = self._conns.get(address)
        if conn is not None and not conn.closed:
            return conn
        if address not in self._connecting:  # one attempt at a time; the others wait for it
            self._connecting[address] = asyncio.ensure_future(self._open(address))
        attempt = self._connecting[address]
        try:
            return await asyncio.shield(attempt)
        finally:
            if attempt.done() and self._connecting.get(address) is attempt:
                del self._connecting[address]

    async def _connect_first(self):
        errors = []
        for seed in self._seeds:
            try:
                conn = await self._connection(seed)
            except ConnectionLost as e:
                errors.append(e.message)
                continue
            if self._home is None:
                self._home = seed
            return conn
        if len(errors) == 1:
            raise ConnectionLost(errors[0])
        raise ConnectionLost("no seed answered: " + "; ".join(errors))

    def _knows_several_nodes(self):
        return len(self._seeds) > 1 or self._redirected

    def _address_for(self, module, attempt):
        if module and module in self._leaders:
            return self._leaders[module]
        if attempt == 0 and self._home is not None:
            return self._home
        candidates = self._seeds + [a for a in self._conns if a not in self._seeds]
        address = candidates[self._next_seed % len(candidates)]
        self._next_seed += 1
        return address

    def _forget(self, module, address):
        if module and self._leaders.get(module) == address:
            del self._leaders[module]

    async def _route(self, module, resendable, attempt):
        """Runs ``await attempt(conn)`` on the connection to the node for ``module`` (None:
        the home node), following NotLeader and retrying as the module docstring says."""
        loop = asyncio.get_running_loop()
        budget = self.timeout if self.timeout is not None else _RETRY_BUDGET_WITHOUT_TIMEOUT
        deadline = loop.time() + budget
        redirects, backoff, tries = 0, _FIRST_BACKOFF, 0
        address = self._address_for(module, 0)
        while True:
            sent = False
            try:
                conn = await self._connection(address)
                sent = True
                result = await attempt(conn)
                if self._home is None:
                    self._home = address  # the old one failed: this one answers
                return result
            except NotLeader as e:
                if e.leader and redirects < _MAX_REDIRECTS:
                    redirects += 1
                    self._redirected = True
                    if module:
                        self._leaders[module] = e.leader
                    address = e.leader
                    continue
                if e.leader:
                    raise
                self._forget(module, address)
                error = e
            except ConnectionLost as e:
                if self._closed or not self._knows_several_nodes() or (sent and not resendable):
                    raise
                self._forget(module, address)
                if self._home == address:
                    self._home = None
                error = e
            except RequestTimeout:
                # A node that does not answer in time may be stopped or cut off: the next
                # request asks the other nodes, which name the current leader once the
                # cluster moved on (this one's outcome is unknown: it is not re-sent).
                if self._knows_several_nodes():
                    self._forget(module, address)
                    if self._home == address:
                        self._home = None
                        self._next_seed += 1
                raise
            tries += 1
            if loop.time() + backoff >= deadline:
                error.message += " (retried %d times within the request's timeout)" % tries
                raise error
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF)
            address = self._address_for(module, tries)

    async def _open(self, address):
        loop = asyncio.get_running_loop()
        where = address
        try:
            host, port = _split_address(address)
        except InvalidArgument as e:
            raise ProtocolError("the server named the leader %r: %s" % (address, e.message)) \
                from None
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(_Connection, host, port), self.timeout)
        except asyncio.TimeoutError:
            raise ConnectionLost("cannot connect to %s: no answer within %g s"
                                 % (where, self.timeout)) from None
        except OSError as e:
            raise ConnectionLost("cannot connect to %s: %s" % (
                where, os.strerror(e.errno) if e.errno else e)) from None
        try:
            conn.welcome = await self._send(conn, lambda rid: messages.hello(rid, self._client_name),
                                            messages.welcome, ResponseBody.Welcome, request_id=0)
        except RequestTimeout:  # listening, but not a stratad's binary port (or hung)
            conn.transport.abort()
            raise ConnectionLost("cannot connect to %s: no Welcome within %g s"
                                 % (where, self.timeout)) from None
        except BaseException:
            conn.transport.abort()
            raise
        self._conns[address] = conn
        conn.address = address
        conn.next_id = self._take_id
        return conn

    @property
    def server_info(self):
        """The server's Welcome (version, max_frame_size, max_in_flight); None before the
        first connection."""
        return self._conn.welcome if self._conn is not None else None

    async def close(self):
        """Closes the connection; requests still waiting fail with ConnectionLost, and so
        does the iteration of its subscriptions."""
        self._closed = True
        for conn in self._conns.values():
            if not conn.closed:
                conn._lost_reason = "the client was closed"
                conn.end_subscriptions("the client was closed")
                conn.transport.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    # ---- requests ----

    def _take_id(self):
        request_id = self._next_id
        self._next_id += 1
        return request_id

    def _send(self, conn, build, decode_body, expected, request_id=None):
        if request_id is None:
            request_id = self._take_id()
        frame = build(request_id)
        welcome = conn.welcome
        if welcome is not None and len(frame) - 4 > welcome.max_frame_size:
            raise FrameTooLarge("the request is %d bytes, the server takes at most %d "
                                "(max_frame_size)" % (len(frame) - 4, welcome.max_frame_size))
        future = asyncio.get_running_loop().create_future()
        conn.pending[request_id] = (future, decode_body, expected)
        conn.send(frame)
        if self.timeout is None:
            return future
        return self._with_timeout(conn, request_id, future)

    async def _with_timeout(self, conn, request_id, future):
        handle = asyncio.get_running_loop().call_later(self.timeout, conn.expire, request_id,
                                                       self.timeout)
        try:
            return await future
        finally:
            handle.cancel()

    async def _call(self, build, decode_body, expected, module=None, resendable=False):
        return await self._route(
            module, resendable, lambda conn: self._send(conn, build, decode_body, expected))

    async def placement(self):
        """Where each module's replica group is led, as the home node sees the cluster: a
        Placement (docs/protocol.md, "Cluster requests"). NotFound without --cluster."""
        return await self._call(messages.placement, messages.placement_result,
                                ResponseBody.Placement, resendable=True)

    async def rebalance(self):
        """Asks the controller to spread the replica groups over the live nodes
        (docs/cluster.md, "Rebalance"); the Placement once it took the request (the moves
        then run in the background: GroupPlacement.target). Timeout when no controller took
        it within 15 s; NotFound without --cluster."""
        return await self._call(messages.rebalance, messages.placement_result,
                                ResponseBody.Placement)

    async def modules(self):
        """Every deployed module: a list of ModuleInfo."""
        return await self._call(messages.list_modules, messages.module_list,
                                ResponseBody.ModuleList, resendable=True)

    async def describe(self, module):
        """One module's ModuleInfo; NotFound if there is none."""
        return await self._call(lambda rid: messages.describe(rid, module),
                                messages.module_info, ResponseBody.ModuleInfo, module, True)

    async def deploy(self, module, partitions=8, replication=0, min_isr=0):
        """Deploys a module: ``module`` is the path of a .so on the server's file system
        (str or os.PathLike) or the .so file's bytes. Answers its ModuleInfo. In a cluster,
        ``replication`` nodes keep a replica (0: the cluster's default, min(3, live nodes))
        and an append needs ``min_isr`` in-sync replicas (0: 1 when replication <= 2, else
        2); the node that received the deploy leads the module."""
        path, so_bytes = _module_source(module)

        async def deploy_on(conn):
            info = await self._send(
                conn, lambda rid: messages.deploy(rid, path, so_bytes, partitions, replication,
                                                  min_isr),
                messages.module_info, ResponseBody.ModuleInfo)
            self._leaders[info.name] = conn.address
            return info

        return await self._route(None, False, deploy_on)

    async def update(self, module, drop=(), partitions=0, new_topologies_from_end=False):
        """Replaces a deployed module's code with a new build (path or bytes, as for
        deploy); ``drop`` names what the new build no longer declares (its data is
        deleted); ``partitions`` > 0 rescales. Answers Updated."""
        path, so_bytes = _module_source(module)
        drop = [drop] if isinstance(drop, str) else list(drop)
        return await self._call(
            lambda rid: messages.update(rid, path, so_bytes, drop, partitions,
                                        new_topologies_from_end),
            messages.updated, ResponseBody.Updated)

    async def recompute(self, module, pstates):
        """Starts rebuilding PStates of a module from its depots (progress: stats()'s
        rebuilds). Answers RecomputeStarted."""
        pstates = [pstates] if isinstance(pstates, str) else list(pstates)
        return await self._call(lambda rid: messages.recompute(rid, module, pstates),
                                messages.recompute_started, ResponseBody.RecomputeStarted, module)

    async def destroy(self, module, *, confirm):
        """Deletes a module and all its data; ``confirm`` must repeat the module's name
        (ConfirmationRequired otherwise). Answers the name."""
        return await self._call(lambda rid: messages.destroy(rid, module, confirm),
                                messages.destroyed, ResponseBody.Destroyed, module)

    async def append(self, module, depot, record, ack=Ack.PROCESSED):
        """Appends one record; answers its AppendResult (partition, offset, ack_returns).
        A topology that gave up on the record (it is in the depot) raises
        strata.TopologyFailed, whose ``result`` is the AppendResult (as the C++ driver's
        Append; append_batch reports failures per record instead)."""
        data = [_encoded("record", record)]
        results = await self._call(lambda rid: messages.append(rid, module, depot, data, int(ack)),
                                   messages.appended, ResponseBody.Appended, module)
        result = results[0]
        if result.failure is not None:
            result.failure.result = result
            raise result.failure
        return result

    async def append_batch(self, module, depot, records, ack=Ack.PROCESSED):
        """Appends records in one request; answers one AppendResult per record, in order."""
        data = [_encoded("record %d" % i, r) for i, r in enumerate(records)]
        if not data:
            raise InvalidArgument("append_batch needs at least one record")
        return await self._call(lambda rid: messages.append(rid, module, depot, data, int(ack)),
                                messages.appended, ResponseBody.Appended, module)

    def _select(self, module, pstate, path, partition_key, one):
        encoded_path = _encoded_path(path)
        key = None if partition_key is None else _encoded("partition_key", partition_key)
        return self._call(
            lambda rid: messages.select(rid, module, pstate, encoded_path, key, one),
            messages.selected, ResponseBody.Selected, module, True)

    async def select(self, module, pstate, path, partition_key=None):
        """Every value ``path`` (a Path, its wire form or JSON text) selects in the PState
        partition of ``partition_key`` (None: the path's first key picks it)."""
        return await self._select(module, pstate, path, partition_key, False)

    async def select_one(self, module, pstate, path, partition_key=None):
        """The one value ``path`` selects; NotFound if none, InvalidArgument if several."""
        return (await self._select(module, pstate, path, partition_key, True))[0]

    async def select_page(self, module, pstate, path=(), token=None, limit=100):
        """A page of a PState over all its partitions, ``limit`` top-level entries in key
        order; pass the Page's next_token to get the next one (None: it was the last)."""
        encoded_path = _encoded_path(path)
        return await self._call(
            lambda rid: messages.select_page(rid, module, pstate, encoded_path, token, limit),
            messages.selected_page, ResponseBody.SelectedPage, module, True)

    async def read_depot(self, module, depot, partition=0, from_offset=0, to_offset=None,
                         limit=1000):
        """Records of one depot partition from ``from_offset`` up to ``to_offset``
        (exclusive; None: the end), at most ``limit``: a list of DepotRecord."""
        to_offset = _INT64_MAX if to_offset is None else to_offset
        return await self._call(
            lambda rid: messages.read_depot(rid, module, depot, partition, from_offset,
                                            to_offset, limit),
            messages.depot_records, ResponseBody.DepotRecords, module, True)

    async def stats(self, module=None, failures_from=0, failures_limit=100):
        """Progress, lag and failures: of one module, or (None) of the server and every
        module. Answers Stats."""
        return await self._call(
            lambda rid: messages.stats(rid, module, failures_from, failures_limit),
            messages.stats_result, ResponseBody.StatsResult, module, True)

    async def subscribe(self, module, pstate, path, partition_key=None, one=False,
                        max_queued=1000):
        """Subscribes to what ``path`` selects in the PState partition of
        ``partition_key`` (None: the path's first key picks it), as select (or select_one
        with ``one``: the value is the one value selected, None when there is none).
        Answers a Subscription whose ``value`` is the current value; iterate it for the
        updates (at most ``max_queued`` are kept for you: see strata.subscription)."""
        if max_queued < 1:
            raise InvalidArgument("max_queued must be at least 1, not %r" % (max_queued,))
        encoded_path = _encoded_path(path)
        key = None if partition_key is None else _encoded("partition_key", partition_key)

        async def subscribe_on(conn):
            def subscribed(body):
                # Runs as the Subscribed frame is read, before the frames after it (its
                # first updates may be next).
                subscription, partition, value = messages.subscribed(body)
                feed = conn.subscriptions[subscription] = Feed(subscription, partition, value,
                                                               max_queued)
                return feed

            feed = await self._send(
                conn, lambda rid: messages.subscribe(rid, module, pstate, encoded_path, key, one),
                subscribed, ResponseBody.Subscribed)
            return Subscription(self, conn, feed)

        return await self._route(module, True, subscribe_on)

    async def _unsubscribe(self, conn, feed):
        feed.close()
        if conn.subscriptions.get(feed.id) is not feed:
            return  # ended by the server or with the connection: nothing to unsubscribe
        del conn.subscriptions[feed.id]
        answer = conn.release(feed.id)
        try:
            await asyncio.wait_for(asyncio.shield(answer), self.timeout)
        except (NotFound, ConnectionLost):
            pass  # it ended meanwhile, or with the connection
        except asyncio.TimeoutError:
            raise RequestTimeout("no answer within %g s" % self.timeout) from None

    async def invoke(self, module, query, *args, timeout_ms=10000):
        """Runs a query of a module with its arguments; answers its result."""
        data = [_encoded("argument %d" % i, a) for i, a in enumerate(args)]
        return await self._call(
            lambda rid: messages.invoke(rid, module, query, data, timeout_ms),
            messages.invoked, ResponseBody.Invoked, module, True)


def _module_source(module):
    if isinstance(module, (bytes, bytearray, memoryview)):
        return None, bytes(module)
    if isinstance(module, (str, os.PathLike)):
        return os.fspath(module), None
    raise InvalidArgument("a module is a path (str) on the server or the .so bytes, not %s"
                          % type(module).__name__)
