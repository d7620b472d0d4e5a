"""Strata values in Python, and their FlexBuffers and JSON forms (docs/values.md).

Python to Strata: None -> nil, bool -> bool, int -> int (int64 range checked), float ->
double, str -> string (UTF-8; surrogate escapes from a decoded non-UTF-8 string give its
bytes back), bytes/bytearray/memoryview -> bytes, list/tuple -> list, dict (any Mapping)
-> map with any hashable keys, set/frozenset -> set.

Strata to Python: the same types back, with lists as ``list``, maps as ``dict`` and sets as
``set``; inside a map key or a set element, where Python needs hashable values, lists
become ``tuple``, sets ``frozenset`` and maps :class:`FrozenDict`. A string that is not
valid UTF-8 decodes to a ``str`` with surrogate escapes (``errors="surrogateescape"``),
which encodes back to the same bytes. Python cannot keep ``1`` and ``1.0`` (or ``True``
and ``1``) apart as dict keys or set elements: such a pair collapses into one entry.

The encoder writes every FlexBuffers slot 8 bytes wide: the server reads any width, and a
fixed width keeps the encoder a single pass (python3-flatbuffers' own Builder takes about
12 µs for a two-step path, several times this). The decoder reads what any FlexBuffers
writer produces, and raises ValueError for bytes that are not a FlexBuffer.
"""

import base64
import json
import math
import struct
from collections.abc import Mapping

__all__ = ["encode", "decode", "to_json", "from_json", "FrozenDict", "MAX_DEPTH"]

MAX_DEPTH = 64
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1

# FlexBuffers type codes (flexbuffers.h).
_NULL, _INT, _UINT, _FLOAT, _KEY, _STRING = 0, 1, 2, 3, 4, 5
_INDIRECT_INT, _INDIRECT_UINT, _INDIRECT_FLOAT = 6, 7, 8
_MAP, _VECTOR = 9, 10
_VECTOR_INT, _VECTOR_STRING_DEPRECATED = 11, 15
_VECTOR_INT2, _VECTOR_FLOAT4 = 16, 24
_BLOB, _BOOL, _VECTOR_BOOL = 25, 26, 36

_u64 = struct.Struct("<Q").pack
_i64 = struct.Struct("<q").pack
_f64 = struct.Struct("<d").pack
_ZERO = _u64(0)
_ONE = _u64(1)
_W8 = 3  # the bit-width code of 8-byte slots
_RESERVED_MAP_KEYS = ("$set", "$map")


class FrozenDict(Mapping):
    """A read-only, hashable dict: what a map decodes to where it is a map key or a set
    element. It encodes as a map."""

    __slots__ = ("_d", "_hash")

    def __init__(self, *args, **kwargs):
        self._d = dict(*args, **kwargs)
        self._hash = None

    def __getitem__(self, key):
        return self._d[key]

    def __iter__(self):
        return iter(self._d)

    def __len__(self):
        return len(self._d)

    def __hash__(self):
        if self._hash is None:
            self._hash = hash(frozenset(self._d.items()))
        return self._hash

    def __eq__(self, other):
        return isinstance(other, Mapping) and dict(self._d) == dict(other)

    def __repr__(self):
        return "FrozenDict(%r)" % (self._d,)


# ---- encoding ------------------------------------------------------------------------------

def encode(value):
    """The FlexBuffers encoding of ``value`` (bytes). Raises ValueError for a value with no
    Strata form: an int outside int64, an unsupported type, nesting deeper than 64."""
    buf = bytearray()
    t, slot, target = _put(buf, value, 0)
    buf += slot if slot is not None else _u64(len(buf) - target)
    buf.append((t << 2) | _W8)
    buf.append(8)
    return bytes(buf)


def _put(buf, v, depth):
    """Writes what ``v`` needs outside its slot; returns (type, slot bytes, None) for an
    inline value or (type, None, position) for one its slot points at."""
    cls = type(v)
    if cls is str:
        data = v.encode("utf-8", "surrogateescape")
        buf += _u64(len(data))
        pos = len(buf)
        buf += data
        buf.append(0)
        return _STRING, None, pos
    if cls is int:
        if not _INT64_MIN <= v <= _INT64_MAX:
            raise ValueError("int %d is outside the int64 range" % v)
        return _INT, _i64(v), None
    if v is None:
        return _NULL, _ZERO, None
    if cls is bool:
        return _BOOL, _ONE if v else _ZERO, None
    if cls is float:
        return _FLOAT, _f64(v), None
    if depth >= MAX_DEPTH:
        raise ValueError("value nested deeper than %d levels" % MAX_DEPTH)
    if cls is list or cls is tuple:
        return _vector(buf, v, depth)
    if cls is dict or isinstance(v, Mapping):
        return _map(buf, v, depth)
    if cls is set or cls is frozenset:
        return _tagged(buf, "$set", list(v), depth)
    if cls is bytes or cls is bytearray or cls is memoryview:
        data = bytes(v)
        buf += _u64(len(data))
        pos = len(buf)
        buf += data
        return _BLOB, None, pos
    # Subclasses (an IntEnum, a str subclass...) as the type they derive from.
    for base in (bool, int, float, str, bytes, bytearray, list, tuple, set, frozenset):
        if isinstance(v, base):
            return _put(buf, base(v), depth)
    raise ValueError("a %s has no Strata value form" % cls.__name__)


def _slots(buf, children):
    """Writes the slots and type bytes of ``children`` (results of _put) at the end."""
    for t, slot, target in children:
        buf += slot if slot is not None else _u64(len(buf) - target)
    buf += bytes((t << 2) | _W8 for t, _, _ in children)


def _vector(buf, items, depth):
    children = [_put(buf, item, depth + 1) for item in items]
    buf += _u64(len(children))
    pos = len(buf)
    _slots(buf, children)
    return _VECTOR, None, pos


def _keyed_map(buf, keys, children):
    """A FlexBuffers map of ``keys`` (sorted bytes without 0x00) to written ``children``."""
    key_positions = []
    for k in keys:
        key_positions.append(len(buf))
        buf += k
        buf.append(0)
    buf += _u64(len(keys))
    keys_pos = len(buf)
    for p in key_positions:
        buf += _u64(len(buf) - p)
    buf += _u64(len(buf) - keys_pos)  # the map's prefix: its keys vector,
    buf += _u64(8)                      # that vector's byte width,
    buf += _u64(len(keys))              # and its size
    pos = len(buf)
    _slots(buf, children)
    return _MAP, None, pos


def _tagged(buf, tag, items, depth):
    vector = _vector(buf, items, depth + 1)
    return _keyed_map(buf, [tag.encode()], [vector])


def _map(buf, m, depth):
    if all(type(k) is str and "\0" not in k for k in m) and not (
            len(m) == 1 and next(iter(m)) in _RESERVED_MAP_KEYS):
        entries = sorted((k.encode("utf-8", "surrogateescape"), v) for k, v in m.items())
        children = [_put(buf, v, depth + 1) for _, v in entries]
        return _keyed_map(buf, [k for k, _ in entries], children)
    flat = []
    for k, v in m.items():  # any order: the server sorts
        flat.append(k)
        flat.append(v)
    return _tagged(buf, "$map", flat, depth)


# ---- decoding ------------------------------------------------------------------------------

_unpack_from = struct.unpack_from
_UINT_FORMATS = {1: "<B", 2: "<H", 4: "<I", 8: "<Q"}
_INT_FORMATS = {1: "<b", 2: "<h", 4: "<i", 8: "<q"}
_FLOAT_FORMATS = {4: "<f", 8: "<d"}


def decode(data):
    """The value a FlexBuffer holds. Raises ValueError for bytes that are not one (or hold
    a value deeper than 64 levels)."""
    buf = bytes(data)
    if len(buf) < 3:
        raise ValueError("a FlexBuffer has at least 3 bytes, got %d" % len(buf))
    width = buf[-1]
    if width not in _UINT_FORMATS or width + 2 > len(buf):
        raise ValueError("bad FlexBuffer root width %d" % width)
    try:
        return _read(buf, len(buf) - 2 - width, width, buf[-2], 0, False)
    except (struct.error, IndexError, KeyError, UnicodeError, RecursionError) as e:
        raise ValueError("bad FlexBuffer: %s" % e) from None


def _uint(buf, pos, width):
    if pos < 0:
        raise IndexError("offset before the buffer")
    return _unpack_from(_UINT_FORMATS[width], buf, pos)[0]


def _target(buf, pos, width):
    target = pos - _uint(buf, pos, width)
    if target < 0 or target >= len(buf):
        raise IndexError("offset outside the buffer")
    return target


def _hashable(v):
    """``v`` with every list, map and set in it made hashable (tuple, FrozenDict,
    frozenset)."""
    t = type(v)
    if t is list or t is tuple:
        return tuple(_hashable(e) for e in v)
    if t is dict or t is FrozenDict:
        return FrozenDict({_hashable(k): _hashable(x) for k, x in v.items()})
    if t is set or t is frozenset:
        return frozenset(_hashable(e) for e in v)
    return v


def _read(buf, pos, parent_width, packed, depth, as_key):
    """The value in the slot at ``pos`` (``parent_width`` bytes wide) of packed type
    ``packed``; ``as_key``: the value is a map key or set element (hashable forms)."""
    t = packed >> 2
    if t == _INT:
        return _unpack_from(_INT_FORMATS[parent_width], buf, pos)[0]
    if t == _STRING or t == _BLOB:
        width = 1 << (packed & 3)
        target = _target(buf, pos, parent_width)
        size = _uint(buf, target - width, width)
        data = buf[target:target + size]
        if len(data) != size:
            raise IndexError("string past the end")
        return data.decode("utf-8", "surrogateescape") if t == _STRING else data
    if t == _NULL:
        return None
    if t == _BOOL:
        return _uint(buf, pos, parent_width) != 0
    if t == _FLOAT:
        return _unpack_from(_FLOAT_FORMATS[parent_width], buf, pos)[0]
    if t == _UINT:
        return _checked_uint(_uint(buf, pos, parent_width))
    if t in (_INDIRECT_INT, _INDIRECT_UINT, _INDIRECT_FLOAT):
        width = 1 << (packed & 3)
        target = _target(buf, pos, parent_width)
        if t == _INDIRECT_INT:
            return _unpack_from(_INT_FORMATS[width], buf, target)[0]
        if t == _INDIRECT_UINT:
            return _checked_uint(_uint(buf, target, width))
        return _unpack_from(_FLOAT_FORMATS[width], buf, target)[0]
    if t == _KEY:
        return _key(buf, _target(buf, pos, parent_width))
    if depth >= MAX_DEPTH:
        raise ValueError("value nested deeper than %d levels" % MAX_DEPTH)
    width = 1 << (packed & 3)
    target = _target(buf, pos, parent_width)
    if t == _VECTOR:
        size = _uint(buf, target - width, width)
        types = target + size * width
        if types + size > len(buf):
            raise IndexError("vector past the end")
        items = [_read(buf, target + i * width, width, buf[types + i], depth + 1, as_key)
                 for i in range(size)]
        return tuple(items) if as_key else items
    if t == _MAP:
        return _read_map(buf, target, width, depth, as_key)
    if _VECTOR_INT <= t <= _VECTOR_STRING_DEPRECATED or t == _VECTOR_BOOL:  # typed, sized
        element = _BOOL if t == _VECTOR_BOOL else t - _VECTOR_INT + _INT
        size = _uint(buf, target - width, width)
    elif _VECTOR_INT2 <= t <= _VECTOR_FLOAT4:  # fixed typed: 2, 3 or 4 elements, no size
        element = (t - _VECTOR_INT2) % 3 + _INT
        size = (t - _VECTOR_INT2) // 3 + 2
    else:
        raise ValueError("unknown FlexBuffers type %d" % t)
    packed_element = (element << 2) | (packed & 3)
    items = [_read(buf, target + i * width, width, packed_element, depth + 1, as_key)
             for i in range(size)]
    return tuple(items) if as_key else items


def _checked_uint(u):
    if u > _INT64_MAX:
        raise ValueError("unsigned int %d is outside the int64 range" % u)
    return u


def _key(buf, target):
    end = buf.index(b"\0", target)
    return buf[target:end].decode("utf-8", "surrogateescape")


def _read_map(buf, target, width, depth, as_key):
    size = _uint(buf, target - width, width)
    keys_width = _uint(buf, target - 2 * width, width)
    if keys_width not in _UINT_FORMATS:
        raise ValueError("bad map keys width %d" % keys_width)
    keys_pos = _target(buf, target - 3 * width, width)
    types = target + size * width
    if types + size > len(buf):
        raise IndexError("map past the end")
    keys = [_key(buf, _target(buf, keys_pos + i * keys_width, keys_width)) for i in range(size)]
    if size == 1 and keys[0] in _RESERVED_MAP_KEYS:
        packed = buf[types]
        if packed >> 2 != _VECTOR:
            raise ValueError("%s holds a FlexBuffers type %d, not a vector" % (keys[0], packed >> 2))
        vector = _target(buf, target, width)
        vector_width = 1 << (packed & 3)
        n = _uint(buf, vector - vector_width, vector_width)
        vector_types = vector + n * vector_width
        if vector_types + n > len(buf):
            raise IndexError("vector past the end")

        def item(i, key):
            return _read(buf, vector + i * vector_width, vector_width, buf[vector_types + i],
                         depth + 1, key)

        if keys[0] == "$set":
            elements = [item(i, True) for i in range(n)]
            return frozenset(elements) if as_key else set(elements)
        if n % 2:
            raise ValueError("$map holds an odd number of values")
        out = {item(i, True): item(i + 1, as_key) for i in range(0, n, 2)}
        return FrozenDict(out) if as_key else out
    out = {keys[i]: _read(buf, target + i * width, width, buf[types + i], depth + 1, as_key)
           for i in range(size)}
    return FrozenDict(out) if as_key else out


# ---- JSON form -----------------------------------------------------------------------------

_TAGS = ("$bytes", "$double", "$string", "$map", "$set")
_DOUBLE_NAMES = {"NaN": math.nan, "-NaN": -math.nan, "Infinity": math.inf,
                 "-Infinity": -math.inf}


def from_json(text):
    """The value that ``text`` (JSON form, docs/values.md) stands for: ``{"$bytes": ...}``,
    ``{"$set": [...]}``, ``{"$map": [[k, v], ...]}``... Raises ValueError if it is not."""
    try:
        return json.loads(text, object_pairs_hook=_object, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise ValueError("invalid JSON: %s" % e) from None


def _no_constant(name):
    raise ValueError("invalid JSON: %s (write {\"$double\": \"NaN\"})" % name)


def _object(pairs):
    if len(pairs) == 1 and pairs[0][0] in _TAGS:
        tag, content = pairs[0]
        if tag == "$bytes" or tag == "$string":
            if not isinstance(content, str):
                raise ValueError("%s needs a base64 string" % tag)
            data = base64.b64decode(content, validate=True)
            return data if tag == "$bytes" else data.decode("utf-8", "surrogateescape")
        if tag == "$double":
            if content not in _DOUBLE_NAMES:
                raise ValueError("$double needs NaN, -NaN, Infinity or -Infinity")
            return _DOUBLE_NAMES[content]
        if not isinstance(content, list):
            raise ValueError("%s needs an array" % tag)
        if tag == "$set":
            return {_hashable(e) for e in content}
        out = {}
        for pair in content:
            if not isinstance(pair, list) or len(pair) != 2:
                raise ValueError("$map needs [key, value] pairs")
            out[_hashable(pair[0])] = pair[1]
        return out
    out = {}
    for k, v in pairs:
        if k in out:
            raise ValueError("duplicate key %r" % k)
        out[k] = v
    return out


def to_json(value):
    """The compact JSON form of ``value`` (docs/values.md)."""
    return json.dumps(_jsonable(value), separators=(",", ":"), ensure_ascii=False)


def _is_utf8(s):
    """Whether str `s` is text (no surrogate escapes of undecodable bytes)."""
    try:
        s.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _jsonable(v):
    if v is None or type(v) in (bool, int):
        return v
    if isinstance(v, float):
        if math.isnan(v):
            return {"$double": "-NaN" if math.copysign(1, v) < 0 else "NaN"}
        if math.isinf(v):
            return {"$double": "-Infinity" if v < 0 else "Infinity"}
        return v
    if isinstance(v, str):
        if _is_utf8(v):
            return v
        data = v.encode("utf-8", "surrogateescape")
        return {"$string": base64.b64encode(data).decode()}
    if isinstance(v, (bytes, bytearray, memoryview)):
        return {"$bytes": base64.b64encode(bytes(v)).decode()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(e) for e in v]
    if isinstance(v, (set, frozenset)):
        return {"$set": [_jsonable(e) for e in v]}
    if isinstance(v, Mapping):
        if all(isinstance(k, str) and _is_utf8(k) for k in v) and not (
                len(v) == 1 and next(iter(v)) in _TAGS):
            return {k: _jsonable(x) for k, x in v.items()}
        return {"$map": [[_jsonable(k), _jsonable(x)] for k, x in v.items()]}
    if isinstance(v, int):
        return int(v)
    raise ValueError("a %s has no Strata value form" % type(v).__name__)
