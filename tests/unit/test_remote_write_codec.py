"""The access gateway's remote_write codec (components/access-gateway/remote_write.py): snappy
block and WriteRequest protobuf by hand, checked against a body that Debian 12's Prometheus
2.42 really sent and a block that a real snappy encoder really made (see tests/unit/data/)."""

from __future__ import annotations

import math
import random
import struct
from pathlib import Path

import pytest
from gateway_code import gateway_module

DATA = Path(__file__).resolve().parent / "data"
RECORDED = DATA / "prometheus-2.42-remote-write.bin"
STALE_NAN = 0x7FF0000000000002  # Prometheus' stale marker (value.StaleNaN)


rw = gateway_module("remote_write")


def bits(value: float) -> bytes:
    return struct.pack("<d", value)


def from_bits(pattern: int) -> float:
    return struct.unpack("<d", pattern.to_bytes(8, "little"))[0]


def recorded() -> list:
    return rw.decode_write_request(rw.snappy_decompress(RECORDED.read_bytes()))


def assert_same_series(got: list, want: list) -> None:
    """Equal, NaN included: a NaN sample must come back as the very same 64 bits."""
    assert [s.labels for s in got] == [s.labels for s in want]
    for g, w in zip(got, want, strict=True):
        assert [x.timestamp_ms for x in g.samples] == [x.timestamp_ms for x in w.samples]
        assert [bits(x.value) for x in g.samples] == [bits(x.value) for x in w.samples]


def test_recorded_prometheus_2_42_payload():
    series = recorded()
    names = {dict(s.labels)["__name__"] for s in series}
    assert names == {"up", "prometheus_build_info", "scrape_duration_seconds"}
    for one in series:
        labels = dict(one.labels)
        assert labels["site"] == "liar"  # from global.external_labels
        assert labels["job"] == "prometheus"
        assert list(one.labels) == sorted(one.labels)
        assert len(labels) == len(one.labels)
        assert one.samples
        for sample in one.samples:
            assert 1.7e12 < sample.timestamp_ms < 1e13  # milliseconds, not seconds
            assert not math.isnan(sample.value)
        if labels["__name__"] == "up":
            assert [s.value for s in one.samples] == [1.0] * len(one.samples)
        if labels["__name__"] == "prometheus_build_info":
            assert labels["version"].startswith("2.42.0")
        if labels["__name__"] == "scrape_duration_seconds":
            assert all(0 < s.value < 10 for s in one.samples)


def test_recorded_payload_reencodes_to_the_same_protobuf():
    raw = rw.snappy_decompress(RECORDED.read_bytes())
    assert rw.encode_write_request(rw.decode_write_request(raw)) == raw


def test_round_trip_keeps_every_value_bit_exact():
    series = [
        rw.Series(
            labels=(("__name__", "up"), ("city", "中文"), ("empty", ""), ("site", "hubei")),
            samples=(
                rw.Sample(1.0, 1_700_000_000_123),
                rw.Sample(0.0, 0),
                rw.Sample(-0.0, -1),
                rw.Sample(math.nan, -1_700_000_000_000),
                rw.Sample(from_bits(STALE_NAN), 1_700_000_000_124),
                rw.Sample(math.inf, -(1 << 63)),
                rw.Sample(-math.inf, (1 << 63) - 1),
                rw.Sample(5e-324, 1),
                rw.Sample(-1.5e300, 2),
            ),
        ),
        rw.Series(labels=(), samples=()),
        rw.Series(labels=(("", ""),), samples=(rw.Sample(2.5, 3),)),
        rw.Series(labels=(("a" * 300, "ü" * 5000),), samples=()),
    ]
    body = rw.snappy_compress(rw.encode_write_request(series))
    got = rw.decode_write_request(rw.snappy_decompress(body))
    assert_same_series(got, series)
    assert math.isnan(got[0].samples[3].value)
    assert bits(got[0].samples[4].value) == STALE_NAN.to_bytes(8, "little")
    assert got[0].samples[5].timestamp_ms == -(1 << 63)
    assert got[0].labels[1] == ("city", "中文")
    assert rw.decode_write_request(rw.encode_write_request([])) == []
    assert rw.encode_write_request(iter(series)) == rw.encode_write_request(series)


def test_timestamp_outside_int64_is_refused():
    for timestamp in (1 << 63, -(1 << 63) - 1):
        with pytest.raises(ValueError):
            rw.encode_write_request([rw.Series((), (rw.Sample(1.0, timestamp),))])


@pytest.mark.parametrize("size", [0, 1, 59, 60, 61, 62, 255, 256, 257, 300, 65535, 65536,
                                  65537, 3 * 65536 + 7])
def test_snappy_compress_round_trips_every_literal_length(size):
    data = random.Random(size).randbytes(size)
    assert rw.snappy_decompress(rw.snappy_compress(data)) == data


def test_with_site_overwrites_adds_and_sorts():
    liar = rw.Series((("__name__", "up"), ("site", "liar"), ("job", "node")),
                     (rw.Sample(1.0, 1_700_000_000_000),))
    missing = rw.Series((("zone", "mgmt"), ("__name__", "up"), ("instance", "a:9100")), ())
    doubled = rw.Series((("site", "a"), ("__name__", "x"), ("site", "b")), ())
    out = rw.with_site(iter([liar, missing, doubled]), "hubei")
    assert out[0] == rw.Series(
        (("__name__", "up"), ("job", "node"), ("site", "hubei")), liar.samples)
    assert out[1].labels == (("__name__", "up"), ("instance", "a:9100"), ("site", "hubei"),
                             ("zone", "mgmt"))
    assert out[2].labels == (("__name__", "x"), ("site", "hubei"))
    assert liar.labels[1] == ("site", "liar")  # the input is left as it was
    custom = rw.with_site([missing], "hubei", label="province")
    assert dict(custom[0].labels)["province"] == "hubei"
    assert "site" not in dict(custom[0].labels)


def test_with_site_sorts_like_go_bytewise():
    series = rw.Series((("é", "1"), ("z", "2"), ("中", "3"), ("Z", "4"), ("_", "5")), ())
    names = [name for name, _ in rw.with_site([series], "s")[0].labels]
    assert names == sorted(names, key=lambda n: n.encode("utf-8"))


def test_recorded_payload_rewritten_to_hubei_and_forwarded():
    original = recorded()
    forwarded = rw.snappy_compress(rw.encode_write_request(rw.with_site(original, "hubei")))
    received = rw.decode_write_request(rw.snappy_decompress(forwarded))
    assert len(received) == len(original)
    for got, want in zip(received, original, strict=True):
        assert dict(got.labels)["site"] == "hubei"
        assert [kv for kv in got.labels if kv[0] != "site"] == \
            [kv for kv in want.labels if kv[0] != "site"]
        assert list(got.labels) == sorted(got.labels)
    assert_same_series([rw.Series(tuple(kv for kv in s.labels if kv[0] != "site"), s.samples)
                        for s in received],
                       [rw.Series(tuple(kv for kv in s.labels if kv[0] != "site"), s.samples)
                        for s in original])


def real_encoder_plaintext() -> bytes:
    return "".join(f"row {i}: abcabcabcabc and some 中文\n" for i in range(70)).encode()


def test_block_from_a_real_snappy_encoder():
    # Made once with python-snappy 0.7.3 (cramjam 2.14.0) in a throwaway venv:
    # snappy.compress(real_encoder_plaintext()); it holds literal, copy-1 and copy-2 elements.
    # That encoder never emits copy-4 (its matches stay inside 64 KiB blocks): see below.
    block = (DATA / "snappy-block-python-snappy-0.7.3.bin").read_bytes()
    assert len(block) < len(real_encoder_plaintext()) // 4
    assert rw.snappy_decompress(block) == real_encoder_plaintext()


def test_hand_assembled_block_with_every_copy_element():
    head = bytes(range(256)) + b"x" * 44
    elements = [
        b"\xf4\x2b\x01" + head,       # literal, length 300 in two extra bytes
        b"\x25\x2c",                  # copy-1 length 5, offset 300 (high bits in the tag)
        b"\x1c" + b"abcdefgh",        # literal, length 8 in the tag
        b"\x01\x08",                  # copy-1 length 4, offset 8
        b"\x16\x0c\x00",              # copy-2 length 6, offset 12
        b"\x0b\x12\x00\x00\x00",      # copy-4 length 3, offset 18
        b"\x26\x03\x00",              # copy-2 length 10, offset 3 (overlapping)
        b"\x0d\x01",                  # copy-1 length 7, offset 1 (run)
        b"\xff\x00\x00\x01\x00",      # copy-4 length 64, offset 65536
    ]
    middle = head + head[:5] + b"abcdefgh" + b"abcd" + b"abcdef" + b"abc" + b"abcabcabca" + \
        b"aaaaaaa"
    filler = bytes(65536 - len(middle))
    expected = middle + filler + (middle + filler)[:64]
    filler_literal = rw.snappy_compress(filler)[len(rw._varint(len(filler))):]
    block = (rw._varint(len(expected)) + b"".join(elements[:8]) + filler_literal +
             elements[8])
    assert rw.snappy_decompress(block) == expected


@pytest.mark.parametrize("block, reason", [
    (b"", "truncated varint"),
    (b"\x80", "truncated varint"),
    (b"\x05\x00a\x01\x00", "offset 0"),
    (b"\x05\x00a\x01\x02", "beyond output"),
    (b"\x05\x00a\x02\x05\x00", "beyond output"),
    (b"\x05\x00a\x03\x01\x00\x00", "truncated copy"),
    (b"\x05\x08abc", "3 bytes decoded, 5 declared"),
    (b"\x02\x08abc", "longer than declared"),
    (b"\x02\x00a\x01\x01", "longer than declared"),
    (b"\x05\x10ab", "truncated literal"),
    (b"\x05\xf0", "truncated literal length"),
    (b"\xff\xff\xff\xff\x0f", "above limit"),
    (b"\x80\x80\x80\x80\x80\x01", "varint longer than 5 bytes"),
])
def test_malformed_snappy_raises_value_error(block, reason):
    with pytest.raises(ValueError, match=reason):
        rw.snappy_decompress(block)


def test_snappy_size_limit_is_checked_before_anything_else():
    body = rw.snappy_compress(b"x" * 100)
    assert rw.snappy_decompress(body, max_size=100) == b"x" * 100
    with pytest.raises(ValueError, match="above limit"):
        rw.snappy_decompress(body, max_size=99)


def test_every_truncation_of_the_recorded_body_is_refused():
    body = RECORDED.read_bytes()
    for end in range(len(body)):
        with pytest.raises(ValueError):
            rw.snappy_decompress(body[:end])


def _label(name: bytes, value: bytes) -> bytes:
    inner = b"\x0a" + bytes([len(name)]) + name + b"\x12" + bytes([len(value)]) + value
    return b"\x0a" + bytes([len(inner)]) + inner


@pytest.mark.parametrize("raw, reason", [
    (b"\x0a", "truncated varint"),
    (b"\x0a\x05\x0a\x03", "past the end"),
    (b"\x0a\x80", "truncated varint"),
    (b"\x0b", "wire type 3"),
    (b"\x0c", "wire type 4"),
    (b"\x0e", "wire type 6"),
    (b"\x0f", "wire type 7"),
    (b"\x0a\x01\x0b", "wire type 3"),           # a group inside a TimeSeries
    (b"\x1a\x01\x0c", None),                    # inside skipped metadata: never looked at
    (b"\x08" + b"\x80" * 10 + b"\x01", "longer than 10 bytes"),
    (b"\x08" + b"\xff" * 9 + b"\x7f", "overflows 64 bits"),
    (b"\x08\x01", "wire type 0, expected 2"),   # WriteRequest.timeseries as a varint
    (b"\x0a\x02\x12\x00", None),                # an empty Sample is all defaults
    (b"\x0a\x04\x12\x02\x08\x01", "wire type 0, expected 1"),
    (b"\x0a\x0b\x12\x09\x10" + b"\xff" * 8, "truncated varint"),
    (b"\x0a\x08" + _label(b"n", b"\xff"), "not UTF-8"),
    (b"\x00\x01", "field number 0"),
    (b"\x0d\x00\x00\x00", "past the end"),     # fixed32 cut short
    (b"\x09\x00\x00\x00\x00\x00\x00\x00", "past the end"),
])
def test_malformed_protobuf_raises_value_error(raw, reason):
    if reason is None:
        rw.decode_write_request(raw)
        return
    with pytest.raises(ValueError, match=reason):
        rw.decode_write_request(raw)


def test_every_truncation_of_the_recorded_protobuf_decodes_or_raises_value_error():
    raw = rw.snappy_decompress(RECORDED.read_bytes())
    boundaries = 0
    for end in range(len(raw)):
        try:
            rw.decode_write_request(raw[:end])
            boundaries += 1  # cut between two TimeSeries: a shorter, valid request
        except ValueError:
            pass
    assert boundaries == 15  # the empty request and after each of the first 14 series
    with pytest.raises(ValueError):
        rw.decode_write_request(raw[:-1])


def test_random_corruption_only_ever_raises_value_error():
    body = RECORDED.read_bytes()
    rng = random.Random(2042)
    outcomes = {"decoded": 0, "refused": 0}
    for _ in range(3000):
        mutated = bytearray(body)
        for _ in range(rng.randint(1, 4)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        try:
            rw.decode_write_request(rw.snappy_decompress(bytes(mutated)))
            outcomes["decoded"] += 1  # e.g. a changed byte inside a label value
        except ValueError:
            outcomes["refused"] += 1
    assert outcomes["decoded"] and outcomes["refused"]


def test_fields_remote_write_does_not_forward_are_skipped():
    label = _label(b"__name__", b"up")
    sample = b"\x09" + bits(1.0) + b"\x10\x02" + b"\x78\x00" + b"\x1d\x00\x00\x80\x3f"
    unknown = (b"\x78\x2a"                          # field 15, varint
               + b"\x4d\x01\x02\x03\x04"            # field 9, fixed32
               + b"\x51" + bits(2.0)                # field 10, fixed64
               + b"\x1a\x03abc")                    # field 3, length-delimited
    exemplar = b"\x1a\x0b" + b"\x11" + bits(3.0) + b"\x18\x01"   # TimeSeries.exemplars
    histogram = b"\x22\x02\x08\x05"                              # TimeSeries.histograms
    timeseries = label + unknown + b"\x12" + bytes([len(sample)]) + sample + exemplar + \
        histogram
    metadata = b"\x1a\x0c\x08\x01\x12\x02up\x1a\x04help"          # WriteRequest.metadata
    raw = metadata + b"\x0a" + bytes([len(timeseries)]) + timeseries + metadata + b"\x78\x01"
    assert rw.decode_write_request(raw) == [
        rw.Series((("__name__", "up"),), (rw.Sample(1.0, 2),))]
