"""Values between Python and Strata (docs/values.md): the encoder and decoder alone, then
round trips through a real server, which stores each value in rt_test's $$kv and returns it
as an ack return."""

import math
import struct

import pytest

import strata
from strata import values as sv

EDGE_CASES = [
    None, True, False, 0, 1, -1, 127, 128, -129, 2**31, 2**63 - 1, -2**63,
    0.0, -0.0, 1.5, 0.1, -1e300, 5e-324, math.inf, -math.inf,
    "", "a", "a\0b", "héllo ✓", "\U0001F600", "x" * 70000,
    b"", b"\0\1\xff", bytes(range(256)),
    [], [[]], [1, "a", None, [2.5, b"x"]], list(range(1000)),
    {}, {"a": 1, "b": {"c": [1, 2]}}, {"": None}, {"a\0b": 1},
    {1: "x", "a": 2}, {None: 1, False: 2, 3: 4, 2.5: 5, "s": 6, b"b": 7},
    {(1, 2): "list key", frozenset({1}): "set key"},
    {"$set": 1}, {"$map": [1]}, {"$set": 1, "x": 2}, {"$bytes": "AAH/"},
    set(), {1, 2, 3}, {"a", 1, None, 2.5, b"b"}, {(1, (2, 3)), frozenset({4})},
    {strata.FrozenDict({1: 2}): [3]},
]


def same(a, b):
    """Equal with the same types throughout (Python's == says 1 == 1.0 == True)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, (dict, strata.FrozenDict)):
        return a == b and all(same(a[k], b[k]) for k in a)
    return a == b


@pytest.mark.parametrize("value", EDGE_CASES, ids=lambda v: repr(v)[:40])
def test_encode_then_decode_gives_the_value_back(value):
    assert same(sv.decode(sv.encode(value)), value)


def test_int_and_double_and_bool_stay_apart():
    decoded = sv.decode(sv.encode([1, 1.0, True, 0, 0.0, False]))
    assert [type(v) for v in decoded] == [int, float, bool, int, float, bool]


def test_nan_keeps_its_sign():
    assert math.copysign(1, sv.decode(sv.encode(math.nan))) == 1
    assert math.copysign(1, sv.decode(sv.encode(-math.nan))) == -1


def test_tuples_encode_as_lists_and_hashable_positions_decode_hashable():
    assert sv.decode(sv.encode((1, 2))) == [1, 2]
    decoded = sv.decode(sv.encode({(1, (2,)): {3: [4]}, "s": {(5,)}}))
    assert decoded == {(1, (2,)): {3: [4]}, "s": {(5,)}}
    key = next(k for k in decoded if k != "s")
    assert type(key) is tuple and type(key[1]) is tuple


def test_non_utf8_strings_round_trip_through_surrogate_escapes():
    s = b"ab\xff\xfe".decode("utf-8", "surrogateescape")
    assert sv.decode(sv.encode(s)) == s
    assert sv.to_json(s) == '{"$string":"YWL//g=="}'
    assert sv.from_json('{"$string":"YWL//g=="}') == s


def test_depth_64_is_accepted_and_65_is_not():
    def nested(depth):
        v = 1
        for _ in range(depth):
            v = [v]
        return v
    assert sv.decode(sv.encode(nested(64))) == nested(64)
    with pytest.raises(ValueError, match="deeper than 64"):
        sv.encode(nested(65))


def test_values_with_no_strata_form_are_refused():
    for bad in (2**63, -2**63 - 1, object(), 1j):
        with pytest.raises(ValueError):
            sv.encode(bad)


def test_decodes_the_examples_of_docs_values_md():
    # The C++ encoder's bytes, as docs/values.md shows them.
    assert sv.decode(bytes.fromhex("6100010301010101040224 01".replace(" ", ""))) == {"a": 1}
    assert sv.decode(bytes.fromhex("247365740002010204040 10b01010109280224 01".replace(" ", ""))) == {1, 2}
    assert sv.decode(bytes.fromhex(
        "246d617000017800020104041401 0e01010109280224 01".replace(" ", ""))) == {1: "x"}


def test_garbage_is_a_value_error_not_a_crash():
    # Whatever the bytes, decode answers a value or raises ValueError: never another error.
    refused = 0
    for data in (b"", b"\x01", b"\xff\xff\xff", b"\x00\x00\x24\x09", bytes(64) + b"\x24\x01",
                 b"\x05\x00\x00\x14\x01", b"\x01\x00\x24\x01"):
        try:
            sv.decode(data)
        except ValueError:
            refused += 1
    assert refused >= 4


def test_json_form():
    assert sv.to_json({"a": [1, 1.0, None, True]}) == '{"a":[1,1.0,null,true]}'
    assert sv.to_json({1: b"ab"}) == '{"$map":[[1,{"$bytes":"YWI="}]]}'
    assert sv.to_json(math.nan) == '{"$double":"NaN"}'
    assert sv.to_json({3, 1}) in ('{"$set":[1,3]}', '{"$set":[3,1]}')
    assert sv.from_json('{"$map":[[[1,2],3]]}') == {(1, 2): 3}
    assert sv.from_json('{"$set":[[1],[2]]}') == {(1,), (2,)}
    assert sv.from_json('{"$double":"-Infinity"}') == -math.inf
    assert sv.from_json('{"$other":1}') == {"$other": 1}
    for bad in ('{"a":1,"a":2}', '{"$set":1}', '{"$bytes":"***"}', "NaN", "[1,"):
        with pytest.raises(ValueError):
            sv.from_json(bad)


# ---- through the server --------------------------------------------------------------------

@pytest.mark.parametrize("value", EDGE_CASES, ids=lambda v: repr(v)[:40])
def test_round_trip_through_the_server(client, value):
    key = "v-%r" % (value,)
    key = key[:200]
    result = client.append("rt_test", "*kv", {"key": key, "value": value})
    assert result.failure is None
    partition, returned = result.ack_returns["kv"]
    assert same(returned, value)
    assert same(client.select_one("rt_test", "$$kv", strata.Path().key(key)), value)
    records = client.read_depot("rt_test", "*kv", partition=partition,
                                from_offset=result.offset, limit=1)
    assert same(records[0].value["value"], value)


def test_the_server_canonicalises_nan_and_sorts_maps_and_sets(client):
    value = {"z": 1, "a": {3, 1, 2}, "m": {2: "b", 1: "a"}, "n": math.nan}
    client.append("rt_test", "*kv", {"key": "canon", "value": value})
    back = client.select_one("rt_test", "$$kv", strata.Path().key("canon"))
    assert list(back) == ["a", "m", "n", "z"]
    assert list(back["m"]) == [1, 2]
    assert math.isnan(back["n"])


def test_value_errors_name_what_was_wrong(client):
    with pytest.raises(strata.InvalidArgument, match="record: int .* outside the int64 range"):
        client.append("rt_test", "*kv", {"key": "k", "value": 2**64})
    with pytest.raises(strata.InvalidArgument, match="argument 0: a object has no Strata"):
        client.invoke("qtest", "get", object())
    with pytest.raises(ValueError):  # InvalidArgument is a ValueError too
        client.select("rt_test", "$$kv", [["key", 2**70]])
