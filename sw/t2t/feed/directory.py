"""The day's symbol directory learned from a feed: ``{symbol: stock locate}`` from the stock directory (R)
messages that come before the first order message, in a BinaryFILE (``.itch``, ``.itch.gz``) or a pcap of
MoldUDP64 frames (each sequence number taken once, so an A/B capture counts once).

Host only: ``t2t symbols load --from-itch`` uses it without the simulation extra.
"""

from .binaryfile import iter_raw_messages, open_stream
from .itch import decode
from .moldudp64 import MoldFormatError, decode_packet
from .netframe import parse_udp_frame
from .pcap import PcapReader, is_pcap_magic

__all__ = ["read_directory", "ORDER_MESSAGE_TYPES"]

#: Order messages: a day's stock directory comes before the first of these.
ORDER_MESSAGE_TYPES = frozenset(b"AFECXDUPQ")


def _is_pcap(path):
    with open_stream(path) as stream:
        return is_pcap_magic(stream.read(4))


def _pcap_messages(path):
    next_sequence = None
    with PcapReader(path) as reader:
        for packet in reader:
            parsed = parse_udp_frame(packet.data, check_udp_checksum=False)
            if not hasattr(parsed, "payload"):
                continue
            try:
                mold = decode_packet(parsed.payload)
            except MoldFormatError:
                continue
            for offset, message in enumerate(mold.messages):
                sequence = mold.sequence + offset
                if next_sequence is None or sequence >= next_sequence:
                    next_sequence = sequence + 1
                    yield message


def read_directory(path):
    """``{symbol: locate}`` in the order of the file's R messages, up to its first order message."""
    messages = _pcap_messages(path) if _is_pcap(path) else iter_raw_messages(path)
    locates = {}
    for raw in messages:
        if not raw:
            continue
        if raw[0] in ORDER_MESSAGE_TYPES:
            break
        if raw[0] == ord("R"):
            message = decode(raw)
            locates[message.stock.strip()] = message.locate
    return locates
