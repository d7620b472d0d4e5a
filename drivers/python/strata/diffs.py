"""Diffs: the fine-grained changes a live subscription pushes (docs/subscriptions.md).

A list of diffs applied in order to the value before gives the value after, with the
semantics of the C++ ``strata::ApplyDiff`` (common/include/strata/diff.h). Values are the
driver's Python forms (strata.values): maps are ``dict`` (any Mapping is read), sets ``set``
(or ``frozenset``), lists ``list`` (or ``tuple``).

:func:`apply_diffs` never changes the value it is given: it copies each container on the
path to a change (once per call, not its elements) and returns the new value, which shares
everything else with the old one. So a value seen earlier (an update's ``value``) stays as
it was; treat all of them as read-only.
"""

from collections.abc import Mapping

from .errors import InvalidArgument
from .values import _hashable, to_json

__all__ = ["Diff", "OPS", "apply_diff", "apply_diffs"]

# The op names of docs/subscriptions.md (C++ DiffOpName), in the wire's DiffOp order.
OPS = ("replace", "key_set", "key_removed", "set_added", "set_removed", "seq_insert",
       "seq_remove", "resync")
_OPS = frozenset(OPS)


class Diff:
    """One change: ``op`` (a name of OPS), ``at`` (the steps from the root to the container
    changed, or for "replace" to the value replaced: map keys, list indexes), ``key``
    (key_set, key_removed), ``value`` (replace, key_set, set_added, set_removed,
    seq_insert, resync), ``index`` (seq_insert, seq_remove). ``key``, the steps of ``at``
    and a set element's ``value`` are in hashable form (tuple, FrozenDict, frozenset)."""

    __slots__ = ("op", "at", "key", "value", "index")

    def __init__(self, op, at=(), key=None, value=None, index=0):
        if op not in _OPS:
            raise InvalidArgument("unknown diff op %r (one of %s)" % (op, ", ".join(OPS)))
        self.op = op
        self.at = [_hashable(step) for step in at]
        self.key = _hashable(key)
        self.value = _hashable(value) if op in ("set_added", "set_removed") else value
        self.index = index

    def __eq__(self, other):
        return isinstance(other, Diff) and all(
            getattr(self, f) == getattr(other, f) for f in self.__slots__)

    def __repr__(self):
        return "Diff(%s)" % _readable(self)


def _text(value):
    try:
        return to_json(value)
    except (TypeError, ValueError):
        return repr(value)


def _readable(diff):
    """As C++ DiffToString: ``key_set ["alice"] "bio" = "hi"``."""
    out = diff.op
    if diff.op != "resync":
        out += " " + _text(list(diff.at))
    if diff.op == "key_set":
        return "%s %s = %s" % (out, _text(diff.key), _text(diff.value))
    if diff.op == "key_removed":
        return "%s %s" % (out, _text(diff.key))
    if diff.op == "seq_insert":
        return "%s %d %s" % (out, diff.index, _text(diff.value))
    if diff.op == "seq_remove":
        return "%s %d" % (out, diff.index)
    return "%s %s" % (out, _text(diff.value))


def _misfit(diff, why):
    return InvalidArgument("diff %s does not apply: %s" % (_readable(diff), why))


def _kind(v):
    """"map", "set", "list" or the Strata type name of a value that is not a container."""
    if isinstance(v, (dict, Mapping)):
        return "map"
    if isinstance(v, (set, frozenset)):
        return "set"
    if isinstance(v, (list, tuple)):
        return "list"
    if v is None:
        return "nil"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "double"
    if isinstance(v, str):
        return "string"
    if isinstance(v, (bytes, bytearray, memoryview)):
        return "bytes"
    return type(v).__name__


_COPY = {"map": dict, "set": set, "list": list}


class _Writer:
    """Applies diffs to copies: ``fresh`` holds the containers this call made (by id), which
    it may change in place; ``copied`` counts the entries of the containers it copied."""

    def __init__(self, root):
        self.root = root
        self.fresh = {}
        self.copied = 0

    def _own(self, container):
        """``container`` itself if this call made it, else a fresh copy of it."""
        if id(container) in self.fresh:
            return container
        copy = _COPY[_kind(container)](container)
        self.copied += len(copy)
        self.fresh[id(copy)] = copy
        return copy

    def apply(self, diff):
        if diff.op == "resync":
            self.root = diff.value
            return
        # Check the whole diff against the value before changing anything, so that a diff
        # that does not fit leaves the value as it was.
        chain = [self.root]
        for i, step in enumerate(diff.at):
            target = chain[-1]
            where = "step %d (%s)" % (i, _text(step))
            kind = _kind(target)
            if kind == "map":
                if step not in target:
                    raise _misfit(diff, where + " is not a key of the map there")
                chain.append(target[step])
            elif kind == "list":
                if type(step) is not int or not 0 <= step < len(target):
                    raise _misfit(diff, where + " is not an index of the list there")
                chain.append(target[step])
            else:
                raise _misfit(diff, where + " goes into a " + kind)
        target = chain[-1]
        expected = _EXPECTED.get(diff.op)
        if expected is not None and _kind(target) != expected:
            raise _misfit(diff, "the value there is a %s, not a %s" % (_kind(target), expected))
        if diff.op in ("seq_insert", "seq_remove"):
            bound = len(target) if diff.op == "seq_insert" else len(target) - 1
            if type(diff.index) is not int or not 0 <= diff.index <= bound:
                raise _misfit(diff, "index %s is out of range for %d elements"
                              % (diff.index, len(target)))
        # Copy the containers on the path, root first, then change the last one.
        if not diff.at:
            if diff.op == "replace":
                self.root = diff.value
                return
            changed = self.root = self._own(self.root)
        else:
            parent = self.root = self._own(self.root)
            for step, child in zip(diff.at[:-1], chain[1:-1]):
                parent[step] = parent = self._own(child)
            if diff.op == "replace":
                parent[diff.at[-1]] = diff.value
                return
            parent[diff.at[-1]] = changed = self._own(target)
        if diff.op == "key_set":
            changed[diff.key] = diff.value
        elif diff.op == "key_removed":
            changed.pop(diff.key, None)
        elif diff.op == "set_added":
            changed.add(diff.value)
        elif diff.op == "set_removed":
            changed.discard(diff.value)
        elif diff.op == "seq_insert":
            changed.insert(diff.index, diff.value)
        else:
            del changed[diff.index]


_EXPECTED = {"key_set": "map", "key_removed": "map", "set_added": "set", "set_removed": "set",
             "seq_insert": "list", "seq_remove": "list"}


def apply_diffs(value, diffs):
    """The value after applying ``diffs`` in order to ``value`` (which is not changed).
    Raises strata.InvalidArgument (naming the diff and the step) when a diff does not fit:
    a step into something that is not a map or list or that is absent, a container of the
    wrong kind, an index out of range."""
    return applied(value, diffs)[0]


def applied(value, diffs):
    """(the value after ``diffs``, how many entries of containers were copied for it)."""
    writer = _Writer(value)
    for diff in diffs:
        writer.apply(diff)
    return writer.root, writer.copied


def apply_diff(value, diff):
    """The value after applying one diff to ``value`` (see apply_diffs)."""
    return apply_diffs(value, (diff,))
