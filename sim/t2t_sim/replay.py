"""Replay of an ITCH capture through the cycle-accurate gateware (the virtual card).

A BinaryFILE (``.itch``, ``.itch.gz``) is packed into MoldUDP64 packets and sent as UDP frames on feed A (and, with
``ab=True``, the same packets on feed B, as an exchange sends them); a pcap's frames are sent as captured. The host
side is the real one: symbol slots, thresholds and risk limits are loaded through registers by
:mod:`t2t.trading`, and the order and reject logs are drained through registers as the replay runs. What the
card sends is collected: the BBO tap (one update per change of a followed stock's best bid or offer), the TX stream
(SoupBinTCP packets of OUCH Enter Orders) and the logs.
"""

import dataclasses
import time

from t2t import trading
from t2t.card import Card
from t2t.feed import itch
from t2t.feed.binaryfile import iter_raw_messages, open_stream
from t2t.feed.moldudp64 import decode_packet, encode_packet, pack_messages
from t2t.feed.netframe import build_udp_frame, parse_udp_frame
from t2t.feed.pcap import PcapReader, is_pcap_magic
from t2t.trade import ouch

from .virtual_card import VirtualCard

__all__ = ["BBO_CSV_COLUMNS", "ReplayResult", "Replay", "read_directory", "bbo_rows", "decode_orders"]

#: Columns of ``t2t replay --bbo-out``; other tools depend on them.
BBO_CSV_COLUMNS = ("timestamp_ns", "locate", "symbol", "bid_px", "bid_qty", "ask_px", "ask_qty")

SESSION = "T2TREPLAY"
FEED_A = ("233.54.12.111", 26477)
FEED_B = ("233.49.196.71", 26477)
#: Idle cycles between frames: the 12-byte inter-frame gap and 8-byte preamble of 10GbE, rounded up to beats.
INTER_FRAME_CYCLES = 3
#: Order messages: the symbol directory (R) of a day comes before the first of these.
_ORDER_TYPES = set("AFECXDUPQ")


def _is_pcap(path):
    with open_stream(path) as stream:
        return is_pcap_magic(stream.read(4))


def _pcap_payloads(path):
    """UDP payloads of a pcap's frames that parse, with the frame and its destination."""
    with PcapReader(path) as reader:
        for packet in reader:
            parsed = parse_udp_frame(packet.data, check_udp_checksum=False)
            if hasattr(parsed, "payload"):
                yield packet.data, (parsed.dst_ip, parsed.dst_port), parsed.payload


def iter_source_messages(path):
    """Raw ITCH messages of a BinaryFILE or of the MoldUDP64 packets in a pcap (each sequence number once)."""
    if not _is_pcap(path):
        yield from iter_raw_messages(path)
        return
    next_sequence = None
    for _, _, payload in _pcap_payloads(path):
        packet = decode_packet(payload)
        for offset, message in enumerate(packet.messages):
            sequence = packet.sequence + offset
            if next_sequence is None or sequence >= next_sequence:
                next_sequence = sequence + 1
                yield message


def read_directory(path):
    """``{symbol: locate}`` from the stock directory (R messages) before the file's first order message."""
    locates = {}
    for raw in iter_source_messages(path):
        kind = chr(raw[0])
        if kind in _ORDER_TYPES:
            break
        if kind == "R":
            message = itch.decode(raw)
            locates[message.stock.strip()] = message.locate
    return locates


@dataclasses.dataclass
class ReplayResult:
    messages: int = 0
    frames: int = 0
    cycles: int = 0
    seconds: float = 0.0
    bbo: list = dataclasses.field(default_factory=list)       # tuples in BBO_CSV_COLUMNS order
    orders: list = dataclasses.field(default_factory=list)    # t2t.trading.OrderLogRow
    rejects: list = dataclasses.field(default_factory=list)   # t2t.trading.RejectRow
    bbo_degraded: list = dataclasses.field(default_factory=list)  # (timestamp, locate) of degraded updates
    bbo_updates: list = dataclasses.field(default_factory=list)  # every BBO tap transfer: dict of fields + cycle
    gate_orders: list = dataclasses.field(default_factory=list)  # every order the risk gate took: dict + cycle
    tx_bytes: bytearray = dataclasses.field(default_factory=bytearray)
    counters: dict = dataclasses.field(default_factory=dict)
    latency: object = None
    left_out: list = dataclasses.field(default_factory=list)  # symbols asked for that found no slot
    slot_map: object = None

    @property
    def messages_per_second(self):
        return self.messages / self.seconds if self.seconds else 0.0


def bbo_rows(updates, slot_map, last_rows, degraded=None):
    """CSV rows of BBO tap updates (``VirtualCard.pop_bbo`` arrays), leaving out a row equal to the locate's last
    (an update can change only the order count or the degraded flag, which the CSV does not show) and degraded
    updates (a side the book cannot know: its last kept level emptied while orders rested beyond the levels it
    keeps); ``degraded`` (a list) collects those."""
    rows = []
    for i in range(len(updates["locate"])):
        locate = int(updates["locate"][i])
        if updates["degraded"][i]:
            if degraded is not None:
                degraded.append((int(updates["timestamp"][i]), locate))
            last_rows.pop(locate, None)
            continue
        row = (int(updates["timestamp"][i]), locate, slot_map.symbol_of_locate(locate),
               int(updates["bid_price"][i]), int(updates["bid_shares"][i]),
               int(updates["ask_price"][i]), int(updates["ask_shares"][i]))
        if last_rows.get(locate) != row[3:]:
            last_rows[locate] = row[3:]
            rows.append(row)
    return rows


def _records(fields):
    """A dict of equal-length arrays as a list of dicts of Python ints."""
    names = list(fields)
    columns = [fields[name].tolist() for name in names]
    return [dict(zip(names, values)) for values in zip(*columns)]


def decode_orders(tx_bytes):
    """The OUCH Enter Orders in the TX stream (SoupBinTCP unsequenced-data packets), in order."""
    packets, rest = ouch.split_packets(tx_bytes)
    if rest:
        raise ValueError(f"TX stream ends inside a SoupBinTCP packet ({len(rest)} bytes left)")
    orders = []
    for packet in packets:
        decoded = ouch.decode_client_packet(packet)
        if isinstance(decoded, ouch.UnsequencedData):
            message = ouch.decode_inbound(decoded.payload)
            if isinstance(message, ouch.EnterOrder):
                orders.append(message)
    return orders


class Replay:
    """One replay on a fresh virtual card.

    Parameters
    ----------
    symbols : list of str or None
        Symbols to follow (slots in this order). ``None``: every symbol of the file's directory, up to the card's
        slots (the rest are reported in ``left_out``).
    thresholds, risk : t2t.config.trading.ThresholdsConfig / RiskConfig or None
        Loaded before the replay; with thresholds the strategy is armed.
    loop : object or None
        Closed loop (:class:`t2t_sim.closed_loop.ClosedLoop`): after each chunk, ``loop.on_chunk(card, slot_map,
        messages, orders, bbo_rows)`` sees the chunk's raw ITCH messages, the orders the card sent and the BBO
        changes (and may write to the card, e.g. positions or the kill switch).
    keep_transfers : bool
        Keep every BBO update and every order the risk gate took, with its cycle (``bbo_updates``,
        ``gate_orders``), for cycle-exact checks against the reference models.
    ab : bool
        Send every packet on both feeds (A first), as an exchange does.
    packets_per_chunk : int
        Packets sent between two drains of the card's order and reject logs.
    """

    def __init__(self, *, symbols=None, thresholds=None, risk=None, ab=False, packets_per_chunk=32, card=None,
                 loop=None, keep_transfers=False):
        self.loop = loop
        self.keep_transfers = keep_transfers
        self.symbols = symbols
        self.thresholds = thresholds
        self.risk = risk
        self.ab = ab
        self.packets_per_chunk = packets_per_chunk
        self.card = card

    def run(self, path, *, changes=None):
        """Replay ``path``; ``changes`` maps a message index to a callable ``(card, slot_map)`` run once every
        message before it has been through the card (e.g. a thresholds change mid-replay)."""
        result = ReplayResult()
        locates = read_directory(path)
        own_card = self.card is None
        card = self.card or Card(VirtualCard())
        try:
            capacity = trading.slot_capacity(card)
            wanted = list(self.symbols) if self.symbols is not None else sorted(locates, key=locates.get)
            if self.symbols is None:
                result.left_out = wanted[capacity:]
                wanted = wanted[:capacity]
            slot_map = trading.SlotMap.assign(wanted, locates, capacity)
            result.slot_map = slot_map
            trading.load_symbols(card, slot_map)
            if self.risk is not None:
                trading.load_risk(card, self.risk, slot_map)
            if self.thresholds is not None:
                trading.load_thresholds(card, self.thresholds, slot_map)
                trading.arm(card)
            started = time.perf_counter()
            start_cycle = card.transport.cycle
            last_rows = {}
            if self.loop is not None:
                self.loop.start(card, slot_map)
            for frames, messages, change in self._chunks(path, card, changes or {}):
                for port, frame in frames:
                    card.transport.push_frame(port, frame, gap=INTER_FRAME_CYCLES)
                card.transport.run_until_rx_drained(extra_cycles=64)
                result.frames += len(frames)
                result.messages += len(messages) if isinstance(messages, list) else messages
                orders_before, bbo_before, tx_before = len(result.orders), len(result.bbo), len(result.tx_bytes)
                self._collect(card, slot_map, result, last_rows)
                if self.loop is not None:
                    self.loop.on_chunk(card, slot_map, messages, result.orders[orders_before:],
                                       bytes(result.tx_bytes[tx_before:]), result.bbo[bbo_before:])
                if change is not None:
                    change(card, slot_map)
            card.transport.run(256)
            orders_before, bbo_before, tx_before = len(result.orders), len(result.bbo), len(result.tx_bytes)
            self._collect(card, slot_map, result, last_rows)
            if self.loop is not None:
                self.loop.on_chunk(card, slot_map, [], result.orders[orders_before:],
                                   bytes(result.tx_bytes[tx_before:]), result.bbo[bbo_before:])
                self.loop.finish(card)
            result.seconds = time.perf_counter() - started
            result.cycles = card.transport.cycle - start_cycle
            result.latency = trading.latency(card)
            result.counters = {name: card.read(name) for name in (
                "itch.events", "book.bbo_updates", "strategy.signals", "strategy.disarmed", "risk.accepted",
                "orders.sent", "orders.log_dropped", "risk.reject_log_dropped", "moldudp64.gaps",
                "moldudp64.duplicates", "book.table_overflows", "book.unknown_refs", "book.tops_unknown",
                "book.refills", "book.ladder_misses", "risk.notional_slow")}
        finally:
            if own_card:
                card.close()
        return result

    def _collect(self, card, slot_map, result, last_rows):
        updates = card.transport.pop_bbo()
        result.bbo.extend(bbo_rows(updates, slot_map, last_rows, result.bbo_degraded))
        if self.keep_transfers:
            result.bbo_updates.extend(_records(updates))
            result.gate_orders.extend(_records(card.transport.pop_order_tap()))
        else:
            card.transport.pop_order_tap()
        data, keep, flags, _ = card.transport.pop_tx()
        for word, lanes in zip(data.tolist(), keep.tolist()):
            result.tx_bytes += int(word).to_bytes(8, "little")[:bin(lanes).count("1")]
        result.orders.extend(trading.drain_orders(card, slot_map))
        result.rejects.extend(trading.drain_rejects(card, slot_map))

    def _chunks(self, path, card, changes):
        """``(frames, message count, change or None)`` per chunk; a chunk ends where a change is due."""
        if _is_pcap(path):
            yield from self._pcap_chunks(path, card)
            return
        messages = iter_raw_messages(path)
        change_points = sorted(changes)
        sent = 0
        packets = pack_messages(messages, SESSION)
        pending = []
        pending_messages = []
        for packet in packets:
            payload = encode_packet(packet)
            for port, feed in ((0, FEED_A), (1, FEED_B))[:2 if self.ab else 1]:
                pending.append((port, build_udp_frame(payload, dst_ip=feed[0], dst_port=feed[1])))
            pending_messages.extend(packet.messages)
            due = change_points and sent + len(pending_messages) >= change_points[0]
            if len(pending) >= self.packets_per_chunk or due:
                sent += len(pending_messages)
                change = changes[change_points.pop(0)] if due else None
                yield pending, pending_messages, change
                pending, pending_messages = [], []
        if pending:
            yield pending, pending_messages, None

    def _pcap_chunks(self, path, card):
        ports = {}
        pending, count = [], 0
        for frame, destination, payload in _pcap_payloads(path):
            if destination not in ports:
                if len(ports) == 2:
                    continue
                port = len(ports)
                ports[destination] = port
                name = "ab"[port]
                card.write(f"feed.dst_ip_{name}", int.from_bytes(bytes(map(int, destination[0].split("."))), "big")
                           if isinstance(destination[0], str) else destination[0])
                card.write(f"feed.dst_port_{name}", destination[1])
                card.commit("feed")
            pending.append((ports[destination], frame))
            try:
                count += len(decode_packet(payload).messages) if ports[destination] == 0 else 0
            except ValueError:
                pass
            if len(pending) >= self.packets_per_chunk:
                yield pending, count, None
                pending, count = [], 0
        if pending:
            yield pending, count, None
