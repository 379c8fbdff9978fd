"""Nasdaq BinaryFILE: the daily ITCH files, one 2-byte big-endian length prefix before each message.

The reader streams: it reads fixed-size chunks (plain or gzip, recognised by the gzip magic number, not by the file
name) and never holds more than a chunk and one partial message, so a 300-million-message day can be scanned in
constant memory. A ``0x0000`` prefix, which some third-party files write, is replaced by the known length of the
message's type. Byte offsets in errors count from the start of the uncompressed stream.
"""

import contextlib
import gzip
import os
import struct

from .itch import MESSAGE_LENGTHS, ItchFormatError, UnknownMessageType, decode, encode

__all__ = [
    "BinaryFileError", "TruncatedFileError", "open_stream", "iter_raw_messages", "iter_messages",
    "BinaryFileWriter", "write_binaryfile", "GZIP_MAGIC",
]

GZIP_MAGIC = b"\x1f\x8b"
_CHUNK_SIZE = 1 << 20
_PREFIX = struct.Struct(">H")

# Message length per type byte value, for the 0x0000-prefix fallback.
_LENGTH_BY_TYPE_BYTE = {ord(letter): length for letter, length in MESSAGE_LENGTHS.items()}


class BinaryFileError(ItchFormatError):
    """A BinaryFILE whose framing is broken."""


class TruncatedFileError(BinaryFileError):
    """The stream ends inside a length prefix or a message.

    ``offset`` is where the incomplete record (its length prefix) starts, ``missing`` how many bytes were missing.
    """

    def __init__(self, offset, expected, available):
        super().__init__(f"truncated BinaryFILE: a {expected}-byte record starts here but only {available} "
                         f"bytes remain", offset=offset)
        self.missing = expected - available


@contextlib.contextmanager
def open_stream(source):
    """Open ``source`` for binary reading, decompressing transparently if it starts with the gzip magic.

    A context manager; it closes what it opened and leaves a caller's stream open.

    Parameters
    ----------
    source : str or os.PathLike or binary file object
        A path, or an open binary stream; a stream is sniffed with ``peek`` (buffered readers) or
        ``tell``/``seek``, and taken as uncompressed if it offers neither.

    Yields
    ------
    stream
        A readable binary stream of the uncompressed content.
    """
    with contextlib.ExitStack() as stack:
        if isinstance(source, (str, bytes, os.PathLike)):
            raw = stack.enter_context(open(source, "rb"))
        else:
            raw = source
        if hasattr(raw, "peek"):
            head = raw.peek(2)[:2]
        elif raw.seekable():
            position = raw.tell()
            head = raw.read(2)
            raw.seek(position)
        else:
            head = b""
        if head == GZIP_MAGIC:
            # A GzipFile given a fileobj does not close it, so a caller's stream stays open.
            raw = stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))
        yield raw


def iter_raw_messages(source, *, chunk_size=_CHUNK_SIZE):
    """Yield each message of a BinaryFILE as ``bytes`` (without its length prefix), streaming.

    Parameters
    ----------
    source : str or os.PathLike or binary file object
        A ``.itch`` file or its gzip-compressed form (see :func:`open_stream`).
    chunk_size : int
        Bytes read from the (decompressed) stream at a time.

    Raises
    ------
    TruncatedFileError
        The stream ends inside a record; ``offset`` says where that record starts.
    UnknownMessageType
        A ``0x0000`` prefix is followed by a byte that is not an ITCH type, so the length cannot be known.
    """
    with open_stream(source) as stream:
        yield from _iter_records(stream, chunk_size)


def _iter_records(stream, chunk_size):
    buffer = b""
    position = 0          # offset of buffer[0] in the uncompressed stream
    cursor = 0            # next record in buffer
    exhausted = False
    while True:
        end = len(buffer)
        while cursor + 2 <= end:
            length = (buffer[cursor] << 8) | buffer[cursor + 1]
            if length == 0:
                if cursor + 3 > end:
                    break
                length = _LENGTH_BY_TYPE_BYTE.get(buffer[cursor + 2], 0)
                if not length:
                    raise UnknownMessageType(buffer[cursor + 2], offset=position + cursor)
            start = cursor + 2
            if start + length > end:
                break
            yield buffer[start:start + length]
            cursor = start + length
        if exhausted:
            if cursor < end:
                _raise_truncated(buffer, cursor, position)
            return
        chunk = stream.read(chunk_size)
        if not chunk:
            exhausted = True
        # Keep only the incomplete tail; concatenation cost stays one chunk per chunk read.
        position += cursor
        buffer = buffer[cursor:] + chunk
        cursor = 0


def _raise_truncated(buffer, cursor, position):
    remaining = len(buffer) - cursor
    if remaining < 2:
        raise TruncatedFileError(position + cursor, 2, remaining)
    length = (buffer[cursor] << 8) | buffer[cursor + 1]
    if length == 0:
        # A 0x0000 prefix whose type byte is missing needs at least that byte; one that has it is a known type
        # (an unknown one was refused while reading).
        length = _LENGTH_BY_TYPE_BYTE[buffer[cursor + 2]] if remaining > 2 else 1
    raise TruncatedFileError(position + cursor, 2 + length, remaining)


def iter_messages(source, *, chunk_size=_CHUNK_SIZE):
    """Yield each message of a BinaryFILE decoded (see :func:`t2t.feed.itch.decode`), streaming.

    Raises
    ------
    ItchFormatError
        As :func:`iter_raw_messages`, or a message that does not decode; ``offset`` gives the message's
        position in the uncompressed stream.
    """
    offset = 0
    for raw in iter_raw_messages(source, chunk_size=chunk_size):
        try:
            yield decode(raw)
        except ItchFormatError as error:
            error.offset = offset
            raise
        offset += 2 + len(raw)


class BinaryFileWriter:
    """Writes messages to a BinaryFILE, gzip-compressed when asked or when the path ends with ``.gz``.

    Use as a context manager. ``write`` takes message objects or already encoded ``bytes``.

    Parameters
    ----------
    target : str or os.PathLike or binary file object
        Where to write; a caller's stream is not closed by :meth:`close`.
    compress : bool or None
        ``None`` (default): compress if ``target`` is a path ending in ``.gz``.
    """

    def __init__(self, target, *, compress=None):
        is_path = isinstance(target, (str, os.PathLike))
        if compress is None:
            compress = is_path and os.fspath(target).endswith(".gz")
        self._raw = open(target, "wb") if is_path else target
        self._owns_raw = is_path
        # No name and mtime 0 in the gzip header: the output is a function of the content alone (reproducible).
        self._stream = gzip.GzipFile(filename="", fileobj=self._raw, mode="wb", mtime=0) if compress else self._raw
        self.count = 0

    def write(self, message):
        """Append one message (an ITCH message object or its encoded ``bytes``)."""
        raw = message if isinstance(message, (bytes, bytearray, memoryview)) else encode(message)
        if not 0 < len(raw) <= 0xFFFF:
            raise BinaryFileError(f"a BinaryFILE record holds 1..65535 bytes, got {len(raw)}")
        self._stream.write(_PREFIX.pack(len(raw)) + raw)
        self.count += 1

    def write_all(self, messages):
        """Append every message of ``messages``; return how many were written by this call."""
        before = self.count
        for message in messages:
            self.write(message)
        return self.count - before

    def close(self):
        if self._stream is not self._raw:
            self._stream.close()
        if self._owns_raw:
            self._raw.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def write_binaryfile(target, messages, *, compress=None):
    """Write ``messages`` (message objects or encoded ``bytes``) to ``target``; return the number written.

    See :class:`BinaryFileWriter` for ``target`` and ``compress``.
    """
    with BinaryFileWriter(target, compress=compress) as writer:
        return writer.write_all(messages)
