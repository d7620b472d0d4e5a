"""Frames of the wire protocol (docs/protocol.md): requests built and responses read with
the classes flatc generates from protocol/strata.fbs (strata.wire), values encoded with
strata.values. The client modules only move these frames.

Hot requests (select, single-record append, invoke) are built from cached templates: the
first request of a shape (names, flags, value lengths) is built with the FlatBuffers
Builder, with placeholders whose positions are then read back with the generated
accessors; later ones copy the template and write the id and values in place. The Builder
costs about 25 µs per request, a template copy about 2.
"""

import struct

import flatbuffers
from flatbuffers.table import Table

from .errors import ProtocolError, error_for_code
from .types import (AppendResult, DepotInfo, DepotPartitionStats, DepotRecord,
                    MicrobatchStats, ModuleInfo, ModuleStats, Page, PStateInfo,
                    QueryInfo, QueryParamInfo, RebuildProgress, RecomputeStarted,
                    ServerStats, Stats, TopologyFailure, TopologyInfo,
                    TopologyPartitionStats, Updated, Welcome, NodeAddress, GroupPlacement,
                    Placement)
from .diffs import OPS, Diff
from .values import decode
from .wire import (AppendRequest, DeployRequest, DescribeRequest, DestroyRequest, Hello,
                   InvokeRequest, ListModulesRequest, PlacementRequest, ReadDepotRequest,
                   RebalanceRequest,
                   RecomputeRequest,
                   Request, SelectPageRequest, SelectRequest, StatsRequest, SubscribeRequest,
                   UnsubscribeRequest, UpdateRequest, ValueBytes)
from .wire.Appended import Appended as _Appended
from .wire.DepotRecords import DepotRecords as _DepotRecords
from .wire.Destroyed import Destroyed as _Destroyed
from .wire.Invoked import Invoked as _Invoked
from .wire.ModuleInfo import ModuleInfo as _ModuleInfo
from .wire.ModuleList import ModuleList as _ModuleList
from .wire.Placement import Placement as _Placement
from .wire.RecomputeStarted import RecomputeStarted as _RecomputeStarted
from .wire.RequestBody import RequestBody
from .wire.Response import Response as _Response
from .wire.ResponseBody import ResponseBody
from .wire.Selected import Selected as _Selected
from .wire.SelectedPage import SelectedPage as _SelectedPage
from .wire.StatsResult import StatsResult as _StatsResult
from .wire.Subscribed import Subscribed as _Subscribed
from .wire.SubscriptionUpdate import SubscriptionUpdate as _SubscriptionUpdate
from .wire.Updated import Updated as _Updated
from .wire.Welcome import Welcome as _Welcome

PROTOCOL_VERSION = 1
_u32 = struct.Struct("<I").pack
_pack_u64_into = struct.Struct("<Q").pack_into
_PLACEHOLDER_ID = 0xFFFFFFFFFFFFFFFF  # non-zero, so the Builder writes the field


def _finish(b, body_type, body, request_id):
    Request.Start(b)
    Request.AddId(b, request_id)
    Request.AddBodyType(b, body_type)
    Request.AddBody(b, body)
    b.Finish(Request.End(b))
    out = b.Output()
    return _u32(len(out)) + out


def _strings(b, start_vector, names):
    offsets = [b.CreateString(n) for n in names]
    start_vector(b, len(offsets))
    for o in reversed(offsets):
        b.PrependUOffsetTRelative(o)
    return b.EndVector()


def _value_bytes_vector(b, start_vector, encoded):
    tables = []
    for data in encoded:
        vector = b.CreateByteVector(data)
        ValueBytes.Start(b)
        ValueBytes.AddData(b, vector)
        tables.append(ValueBytes.End(b))
    start_vector(b, len(tables))
    for t in reversed(tables):
        b.PrependUOffsetTRelative(t)
    return b.EndVector()


# ---- templates -----------------------------------------------------------------------------

class _Template:
    """A request frame with its id and value bytes at known positions."""

    __slots__ = ("frame", "id_pos", "value_pos")

    def __init__(self, frame, value_pos):
        self.frame = bytes(frame)
        request = Request.Request.GetRootAs(self.frame, 4)
        self.id_pos = request._tab.Pos + request._tab.Offset(4)
        self.value_pos = value_pos(request.Body())

    def fill(self, request_id, values):
        frame = bytearray(self.frame)
        _pack_u64_into(frame, self.id_pos, request_id)
        for pos, data in zip(self.value_pos, values):
            if data is not None:
                frame[pos:pos + len(data)] = data
        return frame


class _Templates:
    """Templates by shape, at most ``limit`` (all are dropped when it is reached)."""

    def __init__(self, limit=4096):
        self._by_shape = {}
        self._limit = limit

    def get(self, shape, build, value_pos):
        template = self._by_shape.get(shape)
        if template is None:
            if len(self._by_shape) >= self._limit:
                self._by_shape.clear()
            template = self._by_shape[shape] = _Template(build(), value_pos)
        return template


def _vector_data(tab, slot):
    """Where the bytes of the [ubyte] field in vtable slot ``slot`` start (None if absent)."""
    o = tab.Offset(slot)
    return tab.Vector(o) if o else None


def _value_bytes_positions(tab, slot):
    """Where each ValueBytes' data starts in the [ValueBytes] field at ``slot``."""
    o = tab.Offset(slot)
    if not o:
        return []
    vector, n = tab.Vector(o), tab.VectorLen(o)
    return [_vector_data(Table(tab.Bytes, tab.Indirect(vector + 4 * i)), 4) for i in range(n)]


_templates = _Templates()


def _placeholders(values):
    return [None if v is None else bytes(len(v)) for v in values]


# ---- requests ------------------------------------------------------------------------------

def hello(request_id, client_name):
    b = flatbuffers.Builder(64)
    name = b.CreateString(client_name)
    Hello.Start(b)
    Hello.AddProtocolVersion(b, PROTOCOL_VERSION)
    Hello.AddClientName(b, name)
    return _finish(b, RequestBody.Hello, Hello.End(b), request_id)


def deploy(request_id, path, so_bytes, partitions, replication=0, min_isr=0):
    b = flatbuffers.Builder(256 + len(so_bytes or b""))
    data = b.CreateByteVector(so_bytes) if so_bytes is not None else None
    path_offset = b.CreateString(path) if path is not None else None
    DeployRequest.Start(b)
    if path_offset is not None:
        DeployRequest.AddPath(b, path_offset)
    if data is not None:
        DeployRequest.AddSoBytes(b, data)
    DeployRequest.AddPartitions(b, partitions)
    DeployRequest.AddReplication(b, replication)
    DeployRequest.AddMinIsr(b, min_isr)
    return _finish(b, RequestBody.DeployRequest, DeployRequest.End(b), request_id)


def update(request_id, path, so_bytes, drop, partitions, new_topologies_from_end):
    b = flatbuffers.Builder(256 + len(so_bytes or b""))
    data = b.CreateByteVector(so_bytes) if so_bytes is not None else None
    path_offset = b.CreateString(path) if path is not None else None
    drop_offset = _strings(b, UpdateRequest.StartDropVector, drop) if drop else None
    UpdateRequest.Start(b)
    if path_offset is not None:
        UpdateRequest.AddPath(b, path_offset)
    if data is not None:
        UpdateRequest.AddSoBytes(b, data)
    if drop_offset is not None:
        UpdateRequest.AddDrop(b, drop_offset)
    UpdateRequest.AddPartitions(b, partitions)
    UpdateRequest.AddNewTopologiesFromEnd(b, new_topologies_from_end)
    return _finish(b, RequestBody.UpdateRequest, UpdateRequest.End(b), request_id)


def list_modules(request_id):
    b = flatbuffers.Builder(32)
    ListModulesRequest.Start(b)
    return _finish(b, RequestBody.ListModulesRequest, ListModulesRequest.End(b), request_id)


def placement(request_id):
    b = flatbuffers.Builder(32)
    PlacementRequest.Start(b)
    return _finish(b, RequestBody.PlacementRequest, PlacementRequest.End(b), request_id)


def rebalance(request_id):
    b = flatbuffers.Builder(32)
    RebalanceRequest.Start(b)
    return _finish(b, RequestBody.RebalanceRequest, RebalanceRequest.End(b), request_id)


def describe(request_id, module):
    b = flatbuffers.Builder(64)
    name = b.CreateString(module)
    DescribeRequest.Start(b)
    DescribeRequest.AddModule(b, name)
    return _finish(b, RequestBody.DescribeRequest, DescribeRequest.End(b), request_id)


def destroy(request_id, module, confirm):
    b = flatbuffers.Builder(64)
    name = b.CreateString(module)
    confirmation = b.CreateString(confirm)
    DestroyRequest.Start(b)
    DestroyRequest.AddModule(b, name)
    DestroyRequest.AddConfirm(b, confirmation)
    return _finish(b, RequestBody.DestroyRequest, DestroyRequest.End(b), request_id)


def _build_append(request_id, module, depot, records, ack):
    b = flatbuffers.Builder(128 + sum(len(r) + 16 for r in records))
    m, d = b.CreateString(module), b.CreateString(depot)
    vector = _value_bytes_vector(b, AppendRequest.StartRecordsVector, records)
    AppendRequest.Start(b)
    AppendRequest.AddModule(b, m)
    AppendRequest.AddDepot(b, d)
    AppendRequest.AddRecords(b, vector)
    AppendRequest.AddAck(b, ack)
    return _finish(b, RequestBody.AppendRequest, AppendRequest.End(b), request_id)


def append(request_id, module, depot, records, ack):
    """``records``: encoded values, one or more."""
    if len(records) != 1:
        return _build_append(request_id, module, depot, records, ack)
    template = _templates.get(
        ("append", module, depot, ack, len(records[0])),
        lambda: _build_append(_PLACEHOLDER_ID, module, depot, _placeholders(records), ack),
        lambda body: _value_bytes_positions(body, 8))
    return template.fill(request_id, records)


def _build_path_request(table, body_type, request_id, module, pstate, path, partition_key,
                        one):
    """A SelectRequest or a SubscribeRequest: the two tables have the same fields."""
    b = flatbuffers.Builder(128 + len(path))
    m, p = b.CreateString(module), b.CreateString(pstate)
    path_offset = b.CreateByteVector(path)
    key_offset = b.CreateByteVector(partition_key) if partition_key is not None else None
    table.Start(b)
    table.AddModule(b, m)
    table.AddPstate(b, p)
    table.AddPath(b, path_offset)
    if key_offset is not None:
        table.AddPartitionKey(b, key_offset)
    table.AddOne(b, one)
    return _finish(b, body_type, table.End(b), request_id)


def _build_select(request_id, module, pstate, path, partition_key, one):
    return _build_path_request(SelectRequest, RequestBody.SelectRequest, request_id, module,
                               pstate, path, partition_key, one)


def select(request_id, module, pstate, path, partition_key, one):
    """``path`` and ``partition_key`` (None: absent) are encoded values."""
    values = (path, partition_key)
    template = _templates.get(
        ("select", module, pstate, one, len(path),
         -1 if partition_key is None else len(partition_key)),
        lambda: _build_select(_PLACEHOLDER_ID, module, pstate, *_placeholders(values), one),
        lambda body: [_vector_data(body, 8), _vector_data(body, 10)])
    return template.fill(request_id, values)


def select_page(request_id, module, pstate, path, token, limit):
    b = flatbuffers.Builder(128 + len(path) + len(token or b""))
    m, p = b.CreateString(module), b.CreateString(pstate)
    path_offset = b.CreateByteVector(path)
    token_offset = b.CreateByteVector(token) if token else None
    SelectPageRequest.Start(b)
    SelectPageRequest.AddModule(b, m)
    SelectPageRequest.AddPstate(b, p)
    SelectPageRequest.AddPath(b, path_offset)
    if token_offset is not None:
        SelectPageRequest.AddToken(b, token_offset)
    SelectPageRequest.AddLimit(b, limit)
    return _finish(b, RequestBody.SelectPageRequest, SelectPageRequest.End(b), request_id)


def read_depot(request_id, module, depot, partition, from_offset, to_offset, limit):
    b = flatbuffers.Builder(128)
    m, d = b.CreateString(module), b.CreateString(depot)
    ReadDepotRequest.Start(b)
    ReadDepotRequest.AddModule(b, m)
    ReadDepotRequest.AddDepot(b, d)
    ReadDepotRequest.AddPartition(b, partition)
    ReadDepotRequest.AddFrom_(b, from_offset)
    ReadDepotRequest.AddTo(b, to_offset)
    ReadDepotRequest.AddLimit(b, limit)
    return _finish(b, RequestBody.ReadDepotRequest, ReadDepotRequest.End(b), request_id)


def stats(request_id, module, failures_from, failures_limit):
    b = flatbuffers.Builder(64)
    m = b.CreateString(module) if module else None
    StatsRequest.Start(b)
    if m is not None:
        StatsRequest.AddModule(b, m)
    StatsRequest.AddFailuresFrom(b, failures_from)
    StatsRequest.AddFailuresLimit(b, failures_limit)
    return _finish(b, RequestBody.StatsRequest, StatsRequest.End(b), request_id)


def recompute(request_id, module, pstates):
    b = flatbuffers.Builder(128)
    m = b.CreateString(module)
    names = _strings(b, RecomputeRequest.StartPstatesVector, pstates)
    RecomputeRequest.Start(b)
    RecomputeRequest.AddModule(b, m)
    RecomputeRequest.AddPstates(b, names)
    return _finish(b, RequestBody.RecomputeRequest, RecomputeRequest.End(b), request_id)


def _build_invoke(request_id, module, query, args, timeout_ms):
    b = flatbuffers.Builder(128 + sum(len(a) + 16 for a in args))
    m, q = b.CreateString(module), b.CreateString(query)
    vector = _value_bytes_vector(b, InvokeRequest.StartArgsVector, args) if args else None
    InvokeRequest.Start(b)
    InvokeRequest.AddModule(b, m)
    InvokeRequest.AddQuery(b, q)
    if vector is not None:
        InvokeRequest.AddArgs(b, vector)
    InvokeRequest.AddTimeoutMs(b, timeout_ms)
    return _finish(b, RequestBody.InvokeRequest, InvokeRequest.End(b), request_id)


def invoke(request_id, module, query, args, timeout_ms):
    """``args``: encoded values, one per declared parameter."""
    if len(args) > 8:
        return _build_invoke(request_id, module, query, args, timeout_ms)
    template = _templates.get(
        ("invoke", module, query, timeout_ms) + tuple(len(a) for a in args),
        lambda: _build_invoke(_PLACEHOLDER_ID, module, query, _placeholders(args), timeout_ms),
        lambda body: _value_bytes_positions(body, 8))
    return template.fill(request_id, args)


def subscribe(request_id, module, pstate, path, partition_key, one):
    """``path`` and ``partition_key`` (None: absent) are encoded values."""
    return _build_path_request(SubscribeRequest, RequestBody.SubscribeRequest, request_id, module,
                               pstate, path, partition_key, one)


def unsubscribe(request_id, subscription):
    b = flatbuffers.Builder(32)
    UnsubscribeRequest.Start(b)
    UnsubscribeRequest.AddSubscription(b, subscription)
    return _finish(b, RequestBody.UnsubscribeRequest, UnsubscribeRequest.End(b), request_id)


# ---- responses -----------------------------------------------------------------------------

def read_response(payload):
    """(id, error or None, body type, body table) of a Response frame's payload."""
    try:
        response = _Response.GetRootAs(payload, 0)
        error = response.Error()
        if error is not None:
            message = error.Message()
            exc = error_for_code(error.Code(), message.decode("utf-8", "replace") if message else "")
            exc.leader = _str(error.Leader()) or None
            return response.Id(), exc, 0, None
        return response.Id(), None, response.BodyType(), response.Body()
    except (IndexError, struct.error) as e:
        raise ProtocolError("unreadable response: %s" % e) from None


_BODY_NAMES = {v: k for k, v in vars(ResponseBody).items() if not k.startswith("_")}


def body_name(body_type):
    return _BODY_NAMES.get(body_type, "body type %d" % body_type)


def _str(s):
    return s.decode("utf-8", "replace") if s else ""


def _strs(length, item):
    """A [string] field: its generated Length() and item(i) accessors."""
    return [_str(item(i)) for i in range(length())]


def _bytes(tab, slot):
    o = tab.Offset(slot)
    if not o:
        return None
    start = tab.Vector(o)
    return bytes(tab.Bytes[start:start + tab.VectorLen(o)])


def _value(tab, slot):
    data = _bytes(tab, slot)
    return decode(data) if data else None


def _init(cls, tab):
    obj = cls()
    obj.Init(tab.Bytes, tab.Pos)
    return obj


def welcome(tab):
    w = _init(_Welcome, tab)
    return Welcome(w.ProtocolVersion(), _str(w.ServerVersion()), w.MaxFrameSize(),
                   w.MaxInFlight())


def _module_info(m):
    depots = []
    for i in range(m.DepotsLength()):
        d = m.Depots(i)
        depots.append(DepotInfo(_str(d.Name()), _str(d.Partitioning()), _value(d._tab, 8),
                                _str(d.RecordSchemaText())))
    pstates = []
    for i in range(m.PstatesLength()):
        p = m.Pstates(i)
        pstates.append(PStateInfo(_str(p.Name()), _value(p._tab, 6), _str(p.SchemaText())))
    topologies = []
    for i in range(m.TopologiesLength()):
        t = m.Topologies(i)
        topologies.append(TopologyInfo(_str(t.Name()), _str(t.Kind()) or "stream",
                                       _strs(t.SourcesLength, t.Sources)))
    queries = []
    for i in range(m.QueriesLength()):
        q = m.Queries(i)
        params = []
        for j in range(q.ParamsLength()):
            p = q.Params(j)
            params.append(QueryParamInfo(_str(p.Name()), _value(p._tab, 6), _str(p.SchemaText())))
        queries.append(QueryInfo(_str(q.Name()), params))
    return ModuleInfo(
        name=_str(m.Name()), partitions=m.Partitions(), version=m.Version(), depots=depots,
        pstates=pstates, topologies=topologies, queries=queries,
        depends_on=_strs(m.DependsOnLength, m.DependsOn),
        dependents=_strs(m.DependentsLength, m.Dependents),
        load_error=_str(m.LoadError()) or None)


def module_info(tab):
    return _module_info(_init(_ModuleInfo, tab))


def module_list(tab):
    ml = _init(_ModuleList, tab)
    return [_module_info(ml.Modules(i)) for i in range(ml.ModulesLength())]


def placement_result(tab):
    p = _init(_Placement, tab)
    nodes = [NodeAddress(_str(p.Nodes(i).Id()), _str(p.Nodes(i).Advertise()))
             for i in range(p.NodesLength())]
    groups = []
    for i in range(p.GroupsLength()):
        g = p.Groups(i)
        groups.append(GroupPlacement(
            _str(g.Module()), g.Group(), _str(g.Leader()), _str(g.LeaderAddress()), g.Epoch(),
            _strs(g.ReplicasLength, g.Replicas), _strs(g.IsrLength, g.Isr), g.MinIsr(),
            _strs(g.TargetLength, g.Target)))
    return Placement(_str(p.Node()), _str(p.Controller()), nodes, groups)


def destroyed(tab):
    return _str(_init(_Destroyed, tab).Module())


def _append_result(r):
    returns = {}
    for i in range(r.AckReturnsLength()):
        a = r.AckReturns(i)
        returns[_str(a.Topology())] = _value(a._tab, 6)
    failure = r.Failure()
    return AppendResult(
        r.Partition(), r.Offset(), returns,
        error_for_code(failure.Code(), _str(failure.Message())) if failure is not None else None)


def appended(tab):
    a = _init(_Appended, tab)
    return [_append_result(a.Results(i)) for i in range(a.ResultsLength())]


def _values(obj):
    """The decoded values of a Selected or SelectedPage."""
    return [_value(obj.Values(i)._tab, 4) for i in range(obj.ValuesLength())]


def selected(tab):
    return _values(_init(_Selected, tab))


def selected_page(tab):
    s = _init(_SelectedPage, tab)
    return Page(_values(s),
                _bytes(s._tab, 6) or None)


def depot_records(tab):
    d = _init(_DepotRecords, tab)
    out = []
    for i in range(d.RecordsLength()):
        r = d.Records(i)
        out.append(DepotRecord(r.Offset(), _value(r._tab, 6)))
    return out


def _module_stats(m):
    depots = []
    for i in range(m.DepotsLength()):
        d = m.Depots(i)
        depots.append(DepotPartitionStats(_str(d.Depot()), d.Partition(), d.StartOffset(),
                                          d.EndOffset()))
    topologies = []
    for i in range(m.TopologiesLength()):
        t = m.Topologies(i)
        topologies.append(TopologyPartitionStats(_str(t.Topology()), _str(t.Depot()),
                                                 t.Partition(), t.ProcessedOffset(), t.Lag()))
    failures = []
    for i in range(m.FailurePageLength()):
        f = m.FailurePage(i)
        failures.append(TopologyFailure(_str(f.Topology()), _str(f.Depot()), f.Partition(),
                                        f.Offset(), _str(f.Message())))
    rebuilds = []
    for i in range(m.RebuildsLength()):
        r = m.Rebuilds(i)
        rebuilds.append(RebuildProgress(_str(r.Kind()),
                                        _strs(r.NamesLength, r.Names),
                                        r.RecordsDone(), r.RecordsTotal()))
    microbatches = []
    for i in range(m.MicrobatchesLength()):
        mb = m.Microbatches(i)
        microbatches.append(MicrobatchStats(_str(mb.Topology()), mb.Batch(), _str(mb.Stalled())))
    return ModuleStats(_str(m.Module()), depots, topologies, m.Failures(), failures, rebuilds,
                       microbatches, _str(m.LoadError()) or None)


def stats_result(tab):
    s = _init(_StatsResult, tab)
    server = s.Server()
    return Stats(
        ServerStats(server.UptimeMs(), server.Connections(), server.TotalConnections(),
                    server.Requests()) if server is not None else None,
        [_module_stats(s.Modules(i)) for i in range(s.ModulesLength())])


def updated(tab):
    u = _init(_Updated, tab)
    return Updated(_module_info(u.Module()), u.Version(),
                   _strs(u.CreatedLength, u.Created), _strs(u.DroppedLength, u.Dropped),
                   _strs(u.WidenedLength, u.Widened),
                   _strs(u.BackfillingLength, u.Backfilling),
                   _strs(u.MigratedLength, u.Migrated), u.PauseUs())


def recompute_started(tab):
    r = _init(_RecomputeStarted, tab)
    return RecomputeStarted(_str(r.Module()), _strs(r.PstatesLength, r.Pstates))


def invoked(tab):
    return _value(_init(_Invoked, tab)._tab, 4)


def subscribed(tab):
    """(subscription id, partition, current value) of a Subscribed."""
    s = _init(_Subscribed, tab)
    return s.Subscription(), s.Partition(), _value(s._tab, 8)


def unsubscribed(tab):
    return None


def _diff(d):
    op = d.Op()
    if not 0 <= op < len(OPS):
        raise ValueError("unknown diff op %d" % op)
    at = _value(d._tab, 6)
    if not isinstance(at, list):
        if at is not None:
            raise ValueError("a diff's at is a list, not %r" % (at,))
        at = []
    return Diff(OPS[op], at, _value(d._tab, 8), _value(d._tab, 10), d.Index())


def subscription_update(tab):
    """(subscription id, its diffs, the StrataError that ended it or None) of a pushed
    SubscriptionUpdate."""
    u = _init(_SubscriptionUpdate, tab)
    ended = u.Ended()
    return (u.Subscription(), [_diff(u.Diffs(i)) for i in range(u.DiffsLength())],
            error_for_code(ended.Code(), _str(ended.Message())) if ended is not None else None)
