"""The Python driver in a cluster (docs/drivers/python.md, "Clusters"): NotLeader redirects,
the module -> leader address it remembers, retries while no leader is known, and appends
whose connection broke are not sent again. The nodes are fake servers on loopback speaking
the protocol's frames (a real cluster needs ZooKeeper; tests/cluster covers that): only a
fake can choose exactly when a node answers NOT_LEADER or drops a connection."""

import asyncio
import struct
import threading

import flatbuffers
import pytest

import strata
import strata.aio
from strata import Path
from strata.values import encode
from strata.wire import (Appended, AppendResult, DeployRequest, Error, ModuleInfo, Placement,
                         Request, Response, Selected, ValueBytes, Welcome, NodeAddress,
                         GroupPlacement)
from strata.wire.ErrorCode import ErrorCode
from strata.wire.RequestBody import RequestBody
from strata.wire.ResponseBody import ResponseBody

_u32 = struct.Struct("<I")


def _response(request_id, body_type=0, body=None, error=None):
    b = flatbuffers.Builder(256)
    body_offset = body(b) if body is not None else None
    error_offset = error(b) if error is not None else None
    Response.Start(b)
    Response.AddId(b, request_id)
    if error_offset is not None:
        Response.AddError(b, error_offset)
    if body_offset is not None:
        Response.AddBodyType(b, body_type)
        Response.AddBody(b, body_offset)
    b.Finish(Response.End(b))
    out = b.Output()
    return _u32.pack(len(out)) + out


def welcome(rid):
    def body(b):
        version = b.CreateString("fake")
        Welcome.Start(b)
        Welcome.AddProtocolVersion(b, 1)
        Welcome.AddServerVersion(b, version)
        Welcome.AddMaxFrameSize(b, 1 << 20)
        Welcome.AddMaxInFlight(b, 16)
        return Welcome.End(b)
    return _response(rid, ResponseBody.Welcome, body)


def not_leader(leader):
    def answer(rid, request):
        def error(b):
            message = b.CreateString("this node does not lead the module")
            address = b.CreateString(leader) if leader else None
            Error.Start(b)
            Error.AddCode(b, ErrorCode.NOT_LEADER)
            Error.AddMessage(b, message)
            if address is not None:
                Error.AddLeader(b, address)
            return Error.End(b)
        return _response(rid, error=error)
    return answer


def module_info(rid, name):
    def body(b):
        n = b.CreateString(name)
        ModuleInfo.Start(b)
        ModuleInfo.AddName(b, n)
        ModuleInfo.AddPartitions(b, 1)
        return ModuleInfo.End(b)
    return _response(rid, ResponseBody.ModuleInfo, body)


def lead(rid, request):
    """A leader: answers appends (offset 7), selects (42) and the rest with a ModuleInfo."""
    kind = request.BodyType()
    if kind == RequestBody.AppendRequest:
        def body(b):
            AppendResult.Start(b)
            AppendResult.AddPartition(b, 0)
            AppendResult.AddOffset(b, 7)
            result = AppendResult.End(b)
            Appended.StartResultsVector(b, 1)
            b.PrependUOffsetTRelative(result)
            results = b.EndVector()
            Appended.Start(b)
            Appended.AddResults(b, results)
            return Appended.End(b)
        return _response(rid, ResponseBody.Appended, body)
    if kind == RequestBody.SelectRequest:
        def body(b):
            data = b.CreateByteVector(encode(42))
            ValueBytes.Start(b)
            ValueBytes.AddData(b, data)
            value = ValueBytes.End(b)
            Selected.StartValuesVector(b, 1)
            b.PrependUOffsetTRelative(value)
            values = b.EndVector()
            Selected.Start(b)
            Selected.AddValues(b, values)
            return Selected.End(b)
        return _response(rid, ResponseBody.Selected, body)
    return module_info(rid, "bank")


class FakeNode:
    """A node on its own event loop thread: Hello gets a Welcome, every other request what
    ``handler(request_id, request)`` returns (None closes the connection unanswered)."""

    def __init__(self, handler):
        self.handler = handler
        self.received = []  # body types, in order
        self.writers = set()  # the open connections
        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(started,), daemon=True)
        self.thread.start()
        started.wait()
        self.address = "127.0.0.1:%d" % self.port

    def _run(self, started):
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]
        started.set()
        self.loop.run_forever()

    async def _serve(self, reader, writer):
        self.writers.add(writer)
        try:
            while True:
                size = _u32.unpack(await reader.readexactly(4))[0]
                payload = await reader.readexactly(size)
                request = Request.Request.GetRootAs(payload, 0)
                if request.BodyType() == RequestBody.Hello:
                    writer.write(welcome(0))
                    continue
                self.received.append(request.BodyType())
                answer = self.handler(request.Id(), request)
                if answer is None:
                    writer.transport.abort()
                    return
                writer.write(answer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass

    def count(self, body_type):
        return self.received.count(body_type)

    def stop(self):
        if self.loop.is_closed():
            return

        async def shutdown():
            self.server.close()
            for writer in self.writers:  # as a dying process's sockets close
                writer.transport.abort()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


@pytest.fixture
def nodes():
    started = []

    def start(handler):
        node = FakeNode(handler)
        started.append(node)
        return node
    yield start
    for node in started:
        node.stop()


def run(coroutine):
    return asyncio.run(coroutine)


def test_not_leader_is_followed_and_the_leader_remembered(nodes):
    leader = nodes(lead)
    follower = nodes(not_leader(leader.address))

    async def main():
        async with await strata.aio.connect("127.0.0.1", follower.port) as c:
            assert (await c.describe("bank")).name == "bank"
            assert follower.count(RequestBody.DescribeRequest) == 1
            assert leader.count(RequestBody.DescribeRequest) == 1
            # The next request about the module goes straight to its leader.
            assert await c.select_one("bank", "$$balances", Path().key("a")) == 42
            assert follower.count(RequestBody.SelectRequest) == 0
            assert leader.count(RequestBody.SelectRequest) == 1
    run(main())


def test_redirects_are_bounded_and_not_leader_names_the_leader(nodes):
    answers = {}
    node = nodes(lambda rid, request: answers["self"](rid, request))
    answers["self"] = not_leader(node.address)  # a node naming itself
    with strata.connect("127.0.0.1", node.port) as c:
        with pytest.raises(strata.NotLeader) as raised:
            c.describe("bank")
        assert raised.value.leader == node.address
    assert node.count(RequestBody.DescribeRequest) == 4  # the request and 3 redirects


def test_without_a_leader_the_request_is_retried_until_one_is_named(nodes):
    leader = nodes(lead)
    asked = []

    def failing_over(rid, request):
        asked.append(rid)
        return not_leader("" if len(asked) <= 2 else leader.address)(rid, request)
    follower = nodes(failing_over)
    with strata.connect("127.0.0.1", follower.port) as c:
        assert c.append("bank", "*transfers", 1).offset == 7
    assert follower.count(RequestBody.AppendRequest) == 3
    assert leader.count(RequestBody.AppendRequest) == 1


def test_no_leader_within_the_timeout_raises_not_leader(nodes):
    follower = nodes(not_leader(""))
    with strata.connect("127.0.0.1", follower.port, timeout=0.5) as c:
        with pytest.raises(strata.NotLeader) as raised:
            c.describe("bank")
        assert raised.value.leader is None
    assert follower.count(RequestBody.DescribeRequest) >= 2  # retried


def test_an_append_whose_connection_broke_is_not_sent_again_but_a_read_is(nodes):
    selects = []

    def dropping(rid, request):
        if request.BodyType() == RequestBody.AppendRequest:
            return None  # the connection dies with the append unanswered
        if request.BodyType() == RequestBody.SelectRequest:
            selects.append(rid)
            if len(selects) == 1:
                return None  # and with the first select
        return lead(rid, request)
    leader = nodes(dropping)
    other = nodes(not_leader(leader.address))
    # Two seeds: the client knows a cluster, so it fails over.
    with strata.connect("127.0.0.1", leader.port, seeds=[other.address]) as c:
        with pytest.raises(strata.ConnectionLost):
            c.append("bank", "*transfers", 1)
        assert leader.count(RequestBody.AppendRequest) == 1
        assert other.count(RequestBody.AppendRequest) == 0
        assert c.select_one("bank", "$$balances", Path().key("a")) == 42
    assert leader.count(RequestBody.SelectRequest) == 2


def test_when_the_leader_dies_the_next_request_finds_the_new_one(nodes):
    first, second = nodes(lead), nodes(lead)
    current = {"leader": first.address}
    follower = nodes(lambda rid, request: not_leader(current["leader"])(rid, request))
    with strata.connect("127.0.0.1", follower.port) as c:
        assert c.select_one("bank", "$$balances", Path().key("a")) == 42
        assert first.count(RequestBody.SelectRequest) == 1
        first.stop()  # the leader dies; the controller promotes the second
        current["leader"] = second.address
        assert c.select_one("bank", "$$balances", Path().key("a")) == 42
    assert second.count(RequestBody.SelectRequest) == 1


def test_a_seed_that_is_down_is_skipped(nodes):
    gone = nodes(lead)
    gone.stop()
    leader = nodes(lead)
    with strata.connect("127.0.0.1", gone.port, seeds=[leader.address]) as c:
        assert c.describe("bank").name == "bank"


def test_placement_rebalance_and_deploy_options_travel(nodes):
    deployed = {}

    def answer(rid, request):
        if request.BodyType() in (RequestBody.PlacementRequest, RequestBody.RebalanceRequest):
            moving = request.BodyType() == RequestBody.RebalanceRequest

            def body(b):
                node_id, advertise = b.CreateString("n1"), b.CreateString("127.0.0.1:1")
                NodeAddress.Start(b)
                NodeAddress.AddId(b, node_id)
                NodeAddress.AddAdvertise(b, advertise)
                node = NodeAddress.End(b)
                module, leader_id = b.CreateString("bank"), b.CreateString("n1")
                address = b.CreateString("127.0.0.1:1")
                replicas = [b.CreateString(n) for n in ("n1", "n2")]
                GroupPlacement.StartReplicasVector(b, 2)
                for r in reversed(replicas):
                    b.PrependUOffsetTRelative(r)
                replica_vector = b.EndVector()
                GroupPlacement.StartIsrVector(b, 1)
                b.PrependUOffsetTRelative(replicas[0])
                isr_vector = b.EndVector()
                if moving:  # a rebalance's answer: the group moves to n2, n1
                    GroupPlacement.StartTargetVector(b, 2)
                    for r in replicas:
                        b.PrependUOffsetTRelative(r)
                    target_vector = b.EndVector()
                GroupPlacement.Start(b)
                GroupPlacement.AddModule(b, module)
                GroupPlacement.AddLeader(b, leader_id)
                GroupPlacement.AddLeaderAddress(b, address)
                GroupPlacement.AddEpoch(b, 3)
                GroupPlacement.AddReplicas(b, replica_vector)
                GroupPlacement.AddIsr(b, isr_vector)
                GroupPlacement.AddMinIsr(b, 1)
                if moving:
                    GroupPlacement.AddTarget(b, target_vector)
                group = GroupPlacement.End(b)
                Placement.StartNodesVector(b, 1)
                b.PrependUOffsetTRelative(node)
                nodes_vector = b.EndVector()
                Placement.StartGroupsVector(b, 1)
                b.PrependUOffsetTRelative(group)
                groups_vector = b.EndVector()
                this = b.CreateString("n1")
                Placement.Start(b)
                Placement.AddNode(b, this)
                Placement.AddNodes(b, nodes_vector)
                Placement.AddGroups(b, groups_vector)
                return Placement.End(b)
            return _response(rid, ResponseBody.Placement, body)
        if request.BodyType() == RequestBody.DeployRequest:
            d = DeployRequest.DeployRequest()
            d.Init(request.Body().Bytes, request.Body().Pos)
            deployed.update(replication=d.Replication(), min_isr=d.MinIsr())
        return lead(rid, request)
    node = nodes(answer)
    with strata.connect("127.0.0.1", node.port) as c:
        placement = c.placement()
        assert placement.node == "n1" and placement.controller == ""
        assert placement.nodes == [strata.NodeAddress("n1", "127.0.0.1:1")]
        assert placement.groups == [strata.GroupPlacement(
            "bank", 0, "n1", "127.0.0.1:1", 3, ["n1", "n2"], ["n1"], 1)]
        assert c.rebalance().groups[0].target == ["n2", "n1"]
        assert c.deploy("/m/bank.so", partitions=4, replication=3, min_isr=2).name == "bank"
    assert deployed == {"replication": 3, "min_isr": 2}


def test_seeds_and_leader_addresses_are_host_port_or_bracketed_v6():
    from strata.aio import _split_address
    assert _split_address("10.0.0.1:7450") == ("10.0.0.1", 7450)
    assert _split_address("[::1]:65535") == ("::1", 65535)
    for bad in ["", "10.0.0.1", ":7450", "h:", "h:0", "h:65536", "h:12x", "[::1]", "::1"]:
        with pytest.raises(strata.InvalidArgument):
            _split_address(bad)
    with pytest.raises(strata.InvalidArgument):
        strata.connect("127.0.0.1", 1, seeds=["no-port"])

