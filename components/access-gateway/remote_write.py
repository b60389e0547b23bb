"""Prometheus remote_write 1.0 for the access gateway, in the standard library alone.

The gateway receives the sites' remote_write requests and forwards them to Prometheus with the
`site` label set by the gateway, never by the sender: a site's Prometheus can put any
external_labels it likes on its series. To rewrite one label the gateway has to open the request
(a snappy block wrapping a protobuf `prometheus.WriteRequest`) and build a new one.

The gateway's hosts are Debian 12 with python3.11 and prometheus-client and nothing else, so
there is no snappy or protobuf package to lean on: this module is the small part of both
formats that remote_write uses. Everything in a request that the gateway does not forward
(metadata, exemplars, native histograms, fields a newer sender adds) is skipped, not refused,
so that an upgraded site does not lose its samples at the gateway.

Any malformed input raises ValueError, whatever part of it is wrong, so the caller needs one
except clause to answer 400.
"""

# No `from __future__ import annotations`: with it, @dataclass looks the module up in
# sys.modules, where a module loaded from its file path (as the tests load it) is not.
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

_WIRE_VARINT = 0
_WIRE_FIXED64 = 1
_WIRE_LEN = 2
_WIRE_FIXED32 = 5
_U64 = (1 << 64) - 1
_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1


@dataclass(frozen=True)
class Sample:
    value: float
    timestamp_ms: int


@dataclass(frozen=True)
class Series:
    labels: tuple[tuple[str, str], ...]
    samples: tuple[Sample, ...]



def snappy_decompress(data: bytes, max_size: int = 32 * 1024 * 1024) -> bytes:
    """The plaintext of one snappy block (not the framed stream format)."""
    declared, pos = _read_varint(data, 0, max_bytes=5)
    # The preamble is the sender's word: refuse a huge one before trusting it with memory.
    if declared > max_size:
        raise ValueError(f"snappy: declared size {declared} above limit {max_size}")
    out = bytearray()
    end = len(data)
    while pos < end:
        tag = data[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:
            length = (tag >> 2) + 1
            if length > 60:
                width = length - 60
                if pos + width > end:
                    raise ValueError("snappy: truncated literal length")
                length = int.from_bytes(data[pos:pos + width], "little") + 1
                pos += width
            if pos + length > end:
                raise ValueError("snappy: truncated literal")
            if len(out) + length > declared:
                raise ValueError("snappy: output longer than declared")
            out += data[pos:pos + length]
            pos += length
            continue
        if kind == 1:
            width, length = 1, 4 + ((tag >> 2) & 7)
        else:
            width, length = (2 if kind == 2 else 4), (tag >> 2) + 1
        if pos + width > end:
            raise ValueError("snappy: truncated copy")
        offset = int.from_bytes(data[pos:pos + width], "little")
        if kind == 1:
            offset |= (tag >> 5) << 8
        pos += width
        _copy(out, offset, length, declared)
    if len(out) != declared:
        raise ValueError(f"snappy: {len(out)} bytes decoded, {declared} declared")
    return bytes(out)


def _copy(out: bytearray, offset: int, length: int, declared: int) -> None:
    if offset == 0:
        raise ValueError("snappy: copy offset 0")
    if offset > len(out):
        raise ValueError("snappy: copy offset beyond output")
    if len(out) + length > declared:
        raise ValueError("snappy: output longer than declared")
    start = len(out) - offset
    if offset >= length:
        out += out[start:start + length]
    else:
        # An overlapping copy repeats the last `offset` bytes (run-length encoding).
        pattern = bytes(out[start:])
        out += (pattern * (length // offset + 1))[:length]


def snappy_compress(data: bytes) -> bytes:
    """A valid snappy block of `data` made of literal elements only.

    It does not compress at all: the forward goes over the LAN to Prometheus and the requests
    are small (a few hundred series), so the ratio does not matter and the simplest encoder that
    any snappy decoder accepts is the one to trust.
    """
    out = bytearray(_varint(len(data)))
    # 64 KiB literals, as snappy's own encoder keeps its elements within one 64 KiB block.
    for start in range(0, len(data), 1 << 16):
        chunk = data[start:start + (1 << 16)]
        n = len(chunk) - 1
        if n < 60:
            out.append(n << 2)
        elif n < 1 << 8:
            out.append(60 << 2)
            out.append(n)
        else:
            out.append(61 << 2)
            out += n.to_bytes(2, "little")
        out += chunk
    return bytes(out)



def _read_varint(buf: bytes, pos: int, max_bytes: int = 10) -> tuple[int, int]:
    value = 0
    for i in range(max_bytes):
        if pos + i >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if byte < 0x80:
            if value > _U64:
                raise ValueError("varint overflows 64 bits")
            return value, pos + i + 1
    raise ValueError(f"varint longer than {max_bytes} bytes")


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _fields(buf: bytes) -> Iterator[tuple[int, int, int, bytes]]:
    """(field number, wire type, varint value or 0, payload or b"") of each field."""
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ValueError("protobuf: field number 0")
        if wire == _WIRE_VARINT:
            value, pos = _read_varint(buf, pos)
            yield number, wire, value, b""
            continue
        if wire == _WIRE_LEN:
            size, pos = _read_varint(buf, pos)
        elif wire == _WIRE_FIXED64:
            size = 8
        elif wire == _WIRE_FIXED32:
            size = 4
        else:
            # 3 and 4 are the deprecated groups, which no remote_write message has; 6 and 7
            # do not exist. Either way the length of what follows is unknown.
            raise ValueError(f"protobuf: wire type {wire} in field {number}")
        if pos + size > len(buf):
            raise ValueError(f"protobuf: field {number} runs past the end of its message")
        yield number, wire, 0, buf[pos:pos + size]
        pos += size


def _expect(number: int, wire: int, expected: int) -> None:
    if wire != expected:
        raise ValueError(f"protobuf: field {number} has wire type {wire}, expected {expected}")


def _text(number: int, wire: int, data: bytes) -> str:
    _expect(number, wire, _WIRE_LEN)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"protobuf: field {number} is not UTF-8") from exc


def _label(buf: bytes) -> tuple[str, str]:
    name = value = ""
    for number, wire, _, data in _fields(buf):
        if number == 1:
            name = _text(number, wire, data)
        elif number == 2:
            value = _text(number, wire, data)
    return name, value


def _sample(buf: bytes) -> Sample:
    value, timestamp = 0.0, 0
    for number, wire, varint, data in _fields(buf):
        if number == 1:
            _expect(number, wire, _WIRE_FIXED64)
            (value,) = struct.unpack("<d", data)
        elif number == 2:
            _expect(number, wire, _WIRE_VARINT)
            # int64 is sent as its 64-bit two's complement, so a negative one is ten bytes.
            timestamp = varint - (1 << 64) if varint > _I64_MAX else varint
    return Sample(value, timestamp)


def _series(buf: bytes) -> Series:
    labels: list[tuple[str, str]] = []
    samples: list[Sample] = []
    for number, wire, _, data in _fields(buf):
        if number == 1:
            _expect(number, wire, _WIRE_LEN)
            labels.append(_label(data))
        elif number == 2:
            _expect(number, wire, _WIRE_LEN)
            samples.append(_sample(data))
    return Series(tuple(labels), tuple(samples))


def decode_write_request(raw: bytes) -> list[Series]:
    """The series of a WriteRequest (the decompressed body), labels and samples only."""
    series = []
    for number, wire, _, data in _fields(bytes(raw)):
        if number == 1:
            _expect(number, wire, _WIRE_LEN)
            series.append(_series(data))
    return series


def _len_field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | _WIRE_LEN) + _varint(len(payload)) + payload


def _encode_series(series: Series) -> bytes:
    out = bytearray()
    for name, value in series.labels:
        label = _len_field(1, name.encode("utf-8")) + _len_field(2, value.encode("utf-8"))
        out += _len_field(1, label)
    for sample in series.samples:
        if not _I64_MIN <= sample.timestamp_ms <= _I64_MAX:
            raise ValueError(f"timestamp {sample.timestamp_ms} out of int64 range")
        body = (
            _varint(1 << 3 | _WIRE_FIXED64) + struct.pack("<d", sample.value)
            + _varint(2 << 3 | _WIRE_VARINT) + _varint(sample.timestamp_ms & _U64)
        )
        out += _len_field(2, body)
    return bytes(out)


def encode_write_request(series: Iterable[Series]) -> bytes:
    """A WriteRequest (not yet compressed) of these series' labels and samples."""
    return b"".join(_len_field(1, _encode_series(one)) for one in series)



def with_site(series: Iterable[Series], site: str, label: str = "site") -> list[Series]:
    """Each series with `label` set to `site`, whatever the sender put there."""
    out = []
    for one in series:
        labels = dict(one.labels)
        labels[label] = site
        # Prometheus' receiver wants labels sorted as Go compares strings (bytewise on UTF-8),
        # which is the order Python sorts code points in.
        out.append(Series(tuple(sorted(labels.items())), one.samples))
    return out
