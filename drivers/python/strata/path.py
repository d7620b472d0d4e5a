"""Paths into a PState, for select and select_one (docs/paths.md).

``Path().key("alice").range(from_="m", limit=20).all()`` builds the wire form
``[["key", "alice"], ["range", {"from": "m", "limit": 20}], ["all"]]``; every method returns
a new Path. Wherever the client takes a path it also takes that wire form as a list, or its
JSON text (``'[["key", "alice"]]'``, docs/values.md's JSON form for the values in it).
Clients only read, so the builder has the navigators and no terminals.
"""

from .values import from_json

__all__ = ["Path", "path_value"]

_FILTER_OPS = ("eq", "ne", "lt", "le", "gt", "ge", "exists")
_UNSET = object()


class Path:
    """An immutable sequence of navigators."""

    __slots__ = ("_steps",)

    def __init__(self, steps=()):
        self._steps = tuple(steps)

    def _with(self, *step):
        return Path(self._steps + (list(step),))

    def key(self, *keys):
        """The value at each key in turn (a missing key reads nil)."""
        if not keys:
            raise ValueError("key() needs at least one key")
        return self._with("key", *keys)

    def must(self, *keys):
        """Like key(), but navigates nowhere when a key is absent."""
        if not keys:
            raise ValueError("must() needs at least one key")
        return self._with("must", *keys)

    def nth(self, index):
        """Element ``index`` (0-based) of a list."""
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise ValueError("nth() needs an int >= 0, got %r" % (index,))
        return self._with("nth", index)

    def first(self):
        return self._with("first")

    def last(self):
        return self._with("last")

    def all(self):
        """Every element (a map's as [key, value] entries)."""
        return self._with("all")

    def map_keys(self):
        return self._with("map_keys")

    def map_vals(self):
        return self._with("map_vals")

    def size(self):
        return self._with("size")

    def range(self, from_=_UNSET, to=_UNSET, *, from_inclusive=True, to_inclusive=False,
              limit=None, reverse=False):
        """The sorted submap or subset with keys from ``from_`` (inclusive unless
        ``from_inclusive=False``) to ``to`` (exclusive unless ``to_inclusive=True``), the
        first ``limit`` of them (the last with ``reverse=True``)."""
        options = {}
        if from_ is not _UNSET:
            options["from"] = from_
            if not from_inclusive:
                options["from_inclusive"] = False
        if to is not _UNSET:
            options["to"] = to
            if to_inclusive:
                options["to_inclusive"] = True
        if limit is not None:
            options["limit"] = limit
        if reverse:
            options["reverse"] = True
        return self._with("range", options)

    def filter(self, op, arg=_UNSET, on=None):
        """Stays only where the predicate holds: ``filter("gt", 75)`` compares the value,
        ``filter("gt", 75, on=Path().nth(1))`` what that path selects from it, and
        ``filter("exists")`` holds for anything but nil."""
        if op not in _FILTER_OPS:
            raise ValueError("filter op must be one of %s, got %r" % (", ".join(_FILTER_OPS), op))
        if op == "exists":
            if arg is not _UNSET or on is not None:
                raise ValueError('filter("exists") takes no argument')
            return self._with("filter", op)
        if arg is _UNSET:
            raise ValueError("filter(%r) needs an argument" % op)
        if on is None:
            return self._with("filter", op, arg)
        return self._with("filter", op, arg, path_value(on))

    def null_to(self, value):
        """At nil or an absent position, navigates to ``value`` instead."""
        return self._with("null_to", value)

    def to_value(self):
        """The wire form: a list of steps, each a list starting with its name."""
        return [list(step) for step in self._steps]

    def __eq__(self, other):
        return isinstance(other, Path) and self._steps == other._steps

    def __hash__(self):
        return hash(repr(self._steps))

    def __repr__(self):
        return "Path(%r)" % (self.to_value(),)


def path_value(path):
    """The wire form of ``path``: a Path, a list of steps, or the JSON text of one."""
    if isinstance(path, Path):
        return path.to_value()
    if isinstance(path, str):
        path = from_json(path)
    if not isinstance(path, (list, tuple)):
        raise ValueError("a path is a Path, a list of steps or its JSON text, not %s"
                         % type(path).__name__)
    return list(path)
