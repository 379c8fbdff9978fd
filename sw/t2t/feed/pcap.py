"""Classic libpcap capture files: a streaming reader and a writer.

The reader accepts both timestamp resolutions (microsecond magic ``0xa1b2c3d4``, nanosecond ``0xa1b23c4d``) in
both byte orders, and gzip-compressed captures. The writer always writes little-endian with the nanosecond magic,
so that packet times keep the nanoseconds of ITCH timestamps. Packet timestamps are ``int`` nanoseconds since the
Unix epoch.
"""

import contextlib
import os
import struct
from dataclasses import dataclass

from .binaryfile import open_stream

__all__ = [
    "LINKTYPE_ETHERNET", "NANOSECOND_MAGIC", "MICROSECOND_MAGIC", "PcapFormatError", "PcapPacket",
    "PcapReader", "PcapWriter", "is_pcap_magic", "read_pcap", "write_pcap",
]

LINKTYPE_ETHERNET = 1
MICROSECOND_MAGIC = 0xA1B2C3D4
NANOSECOND_MAGIC = 0xA1B23C4D

_FILE_HEADER_BODY = "HHiIII"          # version major, minor, thiszone, sigfigs, snaplen, linktype
_RECORD_HEADER = "IIII"               # seconds, sub-second, captured length, original length
_FILE_HEADER_LENGTH = 24
_RECORD_HEADER_LENGTH = 16

# First four bytes of a capture -> (byte order, sub-second units per second).
_MAGICS = {
    struct.pack("<I", MICROSECOND_MAGIC): ("<", 1_000_000),
    struct.pack(">I", MICROSECOND_MAGIC): (">", 1_000_000),
    struct.pack("<I", NANOSECOND_MAGIC): ("<", 1_000_000_000),
    struct.pack(">I", NANOSECOND_MAGIC): (">", 1_000_000_000),
}


class PcapFormatError(ValueError):
    """Not a classic pcap file, or one that ends inside a record; ``offset`` is where (uncompressed bytes)."""

    def __init__(self, message, offset):
        super().__init__(f"{message} (at byte offset {offset})")
        self.offset = offset


@dataclass(frozen=True, slots=True)
class PcapPacket:
    """One captured packet: ``timestamp_ns`` since the Unix epoch, the captured ``data`` and the length the
    packet had on the wire (larger than ``len(data)`` when the capture truncated it)."""

    timestamp_ns: int
    data: bytes
    original_length: int


def is_pcap_magic(head):
    """Whether the first four bytes ``head`` are a classic pcap magic number (any resolution or byte order)."""
    return bytes(head[:4]) in _MAGICS


class PcapReader:
    """Iterates the packets of a classic pcap file, reading one record at a time.

    Parameters
    ----------
    source : str or os.PathLike or binary file object
        The capture, plain or gzip-compressed.

    Attributes
    ----------
    linktype : int
        Link-layer header type of the capture (1 for Ethernet).
    snaplen : int
        Largest packet the capture kept.
    nanosecond : bool
        Whether the file stores nanoseconds (else microseconds).

    Raises
    ------
    PcapFormatError
        On construction, when the file header is missing or has no pcap magic; during iteration, when the file
        ends inside a record.
    """

    def __init__(self, source):
        self._resources = contextlib.ExitStack()
        self._stream = self._resources.enter_context(open_stream(source))
        try:
            header = self._stream.read(_FILE_HEADER_LENGTH)
            if len(header) < _FILE_HEADER_LENGTH or header[:4] not in _MAGICS:
                raise PcapFormatError("not a classic pcap file (no pcap magic number)", 0)
            byte_order, self._units_per_second = _MAGICS[header[:4]]
            self.nanosecond = self._units_per_second == 1_000_000_000
            _, _, _, _, self.snaplen, self.linktype = struct.unpack(byte_order + _FILE_HEADER_BODY, header[4:])
            self._record = struct.Struct(byte_order + _RECORD_HEADER)
        except BaseException:
            self.close()
            raise

    def __iter__(self):
        offset = _FILE_HEADER_LENGTH
        scale = 1_000_000_000 // self._units_per_second
        read = self._stream.read
        while True:
            header = read(_RECORD_HEADER_LENGTH)
            if not header:
                return
            if len(header) < _RECORD_HEADER_LENGTH:
                raise PcapFormatError(f"truncated pcap record header ({len(header)} of 16 bytes)", offset)
            seconds, fraction, captured, original = self._record.unpack(header)
            data = read(captured)
            if len(data) < captured:
                raise PcapFormatError(f"truncated pcap record: {captured} bytes announced, {len(data)} present",
                                      offset)
            yield PcapPacket(seconds * 1_000_000_000 + fraction * scale, data, original)
            offset += _RECORD_HEADER_LENGTH + captured

    def close(self):
        self._resources.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def read_pcap(source):
    """Yield the :class:`PcapPacket` records of ``source`` (see :class:`PcapReader`), closing it at the end."""
    with PcapReader(source) as reader:
        yield from reader


class PcapWriter:
    """Writes a classic pcap file: little-endian, nanosecond magic ``0xa1b23c4d``.

    Parameters
    ----------
    target : str or os.PathLike or binary file object
        Where to write; a caller's stream is left open by :meth:`close`.
    linktype : int
        Link-layer header type (default 1, Ethernet).
    snaplen : int
        Announced largest packet; longer packets are still written whole.
    """

    def __init__(self, target, *, linktype=LINKTYPE_ETHERNET, snaplen=65535):
        self._owns = isinstance(target, (str, os.PathLike))
        self._stream = open(target, "wb") if self._owns else target
        self._stream.write(struct.pack("<I" + _FILE_HEADER_BODY, NANOSECOND_MAGIC, 2, 4, 0, 0, snaplen, linktype))
        self._record = struct.Struct("<" + _RECORD_HEADER)
        self.count = 0

    def write(self, data, timestamp_ns=0):
        """Append one packet captured at ``timestamp_ns`` (nanoseconds since the Unix epoch)."""
        seconds, nanoseconds = divmod(timestamp_ns, 1_000_000_000)
        self._stream.write(self._record.pack(seconds, nanoseconds, len(data), len(data)) + bytes(data))
        self.count += 1

    def close(self):
        if self._owns:
            self._stream.close()
        else:
            self._stream.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def write_pcap(target, packets):
    """Write ``packets``, an iterable of ``(timestamp_ns, data)``, to ``target``; return how many were written."""
    with PcapWriter(target) as writer:
        for timestamp_ns, data in packets:
            writer.write(data, timestamp_ns)
        return writer.count
