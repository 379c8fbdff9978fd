"""Market-data ingest reference: ITCH 5.0, BinaryFILE, MoldUDP64, Ethernet/IPv4/UDP frames and pcap, in pure Python.

These models are the reference the gateware and the virtual card are checked against, and the tools that produce
their stimulus: :func:`generate_session` makes a consistent ITCH session, :func:`pack_messages` puts messages in
MoldUDP64 packets, :func:`build_udp_frame` wraps a packet in a frame, :class:`PcapWriter` records frames.

Modules: :mod:`.itch` (messages and codec), :mod:`.binaryfile`, :mod:`.moldudp64`, :mod:`.netframe`, :mod:`.pcap`,
:mod:`.generator`, :mod:`.stats`. The names below are the ones other layers use most.
"""

from .binaryfile import iter_messages, iter_raw_messages, write_binaryfile
from .generator import generate_session, generate_session_bytes, write_session
from .itch import decode, encode
from .moldudp64 import MoldPacket, MoldUdp64Arbiter, decode_packet, encode_packet, pack_messages
from .netframe import DropReason, UdpFrame, build_udp_frame, parse_udp_frame
from .pcap import PcapReader, PcapWriter, read_pcap

__all__ = [
    "decode", "encode",
    "iter_messages", "iter_raw_messages", "write_binaryfile",
    "generate_session", "generate_session_bytes", "write_session",
    "MoldPacket", "MoldUdp64Arbiter", "decode_packet", "encode_packet", "pack_messages",
    "DropReason", "UdpFrame", "build_udp_frame", "parse_udp_frame",
    "PcapReader", "PcapWriter", "read_pcap",
]
