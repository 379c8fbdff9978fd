"""BinaryFILE reader and writer: plain and gzip, streaming, 0x0000 prefixes, truncation and bad records."""

import gzip
import io
import struct

import pytest

from t2t.feed.binaryfile import (
    TruncatedFileError, iter_messages, iter_raw_messages, open_stream, write_binaryfile,
)
from t2t.feed.generator import generate_session
from t2t.feed.itch import MessageLengthError, UnknownMessageType, encode


@pytest.fixture(scope="module")
def session():
    return list(generate_session(seed=11, symbols=("AAPL", "MSFT", "IBM"), messages=3_000))


@pytest.fixture(scope="module")
def session_bytes(session):
    return [encode(message) for message in session]


def prefixed(raw_messages, zero_prefix=False):
    return b"".join((b"\0\0" if zero_prefix else struct.pack(">H", len(raw))) + raw for raw in raw_messages)


class CountingReader(io.BytesIO):
    """A stream that remembers the largest single read, to show the reader works in chunks."""

    def __init__(self, data):
        super().__init__(data)
        self.largest_read = 0

    def read(self, size=-1):
        data = super().read(size)
        self.largest_read = max(self.largest_read, len(data))
        return data


@pytest.mark.parametrize("name", ["day.itch", "day.itch.gz"])
def test_written_file_reads_back_message_for_message(tmp_path, session, name):
    path = tmp_path / name
    assert write_binaryfile(path, session) == len(session)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
    assert list(iter_messages(path)) == session


def test_file_layout_is_length_prefix_then_message(tmp_path, session_bytes):
    path = tmp_path / "day.itch"
    write_binaryfile(path, session_bytes[:5])
    assert path.read_bytes() == prefixed(session_bytes[:5])


def test_gzip_is_recognised_by_magic_not_name(tmp_path, session_bytes):
    path = tmp_path / "misnamed.itch"
    path.write_bytes(gzip.compress(prefixed(session_bytes)))
    assert list(iter_raw_messages(path)) == session_bytes


@pytest.mark.parametrize("chunk_size", [1, 7, 36, 4096])
def test_records_split_across_chunks_are_reassembled(session_bytes, chunk_size):
    stream = CountingReader(prefixed(session_bytes[:200]))
    assert list(iter_raw_messages(stream, chunk_size=chunk_size)) == session_bytes[:200]
    assert stream.largest_read <= max(chunk_size, 2)      # 2: sniffing the gzip magic


def test_reader_streams_instead_of_reading_the_whole_file(session_bytes):
    stream = CountingReader(prefixed(session_bytes))
    first = next(iter_raw_messages(stream, chunk_size=512))
    assert first == session_bytes[0]
    assert stream.tell() == 512


def test_gzip_input_is_decompressed_incrementally(tmp_path, session):
    many = list(generate_session(seed=12, messages=20_000))
    path = tmp_path / "big.itch.gz"
    write_binaryfile(path, many)
    compressed_size = path.stat().st_size
    with open(path, "rb") as raw:
        messages = iter_messages(raw, chunk_size=4096)
        assert next(messages) == many[0]
        assert raw.tell() < compressed_size // 4
        messages.close()
        assert not raw.closed          # a caller's stream stays open


def test_zero_length_prefixes_use_the_known_length_of_each_type(session_bytes):
    data = prefixed(session_bytes[:300], zero_prefix=True)
    assert list(iter_raw_messages(io.BytesIO(data), chunk_size=13)) == session_bytes[:300]


def test_zero_prefix_before_an_unknown_type_names_the_offset(session_bytes):
    good = prefixed(session_bytes[:2])
    with pytest.raises(UnknownMessageType) as caught:
        list(iter_raw_messages(io.BytesIO(good + b"\0\0z" + bytes(10))))
    assert caught.value.offset == len(good)
    assert f"offset {len(good)}" in str(caught.value)


@pytest.mark.parametrize("cut", [1, 2, 5])
def test_truncated_file_raises_with_the_offset_of_the_incomplete_record(session_bytes, cut):
    data = prefixed(session_bytes[:10])
    last_record = len(data) - 2 - len(session_bytes[9])
    with pytest.raises(TruncatedFileError) as caught:
        list(iter_raw_messages(io.BytesIO(data[:last_record + cut])))
    assert caught.value.offset == last_record
    assert f"offset {last_record}" in str(caught.value)


def test_truncated_gzip_member_is_reported(tmp_path, session_bytes):
    path = tmp_path / "cut.itch.gz"
    path.write_bytes(gzip.compress(prefixed(session_bytes[:50]))[:-30])
    with pytest.raises(EOFError):
        list(iter_raw_messages(path))


def test_record_whose_length_disagrees_with_its_type_fails_to_decode_with_offset(session_bytes):
    good = prefixed(session_bytes[:3])
    bad_delete = b"D" + bytes(19)           # a D is 19 bytes, this one is 20
    data = good + struct.pack(">H", len(bad_delete)) + bad_delete
    assert list(iter_raw_messages(io.BytesIO(data)))[-1] == bad_delete
    with pytest.raises(MessageLengthError) as caught:
        list(iter_messages(io.BytesIO(data)))
    assert caught.value.offset == len(good)


def test_writer_to_a_caller_stream_leaves_it_open_and_compresses_on_request(session_bytes):
    target = io.BytesIO()
    write_binaryfile(target, session_bytes[:20], compress=True)
    assert not target.closed
    assert gzip.decompress(target.getvalue()) == prefixed(session_bytes[:20])


def test_gzip_output_is_reproducible(tmp_path, session):
    first, second = tmp_path / "a.itch.gz", tmp_path / "b.itch.gz"
    write_binaryfile(first, session)
    write_binaryfile(second, session)
    assert first.read_bytes() == second.read_bytes()


def test_open_stream_passes_plain_streams_through():
    stream = io.BytesIO(b"\0\x13D")
    with open_stream(stream) as opened:
        assert opened is stream
