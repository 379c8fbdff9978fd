"""Encodes each order as an OUCH 4.2 Enter Order in a SoupBinTCP unsequenced-data packet on the 64-bit TX stream."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..streams import BEAT_BYTES, STAMP_BITS, MacBeat, OrderRequest, OrderSide

__all__ = ["PACKET_BYTES", "PACKET_BEATS", "TOKEN_PREFIX_CHARS", "TOKEN_DIGITS", "SYMBOL_SLOTS", "OrderLogEntry",
           "OuchEncoder"]

#: SoupBinTCP length (2) + type 'U' (1) + OUCH 4.2 Enter Order (49).
PACKET_BYTES = 52
PACKET_BEATS = -(-PACKET_BYTES // BEAT_BYTES)
#: The 14-character order token is a fixed prefix followed by a zero-padded decimal number.
TOKEN_PREFIX_CHARS = 6
TOKEN_DIGITS = 14 - TOKEN_PREFIX_CHARS
#: One symbol table entry per possible ``OrderRequest.slot``.
SYMBOL_SLOTS = 256

_ENTER_ORDER_LENGTH = 49


class OrderLogEntry(data.Struct):
    """One sent order, for the host's order log.

    ``token_number`` is the number in the order's token in BCD, most significant digit in the top nibble, so that
    its hexadecimal spelling is the token's decimal digits (token = prefix + ``f"{token_number:08x}"``).
    ``timestamp`` and ``trigger_stamp`` are those of the triggering market
    event (:class:`OrderRequest`); ``tx_stamp`` is the ``stamp`` of the cycle the packet's first beat was sent, so the
    tick-to-trade latency is ``(tx_stamp - trigger_stamp) mod 2**STAMP_BITS`` cycles.
    """
    token_number: 4 * TOKEN_DIGITS
    slot: 8
    locate: 16
    side: OrderSide
    shares: 32
    price: 32
    timestamp: 48
    trigger_stamp: STAMP_BITS
    tx_stamp: STAMP_BITS


def _big_endian(value, size):
    return [value[8 * (size - 1 - i):8 * (size - i)] for i in range(size)]


def _text(value, size):
    """Characters of a text port or register: character ``i`` is ``value[8*i:8*i+8]``."""
    return [value[8 * i:8 * i + 8] for i in range(size)]


def _char(letter):
    return Const(ord(letter), 8)


class OuchEncoder(wiring.Component):
    """Turns each order into one SoupBinTCP unsequenced-data packet carrying an OUCH 4.2 Enter Order.

    The TX stream carries SoupBinTCP packets, i.e. the payload of the order-entry TCP session: it feeds a TCP
    offload engine, or the host's SoupBinTCP session, which owns the connection, login, heartbeats and
    retransmission. TCP/IP/Ethernet framing is outside the pipeline.

    Packet (52 bytes, 7 beats, the last one 4 bytes; offsets in the packet, OUCH offset = packet offset - 3):
    length 50 @0:2, SoupBinTCP type 'U' @2, then the Enter Order: type 'O' @3, order token @4:14, side 'B'/'S'
    @18, shares @19:4, stock @23:8, price @31:4 (Price(4)), time in force @35:4, firm @39:4, display 'Y' @43,
    capacity @44, intermarket sweep 'N' @45, minimum quantity 0 @46:4, cross type 'N' @50, customer type @51.

    Order token: ``token_prefix`` (6 characters) then an 8-digit zero-padded decimal number, kept as a BCD counter
    incremented in place (no binary to decimal conversion): 00000001 for the first order after reset,
    ``token_start`` for the first after ``token_reset``, then one more per order, so tokens increase strictly (as
    numbers and as text) and never repeat until the next reset. Day-unique tokens are the host's part: it resets
    at the start of the day and, should the card restart during the day, resets to a ``token_start`` above the
    last token sent (from the order log) or changes the prefix. After 99999999 the encoder takes no more orders
    (``tokens_exhausted``) rather than repeat a token.

    Attributes
    ----------
    i_order : In(stream.Signature(OrderRequest))
        Checked orders. Held (``ready`` low) while a packet is being sent, while TX holds the first beat back,
        while a token reset is pending and once tokens are exhausted: no order is lost.
    o_tx : Out(stream.Signature(MacBeat))
        SoupBinTCP packets, ``first``/``last``/``keep`` framed; ``error`` is always 0. The TX side may hold beats.
    o_log : Out(stream.Signature(OrderLogEntry))
        One entry per order, valid from the cycle after its first beat was sent. The encoder never waits for it:
        an entry produced while the previous one is still untaken is dropped and counted in ``log_dropped``.
    stamp : In(STAMP_BITS)
        Low bits of the free-running cycle counter.
    token_prefix : In(8 * TOKEN_PREFIX_CHARS)
        Token prefix, character ``i`` in bits ``[8*i:8*i+8]``.
    firm : In(32)
        Firm identifier (4 characters, same character order). Prefix and firm are sampled when an order is taken.
    token_start : In(4 * TOKEN_DIGITS)
        BCD number (as in :class:`OrderLogEntry`) of the first token after ``token_reset``.
    token_reset : In(1)
        Strobe: the first order not yet taken gets ``token_start``. Applies between packets.
    symbol_we, symbol_slot, symbol_name : In(1), In(8), In(64)
        Host write of the 8-character, space-padded stock symbol (same character order) of a slot. A slot never
        written sends 8 NUL bytes, which the exchange rejects. A write applies to orders taken from the next cycle.
    orders_sent : Out(32)
        Wrapping count of packets sent completely.
    log_dropped : Out(32)
        Wrapping count of order log entries dropped.
    tokens_exhausted : Out(1)
        Token 99999999 was sent; orders are held until ``token_reset``.

    Parameters
    ----------
    capacity : str
        OUCH capacity character; 'P' (principal) by default, since the strategy trades the firm's own account.
    customer_type : str
        OUCH customer type character; 'N' (not a retail designated order) by default.

    Notes
    -----
    Latency: 0 cycles. The first beat depends only on the settings, so when the encoder is idle ``o_tx.valid``
    follows ``i_order.valid`` combinationally, and the order is taken in the cycle the first beat is
    (``i_order.ready`` follows ``o_tx.ready`` combinationally); the other 6 beats follow in the next cycles when
    TX is ready. Throughput: one order per 7 cycles (the packet's 7 beats).
    """

    i_order: In(stream.Signature(OrderRequest))
    o_tx: Out(stream.Signature(MacBeat))
    o_log: Out(stream.Signature(OrderLogEntry))
    stamp: In(STAMP_BITS)
    token_prefix: In(8 * TOKEN_PREFIX_CHARS)
    firm: In(32)
    token_start: In(4 * TOKEN_DIGITS)
    token_reset: In(1)
    symbol_we: In(1)
    symbol_slot: In(8)
    symbol_name: In(64)
    orders_sent: Out(32)
    log_dropped: Out(32)
    tokens_exhausted: Out(1)

    def __init__(self, *, capacity="P", customer_type="N"):
        for name, value in (("capacity", capacity), ("customer_type", customer_type)):
            if len(value) != 1 or not value.isascii():
                raise ValueError(f"{name} must be one ASCII character, not {value!r}")
        self._capacity = capacity
        self._customer_type = customer_type
        super().__init__()

    def elaborate(self, platform):
        m = Module()

        m.submodules.symbols = symbols = Memory(shape=64, depth=SYMBOL_SLOTS, init=[])
        symbol_write = symbols.write_port()
        symbol_read = symbols.read_port(domain="sync")
        # The block RAM's output is slow (4.3 ns clock to out on ECP5): register it. The stock is first needed in
        # beat 2, two cycles after the read, and the read port holds it until the next order is taken.
        stock = Signal(64)
        m.d.sync += stock.eq(symbol_read.data)
        m.d.comb += [
            symbol_write.en.eq(self.symbol_we),
            symbol_write.addr.eq(self.symbol_slot),
            symbol_write.data.eq(self.symbol_name),
        ]

        # beat == 0: idle, the first beat is offered whenever an order is; 1..6: sending that beat.
        beat = Signal(range(PACKET_BEATS))
        idle = beat == 0
        # The first beat was offered and TX held it: keep offering it whatever else changes.
        holding = Signal()
        reset_pending = Signal()
        # Token number in BCD, digit 0 the most significant.
        digits = [Signal(4, name=f"token_digit{i}", init=int(i == TOKEN_DIGITS - 1)) for i in range(TOKEN_DIGITS)]
        token_number = Cat(*reversed(digits))

        order = Signal(OrderRequest)
        prefix = Signal.like(self.token_prefix)
        firm = Signal.like(self.firm)

        can_take = idle & (holding | ~(reset_pending | self.tokens_exhausted))
        offer = can_take & self.i_order.valid
        take = offer & self.o_tx.ready
        packet_done = (beat == PACKET_BEATS - 1) & self.o_tx.ready
        m.d.comb += [
            self.i_order.ready.eq(can_take & self.o_tx.ready),
            symbol_read.addr.eq(self.i_order.payload.slot),
            symbol_read.en.eq(take),
        ]
        m.d.sync += holding.eq(offer & ~self.o_tx.ready)
        # The order, prefix and firm are loaded in every cycle the encoder could take an order (and kept from the
        # one it takes on): their enable is then a register, not the handshake, which follows i_order.valid.
        with m.If(can_take):
            m.d.sync += [
                order.eq(self.i_order.payload),
                prefix.eq(self.token_prefix),
                firm.eq(self.firm),
            ]
        with m.If(take):
            m.d.sync += beat.eq(1)
        with m.Elif(~idle & self.o_tx.ready):
            m.d.sync += beat.eq(Mux(beat == PACKET_BEATS - 1, 0, beat + 1))

        # The first beat uses the live prefix (the order is taken that cycle), later beats the sampled one.
        packet = (
            _big_endian(Const(1 + _ENTER_ORDER_LENGTH, 16), 2) + [_char("U"), _char("O")]
            + _text(Mux(idle, self.token_prefix, prefix), TOKEN_PREFIX_CHARS)
            + [Cat(digit, Const(0x3, 4)) for digit in digits]
            + [Mux(order.side == OrderSide.SELL, _char("S"), _char("B"))]
            + _big_endian(order.shares, 4)
            + _text(stock, 8)
            + _big_endian(order.price, 4)
            + _big_endian(order.time_in_force, 4)
            + _text(firm, 4)
            + [_char("Y"), _char(self._capacity), _char("N")]
            + _big_endian(Const(0, 32), 4)
            + [_char("N"), _char(self._customer_type)]
        )
        assert len(packet) == PACKET_BYTES
        packet += [Const(0, 8)] * (PACKET_BEATS * BEAT_BYTES - PACKET_BYTES)
        with m.Switch(beat):
            for index in range(PACKET_BEATS):
                with m.Case(index):
                    m.d.comb += self.o_tx.payload.data.eq(Cat(*packet[BEAT_BYTES * index:BEAT_BYTES * (index + 1)]))
        last_lanes = PACKET_BYTES - BEAT_BYTES * (PACKET_BEATS - 1)
        m.d.comb += [
            self.o_tx.valid.eq(offer | ~idle),
            self.o_tx.payload.first.eq(idle),
            self.o_tx.payload.last.eq(beat == PACKET_BEATS - 1),
            self.o_tx.payload.keep.eq(Mux(beat == PACKET_BEATS - 1, (1 << last_lanes) - 1, 0xFF)),
        ]

        carry = Const(1)
        increments = []
        for digit in reversed(digits):
            increments.append(digit.eq(Mux(carry, Mux(digit == 9, 0, digit + 1), digit)))
            carry = carry & (digit == 9)
        with m.If(reset_pending & idle & ~holding):
            m.d.sync += [token_number.eq(self.token_start), self.tokens_exhausted.eq(0)]
        with m.Elif(packet_done):
            m.d.sync += [*increments, self.tokens_exhausted.eq(carry)]
        with m.If(self.token_reset):
            m.d.sync += reset_pending.eq(1)
        with m.Elif(idle & ~holding):
            m.d.sync += reset_pending.eq(0)
        with m.If(packet_done):
            m.d.sync += self.orders_sent.eq(self.orders_sent + 1)

        with m.If(self.o_log.ready):
            m.d.sync += self.o_log.valid.eq(0)
        log_free = ~self.o_log.valid | self.o_log.ready
        with m.If(take):
            with m.If(~log_free):
                m.d.sync += self.log_dropped.eq(self.log_dropped + 1)
            with m.Else():
                m.d.sync += self.o_log.valid.eq(1)
        # The entry is loaded whenever the log is free and an order could be taken (as above); it is valid only
        # after a take.
        with m.If(can_take & log_free):
            m.d.sync += [
                self.o_log.payload.token_number.eq(token_number),
                self.o_log.payload.slot.eq(self.i_order.payload.slot),
                self.o_log.payload.locate.eq(self.i_order.payload.locate),
                self.o_log.payload.side.eq(self.i_order.payload.side),
                self.o_log.payload.shares.eq(self.i_order.payload.shares),
                self.o_log.payload.price.eq(self.i_order.payload.price),
                self.o_log.payload.timestamp.eq(self.i_order.payload.timestamp),
                self.o_log.payload.trigger_stamp.eq(self.i_order.payload.stamp),
                self.o_log.payload.tx_stamp.eq(self.stamp),
            ]

        return m
