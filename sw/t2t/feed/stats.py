"""Message counts by ITCH type, for BinaryFILEs and for pcap captures of MoldUDP64 feeds.

A capture is read the way the card receives it: frames that the card would drop are counted by reason, and the
MoldUDP64 packets go through :class:`t2t.feed.moldudp64.MoldUdp64Arbiter`, so that an A/B capture counts each
message once and the counts of a capture packed from a file equal the file's own counts when nothing was lost.
"""

from collections import Counter
from dataclasses import dataclass, field

from .binaryfile import iter_raw_messages, open_stream
from .itch import MESSAGE_LENGTHS
from .moldudp64 import ArbiterCounters, MoldUdp64Arbiter
from .netframe import DropReason, parse_udp_frame
from .pcap import LINKTYPE_ETHERNET, PcapFormatError, PcapReader, is_pcap_magic

__all__ = ["FeedStats", "count_message_types", "count_binaryfile", "count_capture", "count_file",
           "is_capture"]

# Report order: the order of the specification's table, then anything unknown.
_TYPE_ORDER = {letter: position for position, letter in enumerate(MESSAGE_LENGTHS)}


@dataclass(slots=True)
class FeedStats:
    """Counts gathered from one file.

    Attributes
    ----------
    counts : dict
        Messages per type letter, in the specification's order, only types present.
    source_format : str
        ``"binaryfile"`` or ``"pcap"``.
    frames : int
        Packets in a capture (0 for a BinaryFILE).
    dropped_frames : dict
        Frames of a capture not delivered as UDP, per :class:`t2t.feed.netframe.DropReason` text.
    arbiter : ArbiterCounters or None
        MoldUDP64 arbitration counters of a capture.
    """

    counts: dict
    source_format: str
    frames: int = 0
    dropped_frames: dict = field(default_factory=dict)
    arbiter: ArbiterCounters | None = None

    @property
    def total(self):
        return sum(self.counts.values())

    def counts_with_total(self):
        """The counts, plus ``"total"``: the flat object ``t2t feed stats --json`` prints."""
        return {**self.counts, "total": self.total}


def count_message_types(raw_messages):
    """Count encoded messages by their type letter (first byte); return a dict in the specification's order."""
    counts = Counter(raw[0] for raw in raw_messages if raw)
    letters = {chr(type_byte): count for type_byte, count in counts.items()}
    return dict(sorted(letters.items(), key=lambda item: (_TYPE_ORDER.get(item[0], len(_TYPE_ORDER)), item[0])))


def count_binaryfile(source):
    """Count the messages of a BinaryFILE (plain or gzip) by type; see :func:`count_message_types`."""
    return FeedStats(count_message_types(iter_raw_messages(source)), "binaryfile")


def count_capture(source, *, dst_ports=None):
    """Count the ITCH messages carried by MoldUDP64 in a pcap capture of Ethernet frames, once per sequence number.

    Parameters
    ----------
    source : str or os.PathLike or binary file object
    dst_ports : collection of int or None
        UDP destination ports of the feeds (``None``: every UDP datagram is taken as MoldUDP64).

    Raises
    ------
    PcapFormatError
        Not a pcap file, not an Ethernet capture, or a truncated one.
    """
    arbiter = MoldUdp64Arbiter()
    dropped = Counter()
    frames = 0

    def delivered_messages():
        nonlocal frames
        with PcapReader(source) as reader:
            if reader.linktype != LINKTYPE_ETHERNET:
                raise PcapFormatError(f"link type {reader.linktype} is not Ethernet", 20)
            for packet in reader:
                frames += 1
                layers = parse_udp_frame(packet.data, dst_ports=dst_ports)
                if isinstance(layers, DropReason):
                    dropped[str(layers)] += 1
                    continue
                for _, message in arbiter.receive(layers.payload, feed=layers.dst_ip):
                    yield message

    counts = count_message_types(delivered_messages())
    return FeedStats(counts, "pcap", frames, dict(dropped), arbiter.counters)


def is_capture(source):
    """Whether ``source`` (a path) is a pcap capture, plain or gzip, judged by its magic number."""
    with open_stream(source) as stream:
        return is_pcap_magic(stream.peek(4)[:4])


def count_file(source):
    """Count messages by type in a BinaryFILE or a pcap capture, telling them apart by magic number."""
    return count_capture(source) if is_capture(source) else count_binaryfile(source)
