"""The book builder: normalized ITCH events in, best bid and offer updates of the subscribed stocks out."""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..streams import STAMP_BITS, BboUpdate, EventKind, ItchEvent
from .ladder import DepthLadder

__all__ = ["COUNTERS", "LATENCY", "REPLACE_LATENCY", "BookBuilder"]

#: Wrapping 32-bit counter ports of :class:`BookBuilder`.
COUNTERS = ("events", "adds", "executes", "cancels", "deletes", "replaces", "unknown_refs", "duplicate_refs",
            "table_overflows", "tops_unknown", "bbo_updates", "refills", "refills_spoiled", "ladder_misses")

#: Cycles from an event's handshake on ``i_event`` to its update being valid on ``o_bbo`` (A/F, E, C, X, D).
LATENCY = 5
#: The same for a replace (U) of a subscribed stock, which makes two trips through the order table.
REPLACE_LATENCY = 7

_PRICE_BITS = 32
_SHARES_BITS = 32
_ORDERS_BITS = 16
_HIDDEN_BITS = 32


def _order_entry(tag_bits):
    return data.StructLayout({"valid": 1, "tag": tag_bits, "side": 1, "price": _PRICE_BITS,
                              "shares": _SHARES_BITS})


def _side_layout(levels):
    """One side of one slot: ``levels`` price levels, best first, then the orders beyond them. A level that is
    not kept is all zero (so ``orders != 0`` says it is kept, and level 0 is the side's top as sent)."""
    return data.StructLayout({"price": data.ArrayLayout(_PRICE_BITS, levels),
                              "shares": data.ArrayLayout(_SHARES_BITS, levels),
                              "orders": data.ArrayLayout(_ORDERS_BITS, levels),
                              "hidden": _HIDDEN_BITS, "bound": _PRICE_BITS})


class _Pass(data.Struct):
    """One trip of an event through the order table. A replace makes two: the second (``insert``) puts the new
    order, ``ref``, in its set. A ``refill`` pass touches no table entry: it brings the level at ``price``
    (``shares``, ``orders``) from the depth ladder in behind the kept levels of ``side``."""
    add: 1
    refill: 1
    orders: _ORDERS_BITS
    execute: 1
    cancel: 1
    delete: 1
    replace: 1
    insert: 1
    subscribed: 1
    slot: 8
    locate: 16
    ref: 64
    new_ref: 64
    side: 1
    price: _PRICE_BITS
    shares: _SHARES_BITS
    timestamp: 48
    stamp: STAMP_BITS


def _any_of(values):
    """The OR of ``values``: the selection of a one-hot AND-OR, as a balanced tree."""
    values = list(values)
    while len(values) > 1:
        values = [values[i] | values[i + 1] if i + 1 < len(values) else values[i] for i in range(0, len(values), 2)]
    return values[0]


_TOP = data.StructLayout({"price": _PRICE_BITS, "shares": _SHARES_BITS, "orders": _ORDERS_BITS, "unknown": 1})


class BookBuilder(wiring.Component):
    """Order table and top-of-book price levels of ``symbols`` stocks, emitting each change of a best bid or offer.

    Parameters
    ----------
    symbols : int
        Book slots S (stocks followed at once). Suggested: 8 on an ECP5-45 (LFE5UM-45), 64 on a large Xilinx
        part (e.g. XCVU9P). The levels live in distributed (LUT) RAM, one word per slot holding both sides.
    orders : int
        Order table capacity, a power of two, in block RAM (``orders / ways`` words of ``ways`` entries of
        about 120 bits). Default 8192: 54 of the ECP5-45's 108 DP16KD. An XCVU9P takes 262144 (128 of its 960
        URAM blocks).
    ways : int
        Entries per table set (a power of two, default 4): an order lives in one of the ``ways`` entries of the
        set selected by the low bits of its reference. Two ways overflowed at a quarter of the capacity on long
        sessions (docs/book_design.md).
    levels : int
        Price levels N kept, in order, per slot and side (default 8), refilled from the depth ladder if there is one.
    ladder_ticks : int
        Penny prices per slot and side in the depth ladder (:class:`~.ladder.DepthLadder`, block RAM), a power of
        two (512: +/- $2.56 around the slot's first order); 0 (the default) for no ladder: kept levels are then
        never refilled (see Notes). The ladder alone times at 158-181 MHz out of context, but the builder with it
        does not synthesize yet (yosys's ABC step fails; docs/book_design.md, Timing), so the top level is built
        without it.

    Attributes
    ----------
    i_event : In(stream.Signature(ItchEvent))
        Normalized events; only A/F, E, C, X, D and U of subscribed stocks touch the book.
    o_bbo : Out(stream.Signature(BboUpdate))
        One update each time an event changes a slot's best bid or ask (price, shares or orders, or whether it
        is known), in event order.
    slot_we, slot_index, slot_locate, slot_valid : In
        Host write of the locate -> slot map: slot ``slot_index`` follows stock locate ``slot_locate`` if
        ``slot_valid``. Change a slot only while no event of its old or new stock is in flight; its book is
        not cleared.
    degraded : Out(S)
        Per slot, sticky until a 1 on ``degraded_clear``: an order of that stock found its table set full
        (``table_overflows``; its shares stay on their level, since its removal will not be seen), or an add
        reused a live reference (``duplicate_refs``; ignored). Updates of the slot carry ``degraded`` = 1.
    depth_slot, depth_side, depth_level : In
        Depth snapshot read (side 0 bid, 1 ask; level 0 best); ``depth_price``, ``depth_shares``,
        ``depth_orders`` and ``depth_valid`` answer one cycle later.
    COUNTERS : Out(32) each
        Wrapping counters. ``events``: every event accepted. ``adds``, ``executes`` (E and C), ``cancels``,
        ``deletes``, ``replaces``: events of subscribed stocks. ``unknown_refs``: E/C/X/D/U whose reference
        is not in the table (ignored). ``duplicate_refs``, ``table_overflows``: see ``degraded``.
        ``tops_unknown``: times a side's last kept level emptied while orders rested beyond the N kept.
        ``bbo_updates``: updates sent. ``refills``: levels brought in from the ladder; ``refills_spoiled``: refill
        passes that did nothing (a change of the side came during the search). ``ladder_misses``: order changes
        outside the ladder's window or off the penny grid.

    Notes
    -----
    Throughput: one event every 2 cycles, sustained, of every kind but a replace of a subscribed stock, which
    takes 4 (it visits two table sets; a U message is 35 bytes, more than 4 cycles of an 8-byte stream).
    ``i_event.ready`` is high at most every other cycle, and low while ``o_bbo``'s queue cannot take the
    updates in flight. Latency from the cycle an event is accepted to the cycle its update is valid on
    ``o_bbo``: 5 cycles (:data:`LATENCY`) for A/F, E, C, X, D; 7 (:data:`REPLACE_LATENCY`) for U.

    Pipeline (docs/book_design.md): cycle 0 reads the order's table set (block RAM); 1 registers it and
    reads the slot's levels (distributed RAM); 2 searches the set and compares every price involved with
    the levels; 3 decides the change (which level each level takes: its own, changed, the one above or
    below, or a new one) and writes the table; 4 applies it and builds the update. A pass compares in
    cycle 2 while the pass before (same slot) applies its change in cycle 4: it compares with the levels
    that pass started from and, in cycle 3, moves its results the way that pass moved the levels.

    Capacity: ``orders`` orders, at most ``ways`` per set of ``orders / ways`` (an order that finds its set
    full is counted in ``table_overflows`` and marks its slot degraded); ``levels`` price levels per side
    of each of the ``symbols`` slots.

    Depth beyond N: when a level falls off the end of the N kept, or an order arrives at a price that is not
    among them and may not be better than levels already dropped, its orders are counted as hidden. Every
    order, kept or hidden, is also counted at its price in the depth ladder. When a side has fewer than N kept
    levels and hidden orders, the ladder is searched for the best hidden price (from 2 cycles after the slot's
    last pass noted the side) and that level enters behind the kept ones as a pass of its own (2 cycles of the
    input, no update sent); a change of the same side during the search spoils it (that pass does nothing and
    the side is searched again). Every level
    kept stays exact, so the best level is exact while at least one level is kept. When the last kept level of a
    side empties while hidden orders remain, that side's best is unknown: updates carry ``degraded`` = 1 (and
    the side as 0, 0, 0) until a refill, until the hidden orders are gone, or until an order arrives at a
    price better than every dropped level. A side whose orders left the ladder's window on its better end
    (or were off the penny grid) is not refilled (see :class:`~.ladder.DepthLadder`).
    """

    def __init__(self, *, symbols=8, orders=8192, ways=4, levels=8, ladder_ticks=0):
        for name, value in (("orders", orders), ("ways", ways)):
            if value < 1 or value & (value - 1):
                raise ValueError(f"{name} must be a power of two, not {value}")
        if not 1 <= symbols <= 256:
            raise ValueError(f"symbols must be 1..256 (the BboUpdate slot field), not {symbols}")
        if orders < ways:
            raise ValueError(f"orders ({orders}) must be at least ways ({ways})")
        if levels < 1:
            raise ValueError(f"levels must be at least 1, not {levels}")
        if ladder_ticks and (ladder_ticks < 2 or ladder_ticks & (ladder_ticks - 1)):
            raise ValueError(f"ladder_ticks must be 0 (no ladder) or a power of two, not {ladder_ticks}")
        self.symbols = symbols
        self.orders = orders
        self.ways = ways
        self.levels = levels
        self.ladder_ticks = ladder_ticks
        self._bbo_depth = 8
        self._set_bits = (orders // ways).bit_length() - 1
        ports = {
            "i_event": In(stream.Signature(ItchEvent)),
            "o_bbo": Out(stream.Signature(BboUpdate)),
            "slot_we": In(1), "slot_index": In(range(symbols)), "slot_locate": In(16), "slot_valid": In(1),
            "degraded": Out(symbols), "degraded_clear": In(symbols),
            "depth_slot": In(range(symbols)), "depth_side": In(1), "depth_level": In(range(levels)),
            "depth_price": Out(_PRICE_BITS), "depth_shares": Out(_SHARES_BITS), "depth_orders": Out(_ORDERS_BITS),
            "depth_valid": Out(1),
        }
        ports.update({name: Out(32) for name in COUNTERS})
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        S, N, W = self.symbols, self.levels, self.ways
        set_bits = self._set_bits
        slot_bits = max(1, (S - 1).bit_length())
        entry_layout = _order_entry(64 - set_bits)
        bucket_layout = data.ArrayLayout(entry_layout, W)
        side_layout = _side_layout(N)
        book_layout = data.ArrayLayout(side_layout, 2)          # one slot: [0] bid, [1] ask
        counts = {name: Signal(32, name=f"count_{name}") for name in COUNTERS if name != "ladder_misses"}
        for name, counter in counts.items():
            m.d.comb += getattr(self, name).eq(counter)

        def count(name, enable=1):
            m.d.sync += counts[name].eq(counts[name] + enable)

        def better(side, a, b):
            """``a`` is a strictly better price than ``b`` on ``side`` (0 bid: higher, 1 ask: lower)."""
            return (a < b) if side else (a > b)

        # Locate -> slot map: S comparators, so any locate can be followed without a 64K-entry table.
        slot_locate = [Signal(16, name=f"slot{s}_locate") for s in range(S)]
        slot_on = [Signal(name=f"slot{s}_on") for s in range(S)]
        with m.If(self.slot_we):
            for s in range(S):
                with m.If(self.slot_index == s):
                    m.d.sync += [slot_locate[s].eq(self.slot_locate), slot_on[s].eq(self.slot_valid)]

        # The order table: sets of W entries, set = low bits of the reference, tag = the rest.
        m.submodules.table = table = Memory(shape=bucket_layout, depth=1 << set_bits, init=[])
        write = table.write_port()
        read = table.read_port()

        def set_of(ref):
            return ref[:set_bits]

        def tag_of(ref):
            return ref[set_bits:]

        # The price levels: one word per slot (both sides) in distributed RAM, read asynchronously. The pass
        # in cycle 1 reads its slot; the depth snapshot has its own read port (a second copy).
        m.submodules.book = book = Memory(shape=book_layout, depth=S, init=[])
        book_write = book.write_port()
        book_read = book.read_port(domain="comb")
        depth_read = book.read_port(domain="comb")

        # Output queue, with room reserved for every update the events in flight may still write.
        m.submodules.queue = queue = fifo.SyncFIFO(width=len(self.o_bbo.payload.as_value()), depth=self._bbo_depth)
        room = Signal()
        m.d.comb += room.eq(queue.w_level <= self._bbo_depth - 4)

        degraded = Signal(S)
        set_degraded = Signal(S)
        m.d.comb += self.degraded.eq(degraded)
        m.d.sync += degraded.eq((degraded & ~self.degraded_clear) | set_degraded)

        # A pass enters at most every other cycle. Its table set is read in cycle 0, arrives in 1, is searched
        # in 2 and written in 3; its slot's levels are read in 1, compared in 2, their change decided in 3 and
        # applied in 4 (written back to the distributed RAM in 5). Each pass takes the previous passes' table
        # writes and level changes by forwarding (see docs/book_design.md).
        # ---- Cycle 0: a pass starts (an accepted event, or a replace's insert); its table set is read. --------
        pass_b, pass_c, pass_d = Signal(_Pass), Signal(_Pass), Signal(_Pass)
        valid_b, valid_c, valid_d = Signal(), Signal(), Signal()
        replace_pending = valid_c & pass_c.subscribed & pass_c.replace & ~pass_c.insert
        start = Signal(_Pass)
        starting = Signal()
        payload = self.i_event.payload
        # A refill the depth ladder found goes in before the next event (see "Refills" below).
        inject, refill, refill_spoiled = Signal(), Signal(_Pass), Signal()
        m.d.comb += self.i_event.ready.eq(room & ~valid_b & ~replace_pending & ~inject)
        with m.If(replace_pending):
            m.d.comb += [start.eq(pass_c), start.replace.eq(0), start.insert.eq(1), start.ref.eq(pass_c.new_ref),
                         starting.eq(1)]
        with m.Elif(inject & ~valid_b):
            m.d.comb += [start.eq(refill), starting.eq(1)]
        with m.Else():
            for s in reversed(range(S)):
                with m.If(slot_on[s] & (slot_locate[s] == payload.locate)):
                    m.d.comb += [start.slot.eq(s), start.subscribed.eq(1)]
            kind = payload.kind
            m.d.comb += [
                start.add.eq(kind == EventKind.ADD),
                start.execute.eq((kind == EventKind.EXECUTE) | (kind == EventKind.EXECUTE_WITH_PRICE)),
                start.cancel.eq(kind == EventKind.CANCEL), start.delete.eq(kind == EventKind.DELETE),
                start.replace.eq(kind == EventKind.REPLACE),
                start.locate.eq(payload.locate), start.ref.eq(payload.order_ref),
                start.new_ref.eq(payload.new_order_ref), start.side.eq(payload.side),
                start.price.eq(payload.price), start.shares.eq(payload.shares),
                start.timestamp.eq(payload.timestamp), start.stamp.eq(payload.stamp),
                starting.eq(self.i_event.valid & self.i_event.ready),
            ]
            count("events", self.i_event.valid & self.i_event.ready)
        m.d.comb += read.addr.eq(set_of(start.ref))
        m.d.sync += [valid_b.eq(starting), pass_b.eq(start), valid_c.eq(valid_b), pass_c.eq(pass_b),
                     valid_d.eq(valid_c), pass_d.eq(pass_c)]

        # ---- Cycle 1: the set arrives from block RAM, the slot's levels from distributed RAM. The pass before
        # wrote its set in cycle 0 or 1 of this pass, which the read did not see: that write is forwarded. The
        # levels' source is chosen here too (the read, ``result``, or the pass in cycle 3's, corrected). ------
        bucket_raw, forward_c, forwarded_c = Signal(bucket_layout), Signal(), Signal(bucket_layout)
        m.d.sync += bucket_raw.eq(read.data)
        write_en, write_addr = Signal(), Signal(set_bits)
        written = Signal(bucket_layout)
        last_write_addr, last_write_data, last_write_valid = Signal(set_bits), Signal(bucket_layout), Signal()
        writes_now = write_en & (write_addr == set_of(pass_b.ref))
        m.d.sync += [
            forward_c.eq(writes_now | (last_write_valid & (last_write_addr == set_of(pass_b.ref)))),
            forwarded_c.eq(Mux(writes_now, written, last_write_data)),
        ]
        # The forwarded set's tag compare is done here, where it is ready early (cycle 2 only selects it).
        tag_b = tag_of(pass_b.ref)
        hits_forwarded_c = Signal(W)
        m.d.sync += hits_forwarded_c.eq(Mux(writes_now,
                                            Cat(written[w].valid & (written[w].tag == tag_b) for w in range(W)),
                                            Cat(last_write_data[w].valid & (last_write_data[w].tag == tag_b)
                                                for w in range(W))))

        pass_e, valid_e = Signal(_Pass), Signal()
        m.d.sync += [valid_e.eq(valid_d), pass_e.eq(pass_d)]
        live_d = valid_d & pass_d.subscribed
        live_e = valid_e & pass_e.subscribed
        slot_b = pass_b.slot[:slot_bits]
        result = Signal(book_layout)                        # the levels the last live pass left, both sides
        result_slot, result_valid = Signal(slot_bits), Signal()
        levels_raw = Signal(book_layout)
        adjust_c, from_result_c = Signal(), Signal()
        m.d.comb += book_read.addr.eq(slot_b)
        m.d.sync += [
            levels_raw.eq(book_read.data),
            # The pass in cycle 3 is on this slot: in cycle 2 compare with the levels it starts from; in cycle 3
            # correct the results by the shifts it made.
            adjust_c.eq(live_d & (pass_d.slot[:slot_bits] == slot_b)),
            # Else the last levels left on this slot may not be written back yet: take them from ``result``.
            from_result_c.eq(Mux(live_e, pass_e.slot[:slot_bits] == slot_b,
                                 result_valid & (result_slot == slot_b))),
        ]

        # ---- Cycle 2: find the order (or a free way); compare the prices involved with the slot's levels. -----
        bucket = Signal(bucket_layout)
        m.d.comb += bucket.eq(Mux(forward_c, forwarded_c, bucket_raw))
        tag = tag_of(pass_c.ref)

        def hits_of(candidate):
            return Cat(candidate[w].valid & (candidate[w].tag == tag) for w in range(W))

        hits = Signal(W)
        m.d.comb += hits.eq(Mux(forward_c, hits_forwarded_c, hits_of(bucket_raw)))
        hit = hits.any()
        free_first = Signal(W)                               # one-hot: the first free way
        for w in range(W):
            m.d.comb += free_first[w].eq(~bucket[w].valid & Cat(bucket[v].valid for v in range(w)).all())
        free = free_first.any()

        c = pass_c
        live = valid_c & c.subscribed
        reducing = ~c.insert & (c.execute | c.cancel)
        removing = ~c.insert & (c.delete | c.replace)
        table_op = reducing | removing
        replace_hit, replace_side = Signal(), Signal()
        with m.If(live & c.replace & ~c.insert):
            m.d.sync += [replace_hit.eq(hit), replace_side.eq((hits & Cat(bucket[w].side for w in range(W))).any())]
        add_table = live & Mux(c.insert, replace_hit, c.add & ~hit)     # an order enters the table
        add_live = add_table | (live & c.refill & ~refill_spoiled)      # a level gains orders
        add_side = Mux(c.insert, replace_side, c.side)
        touches = live & table_op & hit

        # The table write, decided here and done in cycle 3: per way, the reduced order, the new order or as is.
        sel_mod, sel_new = Signal(W), Signal(W)
        still, left = Signal(W), [Signal(_SHARES_BITS, name=f"left{w}") for w in range(W)]
        write_bucket, new_entry = Signal(bucket_layout), Signal(entry_layout)
        covers = [c.shares >= bucket[w].shares for w in range(W)]
        m.d.sync += [
            write_en.eq(touches | (add_table & free)), write_addr.eq(set_of(c.ref)),
            sel_mod.eq(Cat(live & table_op & hits[w] for w in range(W))),
            sel_new.eq(Cat(add_table & free_first[w] for w in range(W))),
            still.eq(Cat(reducing & ~covers[w] for w in range(W))),
            write_bucket.eq(bucket),
            new_entry.eq(Cat(Const(1, 1), tag, add_side, c.price, c.shares)),
        ]
        m.d.sync += [left[w].eq(bucket[w].shares - c.shares) for w in range(W)]

        flag = {
            "adds": live & c.add, "executes": live & c.execute, "cancels": live & c.cancel,
            "deletes": live & c.delete, "replaces": live & c.replace & ~c.insert,
            "unknown_refs": live & table_op & ~hit,
            # Nasdaq never reuses a live reference: rather than guess, the book is marked degraded.
            "duplicate_refs": live & c.add & hit,
            "table_overflows": add_table & ~free,
        }
        flag_d = {name: Signal(name=f"flag_{name}") for name in flag}
        m.d.sync += [flag_d[name].eq(value) for name, value in flag.items()]

        # The levels the pass compares with: those the pass in cycle 4 starts from (its shifts are applied to the
        # results in cycle 3), or the last ones left on the slot, or the distributed RAM's.
        lz = Signal(book_layout)                            # the levels the pass in cycle 4 changes
        base = Signal(book_layout)
        m.d.comb += base.eq(Mux(adjust_c, lz, Mux(from_result_c, result, levels_raw)))
        p, s_ = c.price, c.shares
        prev_price = pass_e.price                           # the price the pass in cycle 4 may insert
        # Registered for cycle 3: comparisons with each level i of side d, and with the previous pass's price.
        lv_d, adjust_d = Signal(book_layout), Signal()
        eq_e = [Signal(N, name=f"eq_e{d}") for d in range(2)]       # level i is at the event's price
        gt_e = [Signal(N, name=f"gt_e{d}") for d in range(2)]       # level i is better than it
        gtp_e = Signal(2)                                           # the previous pass's price is better than it
        eqp_e = Signal()
        eq_w = [[Signal(N, name=f"eq_w{w}_{d}") for d in range(2)] for w in range(W)]  # way w's order is at level i
        eqp_w = Signal(W)
        for d in range(2):
            side = base[d]
            m.d.sync += [
                eq_e[d].eq(Cat(side.price[i] == p for i in range(N))),
                gt_e[d].eq(Cat(better(d, side.price[i], p) for i in range(N))),
                gtp_e[d].eq(better(d, prev_price, p)),
            ]
            for w in range(W):
                m.d.sync += eq_w[w][d].eq(Cat((bucket[w].side == d) & (side.price[i] == bucket[w].price)
                                              for i in range(N)))
        m.d.sync += [eqp_e.eq(prev_price == p), eqp_w.eq(Cat(prev_price == bucket[w].price for w in range(W)))]
        # Flags of the levels, from the base here and from ``result`` in cycle 4 (when the pass there is on
        # this slot, cycle 3 takes its levels instead): so cycle 3 picks bits, not whole levels.
        def flags(side_view):
            return Cat(Cat(side_view.orders[i] != 0 for i in range(N)), Cat(side_view.orders[i] == 1 for i in range(N)),
                       side_view.hidden == 0, side_view.hidden == 1)

        flag_bits = 2 * N + 2
        x_flags = [Signal(flag_bits, name=f"x_flags{d}") for d in range(2)]
        x_beats = Signal(2)
        res_flags = [Signal(flag_bits, name=f"res_flags{d}") for d in range(2)]
        for d in range(2):
            m.d.sync += [x_flags[d].eq(flags(base[d])),
                         x_beats[d].eq((base[d].hidden == 0) | better(d, p, base[d].bound))]
        with m.If(valid_c):
            m.d.sync += [lv_d.eq(base), adjust_d.eq(adjust_c)]

        # Per way w: what the table op (E/C/X/D/U) takes from its order if found there.
        side_w = Signal(W)
        price_w = [Signal(_PRICE_BITS, name=f"price{w}") for w in range(W)]   # way w's order's price
        rem_d = Signal(W)                                   # the table op found its order in way w
        removes_d = Signal(W)                               # ... and the order leaves the book
        red_d = [Signal(_SHARES_BITS, name=f"red{w}") for w in range(W)]
        changes_d = Signal(W)                               # ... and that changes its level
        add_d = Signal(2)                                   # the add (or the replace's new order) goes on side d
        u1_d, u2_d = Signal(), Signal()
        for w in range(W):
            takes_all = removing | covers[w]
            red = Mux(takes_all, bucket[w].shares, s_)
            m.d.sync += [red_d[w].eq(red), side_w[w].eq(bucket[w].side), price_w[w].eq(bucket[w].price),
                         removes_d[w].eq(takes_all),
                         changes_d[w].eq(takes_all | (red != 0))]
        m.d.sync += [
            rem_d.eq(Cat(live & table_op & hits[w] for w in range(W))),
            add_d.eq(Cat(add_live & ~add_side, add_live & add_side)),
            u1_d.eq(c.replace & ~c.insert), u2_d.eq(c.insert),
        ]

        # ---- Cycle 3: write the table; decide the change to the levels. --------------------------------------
        for w in range(W):
            with m.If(sel_mod[w]):
                m.d.comb += [written[w].eq(write_bucket[w]), written[w].valid.eq(still[w]),
                             written[w].shares.eq(left[w])]
            with m.Elif(sel_new[w]):
                m.d.comb += written[w].eq(new_entry)
            with m.Else():
                m.d.comb += written[w].eq(write_bucket[w])
        with m.If(write_en):
            m.d.comb += [write.en.eq(1), write.addr.eq(write_addr), write.data.eq(written)]
            m.d.sync += [last_write_valid.eq(1), last_write_addr.eq(write_addr), last_write_data.eq(written)]
        for name, f in flag_d.items():
            count(name, f)
        with m.If(flag_d["duplicate_refs"] | flag_d["table_overflows"]):
            m.d.comb += set_degraded.bit_select(pass_d.slot, 1).eq(1)

        def wire(value, name):
            """``value`` as a named signal (the simulator would otherwise inline it at every use)."""
            signal = Signal(len(value), name=name)
            m.d.comb += signal.eq(value)
            return signal

        L_y = Signal(book_layout)                           # the levels this pass changes
        m.d.comb += L_y.eq(Mux(adjust_d, result, lv_d))
        # What the previous pass did to each level (held from its cycle 3): took the new level (at), the one
        # above (down), the one below (up), else kept its own. Results compared before it are moved alike.
        shift_at = [Signal(N, name=f"shift_at{d}") for d in range(2)]
        shift_down = [Signal(N, name=f"shift_down{d}") for d in range(2)]
        shift_up = [Signal(N, name=f"shift_up{d}") for d in range(2)]
        shift_mod = [Signal(N, name=f"shift_mod{d}") for d in range(2)]

        def adjusted(d, raw, raw_prev, name):
            at_ = wire(Mux(adjust_d, shift_at[d], 0), f"adj_at{d}_{name}")
            down_ = wire(Mux(adjust_d, shift_down[d], 0), f"adj_down{d}_{name}")
            up_ = wire(Mux(adjust_d, shift_up[d], 0), f"adj_up{d}_{name}")
            bits = []
            for i in range(N):
                from_up = raw[i + 1] if i + 1 < N else Const(0, 1)
                from_down = raw[i - 1] if i else Const(0, 1)
                bits.append(Mux(at_[i], raw_prev, Mux(down_[i], from_down, Mux(up_[i], from_up, raw[i]))))
            return wire(Cat(bits), f"{name}{d}")

        removes_any = wire((rem_d & removes_d).any(), "removes_any")
        changes_any = wire((rem_d & changes_d).any(), "changes_any")
        add_any = add_d.any()
        red_sel = Signal(_SHARES_BITS)
        for w in range(W):
            with m.If(rem_d[w]):
                m.d.comb += red_sel.eq(red_d[w])
        # Registered for cycle 4.
        top_changed, top_at0, top_mk0, unknown_y, unknown_now = Signal(2), Signal(2), Signal(2), Signal(2), Signal(2)
        fall_y, to_hidden_y, hidden_dec_y, last_beats_y, beats_y = Signal(2), Signal(2), Signal(2), Signal(2), Signal(2)
        refill_y = Signal(2)
        dshares, dorders = Signal(_SHARES_BITS), Signal(_ORDERS_BITS)
        for d in range(2):
            L = L_y[d]
            flag_y = wire(Mux(adjust_d, res_flags[d], x_flags[d]), f"flags{d}")
            K, single = flag_y[:N], flag_y[N:2 * N]
            hzero, hone = flag_y[2 * N], flag_y[2 * N + 1]
            me = wire(K & adjusted(d, eq_e[d], eqp_e, "me"), f"me_k{d}")
            ahead = wire(K & adjusted(d, gt_e[d], gtp_e[d], "ahead"), f"ahead_k{d}")
            mw = [wire(K & adjusted(d, eq_w[w][d], eqp_w[w] & (side_w[w] == d), f"mw{w}_"), f"mw_k{w}_{d}")
                  for w in range(W)]
            beats = wire(Mux(adjust_d, res_flags[d][2 * N] | better(d, pass_d.price, result[d].bound), x_beats[d]),
                         f"beats{d}")
            j = wire(Cat(Cat(rem_d[w] & mw[w][i] for w in range(W)).any() for i in range(N)), f"j{d}")
            e = wire(Cat(j[i] & single[i] & removes_any for i in range(N)), f"e{d}")  # the order's level empties
            touch = wire(Cat(rem_d[w] & (side_w[w] == d) for w in range(W)).any(), f"touch{d}")
            up = wire(Cat(e[:i + 1].any() for i in range(N)), f"up{d}")                    # shift up
            adding = add_d[d]
            matched = wire(me.any(), f"matched{d}")
            # A refill goes in behind the kept levels if there is room (it is worse than all of them), else
            # nowhere: its orders stay hidden.
            ins = wire(adding & ~matched & Mux(pass_d.refill, ~K[N - 1] & ~(K & ~ahead).any(),
                                               (K & ~ahead).any() | (~K[N - 1] & beats)), f"ins{d}")
            at = wire(Cat(ins & ~ahead[i] & (ahead[i - 1] if i else 1) for i in range(N)), f"at{d}")  # new level
            down = wire(Cat((ins & ~ahead[i - 1]) if i else Const(0, 1) for i in range(N)), f"down{d}")
            mk = wire(Cat(adding & ~pass_d.refill & me[i] for i in range(N)), f"mk{d}")
            mod = wire(Cat(mk[i] | j[i] for i in range(N)), f"mod{d}")
            fall = wire(ins & K[N - 1], f"fall{d}")                        # the last kept level falls off
            to_hidden = wire(adding & ~pass_d.refill & ~matched & ~ins, f"to_hidden{d}")  # the new order is not kept
            hidden_dec = wire(touch & removes_any & ~j.any() & ~hzero, f"hidden_dec{d}")  # a hidden one leaves
            kept0 = at[0] | Mux(up[0], K[1] if N > 1 else 0, K[0])
            hidden_nz = fall | to_hidden | (~hzero & ~(hidden_dec & hone))
            with m.If(live_d):
                m.d.sync += [shift_at[d].eq(at), shift_down[d].eq(down), shift_up[d].eq(up),
                             shift_mod[d].eq(mod)]
            m.d.sync += [
                unknown_y[d].eq(~kept0 & hidden_nz), unknown_now[d].eq(K[0] & ~kept0 & hidden_nz),
                top_changed[d].eq(mk[0] | (j[0] & ~e[0] & changes_any) | e[0] | at[0] | (~K[0] & hidden_dec & hone)),
                top_at0[d].eq(at[0]), top_mk0[d].eq(mk[0]),
                fall_y[d].eq(fall), to_hidden_y[d].eq(to_hidden), hidden_dec_y[d].eq(hidden_dec),
                refill_y[d].eq(pass_d.refill & ins),
                last_beats_y[d].eq(hzero | better(d, L.price[N - 1], L.bound)), beats_y[d].eq(beats),
            ]
        m.d.sync += [dshares.eq(Mux(add_any, pass_d.shares, -red_sel)),
                     dorders.eq(Mux(add_any, 1, Mux(removes_any, -1, 0)))]
        # The same change for the depth ladder (every order, kept or hidden, at its price).
        ladder_change, ladder_side, ladder_price = Signal(), Signal(), Signal(_PRICE_BITS)
        removed_price = Signal(_PRICE_BITS)
        m.d.comb += removed_price.eq(_any_of(Mux(rem_d[w], price_w[w], 0) for w in range(W)))   # rem_d: one-hot
        m.d.sync += [ladder_change.eq(live_d & ~pass_d.refill & (add_any | changes_any)),
                     ladder_side.eq(Mux(add_any, add_d[1], (rem_d & side_w).any())),
                     ladder_price.eq(Mux(add_any, pass_d.price, removed_price))]
        with m.If(live_d):
            m.d.sync += lz.eq(L_y)

        # A replace's first pass sends nothing; its second compares the side's top with the one before the first:
        # candidates for each case here, the case chosen in cycle 4.
        snap = Signal(_TOP)
        snap_less_shares, snap_less_order = Signal(_SHARES_BITS), Signal(_ORDERS_BITS)
        with m.If(live_d & u1_d):
            before = L_y[(rem_d & side_w).any()]
            m.d.sync += [
                snap.price.eq(before.price[0]), snap.shares.eq(before.shares[0]), snap.orders.eq(before.orders[0]),
                snap.unknown.eq((before.orders[0] == 0) & (before.hidden != 0)),
                snap_less_shares.eq(before.shares[0] - pass_d.shares), snap_less_order.eq(before.orders[0] - 1),
            ]
        eq_keep, eq_mod, eq_ins = Signal(), Signal(), Signal()

        def same_top(levels):
            sigma = levels[replace_side]
            keep = ((snap.price == sigma.price[0]) & (snap.shares == sigma.shares[0]) &
                    (snap.orders == sigma.orders[0]) &
                    (snap.unknown == ((sigma.orders[0] == 0) & (sigma.hidden != 0))))
            mod = ((snap.price == sigma.price[0]) & (snap_less_shares == sigma.shares[0]) &
                   (snap_less_order == sigma.orders[0]) & ~snap.unknown)
            return keep, mod

        keep_res, mod_res = same_top(result)
        keep_lv, mod_lv = same_top(lv_d)
        m.d.sync += [
            eq_keep.eq(Mux(adjust_d, keep_res, keep_lv)), eq_mod.eq(Mux(adjust_d, mod_res, mod_lv)),
            eq_ins.eq((snap.price == pass_d.price) & (snap.shares == pass_d.shares) & (snap.orders == 1) &
                      ~snap.unknown),
        ]
        degraded_e, add_e, u1_e, u2_e = Signal(), Signal(), Signal(), Signal()
        m.d.sync += [
            degraded_e.eq(degraded.bit_select(pass_d.slot[:slot_bits], 1) | flag_d["duplicate_refs"] |
                          flag_d["table_overflows"]),
            add_e.eq(add_any), u1_e.eq(u1_d), u2_e.eq(u2_d),
        ]

        # ---- Cycle 4: change the levels; build the update. ----------------------------------------------------
        new = Signal(book_layout)
        for d in range(2):
            L = lz[d]
            for i in range(N):
                below = (lambda field: L[field][i + 1]) if i + 1 < N else (lambda field: 0)
                with m.If(shift_at[d][i]):
                    m.d.comb += [new[d].price[i].eq(pass_e.price), new[d].shares[i].eq(pass_e.shares),
                                 new[d].orders[i].eq(Mux(pass_e.refill, pass_e.orders, 1))]
                with m.Elif(shift_down[d][i]):
                    m.d.comb += [new[d].price[i].eq(L.price[i - 1]), new[d].shares[i].eq(L.shares[i - 1]),
                                 new[d].orders[i].eq(L.orders[i - 1])]
                with m.Elif(shift_up[d][i]):
                    m.d.comb += [new[d].price[i].eq(below("price")), new[d].shares[i].eq(below("shares")),
                                 new[d].orders[i].eq(below("orders"))]
                with m.Elif(shift_mod[d][i]):
                    m.d.comb += [new[d].price[i].eq(L.price[i]), new[d].shares[i].eq(L.shares[i] + dshares),
                                 new[d].orders[i].eq(L.orders[i] + dorders)]
                with m.Else():
                    m.d.comb += [new[d].price[i].eq(L.price[i]), new[d].shares[i].eq(L.shares[i]),
                                 new[d].orders[i].eq(L.orders[i])]
            with m.If(fall_y[d]):
                m.d.comb += [new[d].hidden.eq(L.hidden + L.orders[N - 1]),
                             new[d].bound.eq(Mux(last_beats_y[d], L.price[N - 1], L.bound))]
            with m.Elif(to_hidden_y[d]):
                m.d.comb += [new[d].hidden.eq(L.hidden + 1), new[d].bound.eq(Mux(beats_y[d], pass_e.price, L.bound))]
            with m.Elif(hidden_dec_y[d]):
                m.d.comb += [new[d].hidden.eq(L.hidden - 1), new[d].bound.eq(L.bound)]
            with m.Elif(refill_y[d]):
                # Every order left hidden is worse than the level brought in.
                m.d.comb += [new[d].hidden.eq(Mux(L.hidden > pass_e.orders, L.hidden - pass_e.orders, 0)),
                             new[d].bound.eq(pass_e.price)]
            with m.Else():
                m.d.comb += [new[d].hidden.eq(L.hidden), new[d].bound.eq(L.bound)]
        count("tops_unknown", live_e & unknown_now.any())
        count("refills", live_e & refill_y.any())
        count("refills_spoiled", live_e & pass_e.refill & ~refill_y.any())

        changed = Signal()
        with m.If(u2_e):
            m.d.comb += changed.eq(add_e & Mux(top_at0.any(), ~eq_ins, Mux(top_mk0.any(), ~eq_mod, ~eq_keep)))
        with m.Elif(~u1_e):
            m.d.comb += changed.eq(top_changed.any())

        m.d.sync += result_valid.eq(result_valid | live_e)
        with m.If(live_e):
            m.d.sync += [result.eq(new), result_slot.eq(pass_e.slot[:slot_bits])]
            m.d.sync += [res_flags[d].eq(flags(new[d])) for d in range(2)]
        # The levels go back to distributed RAM in cycle 5 (the passes after take them from ``result``).
        write_back = Signal()
        m.d.sync += write_back.eq(live_e)
        m.d.comb += [book_write.en.eq(write_back), book_write.addr.eq(result_slot), book_write.data.eq(result)]

        # ---- Refills: a side with room among its kept levels and orders beyond them gets its next level from
        # the depth ladder. A search runs while no pass of the slot is in flight and is dropped if an event of the
        # slot comes in; the level found enters as a pass of its own before the next event.
        if self.ladder_ticks:
            self._refills(m, S=S, N=N, slot_bits=slot_bits, start=start, starting=starting, inject=inject,
                          refill=refill, refill_spoiled=refill_spoiled, stages=[(valid_c, pass_c), (valid_e, pass_e)],
                          write_back=write_back, result=result, result_slot=result_slot, res_flags=res_flags,
                          change=(ladder_change, pass_e.slot[:slot_bits], ladder_side, ladder_price, dshares,
                                  dorders))
        else:
            m.d.comb += self.ladder_misses.eq(0)

        pending, pending_valid = Signal(BboUpdate), Signal()
        m.d.sync += [
            pending_valid.eq(live_e & ~pass_e.refill & changed),
            pending.slot.eq(pass_e.slot), pending.locate.eq(pass_e.locate),
            pending.bid_price.eq(new[0].price[0]), pending.bid_shares.eq(new[0].shares[0]),
            pending.bid_orders.eq(new[0].orders[0]),
            pending.ask_price.eq(new[1].price[0]), pending.ask_shares.eq(new[1].shares[0]),
            pending.ask_orders.eq(new[1].orders[0]),
            pending.degraded.eq(degraded_e | unknown_y.any()),
            pending.timestamp.eq(pass_e.timestamp), pending.stamp.eq(pass_e.stamp),
        ]
        count("bbo_updates", live_e & ~pass_e.refill & changed)

        # ---- Cycle 5: the update goes out, straight if the queue is empty and o_bbo ready, else queued. -----
        m.d.comb += [
            self.o_bbo.valid.eq(queue.r_rdy | pending_valid),
            self.o_bbo.payload.eq(Mux(queue.r_rdy, queue.r_data, pending.as_value())),
            queue.r_en.eq(self.o_bbo.ready),
            queue.w_en.eq(pending_valid & (queue.r_rdy | ~self.o_bbo.ready)),
            queue.w_data.eq(pending.as_value()),
        ]

        # ---- Depth snapshot for the host. -----------------------------------------------------------------
        m.d.comb += depth_read.addr.eq(self.depth_slot)
        depth_side = depth_read.data[self.depth_side]
        m.d.sync += [
            self.depth_price.eq(depth_side.price[self.depth_level]),
            self.depth_shares.eq(depth_side.shares[self.depth_level]),
            self.depth_orders.eq(depth_side.orders[self.depth_level]),
            self.depth_valid.eq(depth_side.orders[self.depth_level] != 0),
        ]
        return m

    def _refills(self, m, *, S, N, slot_bits, start, starting, inject, refill, refill_spoiled, stages, write_back,
                 result, result_slot, res_flags, change):
        m.submodules.ladder = ladder = DepthLadder(symbols=S, ticks=self.ladder_ticks)
        valid, slot, side, price, shares, orders = change
        m.d.comb += [ladder.change_valid.eq(valid), ladder.change_slot.eq(slot), ladder.change_side.eq(side),
                     ladder.change_price.eq(price), ladder.change_shares.eq(shares), ladder.change_orders.eq(orders),
                     self.ladder_misses.eq(ladder.misses)]
        remap = Signal(S)
        with m.If(self.slot_we):
            m.d.comb += remap.bit_select(self.slot_index, 1).eq(1)
        m.d.comb += ladder.remap.eq(remap)

        # Per slot and side (bit 2 * slot + side), left by the slot's last pass: room and hidden orders (need),
        # where a search starts (the worst kept price, excluded; else the bound of the hidden ones, included).
        need, inclusive = Signal(2 * S), Signal(2 * S)
        search_from = [Signal(32, name=f"search_from{n}") for n in range(2 * S)]
        picked, picked_slot, picked_side = Signal(range(2 * S)), Signal(slot_bits), Signal()
        m.d.comb += [picked_slot.eq(picked >> 1), picked_side.eq(picked[0])]
        no_level = Signal()
        with m.If(no_level):
            m.d.sync += need.bit_select(picked, 1).eq(0)
        for s in range(S):
            with m.If(remap[s]):
                m.d.sync += need[2 * s:2 * s + 2].eq(0)
        with m.If(write_back):
            for d in range(2):
                kept = res_flags[d][:N]
                nothing_hidden = res_flags[d][2 * N]
                worst = Signal(32, name=f"worst_kept{d}")
                last = [kept[i] & (~kept[i + 1] if i + 1 < N else 1) for i in range(N)]   # one-hot
                m.d.comb += worst.eq(_any_of(Mux(last[i], result[d].price[i], 0) for i in range(N)))
                index = Cat(Const(d, 1), result_slot)
                m.d.sync += [need.bit_select(index, 1).eq(~kept[N - 1] & ~nothing_hidden),
                             inclusive.bit_select(index, 1).eq(~kept[0])]
                for n in range(d, 2 * S, 2):
                    with m.If(index == n):
                        m.d.sync += search_from[n].eq(Mux(kept[0], worst, result[d].bound))

        # A search starts once the side's note is up to date: no pass of the slot in its cycle 4 or 5 (a pass there
        # has presented its ladder change, which the search will see, but not noted the side yet). A pass before
        # those may still change the side: its ladder change comes after the search started and spoils it (the
        # refill pass then does nothing, and notes the side again), unless it takes shares from a price better
        # than the search's start, which is a kept level (every hidden order is worse). An add spoils it
        # wherever it goes: it may push a level off the end. Changes of the slot's other side never do.
        (valid_c, pass_c), (valid_e, pass_e) = stages
        busy = Signal()
        m.d.comb += busy.eq((valid_e & pass_e.subscribed & (pass_e.slot[:slot_bits] == picked_slot)) |
                            (write_back & (result_slot == picked_slot)))
        spoiled, starting_search = Signal(), Signal()
        from_picked = Signal(32)
        m.d.comb += from_picked.eq(Array(search_from)[picked])
        start_price, against = Signal(32), Signal(32)
        m.d.comb += against.eq(Mux(starting_search, from_picked, start_price))
        kept_level = Mux(side, price < against, price > against)
        change_here = valid & (slot == picked_slot) & (side == picked_side) & ((orders == 1) | ~kept_level)
        m.d.sync += spoiled.eq(Mux(starting_search, change_here, spoiled | change_here))
        m.d.comb += refill_spoiled.eq(spoiled | change_here)

        # Round robin over the sides that need a level and whose ladder is complete.
        candidates = Signal(2 * S)
        m.d.comb += candidates.eq(need & ~ladder.unsafe)
        after = Signal(2 * S)
        m.d.comb += after.eq(candidates & ~((Const(2, 2 * S + 1) << picked) - 1)[:2 * S])
        pool = Mux(after.any(), after, candidates)
        choice = Signal(range(2 * S))
        for n in reversed(range(2 * S)):
            with m.If(pool[n]):
                m.d.comb += choice.eq(n)

        waited = Signal(4)
        m.d.sync += waited.eq(waited + 1)
        with m.FSM():
            with m.State("IDLE"):
                m.d.sync += waited.eq(0)
                with m.If(candidates.any()):
                    m.d.sync += picked.eq(choice)
                    m.next = "WAIT"
            with m.State("WAIT"):
                with m.If(~need.bit_select(picked, 1)):
                    m.next = "IDLE"
                with m.Elif(~busy):
                    m.d.sync += start_price.eq(from_picked)
                    m.d.comb += [starting_search.eq(1),
                                 ladder.search_start.eq(1), ladder.search_slot.eq(picked_slot),
                                 ladder.search_side.eq(picked_side), ladder.search_from.eq(from_picked),
                                 ladder.search_inclusive.eq(inclusive.bit_select(picked, 1))]
                    m.next = "SEARCH"
                with m.Elif(waited == 15):
                    m.next = "IDLE"             # a busy slot: let the others have a turn
            with m.State("SEARCH"):
                with m.If(remap.bit_select(picked_slot, 1)):
                    m.d.comb += ladder.search_cancel.eq(1)
                    m.next = "IDLE"
                with m.Elif(ladder.search_done):
                    with m.If(ladder.search_found):
                        m.d.sync += [refill.refill.eq(1), refill.subscribed.eq(1), refill.slot.eq(picked_slot),
                                     refill.side.eq(picked_side), refill.price.eq(ladder.found_price),
                                     refill.shares.eq(ladder.found_shares), refill.orders.eq(ladder.found_orders)]
                        m.next = "INJECT"
                    with m.Else():
                        # Nothing beyond the kept levels in the window (unless a change came meanwhile).
                        m.d.comb += no_level.eq(~refill_spoiled)
                        m.next = "IDLE"
            with m.State("INJECT"):
                m.d.comb += inject.eq(1)
                with m.If(starting & start.refill):
                    m.next = "LANDING"
            with m.State("LANDING"):
                # Changes of the side go on spoiling the refill pass until its cycle 2, where it takes
                # ``refill_spoiled``.
                with m.If(valid_c & pass_c.refill):
                    m.next = "IDLE"
