"""``t2t feed``: make, pack and inspect ITCH 5.0 data without a card.

``generate`` writes a seeded synthetic session as a BinaryFILE; ``pack`` turns a BinaryFILE into a pcap of
MoldUDP64 multicast frames (optionally an A/B pair of feeds, with deterministic losses and reordering); ``stats``
counts messages by type in a BinaryFILE or a capture.
"""

import argparse
import ipaddress
import json
import os
import random

from ..feed.binaryfile import iter_raw_messages
from ..feed.generator import DEFAULT_SYMBOLS, generate_session, write_session
from ..feed.itch import ItchFormatError, decode_header
from ..feed.moldudp64 import DEFAULT_MAX_PAYLOAD, MoldFormatError, encode_packet, pack_messages
from ..feed.netframe import build_udp_frame
from ..feed.pcap import PcapFormatError, PcapWriter
from ..feed.stats import count_file

from .errors import CliError

__all__ = ["register", "FeedImpairment"]

EXIT_USAGE = 2
DEFAULT_FEED_A = "233.54.12.111:26477"
DEFAULT_FEED_B = "233.49.196.71:26477"
DEFAULT_SOURCE = "10.0.0.1:40000"
DEFAULT_SESSION = "T2T0000001"


def register(subparsers):
    """Add ``feed`` and its sub-commands to the ``t2t`` parser."""
    feed = subparsers.add_parser("feed", help="generate, pack and count ITCH 5.0 files and captures (no card)")
    commands = feed.add_subparsers(dest="feed_command", metavar="FEED_COMMAND", required=True)

    generate = commands.add_parser("generate", help="write a seeded synthetic ITCH session as a BinaryFILE")
    generate.add_argument("-o", "--output", required=True, help="output file (.itch, or .gz to compress)")
    generate.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    generate.add_argument("--messages", type=_positive_int, default=100_000,
                          help="number of messages, system events included (default 100000)")
    generate.add_argument("--symbols", type=_symbol_list, default=DEFAULT_SYMBOLS,
                          help=f"comma-separated symbols (default {','.join(DEFAULT_SYMBOLS)})")
    _add_json_flag(generate)
    generate.set_defaults(handler=generate_command)

    pack = commands.add_parser(
        "pack", help="pack a BinaryFILE into MoldUDP64 frames in a pcap",
        description="Pack the messages of a BinaryFILE into MoldUDP64 packets in UDP/IPv4 multicast frames and "
                    "write them to a pcap. A frame's time is the ITCH timestamp of its packet's last message "
                    "(a time of day, on 1970-01-01). With --ab, each packet is also sent to feed B right after A.")
    pack.add_argument("input", metavar="FILE", help="BinaryFILE (.itch or .gz)")
    pack.add_argument("-o", "--output", required=True, help="output pcap file")
    pack.add_argument("--max-payload", type=_positive_int, default=DEFAULT_MAX_PAYLOAD, metavar="BYTES",
                      help=f"largest UDP payload per packet (default {DEFAULT_MAX_PAYLOAD})")
    pack.add_argument("--max-messages", type=_positive_int, metavar="N", help="most messages per packet")
    pack.add_argument("--session", default=DEFAULT_SESSION, help=f"MoldUDP64 session (default {DEFAULT_SESSION})")
    pack.add_argument("--first-sequence", type=_positive_int, default=1, metavar="N",
                      help="sequence number of the first message (default 1)")
    pack.add_argument("--ab", action="store_true", help="also send every packet on feed B, interleaved with A")
    pack.add_argument("--feed-a", type=_endpoint, default=DEFAULT_FEED_A, metavar="ADDR:PORT",
                      help=f"feed A destination (default {DEFAULT_FEED_A})")
    pack.add_argument("--feed-b", type=_endpoint, default=DEFAULT_FEED_B, metavar="ADDR:PORT",
                      help=f"feed B destination (default {DEFAULT_FEED_B})")
    pack.add_argument("--source", type=_endpoint, default=DEFAULT_SOURCE, metavar="ADDR:PORT",
                      help=f"source of the frames (default {DEFAULT_SOURCE})")
    pack.add_argument("--vlan", type=int, metavar="ID", help="tag the frames with this 802.1Q VLAN id")
    pack.add_argument("--drop-rate", type=_probability, default=0.0, metavar="P",
                      help="drop each packet of an impaired feed with probability P (seeded)")
    pack.add_argument("--drop-every", type=_positive_int, metavar="N",
                      help="drop every Nth packet of an impaired feed")
    pack.add_argument("--reorder-every", type=_positive_int, metavar="N",
                      help="on an impaired feed, send every Nth packet after the one that follows it")
    pack.add_argument("--impair", choices=("A", "B", "both"), default="A",
                      help="feeds the drops and reordering apply to (default A)")
    pack.add_argument("--seed", type=int, default=1, help="seed of --drop-rate (default 1)")
    _add_json_flag(pack)
    pack.set_defaults(handler=pack_command)

    stats = commands.add_parser("stats", help="count messages by type in a BinaryFILE or a pcap capture")
    stats.add_argument("input", metavar="FILE", help="BinaryFILE (.itch, .gz) or pcap (A/B copies counted once)")
    _add_json_flag(stats)
    stats.set_defaults(handler=stats_command)


def _add_json_flag(parser):
    # SUPPRESS keeps the global `t2t --json feed ...` working: a sub-parser default would overwrite it.
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


def _probability(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a probability is between 0 and 1: {value}")
    return value


def _symbol_list(text):
    symbols = tuple(symbol.strip().upper() for symbol in text.split(",") if symbol.strip())
    if not symbols:
        raise argparse.ArgumentTypeError("no symbol given")
    return symbols


def _endpoint(text):
    address, separator, port = text.rpartition(":")
    try:
        if not separator:
            raise ValueError
        address = str(ipaddress.IPv4Address(address))
        port = int(port)
        if not 0 < port < 65536:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected IPV4ADDRESS:PORT, got {text!r}") from None
    return address, port


def generate_command(args):
    try:
        # Validate before creating the output, so that bad arguments leave no empty file behind.
        generate_session(args.seed, args.symbols, args.messages)
        count = write_session(args.output, args.seed, args.symbols, args.messages)
    except ValueError as error:
        raise CliError(str(error), EXIT_USAGE) from None
    except OSError as error:
        raise CliError(f"cannot write {args.output}: {error.strerror}", EXIT_USAGE) from None
    if args.json:
        print(json.dumps({"path": args.output, "messages": count}))
    else:
        print(f"wrote {count} messages ({len(args.symbols)} symbols, seed {args.seed}) to {args.output}")
    return 0


class FeedImpairment:
    """Deterministic losses and reordering applied to one feed's packets, in order.

    :meth:`send` takes the next packet and returns the packets to put on the wire now (none, it, or it and one
    held back), :meth:`flush` whatever is still held at the end.

    Parameters
    ----------
    rng : random.Random or None
        Source of the random drops (``None`` when ``drop_rate`` is 0).
    drop_rate : float
        Probability of dropping each packet.
    drop_every : int or None
        Drop packets number N, 2N, 3N... (counting from 1).
    reorder_every : int or None
        Hold back packets number N, 2N... and send each after the packet that follows it.
    """

    def __init__(self, rng=None, drop_rate=0.0, drop_every=None, reorder_every=None):
        self.rng = rng
        self.drop_rate = drop_rate
        self.drop_every = drop_every
        self.reorder_every = reorder_every
        self.position = 0
        self.held = None
        self.dropped = 0
        self.reordered = 0

    def send(self, packet):
        self.position += 1
        # Draw for every packet, dropped or not, so that one impairment does not shift another's random choices.
        random_drop = self.drop_rate > 0 and self.rng.random() < self.drop_rate
        if random_drop or (self.drop_every and self.position % self.drop_every == 0):
            self.dropped += 1
            return []
        if self.held is not None:
            held, self.held = self.held, None
            self.reordered += 1
            return [packet, held]
        if self.reorder_every and self.position % self.reorder_every == 0:
            self.held = packet
            return []
        return [packet]

    def flush(self):
        held, self.held = self.held, None
        return [] if held is None else [held]


def pack_command(args):
    if not os.path.isfile(args.input):
        raise CliError(f"no such file: {args.input}", EXIT_USAGE)
    if args.vlan is not None and not 0 <= args.vlan < 4096:
        raise CliError(f"a VLAN id is 0..4095, got {args.vlan}", EXIT_USAGE)
    rng = random.Random(args.seed)
    impaired = {"A": ("A",), "B": ("B",), "both": ("A", "B")}[args.impair]
    feeds = {"A": args.feed_a}
    if args.ab:
        feeds["B"] = args.feed_b
    impairments = {name: FeedImpairment(rng, args.drop_rate, args.drop_every, args.reorder_every)
                   if name in impaired else FeedImpairment() for name in feeds}
    frames = dict.fromkeys(feeds, 0)
    packets = messages = 0
    try:
        packer = pack_messages(iter_raw_messages(args.input), args.session, first_sequence=args.first_sequence,
                               max_payload=args.max_payload, max_messages=args.max_messages)
        with PcapWriter(args.output) as pcap:
            last_time = 0

            def write(feed, packet):
                nonlocal last_time
                # Frames leave when their packet's last message is published; never earlier than the frame before.
                last_time = max(decode_header(packet.messages[-1])[3], last_time + 1)
                (dst_ip, dst_port), (src_ip, src_port) = feeds[feed], args.source
                pcap.write(build_udp_frame(encode_packet(packet), dst_ip=dst_ip, dst_port=dst_port, src_ip=src_ip,
                                           src_port=src_port, vlan_id=args.vlan), last_time)
                frames[feed] += 1

            for packet in packer:
                packets += 1
                messages += len(packet.messages)
                for feed in feeds:
                    for ready in impairments[feed].send(packet):
                        write(feed, ready)
            for feed in feeds:
                for ready in impairments[feed].flush():
                    write(feed, ready)
    except (ItchFormatError, MoldFormatError, ValueError) as error:
        raise CliError(f"{args.input}: {error}", EXIT_USAGE) from None
    summary = {
        "packets": packets, "messages": messages,
        "frames": sum(frames.values()), "frames_by_feed": frames,
        "dropped": sum(impairment.dropped for impairment in impairments.values()),
        "reordered": sum(impairment.reordered for impairment in impairments.values()),
    }
    if args.json:
        print(json.dumps(summary))
    else:
        per_feed = ", ".join(f"{count} on {feed}" for feed, count in frames.items())
        print(f"packed {messages} messages into {packets} MoldUDP64 packets; wrote {summary['frames']} frames "
              f"({per_feed}) to {args.output}; dropped {summary['dropped']}, reordered {summary['reordered']}")
    return 0


def stats_command(args):
    try:
        stats = count_file(args.input)
    except FileNotFoundError as error:
        raise CliError(f"no such file: {error.filename}", EXIT_USAGE) from None
    except IsADirectoryError:
        raise CliError(f"{args.input} is a directory", EXIT_USAGE) from None
    except (ItchFormatError, PcapFormatError, EOFError, OSError) as error:
        # EOFError / OSError (gzip.BadGzipFile) come from a damaged compressed file.
        raise CliError(f"{args.input}: {error}", EXIT_USAGE) from None
    if args.json:
        print(json.dumps(stats.counts_with_total()))
        return 0
    width = max((len(f"{count}") for count in stats.counts.values()), default=1)
    for letter, count in stats.counts.items():
        print(f"{letter}  {count:>{width}}")
    print(f"total {stats.total} messages ({stats.source_format})")
    if stats.arbiter is not None:
        counters = stats.arbiter
        dropped = ", ".join(f"{count} {reason}" for reason, count in stats.dropped_frames.items()) or "none"
        print(f"{stats.frames} frames, dropped: {dropped}")
        print(f"MoldUDP64: {counters.packets} packets, {counters.duplicates} duplicate messages, "
              f"{len(counters.gaps)} gaps ({counters.missing} messages missing), "
              f"{counters.wrong_session} wrong session, {counters.malformed} malformed")
    return 0
