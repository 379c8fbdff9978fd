"""Pre-trade risk gate between the strategy and the order encoder: every check in parallel, one cycle added."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.fifo import SyncFIFO, SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from ..streams import BboUpdate, OrderRequest, OrderSide
from .strategy import CYCLE_BITS

__all__ = ["COUNTERS", "HEADROOM_BITS", "LATENCY", "NOTIONAL_WAYS", "POSITION_QUEUE", "SIZE_QUEUE",
           "SLOW_LATENCY", "RejectReason", "RejectRecord", "RiskGate", "RiskLimits"]

#: Cycles from an order's handshake on ``i_order`` to its ``valid`` on ``o_order`` (an order whose notional the
#: gate can check at once: see :class:`RiskGate`).
LATENCY = 1

#: Cycles from the handshake to ``valid`` for an order whose notional needs the divider (the divider idle).
SLOW_LATENCY = 36

#: Host position writes the gate queues while an order is in flight (the host writes far less often).
POSITION_QUEUE = 4

#: Host order-size registrations the gate queues while its divider is busy.
SIZE_QUEUE = 4

#: Signed width of a slot's remaining room for buys (limit - position - pending buys) and sells.
HEADROOM_BITS = 34

#: Order sizes per slot whose notional price cap the gate keeps.
NOTIONAL_WAYS = 2

_CAP_MAX = (1 << 32) - 1


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

    A change applies to orders handshaken from the next cycle on (a change of ``max_notional`` holds orders back
    for that cycle); change limits while no order is in flight.
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


def _at_least(a, b, flag=None):
    """``a >= b`` as unsigned numbers, one carry chain; with ``flag``, ``flag & (a >= b)`` with the flag as the
    chain's top bit (it arrives long before the carry does), so that no logic follows the chain."""
    a, b = Value.cast(a).as_unsigned(), Value.cast(b).as_unsigned()
    width = max(len(a), len(b))
    if flag is None:
        return Cat(a, Const(0, width - len(a))) >= Cat(b, Const(0, width - len(b)))
    return Cat(a, Const(0, width - len(a)), flag) >= Cat(b, Const(0, width - len(b)), Const(1, 1))


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
        Orders from the strategy. ``ready`` is low while an order is in flight (taken, not yet refused or passed
        on), in the cycle after a decision, in the cycle after a change of ``max_notional``, and while a host
        position write or re-arm is waiting: one order every 3 cycles at most (the order encoder needs 7 TX beats
        per order anyway). ``ready`` does not depend on ``o_order.ready``.
    o_order : Out(stream.Signature(OrderRequest))
        The accepted orders, unchanged. ``valid`` is the AND of the registered check results (two LUT levels).
    i_bbo_tap : In(stream.Signature(BboUpdate, always_ready=True))
        A copy of the BBO updates: the gate keeps each slot's last bid and ask (0 = empty side) as the collar's
        reference; an update applies to orders handshaken from the next cycle on.
    cycle : In(CYCLE_BITS)
        The free-running cycle counter (one more every cycle): duplicate and reject windows.
    limits : In(RiskLimits)
        Global limits; see :class:`RiskLimits`.
    position_we, position_slot, position, position_limit : In(1), In(range(S)), In(signed(32)), In(32)
        Host write of a slot's position (signed shares, from fills) and limit on its absolute value. It also
        forgets the shares of the slot's orders accepted so far (the host's position accounts for them). Slots
        start at position 0, limit 0: nothing trades before the host writes them. A write waits (up to
        :data:`POSITION_QUEUE` of them) until no order is in flight; orders wait until it is applied.
    notional_size_we, notional_size_slot, notional_size : In(1), In(range(S)), In(32)
        Host registration of an order size a strategy uses on a slot (the rule's shares), so that the gate works
        out that size's notional price cap before the first such order: see Notes. Up to :data:`SIZE_QUEUE` wait
        for the divider; more are dropped. Optional: the gate also learns each size from its first order.
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
        Wrapping counters (:data:`COUNTERS`); each order is counted once, accepted or under its reported reason,
        one cycle after the decision (a reject with its log record).
    notional_slow : Out(32)
        Wrapping count of orders whose notional needed the divider (an unregistered size, or a price above the
        size's cap): each took :data:`SLOW_LATENCY` cycles or more instead of one.

    Notes
    -----
    Latency: :data:`LATENCY` = 1 cycle from the order's handshake (cycle T) to its ``valid`` on ``o_order``.
    In cycle T every check is one carry chain (or a few LUTs) from the order and the gate's registered state,
    straight into a register. In T+1 (the decision cycle D) ``o_order.valid`` is the AND of those registered
    results: two LUT levels from registers, which the order encoder's first beat follows combinationally (the gate
    and the encoder together out of context on LFE5UM5G-45F: 190-193 MHz, seeds 1-3; the gate alone 191-196 MHz,
    8 slots). The decision is registered and updates the gate's state in D+1, a cycle in which the gate takes no
    order. The checks, each exact in integers:

    - kill switch: the ``killed`` register or the ``kill`` input, in T. Restricted: the slot's ``restricted`` bit
      (or a slot outside 0..S-1), in T. Both ride as the top bit of the max-shares chain (``flag & (a >= b)``):
      they arrive long before its carry, so no logic follows the chain.
    - max shares: ``max_shares >= shares``, one 33-bit chain.
    - price collar and no reference: the gate keeps per slot, in LUT memory, the last bid and ask the tap wrote
      and whether each side is present. In T the order's slot reads them while the order's ``price - collar``
      (signed) and ``price + collar`` are worked out (one chain each, as fast as the read), and one chain compares:
      ``ask >= price - collar`` for a buy, ``price + collar >= bid`` for a sell (offset by 2**33 where signed);
      the side and the reference's presence ride as the chain's top bit.
    - position: per slot and side the room left (``limit - position - pending buys``, ``limit + position - pending
      sells``, 34-bit signed) is kept in LUT memory; in T, ``room >= shares`` (offset by 2**33 to compare as
      unsigned), the side as the top bit. An accepted order's shares come off in D+1.
    - order bucket: ``tokens != 0`` is a register kept in step with the bucket (the refills, and the accepted
      order's token taken at the end of D+1), so it is ready in T.
    - duplicate: the last accepted order's slot, side, price and shares are compared with the order's as two
      74-bit chains (``>=`` with "the window is open" as the top bit, and ``<=``), ANDed with the bucket's bit into
      one register; "the window is open" is a register worked out every cycle, for the next one, from the
      free-running cycle counter.
    - max notional, with no multiplier: ``shares x price <= max_notional`` is the same as
      ``price <= floor(max_notional / shares)`` (integers, shares > 0). The gate keeps, per slot,
      :data:`NOTIONAL_WAYS` order sizes with their price caps ``min(floor(max_notional / size), 2**32 - 1)``,
      worked out by a sequential divider (one quotient bit per cycle) when the host registers a size
      (``notional_size_*``, at rule-load time) or an order of a size not kept arrives. In T, for each kept size,
      three chains from LUT memory: ``size >= shares``, ``shares >= size`` and ``cap >= price``. If
      ``size >= shares`` and ``cap >= price`` for one of them, ``shares x price <= size x cap <= max_notional``:
      the notional passes. If ``shares >= size`` and ``price > cap`` for one of them,
      ``shares x price >= size x (cap + 1) > max_notional``: it fails. So an order of a kept size is decided in T
      both ways, and a smaller one passes at once when its price is within the larger size's cap. Otherwise the
      order waits in the gate for the divider (:data:`SLOW_LATENCY` cycles when idle), which works out
      ``floor(max_notional / shares)`` exactly, decides the order by it (``price <= quotient``) and keeps the size
      for the next orders (a free way, else the one written longest ago). A change of ``max_notional`` forgets
      every kept size. An order passes only if its notional provably is within the limit; the latency, not the
      decision, depends on which sizes are kept.

    The reject reason is worked out in D from the registered results (when several fail the lowest reason), the
    log record and the counters in D+1, off the ``valid`` path. Every check sees the gate's state of cycle T (BBO
    taps up to T-1, the order bucket included); the windows count from T. Throughput: one order every 3 cycles
    (T, D, D+1), or one per divide for orders that need the divider.
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
            "notional_size_we": In(1),
            "notional_size_slot": In(range(symbols)),
            "notional_size": In(32),
            "restricted": In(symbols),
            "kill": In(1),
            "rearm": In(1),
            "killed": Out(1),
            "o_reject": Out(stream.Signature(RejectRecord)),
            **{name: Out(32) for name in COUNTERS},
            "notional_slow": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        slots = self.symbols
        slot_bits = max(1, ceil_log2(slots))
        limits = self.limits
        o_order = self.o_order
        order = self.i_order.payload
        slot = order.slot[:slot_bits]
        is_buy = order.side == OrderSide.BUY
        is_sell = ~is_buy

        # The order in flight (taken in T, decided in D = T+1 or after the divider, then held until o_order takes
        # it; the decision's state updates in D+1).
        s1_valid = Signal()
        s1_decided = Signal()       # accepted, waiting for o_order.ready
        cool = Signal()             # a decision was made in the cycle before
        s1 = Signal(OrderRequest)
        s1_cycle = Signal(CYCLE_BITS)

        # Host position writes and re-arms wait while an order is in flight; orders wait for them.
        position_layout = data.StructLayout({"slot": slot_bits, "position": signed(32), "limit": 32})
        m.submodules.position_writes = position_writes = SyncFIFO(width=position_layout.size,
                                                                  depth=POSITION_QUEUE)
        host = position_layout(position_writes.r_data)
        m.d.comb += [
            position_writes.w_data.eq(Cat(self.position_slot, self.position, self.position_limit)),
            position_writes.w_en.eq(self.position_we),
            position_writes.r_en.eq(~s1_valid & ~cool),
        ]
        position_now = position_writes.r_rdy & ~s1_valid & ~cool
        rearm_pending = Signal()
        m.d.sync += rearm_pending.eq((rearm_pending | self.rearm) & (s1_valid | cool))
        rearm_now = (self.rearm | rearm_pending) & ~s1_valid & ~cool
        notional_changed = Signal()     # max_notional changed in the cycle before: the caps are being forgotten
        ready = ~s1_valid & ~cool & ~self.position_we & ~position_writes.r_rdy & ~self.rearm & ~rearm_pending & \
            ~notional_changed
        m.d.comb += self.i_order.ready.eq(ready)
        take = self.i_order.valid & ready

        # --- Per-slot state the checks read in T.

        # The last BBO per slot, in LUT memory, as the tap wrote it (a tap applies from the next cycle on).
        tap = self.i_bbo_tap.payload
        bias = Const(1 << 33, 34)
        references = data.StructLayout({"ask": 32, "bid": 32, "ask_on": 1, "bid_on": 1})
        m.submodules.bbo_references = reference_memory = Memory(shape=references, depth=slots, init=[])
        reference_read = reference_memory.read_port(domain="comb")
        reference_write = reference_memory.write_port()
        m.d.comb += [
            reference_read.addr.eq(slot),
            reference_write.addr.eq(tap.slot[:slot_bits]),
            reference_write.data.ask.eq(tap.ask_price),
            reference_write.data.bid.eq(tap.bid_price),
            reference_write.data.ask_on.eq(tap.ask_price != 0),
            reference_write.data.bid_on.eq(tap.bid_price != 0),
            reference_write.en.eq(self.i_bbo_tap.valid & (tap.slot < slots)),
        ]
        reference = reference_read.data
        # The order's price less and plus the collar, worked out while the memory is read: price - collar <= ask for
        # a buy (signed, offset by 2**33 to compare as unsigned), price + collar >= bid for a sell.
        price_less_collar = Signal(34)
        price_plus_collar = Signal(33)
        difference = order.price - self.limits.collar_ticks            # signed, 33 bits
        m.d.comb += [
            price_less_collar.eq(Cat(difference, difference[32]) ^ bias),
            price_plus_collar.eq(order.price + self.limits.collar_ticks),
        ]

        # Room per slot and side (LUT memory): limit - position - pending buys, limit + position - pending sells.
        room_read = {}
        room_write = {}
        for side in OrderSide:
            name = side.name.lower()
            m.submodules[f"headroom_{name}"] = memory = Memory(shape=signed(HEADROOM_BITS), depth=slots, init=[])
            read = memory.read_port(domain="comb")
            room_write[side] = memory.write_port()
            m.d.comb += read.addr.eq(slot)
            room_read[side] = read.data

        # Notional price caps per slot: NOTIONAL_WAYS (size, cap) pairs in LUT memory, valid bits in registers.
        way_valid = []
        size_reads, cap_reads, size_writes, cap_writes = [], [], [], []
        for way in range(NOTIONAL_WAYS):
            m.submodules[f"notional_size_{way}"] = sizes = Memory(shape=32, depth=slots, init=[])
            m.submodules[f"notional_cap_{way}"] = caps = Memory(shape=32, depth=slots, init=[])
            for memory, reads, writes in ((sizes, size_reads, size_writes), (caps, cap_reads, cap_writes)):
                read = memory.read_port(domain="comb")
                m.d.comb += read.addr.eq(slot)
                reads.append(read.data)
                writes.append(memory.write_port())
            way_valid.append(Signal(slots, name=f"notional_valid_{way}"))

        # Pre-decided registers: the bucket has a token; the duplicate window is open.
        tokens = Signal(16)
        tokens_empty = Signal(init=1)
        dup_open = Signal()
        last = Signal(73)           # Cat(shares, price, side, slot) of the last accepted order
        killed_now = self.killed | self.kill
        restricted_now = (order.slot >= slots) | self.restricted.bit_select(slot, 1)

        # --- Cycle T: each check straight into a register.
        key = Cat(order.shares, order.price, order.side, order.slot)
        checks = data.StructLayout({
            "killed": 1, "restricted": 1, "no_reference": 1, "rate_ok": 1,
            "shares_ok": 1,             # ~killed & ~restricted & max_shares >= shares
            "buy_ok": 1, "sell_ok": 1,  # collar passed on the order's side, reference present
            "room_buy": 1, "room_sell": 1,
            "rate_dup_ok": 1,           # a token left, and not a duplicate
            "covered": NOTIONAL_WAYS, "under": NOTIONAL_WAYS, "capped": NOTIONAL_WAYS,
        })
        s1_checks = Signal(checks)
        s1_room = Signal(signed(HEADROOM_BITS))
        shares_biased = Cat(order.shares, Const(0b10, 2))     # shares + 2**33, 34 bits
        # Loaded in every cycle without an order in flight (the input's payload, whether or not it is taken), so
        # that the enable of these registers is a register, not the handshake: s1_idle, ~s1_valid kept apart for
        # its fan-out.
        s1_idle = Signal(init=1)
        with m.If(s1_idle):
            m.d.sync += [
                s1.eq(order),
                s1_cycle.eq(self.cycle),
                s1_room.eq(Mux(is_buy, room_read[OrderSide.BUY], room_read[OrderSide.SELL])),
                s1_checks.killed.eq(killed_now),
                s1_checks.restricted.eq(restricted_now),
                s1_checks.no_reference.eq(Mux(is_buy, ~reference.ask_on, ~reference.bid_on)),
                s1_checks.rate_ok.eq(~tokens_empty),
                s1_checks.shares_ok.eq(_at_least(limits.max_shares, order.shares, ~killed_now & ~restricted_now)),
                s1_checks.buy_ok.eq(_at_least(Cat(reference.ask, Const(0b10, 2)), price_less_collar,
                                              is_buy & reference.ask_on)),
                s1_checks.sell_ok.eq(_at_least(price_plus_collar, reference.bid, is_sell & reference.bid_on)),
                s1_checks.room_buy.eq(_at_least(room_read[OrderSide.BUY].as_unsigned() ^ bias, shares_biased,
                                                is_buy)),
                s1_checks.room_sell.eq(_at_least(room_read[OrderSide.SELL].as_unsigned() ^ bias, shares_biased,
                                                 is_sell)),
                # Both duplicate chains are from the order and registers only: one LUT after them still fits.
                s1_checks.rate_dup_ok.eq(~tokens_empty & ~(_at_least(key, last, dup_open) & _at_least(last, key))),
            ]
            for way in range(NOTIONAL_WAYS):
                m.d.sync += [
                    s1_checks.covered[way].eq(_at_least(size_reads[way], order.shares,
                                                        way_valid[way].bit_select(slot, 1))),
                    s1_checks.under[way].eq(_at_least(order.shares, size_reads[way],
                                                      way_valid[way].bit_select(slot, 1))),
                    s1_checks.capped[way].eq(_at_least(cap_reads[way], order.price)),
                ]

        # --- T+1 (or later): the decision, from the registered results.
        c = s1_checks
        collar_ok = c.buy_ok | c.sell_ok
        room_ok = c.room_buy | c.room_sell
        duplicate = c.rate_ok & ~c.rate_dup_ok
        slow_done = Signal()        # the divider has decided the order's notional
        slow_pass = Signal()        # and it passed
        notional_ok = Cat(*(c.covered[way] & c.capped[way] for way in range(NOTIONAL_WAYS)), slow_pass).any()
        notional_over = Cat(*(c.under[way] & ~c.capped[way] for way in range(NOTIONAL_WAYS))).any()
        passed = c.shares_ok & collar_ok & room_ok & c.rate_dup_ok & notional_ok
        decided_now = notional_ok | notional_over | ~c.shares_ok | slow_done
        decision = s1_valid & ~s1_decided & decided_now
        accept = decision & passed
        reject = decision & ~passed
        m.d.comb += [
            o_order.valid.eq(s1_valid & passed),
            o_order.payload.eq(s1),
        ]
        m.d.sync += cool.eq(decision)
        with m.If(take):
            m.d.sync += [s1_valid.eq(1), s1_idle.eq(0), s1_decided.eq(0), slow_done.eq(0), slow_pass.eq(0)]
        with m.Elif((o_order.valid & o_order.ready) | reject):
            m.d.sync += [s1_valid.eq(0), s1_idle.eq(1), s1_decided.eq(0)]
        with m.Elif(accept):
            m.d.sync += s1_decided.eq(1)

        # The reason, when several checks fail the lowest.
        failed = {
            RejectReason.KILLED: c.killed,
            RejectReason.RESTRICTED: c.restricted,
            RejectReason.MAX_SHARES: ~c.shares_ok,
            RejectReason.MAX_NOTIONAL: ~notional_ok,
            RejectReason.NO_REFERENCE: c.no_reference,
            RejectReason.PRICE_COLLAR: ~collar_ok,
            RejectReason.POSITION_LIMIT: ~room_ok,
            RejectReason.RATE_LIMIT: ~c.rate_ok,
            RejectReason.DUPLICATE: duplicate,
        }
        reason = Signal(RejectReason)
        for check in reversed(failed):
            with m.If(failed[check]):
                m.d.comb += reason.eq(check)

        # --- State updates in the cycle after the decision (D+1), from the registered decision; no order is taken
        # in D+1, so the next one (D+2 or later) sees them, with the pre-decided registers.
        accept_r = Signal()
        reject_r = Signal()
        m.d.sync += [accept_r.eq(accept), reject_r.eq(reject)]
        with m.If(accept_r):
            m.d.sync += [
                self.accepted.eq(self.accepted + 1),
                last.eq(Cat(s1.shares, s1.price, s1.side, s1.slot)),
            ]
        # Duplicate window: open in cycle c while c < T + duplicate_window, T the last accepted order's handshake;
        # the register says so for the next cycle.
        dup_last_open = Signal(CYCLE_BITS + 1)     # T + duplicate_window - 1, the last cycle of the window
        dup_has = Signal()
        next_last_open = Signal(CYCLE_BITS + 1)    # the same for the order in flight
        next_has = Signal()
        m.d.sync += [
            next_last_open.eq(s1_cycle + limits.duplicate_window - 1),
            next_has.eq(limits.duplicate_window != 0),
        ]
        with m.If(accept_r):
            m.d.sync += [dup_last_open.eq(next_last_open), dup_has.eq(next_has)]
        m.d.sync += dup_open.eq(Mux(accept_r, next_has & (self.cycle < next_last_open),
                                    dup_has & (self.cycle < dup_last_open)))

        host_room = {OrderSide.BUY: host.limit - host.position, OrderSide.SELL: host.limit + host.position}
        # An accepted order's update (D+1) and a host write (no order in flight, not D+1) never meet: the registered
        # decision picks the data.
        for side in OrderSide:
            write = room_write[side]
            m.d.comb += [
                write.addr.eq(Mux(accept_r, s1.slot[:slot_bits], host.slot)),
                write.data.eq(Mux(accept_r, s1_room - s1.shares, host_room[side])),
                write.en.eq((accept_r & (s1.side == side)) | position_now),
            ]

        # Order bucket: a token every refill_cycles cycles, counted from the first cycle refill_cycles is not 0
        # (while it is 0, its reset value, the count stands at 1). period_cycles counts the cycles of the current
        # period, this one included.
        period_cycles = Signal(33, init=1)
        period_end = period_cycles >= limits.refill_cycles
        refill = period_end & (limits.refill_cycles != 0)
        m.d.sync += period_cycles.eq(Mux(period_end, 1, period_cycles + 1))
        with m.If(accept_r & ~refill):
            m.d.sync += [tokens.eq(tokens - 1), tokens_empty.eq(tokens == 1)]
        with m.Elif(refill & ~accept_r & (tokens < limits.bucket_capacity)):
            m.d.sync += [tokens.eq(tokens + 1), tokens_empty.eq(0)]

        # --- Notional divider: floor(max_notional / size), saturated at 2**32 - 1, one quotient bit per cycle.
        m.submodules.size_writes = size_writes_fifo = SyncFIFO(width=slot_bits + 32, depth=SIZE_QUEUE)
        m.d.comb += [
            size_writes_fifo.w_data.eq(Cat(self.notional_size_slot, self.notional_size)),
            size_writes_fifo.w_en.eq(self.notional_size_we),
        ]
        div_busy = Signal()
        div_for_order = Signal()
        div_started = Signal()      # the order in flight has its division under way or done
        div_slot = Signal(slot_bits)
        div_size = Signal(32)
        div_rem = Signal(32)
        div_low = Signal(32)
        div_quotient = Signal(32)
        div_count = Signal(range(33))
        div_saturated = Signal()
        div_stale = Signal()
        notional_seen = Signal(64)
        # The order in flight needs the divider (registered: the divider starts a cycle later, off the decision path).
        slow_request = Signal()
        m.d.sync += slow_request.eq(s1_valid & ~s1_decided & ~decided_now & ~div_started & ~take)
        dividend_high = limits.max_notional[32:]

        def start(slot_value, size_value):
            return [
                div_busy.eq(1),
                div_slot.eq(slot_value),
                div_size.eq(size_value),
                div_rem.eq(dividend_high),
                div_low.eq(limits.max_notional[:32]),
                div_count.eq(32),
                div_saturated.eq((size_value == 0) | (dividend_high >= size_value)),
                div_stale.eq(0),
            ]

        m.d.comb += size_writes_fifo.r_en.eq(~div_busy & ~(slow_request & ~div_started))
        with m.If(~div_busy):
            with m.If(slow_request & ~div_started):
                m.d.sync += [*start(s1.slot[:slot_bits], s1.shares), div_for_order.eq(1), div_started.eq(1),
                             self.notional_slow.eq(self.notional_slow + 1)]
            with m.Elif(size_writes_fifo.r_rdy):
                entry = data.StructLayout({"slot": slot_bits, "size": 32})(size_writes_fifo.r_data)
                m.d.sync += [*start(entry.slot, entry.size), div_for_order.eq(0)]
        with m.If(take):
            m.d.sync += div_started.eq(0)

        trial = Cat(div_low[31], div_rem)       # the remainder shifted in one more dividend bit (33 bits)
        difference = trial - div_size           # 34 bits: the top bit is the borrow
        fits = ~difference[33]
        div_done = Signal()         # registered: the last quotient bit went in in the cycle before
        m.d.sync += div_done.eq(div_busy & (div_count == 1) & ~div_done)
        cap = Mux(div_saturated, _CAP_MAX, div_quotient)
        with m.If(div_busy & (div_count != 0)):
            m.d.sync += [
                div_rem.eq(Mux(fits, difference[:32], trial[:32])),
                div_quotient.eq(Cat(fits, div_quotient[:31])),
                div_low.eq(div_low << 1),
                div_count.eq(div_count - 1),
            ]
        # The size is kept in a free way of its slot, else in the one written least recently.
        victim = Signal(slots)
        free = [~way_valid[way].bit_select(div_slot, 1) for way in range(NOTIONAL_WAYS)]
        way_pick = Signal()         # registered: worked out in every cycle of the division
        m.d.sync += way_pick.eq(Mux(free[0], 0, Mux(free[1], 1, victim.bit_select(div_slot, 1))))
        for way in range(NOTIONAL_WAYS):
            m.d.comb += [
                size_writes[way].addr.eq(div_slot), size_writes[way].data.eq(div_size),
                cap_writes[way].addr.eq(div_slot), cap_writes[way].data.eq(cap),
                size_writes[way].en.eq(div_done & (way_pick == way)),
                cap_writes[way].en.eq(div_done & (way_pick == way)),
            ]
        with m.If(div_done):
            m.d.sync += [div_busy.eq(0), victim.bit_select(div_slot, 1).eq(way_pick == 0)]
            for way in range(NOTIONAL_WAYS):
                with m.If(way_pick == way):
                    m.d.sync += way_valid[way].bit_select(div_slot, 1).eq(~div_stale)
            with m.If(div_for_order):
                # The order's notional decided exactly: covered by the new cap or not.
                m.d.sync += [slow_done.eq(1), slow_pass.eq(cap >= s1.price)]
        # A new max_notional forgets every cap (and the one being worked out), one cycle later; orders wait.
        m.d.sync += notional_changed.eq((limits.max_notional != notional_seen) & ~notional_changed)
        with m.If(notional_changed):
            m.d.sync += [notional_seen.eq(limits.max_notional), div_stale.eq(1)]
            for way in range(NOTIONAL_WAYS):
                m.d.sync += way_valid[way].eq(0)

        # --- Reject log and counters, one cycle later, off the decision's path.
        m.submodules.reject_log = reject_log = SyncFIFOBuffered(width=RejectRecord.as_shape().size,
                                                                 depth=self.reject_log_depth)
        logged = reject_r
        record = Signal(RejectRecord)
        with m.If(reject):
            m.d.sync += [
                record.slot.eq(s1.slot),
                record.locate.eq(s1.locate),
                record.side.eq(s1.side),
                record.shares.eq(s1.shares),
                record.price.eq(s1.price),
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

        # --- Kill switch: tripped by max_rejects rejects within reject_window cycles of the window's first reject
        # (windows counted from the handshake cycles).
        # Whether a reject would open a new window or trip is worked out in every cycle, for the next (the window
        # does not change between an order's decision and its update).
        window_rejects = Signal(16)
        window_until = Signal(CYCLE_BITS)
        new_window = Signal()
        would_trip = Signal()
        starts = s1_cycle >= window_until
        m.d.sync += [
            new_window.eq(starts),
            would_trip.eq((limits.max_rejects != 0) & Mux(starts, limits.max_rejects == 1,
                                                          window_rejects + 1 >= limits.max_rejects)),
        ]
        with m.If(reject_r):
            with m.If(new_window):
                m.d.sync += [window_until.eq(s1_cycle + limits.reject_window), window_rejects.eq(1)]
            with m.Else():
                m.d.sync += window_rejects.eq(window_rejects + 1)
            with m.If(would_trip):
                m.d.sync += self.killed.eq(1)
        with m.If(rearm_now):
            m.d.sync += [self.killed.eq(0), window_rejects.eq(0), window_until.eq(0)]
        with m.If(self.kill):
            m.d.sync += self.killed.eq(1)

        return m
