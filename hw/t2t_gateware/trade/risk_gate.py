"""Pre-trade risk gate between the strategy and the order encoder: every check in parallel, three cycles."""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.fifo import SyncFIFO, SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from ..streams import BboUpdate, OrderRequest, OrderSide
from .strategy import CYCLE_BITS

__all__ = ["COUNTERS", "HEADROOM_BITS", "LATENCY", "POSITION_QUEUE", "RejectReason", "RejectRecord", "RiskGate",
           "RiskLimits"]

#: Cycles from an order's handshake on ``i_order`` to its ``valid`` on ``o_order``.
LATENCY = 3

#: Host position writes the gate queues while an order is in flight (the host writes far less often).
POSITION_QUEUE = 4

#: Signed width of a slot's remaining room for buys (limit - position - pending buys) and sells.
HEADROOM_BITS = 34


def _carry_save(a, b, c):
    """Three addends to two with the same sum (modulo their width): bitwise sums and the carries."""
    return a ^ b ^ c, ((a & b) | (a & c) | (b & c)) << 1


class RejectReason(enum.Enum, shape=4):
    """Why the gate refused an order. When several checks fail, the lowest value is the one reported."""
    NONE = 0            # not a reject
    KILLED = 1          # kill switch: the host's ``kill`` or the automatic trip, until ``rearm``
    RESTRICTED = 2      # the slot is restricted (or outside 0..S-1)
    MAX_SHARES = 3      # shares > max_shares
    MAX_NOTIONAL = 4    # shares x price > max_notional (Price(4) ticks x shares)
    NO_REFERENCE = 5    # no price to collar against: no ask for a buy, no bid for a sell
    PRICE_COLLAR = 6    # buy above ask + collar, or sell below bid - collar
    POSITION_LIMIT = 7  # position + pending orders on that side + this order would pass the slot's limit
    RATE_LIMIT = 8      # no token left in the order bucket
    DUPLICATE = 9       # same slot, side, price and shares as the last accepted order, within the window


#: The wrapping counters (``Out(32)`` ports) of :class:`RiskGate`: accepted orders, rejects by reason, and rejects
#: the full log had to drop (still counted by reason).
COUNTERS = ("accepted",) + tuple(f"rejected_{reason.name.lower()}" for reason in RejectReason
                                 if reason != RejectReason.NONE) + ("reject_log_dropped",)


class RiskLimits(data.Struct):
    """The gate's global limits (the host sets them; a zero limit refuses everything it limits, except as noted).

    ``max_notional`` is in Price(4) ticks x shares. ``collar_ticks`` is the price collar in ticks around the slot's
    BBO. The order bucket holds up to ``bucket_capacity`` tokens, starts empty and gains one every
    ``refill_cycles`` cycles (0: never); each accepted order takes one. ``duplicate_window`` cycles after an
    accepted order, the same order is a duplicate (0: no duplicate check). ``max_rejects`` rejects within
    ``reject_window`` cycles of the window's first reject trip the kill switch (0: never trips).
    """
    max_shares: 32
    max_notional: 64
    collar_ticks: 32
    bucket_capacity: 16
    refill_cycles: 32
    duplicate_window: 32
    max_rejects: 16
    reject_window: 32


class RejectRecord(data.Struct):
    """One refused order, as the host drains it from the reject log."""
    slot: 8
    locate: 16
    side: OrderSide
    shares: 32
    price: 32
    reason: RejectReason


class RiskGate(wiring.Component):
    """Passes an order request only if every pre-trade check passes; refuses it with a reason otherwise.

    Parameters
    ----------
    symbols : int
        Number of symbol slots S.
    reject_log_depth : int
        Entries of the reject log FIFO.

    Attributes
    ----------
    i_order : In(stream.Signature(OrderRequest))
        Orders from the strategy, taken one every 3 cycles at most: not while an order is in flight, nor while
        ``o_order`` is held back, nor while a host position write or re-arm is waiting.
    o_order : Out(stream.Signature(OrderRequest))
        The accepted orders, unchanged.
    i_bbo_tap : In(stream.Signature(BboUpdate, always_ready=True))
        A copy of the BBO updates: the gate keeps each slot's last bid and ask (0 = empty side) as the collar's
        reference; an update applies to orders handshaken from the next cycle on.
    cycle : In(CYCLE_BITS)
        The free-running cycle counter (duplicate and reject windows).
    limits : In(RiskLimits)
        Global limits; see :class:`RiskLimits`.
    position_we, position_slot, position, position_limit : In(1), In(range(S)), In(signed(32)), In(32)
        Host write of a slot's position (signed shares, from fills) and limit on its absolute value. It also
        forgets the shares of the slot's orders accepted so far (the host's position accounts for them). Slots
        start at position 0, limit 0: nothing trades before the host writes them. A write waits (up to
        :data:`POSITION_QUEUE` of them) until no order is in flight; orders wait until it is applied.
    restricted : In(S)
        One bit per slot: refuse every order of that slot.
    kill : In(1)
        Refuse every order while high, and set ``killed``.
    rearm : In(1)
        Strobe: clears ``killed`` (unless ``kill`` is high) and the automatic trip's count of rejects; waits until
        no order is in flight.
    killed : Out(1)
        Sticky: the kill switch tripped (host or automatic); every order is refused as ``KILLED``.
    o_reject : Out(stream.Signature(RejectRecord))
        The reject log: one record per refused order, in order; a record that finds it full is dropped and counted.
    accepted, rejected_<reason>, reject_log_dropped : Out(32)
        Wrapping counters (:data:`COUNTERS`); each reject is counted once, under its reported reason, one cycle
        after the decision (with its log record).

    Notes
    -----
    Latency: :data:`LATENCY` = 3 cycles from the order's handshake to its ``valid`` on ``o_order`` (a reject is
    logged 3 cycles after the handshake). Throughput: one order every 3 cycles (the order encoder needs 7 TX beats
    per order anyway). The checks run in parallel: in the handshake cycle, the checks on the order itself and on
    the gate's state (kill, restricted, max shares, duplicate), the slot's BBO and headroom read from small LUT
    memories, and the notional's four 16 x 16 partial products (DSP blocks); in the next cycle, the collar,
    no-reference and position comparisons and the notional against its limit (carry-save, one carry chain); in
    the third, the order bucket and the decision. Every check sees the state of the handshake cycle (BBO taps up
    to the cycle before), except the bucket, seen at the decision. One order is in flight at a time, so there is
    nothing to forward between orders. A single-cycle gate with the same checks reaches 60 MHz on ECP5-5G (92 MHz
    without the notional product): not the core clock.
    """

    def __init__(self, symbols, *, reject_log_depth=16):
        if symbols < 1:
            raise ValueError("at least one symbol slot")
        self.symbols = symbols
        self.reject_log_depth = reject_log_depth
        super().__init__({
            "i_order": In(stream.Signature(OrderRequest)),
            "o_order": Out(stream.Signature(OrderRequest)),
            "i_bbo_tap": In(stream.Signature(BboUpdate, always_ready=True)),
            "cycle": In(CYCLE_BITS),
            "limits": In(RiskLimits),
            "position_we": In(1),
            "position_slot": In(range(symbols)),
            "position": In(signed(32)),
            "position_limit": In(32),
            "restricted": In(symbols),
            "kill": In(1),
            "rearm": In(1),
            "killed": Out(1),
            "o_reject": Out(stream.Signature(RejectRecord)),
            **{name: Out(32) for name in COUNTERS},
        })

    def elaborate(self, platform):
        m = Module()
        slots = self.symbols
        slot_bits = max(1, ceil_log2(slots))
        limits = self.limits
        o_order = self.o_order

        # One order in flight: taken (stage 0), checked (stage 1), decided (stage 2). The host's position writes
        # (queued) and re-arms wait while an order is in flight, so the order is checked and settled on one state.
        s1_valid = Signal()
        s2_valid = Signal()
        busy = s1_valid | s2_valid
        position_layout = data.StructLayout({"slot": slot_bits, "position": signed(32), "limit": 32})
        m.submodules.position_writes = position_writes = SyncFIFO(width=position_layout.size,
                                                                  depth=POSITION_QUEUE)
        host = position_layout(position_writes.r_data)
        m.d.comb += [
            position_writes.w_data.eq(Cat(self.position_slot, self.position, self.position_limit)),
            position_writes.w_en.eq(self.position_we),
            position_writes.r_en.eq(~busy),
        ]
        position_now = position_writes.r_rdy & ~busy
        rearm_pending = Signal()
        m.d.sync += rearm_pending.eq((rearm_pending | self.rearm) & busy)
        rearm_now = (self.rearm | rearm_pending) & ~busy
        ready = ~busy & (~o_order.valid | o_order.ready) & ~self.position_we & ~position_writes.r_rdy & \
            ~self.rearm & ~rearm_pending
        m.d.comb += self.i_order.ready.eq(ready)
        take = self.i_order.valid & ready
        order = self.i_order.payload
        slot = order.slot[:slot_bits]
        is_buy = order.side == OrderSide.BUY

        # Last BBO per slot, for the collar.
        m.submodules.bbo = bbo_memory = Memory(shape=data.StructLayout({"bid": 32, "ask": 32}), depth=slots,
                                               init=[])
        bbo_write = bbo_memory.write_port()
        bbo_read = bbo_memory.read_port(domain="comb")
        tap = self.i_bbo_tap.payload
        m.d.comb += [
            bbo_write.addr.eq(tap.slot[:slot_bits]),
            bbo_write.data.bid.eq(tap.bid_price),
            bbo_write.data.ask.eq(tap.ask_price),
            bbo_write.en.eq(self.i_bbo_tap.valid & (tap.slot < slots)),
            bbo_read.addr.eq(slot),
        ]
        bid, ask = bbo_read.data.bid, bbo_read.data.ask

        # Room left per slot and side: limit - position - pending buys, limit + position - pending sells.
        headroom = {}
        headroom_write = {}
        for side in OrderSide:
            name = side.name.lower()
            m.submodules[f"headroom_{name}"] = memory = Memory(shape=signed(HEADROOM_BITS), depth=slots, init=[])
            read = memory.read_port(domain="comb")
            headroom_write[side] = memory.write_port()
            m.d.comb += read.addr.eq(slot)
            headroom[side] = read.data
        room = Mux(is_buy, headroom[OrderSide.BUY], headroom[OrderSide.SELL])

        killed_now = self.killed | self.kill
        last = Signal(data.StructLayout({"slot": 8, "side": OrderSide, "price": 32, "shares": 32}))
        duplicate_until = Signal(CYCLE_BITS)

        # Stage 0, on the order as it is taken: the checks on the order and the gate's own state, the slot's BBO and
        # headroom read, and the notional's partial products (16 x 16 bits, one DSP block each).
        failed_early = {
            RejectReason.KILLED: killed_now,
            RejectReason.RESTRICTED: (order.slot >= slots) | self.restricted.bit_select(slot, 1),
            RejectReason.MAX_SHARES: order.shares > limits.max_shares,
            RejectReason.DUPLICATE: ((Cat(order.slot, order.side, order.price, order.shares) == last.as_value()) &
                                     (self.cycle < duplicate_until)),
        }
        s1_failed = Signal(len(failed_early))
        s1_order = Signal(OrderRequest)
        s1_cycle = Signal(CYCLE_BITS)
        s1_room = Signal(signed(HEADROOM_BITS))
        s1_bid = Signal(32)
        s1_ask = Signal(32)
        # The collar as price - collar <= ask for a buy and price + collar >= bid for a sell.
        s1_price_down = Signal(signed(34))
        s1_price_up = Signal(33)
        shares_lo, shares_hi = order.shares[:16], order.shares[16:]
        price_lo, price_hi = order.price[:16], order.price[16:]
        products = [Signal(32, name=f"product_{name}") for name in ("ll", "lh", "hl", "hh")]
        with m.If(take):
            m.d.sync += [
                s1_failed.eq(Cat(*failed_early.values())),
                s1_order.eq(order),
                s1_cycle.eq(self.cycle),
                s1_room.eq(room),
                s1_bid.eq(bid),
                s1_ask.eq(ask),
                s1_price_down.eq(order.price - limits.collar_ticks),
                s1_price_up.eq(order.price + limits.collar_ticks),
                products[0].eq(shares_lo * price_lo),
                products[1].eq(shares_lo * price_hi),
                products[2].eq(shares_hi * price_lo),
                products[3].eq(shares_hi * price_hi),
            ]
        m.d.sync += s1_valid.eq(take)

        # Stage 1: the collar and position checks on what stage 0 read, and the notional: shares x price =
        # hh << 32 + (lh + hl) << 16 + ll is over its limit L exactly when notional + ~L >= 2**64; the four terms go
        # through two carry-save stages, then one carry chain.
        s1_buy = s1_order.side == OrderSide.BUY
        failed_late = {
            RejectReason.NO_REFERENCE: Mux(s1_buy, s1_ask == 0, s1_bid == 0),
            RejectReason.PRICE_COLLAR: Mux(s1_buy, s1_price_down > s1_ask, s1_price_up < s1_bid),
            RejectReason.POSITION_LIMIT: s1_order.shares > s1_room,
        }
        s2_failed = Signal(len(failed_early) + len(failed_late))
        s2_over_notional = Signal()
        s2_order = Signal(OrderRequest)
        s2_cycle = Signal(CYCLE_BITS)
        s2_room = Signal(signed(HEADROOM_BITS))
        terms = [Signal(66, name=f"notional_term_{index}") for index in range(4)]
        m.d.comb += [terms[0].eq(Cat(products[0], products[3])), terms[1].eq(products[1] << 16),
                     terms[2].eq(products[2] << 16), terms[3].eq(~limits.max_notional)]
        partial, carries = _carry_save(*terms[:3])
        partial, carries = _carry_save(partial, carries, terms[3])
        over_notional = (partial + carries)[64]
        m.d.sync += [
            s2_valid.eq(s1_valid),
            s2_failed.eq(Cat(s1_failed, *failed_late.values())),
            s2_over_notional.eq(over_notional),
            s2_order.eq(s1_order),
            s2_cycle.eq(s1_cycle),
            s2_room.eq(s1_room),
        ]

        # Stage 2: decide, with the bucket as it is now.
        tokens = Signal(16)
        failed = dict(zip(list(failed_early) + list(failed_late), s2_failed))
        failed[RejectReason.MAX_NOTIONAL] = s2_over_notional
        tokens_empty = Signal(init=1)
        failed[RejectReason.RATE_LIMIT] = tokens_empty
        failed = {reason: failed[reason] for reason in sorted(failed, key=lambda reason: reason.value)}
        refused = Signal()
        m.d.comb += refused.eq(Cat(*failed.values()).any())
        accept = s2_valid & ~refused
        reject = s2_valid & refused
        reason = Signal(RejectReason)
        for check in reversed(failed):
            with m.If(failed[check]):
                m.d.comb += reason.eq(check)

        with m.If(o_order.ready):
            m.d.sync += o_order.valid.eq(0)
        with m.If(accept):
            m.d.sync += [
                o_order.valid.eq(1),
                o_order.payload.eq(s2_order),
                self.accepted.eq(self.accepted + 1),
                last.eq(Cat(s2_order.slot, s2_order.side, s2_order.price, s2_order.shares)),
                duplicate_until.eq(s2_cycle + limits.duplicate_window),
            ]
        host_room = {OrderSide.BUY: host.limit - host.position, OrderSide.SELL: host.limit + host.position}
        for side in OrderSide:
            write = headroom_write[side]
            with m.If(position_now):
                m.d.comb += [write.addr.eq(host.slot), write.data.eq(host_room[side]), write.en.eq(1)]
            with m.Else():
                m.d.comb += [write.addr.eq(s2_order.slot[:slot_bits]), write.data.eq(s2_room - s2_order.shares),
                             write.en.eq(accept & (s2_order.side == side))]

        # Order bucket: a token every refill_cycles cycles, counted from reset. period_cycles counts the cycles of
        # the current period, this one included.
        period_cycles = Signal(33, init=1)
        period_end = period_cycles >= limits.refill_cycles
        refill = period_end & (limits.refill_cycles != 0)
        m.d.sync += period_cycles.eq(Mux(period_end, 1, period_cycles + 1))
        with m.If(accept & ~refill):
            m.d.sync += [tokens.eq(tokens - 1), tokens_empty.eq(tokens == 1)]
        with m.Elif(refill & ~accept & (tokens < limits.bucket_capacity)):
            m.d.sync += [tokens.eq(tokens + 1), tokens_empty.eq(0)]

        # Reject log and counters, one cycle later, off the decision's path.
        m.submodules.reject_log = reject_log = SyncFIFOBuffered(width=RejectRecord.as_shape().size,
                                                                 depth=self.reject_log_depth)
        logged = Signal()
        record = Signal(RejectRecord)
        m.d.sync += [
            logged.eq(reject),
            record.slot.eq(s2_order.slot),
            record.locate.eq(s2_order.locate),
            record.side.eq(s2_order.side),
            record.shares.eq(s2_order.shares),
            record.price.eq(s2_order.price),
            record.reason.eq(reason),
        ]
        m.d.comb += [
            reject_log.w_data.eq(record),
            reject_log.w_en.eq(logged),
            self.o_reject.payload.eq(reject_log.r_data),
            self.o_reject.valid.eq(reject_log.r_rdy),
            reject_log.r_en.eq(self.o_reject.ready),
        ]
        with m.If(logged):
            for check in failed:
                with m.If(record.reason == check):
                    counter = getattr(self, f"rejected_{check.name.lower()}")
                    m.d.sync += counter.eq(counter + 1)
            with m.If(~reject_log.w_rdy):
                m.d.sync += self.reject_log_dropped.eq(self.reject_log_dropped + 1)

        # Kill switch: tripped by max_rejects rejects within reject_window cycles of the window's first reject.
        # Whether a reject would open a new window or trip is worked out in stage 1 (nothing changes the window
        # while the order is in flight).
        window_rejects = Signal(16)
        window_until = Signal(CYCLE_BITS)
        s2_new_window = Signal()
        s2_would_trip = Signal()
        new_window = s1_cycle >= window_until
        m.d.sync += [
            s2_new_window.eq(new_window),
            s2_would_trip.eq((limits.max_rejects != 0) &
                             Mux(new_window, limits.max_rejects == 1, window_rejects + 1 >= limits.max_rejects)),
        ]
        with m.If(reject):
            with m.If(s2_new_window):
                m.d.sync += [window_until.eq(s2_cycle + limits.reject_window), window_rejects.eq(1)]
            with m.Else():
                m.d.sync += window_rejects.eq(window_rejects + 1)
            with m.If(s2_would_trip):
                m.d.sync += self.killed.eq(1)
        with m.If(rearm_now):
            m.d.sync += [self.killed.eq(0), window_rejects.eq(0), window_until.eq(0)]
        with m.If(self.kill):
            m.d.sync += self.killed.eq(1)

        return m
