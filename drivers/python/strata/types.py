"""What the client's requests answer: plain dataclasses mirroring docs/protocol.md's
responses, with values already decoded to Python (strata.values)."""

import enum
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

__all__ = ["Ack", "Welcome", "DepotInfo", "PStateInfo", "TopologyInfo", "QueryParamInfo",
           "QueryInfo", "ModuleInfo", "AppendResult", "DepotRecord", "Page",
           "DepotPartitionStats", "TopologyPartitionStats", "TopologyFailure",
           "RebuildProgress", "MicrobatchStats", "ModuleStats", "ServerStats", "Stats",
           "Updated", "RecomputeStarted", "NodeAddress", "GroupPlacement", "Placement"]


class Ack(enum.IntEnum):
    """How long an append waits (docs/protocol.md, "Ack levels")."""
    NONE = 0               # accepted; no durability promise (offsets are -1)
    APPENDED = 1           # durable in its depot partition
    PROCESSED = 2          # durable and every consuming topology is done (ack returns)
    PROCESSED_STREAMS = 3  # PROCESSED without waiting for microbatch topologies


@dataclass
class Welcome:
    protocol_version: int
    server_version: str
    max_frame_size: int
    max_in_flight: int


@dataclass
class DepotInfo:
    name: str
    partitioning: str
    record_schema: Any        # the schema as a value (docs/paths.md, "Schemas")
    record_schema_text: str   # readable, e.g. "record{account: string, amount: int64}"


@dataclass
class PStateInfo:
    name: str
    schema: Any
    schema_text: str


@dataclass
class TopologyInfo:
    name: str
    kind: str  # "stream" or "microbatch"
    sources: List[str]


@dataclass
class QueryParamInfo:
    name: str
    schema: Any
    schema_text: str


@dataclass
class QueryInfo:
    name: str
    params: List[QueryParamInfo]


@dataclass
class ModuleInfo:
    name: str
    partitions: int
    version: int
    depots: List[DepotInfo]
    pstates: List[PStateInfo]
    topologies: List[TopologyInfo]
    queries: List[QueryInfo]
    depends_on: List[str]
    dependents: List[str]
    load_error: Optional[str] = None  # set only on a module that failed to load


@dataclass
class AppendResult:
    partition: int
    offset: int     # -1 with Ack.NONE
    ack_returns: Dict[str, Any] = field(default_factory=dict)  # topology -> value (PROCESSED)
    # append_batch: a strata.TopologyFailed if a topology gave up on the record (append
    # raises it instead)
    failure: Optional[Exception] = None


@dataclass
class DepotRecord:
    offset: int
    value: Any


@dataclass
class Page:
    values: List[Any]
    next_token: Optional[bytes]  # None: this was the last page


@dataclass
class DepotPartitionStats:
    depot: str
    partition: int
    start_offset: int
    end_offset: int


@dataclass
class TopologyPartitionStats:
    topology: str
    depot: str
    partition: int
    processed_offset: int
    lag: int


@dataclass
class TopologyFailure:
    topology: str
    depot: str
    partition: int
    offset: int
    message: str


@dataclass
class RebuildProgress:
    kind: str  # "backfill", "recompute" or "migration"
    names: List[str]
    records_done: int
    records_total: int


@dataclass
class MicrobatchStats:
    topology: str
    batch: int
    stalled: str


@dataclass
class ModuleStats:
    module: str
    depots: List[DepotPartitionStats]
    topologies: List[TopologyPartitionStats]
    failures: int
    failure_page: List[TopologyFailure]
    rebuilds: List[RebuildProgress]
    microbatches: List[MicrobatchStats]
    load_error: Optional[str] = None


@dataclass
class ServerStats:
    uptime_ms: int
    connections: int
    total_connections: int
    requests: int


@dataclass
class Stats:
    server: Optional[ServerStats]  # the server sends it with one module's stats too
    modules: List[ModuleStats]


@dataclass
class Updated:
    module: ModuleInfo
    version: int
    created: List[str]
    dropped: List[str]
    widened: List[str]
    backfilling: List[str]
    migrated: List[str]
    pause_us: int


@dataclass
class RecomputeStarted:
    module: str
    pstates: List[str]


@dataclass
class NodeAddress:
    id: str
    advertise: str  # its protocol address "HOST:PORT"


@dataclass
class GroupPlacement:
    """One replica group of a module (docs/protocol.md, "Cluster requests")."""
    module: str
    group: int
    leader: str           # node id; "" while the group has no live in-sync replica
    leader_address: str   # the leader's "HOST:PORT"; "" when unknown
    epoch: int            # the leader epoch
    replicas: List[str]   # node ids keeping a copy
    isr: List[str]        # the in-sync ones
    min_isr: int
    # A move under way after a rebalance: the replicas the group goes to, the first its next
    # leader; empty when none.
    target: List[str] = field(default_factory=list)


@dataclass
class Placement:
    """Where each module is led, as the answering node sees the cluster."""
    node: str         # the answering node's id
    controller: str   # the controller's node id; "" while none is known
    nodes: List[NodeAddress]
    groups: List[GroupPlacement]
