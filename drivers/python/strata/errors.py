"""Errors: every failure the driver reports is a :class:`StrataError`.

A server error carries the protocol's code name (docs/protocol.md, "Errors") in ``code``
and the server's message in ``message``; each code has its own subclass (``NotFound`` for
``NOT_FOUND``...), so ``except strata.NotFound`` works. The driver's own failures use the
codes ``CONNECTION`` (:class:`ConnectionLost`: the connection could not be made or was
lost) and ``CLIENT_TIMEOUT`` (:class:`RequestTimeout`: no answer in time).

In a cluster (docs/drivers/python.md, "Clusters"), ``NotLeader`` (NOT_LEADER) carries in
``leader`` the "HOST:PORT" of the node that leads the module (None when none is known; the
client has already followed it and retried), and ``NotEnoughReplicas``
(NOT_ENOUGH_REPLICAS) says the append was not executed: too few in-sync replicas.
"""

from .wire.ErrorCode import ErrorCode

__all__ = ["StrataError", "ConnectionLost", "RequestTimeout", "ProtocolError",
           "error_for_code"]


class StrataError(Exception):
    """A request failed: ``code`` names why (a protocol error code name, or CONNECTION,
    CLIENT_TIMEOUT, PROTOCOL for the driver's own), ``message`` says what happened."""

    code = "UNKNOWN"
    leader = None  # NotLeader: the leader's "HOST:PORT", when the server knew it

    def __init__(self, message, code=None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self):
        return "%s: %s" % (self.code, self.message)


class ConnectionLost(StrataError, ConnectionError):
    """The server could not be reached, or the connection broke before the answer came.
    A request that was sent may or may not have been executed; it is never re-sent. The
    next call connects again."""

    code = "CONNECTION"


class RequestTimeout(StrataError, TimeoutError):
    """No answer within the client's timeout (the request may still complete)."""

    code = "CLIENT_TIMEOUT"


class ProtocolError(StrataError):
    """The server sent something this driver cannot read (a bug, or a newer server)."""

    code = "PROTOCOL"


def _class_name(code_name):
    return "".join(part.capitalize() for part in code_name.split("_"))


# One subclass per protocol error code: NOT_FOUND -> NotFound, TOPOLOGY_FAILED ->
# TopologyFailed... (INVALID_ARGUMENT's and SCHEMA_VIOLATION's are also ValueErrors, TIMEOUT's a
# TimeoutError).
_EXTRA_BASES = {"INVALID_ARGUMENT": (ValueError,), "SCHEMA_VIOLATION": (ValueError,),
                "TIMEOUT": (TimeoutError,)}
_BY_NUMBER = {}
for _name, _number in sorted(vars(ErrorCode).items(), key=lambda kv: str(kv[1])):
    if _name.startswith("_") or _name == "NONE":
        continue
    _cls = type(_class_name(_name), (StrataError,) + _EXTRA_BASES.get(_name, ()),
                {"code": _name, "__doc__": "The server's %s error." % _name,
                 "__module__": __name__})
    globals()[_cls.__name__] = _cls
    __all__.append(_cls.__name__)
    _BY_NUMBER[_number] = _cls
_BY_NAME = {cls.code: cls for cls in _BY_NUMBER.values()}


def error_for_code(code, message):
    """The StrataError for a protocol error code (its number or its name)."""
    cls = _BY_NUMBER.get(code) or _BY_NAME.get(code)
    if cls is None:
        return StrataError(message, code="UNKNOWN_%s" % code)
    return cls(message)
