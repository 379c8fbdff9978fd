"""The book builder: normalized ITCH events in, best bid and offer updates of the subscribed stocks out."""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..streams import STAMP_BITS, BboUpdate, EventKind, ItchEvent

__all__ = ["COUNTERS", "BookBuilder"]

#: Wrapping 32-bit counter ports of :class:`BookBuilder`.
COUNTERS = ("events", "adds", "executes", "cancels", "deletes", "replaces", "unknown_refs", "duplicate_refs",
            "table_overflows", "tops_unknown", "bbo_updates")

_PRICE_BITS = 32
_SHARES_BITS = 32
_ORDERS_BITS = 16
_HIDDEN_BITS = 32


def _order_entry(tag_bits):
    return data.StructLayout({"valid": 1, "tag": tag_bits, "side": 1, "price": _PRICE_BITS,
                              "shares": _SHARES_BITS})


class _Pass(data.Struct):
    """One trip of an event through the order table. A replace makes two: the second (``insert``) puts the new
    order, ``ref``, in its set."""
    kind: EventKind
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


class _LevelOp(data.Struct):
    """One change to one side's price levels: ``shares`` (and one order) added at ``price``, or ``shares``
    removed and, if ``removes``, one order. ``first``/``last``: the op opens / closes its message's changes;
    the rest says where the update goes."""
    add: 1
    removes: 1
    side: 1
    price: _PRICE_BITS
    shares: _SHARES_BITS
    first: 1
    last: 1
    slot: 8
    locate: 16
    timestamp: 48
    stamp: STAMP_BITS


class BookBuilder(wiring.Component):
    """Order table and top-of-book price levels of ``symbols`` stocks, emitting each change of a best bid or offer.

    Parameters
    ----------
    symbols : int
        Book slots S (stocks followed at once). Suggested: 8 on an ECP5-45 (LFE5UM-45), 64 on a large Xilinx
        part (e.g. XCVU9P); each slot costs ``2 * levels`` price levels of registers (80 bits each).
    orders : int
        Order table capacity, a power of two, in block RAM (``orders / ways`` words of ``ways`` entries of
        about 120 bits). Suggested: 8192 on an ECP5-45 (54 of its 108 DP16KD), 262144 on an XCVU9P
        (128 of its 960 URAM blocks).
    ways : int
        Entries per table set (a power of two): an order lives in one of the ``ways`` entries of the set
        selected by the low bits of its reference.
    levels : int
        Price levels N kept, in order, per slot and side. Four is too few for real books (the best becomes
        unknown when the four empty; see Notes): 8 or more where the part allows.

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
        ``bbo_updates``: updates sent.

    Notes
    -----
    Throughput: one event every 2 cycles; a replace of a subscribed stock takes 4 (it visits two table sets).
    ``i_event.ready`` is high at most every other cycle, and low while ``o_bbo``'s queue cannot take the
    updates in flight. Latency from the cycle an event is accepted to the cycle its update is valid on
    ``o_bbo``: 6 cycles, 8 for a replace.

    Depth beyond N: when a level falls off the end of the N kept, or an order arrives at a price that is not
    among them and may not be better than levels already dropped, its orders are counted as hidden. Levels
    are never refilled from hidden ones, but every level kept stays exact, so the best level is exact while at
    least one level is kept. When the last kept level of a side empties while hidden orders remain, that side's
    best is unknown: updates carry ``degraded`` = 1 (and the side as 0, 0, 0) until the hidden orders are gone
    or an order arrives at a price better than every dropped level.
    """

    def __init__(self, *, symbols=8, orders=8192, ways=2, levels=4):
        for name, value in (("orders", orders), ("ways", ways)):
            if value < 1 or value & (value - 1):
                raise ValueError(f"{name} must be a power of two, not {value}")
        if not 1 <= symbols <= 256:
            raise ValueError(f"symbols must be 1..256 (the BboUpdate slot field), not {symbols}")
        if orders < ways:
            raise ValueError(f"orders ({orders}) must be at least ways ({ways})")
        if levels < 1:
            raise ValueError(f"levels must be at least 1, not {levels}")
        self.symbols = symbols
        self.orders = orders
        self.ways = ways
        self.levels = levels
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
        entry_layout = _order_entry(64 - set_bits)
        bucket_layout = data.ArrayLayout(entry_layout, W)
        counts = {name: Signal(32, name=f"count_{name}") for name in COUNTERS}
        for name, counter in counts.items():
            m.d.comb += getattr(self, name).eq(counter)

        def count(name, enable=1):
            m.d.sync += counts[name].eq(counts[name] + enable)

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

        # Output queue, with room reserved for every update the events in flight may still write.
        m.submodules.queue = queue = fifo.SyncFIFO(width=len(self.o_bbo.payload.as_value()), depth=self._bbo_depth)
        room = Signal()
        m.d.comb += room.eq(queue.w_level <= self._bbo_depth - 4)

        degraded = Signal(S)
        set_degraded = Signal(S)
        m.d.comb += self.degraded.eq(degraded)
        m.d.sync += degraded.eq((degraded & ~self.degraded_clear) | set_degraded)

        # A pass enters at most every other cycle: each stage below takes one cycle, and a pass reads the table
        # and the levels only after the previous pass has written them (but see the forwarding of table writes).
        # ---- Cycle 0: a pass starts (an accepted event, or a replace's insert); its table set is read. --------
        pass_b, pass_c = Signal(_Pass), Signal(_Pass)
        valid_b, valid_c = Signal(), Signal()
        replace_pending = valid_c & pass_c.subscribed & (pass_c.kind == EventKind.REPLACE) & ~pass_c.insert
        start = Signal(_Pass)
        starting = Signal()
        payload = self.i_event.payload
        m.d.comb += self.i_event.ready.eq(room & ~valid_b & ~replace_pending)
        with m.If(replace_pending):
            m.d.comb += [start.eq(pass_c), start.insert.eq(1), start.ref.eq(pass_c.new_ref), starting.eq(1)]
        with m.Else():
            for s in reversed(range(S)):
                with m.If(slot_on[s] & (slot_locate[s] == payload.locate)):
                    m.d.comb += [start.slot.eq(s), start.subscribed.eq(1)]
            m.d.comb += [
                start.kind.eq(payload.kind), start.locate.eq(payload.locate), start.ref.eq(payload.order_ref),
                start.new_ref.eq(payload.new_order_ref), start.side.eq(payload.side),
                start.price.eq(payload.price), start.shares.eq(payload.shares),
                start.timestamp.eq(payload.timestamp), start.stamp.eq(payload.stamp),
                starting.eq(self.i_event.valid & self.i_event.ready),
            ]
            count("events", self.i_event.valid & self.i_event.ready)
        m.d.comb += read.addr.eq(set_of(start.ref))

        # ---- Cycle 1: the set arrives from block RAM. The pass before wrote its set in cycle 0 or 1 of this
        # pass, which the read did not see: that write is forwarded. --------------------------------------------
        bucket_c, forward_c, forwarded_c = Signal(bucket_layout), Signal(), Signal(bucket_layout)
        m.d.sync += [valid_b.eq(starting), pass_b.eq(start), valid_c.eq(valid_b), pass_c.eq(pass_b),
                     bucket_c.eq(read.data)]
        write_en, write_way, write_entry = Signal(), Signal(range(W)), Signal(entry_layout)
        write_addr, write_bucket = Signal(set_bits), Signal(bucket_layout)
        written = Signal(bucket_layout)
        last_write_addr, last_write_data, last_write_valid = Signal(set_bits), Signal(bucket_layout), Signal()
        writes_now = write_en & (write_addr == set_of(pass_b.ref))
        m.d.sync += [
            forward_c.eq(writes_now | (last_write_valid & (last_write_addr == set_of(pass_b.ref)))),
            forwarded_c.eq(Mux(writes_now, written, last_write_data)),
        ]

        # ---- Cycle 2: find the order (or a free way); decide the table write and the level change. ---------
        bucket = Signal(bucket_layout)
        m.d.comb += bucket.eq(Mux(forward_c, forwarded_c, bucket_c))
        tag = tag_of(pass_c.ref)

        def hits_of(candidate):
            return Cat(candidate[w].valid & (candidate[w].tag == tag) for w in range(W))

        hits = Mux(forward_c, hits_of(forwarded_c), hits_of(bucket_c))
        hit_way = Signal(range(W))
        free_way = Signal(range(W))
        for w in reversed(range(W)):
            with m.If(hits[w]):
                m.d.comb += hit_way.eq(w)
            with m.If(~bucket[w].valid):
                m.d.comb += free_way.eq(w)
        hit = hits.any()
        free = Cat(~bucket[w].valid for w in range(W)).any()
        found = Signal(entry_layout)
        m.d.comb += found.eq(bucket[hit_way])
        # Per way, in parallel with the tag compare: does the execution or cancel take the whole order?
        covers = Array(pass_c.shares >= bucket[w].shares for w in range(W))[hit_way]
        left = Array(bucket[w].shares - pass_c.shares for w in range(W))[hit_way]

        op, op_valid = Signal(_LevelOp), Signal()
        # Every register below loads each cycle; only the valid bits depend on the tag compare (short paths).
        kind = pass_c.kind
        live = valid_c & pass_c.subscribed
        insert_pass = pass_c.insert
        is_add = ~insert_pass & (kind == EventKind.ADD)
        is_execute = ~insert_pass & ((kind == EventKind.EXECUTE) | (kind == EventKind.EXECUTE_WITH_PRICE))
        is_cancel = ~insert_pass & (kind == EventKind.CANCEL)
        is_delete = ~insert_pass & (kind == EventKind.DELETE)
        is_replace = ~insert_pass & (kind == EventKind.REPLACE)
        adding = is_add | insert_pass
        reducing = is_execute | is_cancel
        removing = is_delete | is_replace
        replace_hit, replace_side = Signal(), Signal()
        with m.If(valid_c & is_replace):
            m.d.sync += [replace_hit.eq(hit), replace_side.eq(found.side)]
        side = Mux(is_add, pass_c.side, Mux(insert_pass, replace_side, found.side))
        inserts = live & Mux(insert_pass, replace_hit, is_add & ~hit)
        touches = live & (reducing | removing) & hit
        write_entry_in = Mux(adding, Cat(Const(1, 1), tag, side, pass_c.price, pass_c.shares),
                             Mux(reducing, Cat(~covers, found.tag, found.side, found.price, Mux(covers, 0, left)), 0))
        m.d.sync += [
            write_en.eq((inserts & free) | touches), write_way.eq(Mux(adding, free_way, hit_way)),
            write_entry.eq(write_entry_in), write_addr.eq(set_of(pass_c.ref)), write_bucket.eq(bucket),
            op_valid.eq(inserts | touches),
            op.add.eq(adding), op.removes.eq(~reducing | covers), op.side.eq(side),
            op.price.eq(Mux(adding, pass_c.price, found.price)),
            op.shares.eq(Mux(adding | (reducing & ~covers), pass_c.shares, found.shares)),
            op.first.eq(~insert_pass), op.last.eq(~is_replace),
            op.slot.eq(pass_c.slot), op.locate.eq(pass_c.locate), op.timestamp.eq(pass_c.timestamp),
            op.stamp.eq(pass_c.stamp),
        ]
        flag = {
            "adds": live & is_add, "executes": live & is_execute, "cancels": live & is_cancel,
            "deletes": live & is_delete, "replaces": live & is_replace,
            "unknown_refs": live & (reducing | removing) & ~hit,
            # Nasdaq never reuses a live reference: rather than guess, the book is marked degraded.
            "duplicate_refs": live & is_add & hit,
            "table_overflows": inserts & ~free,
        }
        flag_d = {name: Signal(name=f"flag_{name}") for name in flag}
        m.d.sync += [flag_d[name].eq(value) for name, value in flag.items()]

        # ---- Cycle 3: write the table; count; select the slot's side and compare the op's price. ------------
        m.d.comb += [written.eq(write_bucket), written[write_way].eq(write_entry)]
        with m.If(write_en):
            m.d.comb += [write.en.eq(1), write.addr.eq(write_addr), write.data.eq(written)]
            m.d.sync += [last_write_valid.eq(1), last_write_addr.eq(write_addr), last_write_data.eq(written)]
        for name, f in flag_d.items():
            count(name, f)
        with m.If(flag_d["duplicate_refs"] | flag_d["table_overflows"]):
            m.d.comb += set_degraded.bit_select(op.slot, 1).eq(1)

        level_price = [[[Signal(_PRICE_BITS, name=f"s{s}_{'ba'[d]}{i}_price") for i in range(N)]
                        for d in range(2)] for s in range(S)]
        level_shares = [[[Signal(_SHARES_BITS, name=f"s{s}_{'ba'[d]}{i}_shares") for i in range(N)]
                         for d in range(2)] for s in range(S)]
        level_orders = [[[Signal(_ORDERS_BITS, name=f"s{s}_{'ba'[d]}{i}_orders") for i in range(N)]
                         for d in range(2)] for s in range(S)]
        known = [[Signal(range(N + 1), name=f"s{s}_{'ba'[d]}_known") for d in range(2)] for s in range(S)]
        hidden = [[Signal(_HIDDEN_BITS, name=f"s{s}_{'ba'[d]}_hidden") for d in range(2)] for s in range(S)]
        bound = [[Signal(_PRICE_BITS, name=f"s{s}_{'ba'[d]}_bound") for d in range(2)] for s in range(S)]
        slot_bits = max(1, (S - 1).bit_length())

        def pick(table_, index):
            return Array(table_[s][d] for s in range(S) for d in range(2))[index]

        def entries(table_, i):
            return [[table_[s][d][i] for d in range(2)] for s in range(S)]

        def better(side, a, b):
            """``a`` is a strictly better price than ``b`` on ``side`` (higher bid, lower ask)."""
            return Mux(side, a < b, a > b)

        def top(known_, hidden_, price, shares, orders):
            """The best level as (price, shares, orders, unknown), masked to zero when no level is kept."""
            kept = known_ != 0
            return Mux(kept, price, 0), Mux(kept, shares, 0), Mux(kept, orders, 0), ~kept & (hidden_ != 0)

        index = Cat(op.side, op.slot[:slot_bits])
        now_price = [pick(entries(level_price, i), index) for i in range(N)]
        now_shares = [pick(entries(level_shares, i), index) for i in range(N)]
        now_orders = [pick(entries(level_orders, i), index) for i in range(N)]
        now_known, now_hidden, now_bound = pick(known, index), pick(hidden, index), pick(bound, index)

        cur_price = [Signal(_PRICE_BITS, name=f"cur_price{i}") for i in range(N)]
        cur_shares = [Signal(_SHARES_BITS, name=f"cur_shares{i}") for i in range(N)]
        cur_orders = [Signal(_ORDERS_BITS, name=f"cur_orders{i}") for i in range(N)]
        cur_known, cur_hidden, cur_bound = Signal(range(N + 1)), Signal(_HIDDEN_BITS), Signal(_PRICE_BITS)
        match, ahead, single = Signal(N), Signal(N), Signal(N)       # ahead: the levels better than the price
        beats_bound = Signal()
        cur_top = Signal(_PRICE_BITS + _SHARES_BITS + _ORDERS_BITS + 1)
        cur_op, cur_valid, cur_index = Signal(_LevelOp), Signal(), Signal(len(index))
        m.d.sync += [cur_price[i].eq(now_price[i]) for i in range(N)]
        m.d.sync += [cur_shares[i].eq(now_shares[i]) for i in range(N)]
        m.d.sync += [cur_orders[i].eq(now_orders[i]) for i in range(N)]
        m.d.sync += [
            cur_known.eq(now_known), cur_hidden.eq(now_hidden), cur_bound.eq(now_bound),
            match.eq(Cat((now_known > i) & (now_price[i] == op.price) for i in range(N))),
            ahead.eq(Cat((now_known > i) & better(op.side, now_price[i], op.price) for i in range(N))),
            single.eq(Cat(now_orders[i] == 1 for i in range(N))),
            beats_bound.eq((now_hidden == 0) | better(op.side, op.price, now_bound)),
            cur_top.eq(Cat(*top(now_known, now_hidden, now_price[0], now_shares[0], now_orders[0]))),
            cur_op.eq(op), cur_valid.eq(op_valid), cur_index.eq(index),
        ]

        # ---- Cycle 4: apply the change to the side's levels. --------------------------------------------------
        p = cur_op.price
        valid = [cur_known > i for i in range(N)]
        at = [~ahead[i] & (ahead[i - 1] if i else 1) for i in range(N)]     # one-hot: where a new level goes
        matched = match.any()
        emptied = matched & ~cur_op.add & cur_op.removes & (match & single).any()
        inserted = Signal()
        m.d.comb += inserted.eq(cur_op.add & ~matched & (
            Cat(valid[i] & ~ahead[i] for i in range(N)).any() | (~ahead[N - 1] & beats_bound)))

        next_price = [Signal(_PRICE_BITS, name=f"next_price{i}") for i in range(N)]
        next_shares = [Signal(_SHARES_BITS, name=f"next_shares{i}") for i in range(N)]
        next_orders = [Signal(_ORDERS_BITS, name=f"next_orders{i}") for i in range(N)]
        next_known = Signal(range(N + 1))
        next_hidden = Signal(_HIDDEN_BITS)
        next_bound = Signal(_PRICE_BITS)
        m.d.comb += [next_known.eq(cur_known), next_hidden.eq(cur_hidden), next_bound.eq(cur_bound)]
        for i in range(N):
            m.d.comb += [next_price[i].eq(cur_price[i]), next_shares[i].eq(cur_shares[i]),
                         next_orders[i].eq(cur_orders[i])]

        def to_hidden(orders, price):
            m.d.comb += [next_hidden.eq(cur_hidden + orders),
                         next_bound.eq(Mux((cur_hidden == 0) | better(cur_op.side, price, cur_bound),
                                           price, cur_bound))]

        with m.If(emptied):
            # The level leaves: the ones behind it move up.
            m.d.comb += next_known.eq(cur_known - 1)
            for i in range(N - 1):
                with m.If(match[:i + 1].any()):
                    m.d.comb += [next_price[i].eq(cur_price[i + 1]), next_shares[i].eq(cur_shares[i + 1]),
                                 next_orders[i].eq(cur_orders[i + 1])]
        with m.Elif(matched):
            for i in range(N):
                with m.If(match[i]):
                    m.d.comb += [
                        next_shares[i].eq(Mux(cur_op.add, cur_shares[i] + cur_op.shares,
                                              cur_shares[i] - cur_op.shares)),
                        next_orders[i].eq(Mux(cur_op.add, cur_orders[i] + 1, cur_orders[i] - cur_op.removes)),
                    ]
        with m.Elif(inserted):
            # A new level: the ones behind it move down, and the last kept one may fall off into hidden.
            for i in range(N):
                with m.If(at[i]):
                    m.d.comb += [next_price[i].eq(p), next_shares[i].eq(cur_op.shares), next_orders[i].eq(1)]
                if i:
                    with m.If(~ahead[i] & ~at[i]):
                        m.d.comb += [next_price[i].eq(cur_price[i - 1]), next_shares[i].eq(cur_shares[i - 1]),
                                     next_orders[i].eq(cur_orders[i - 1])]
            with m.If(cur_known == N):
                to_hidden(cur_orders[N - 1], cur_price[N - 1])
            with m.Else():
                m.d.comb += next_known.eq(cur_known + 1)
        with m.Elif(cur_op.add):
            to_hidden(1, p)
        with m.Elif(cur_op.removes & (cur_hidden != 0)):
            m.d.comb += next_hidden.eq(cur_hidden - 1)

        with m.If(cur_valid):
            for s in range(S):
                for d in range(2):
                    with m.If(cur_index == 2 * s + d):
                        m.d.sync += [known[s][d].eq(next_known), hidden[s][d].eq(next_hidden),
                                     bound[s][d].eq(next_bound)]
                        for i in range(N):
                            m.d.sync += [level_price[s][d][i].eq(next_price[i]),
                                         level_shares[s][d][i].eq(next_shares[i]),
                                         level_orders[s][d][i].eq(next_orders[i])]
        count("tops_unknown", cur_valid & (cur_known != 0) & (next_known == 0) & (next_hidden != 0))

        # The side's best before the message, kept from its first op for the comparison after its last; the
        # best after it, and the other side's (which the op did not touch).
        snap = Signal(len(cur_top))
        with m.If(cur_valid & cur_op.first):
            m.d.sync += snap.eq(cur_top)
        slot = cur_op.slot[:slot_bits]
        other = ~cur_op.side
        emit_valid, emit_op = Signal(), Signal(_LevelOp)
        emit_before, emit_after, emit_other = Signal(len(cur_top)), Signal(len(cur_top)), Signal(len(cur_top))
        m.d.sync += [
            emit_valid.eq(cur_valid & cur_op.last), emit_op.eq(cur_op),
            emit_before.eq(Mux(cur_op.first, cur_top, snap)),
            emit_after.eq(Cat(*top(next_known, next_hidden, next_price[0], next_shares[0], next_orders[0]))),
            emit_other.eq(Cat(*top(pick(known, Cat(other, slot)), pick(hidden, Cat(other, slot)),
                                   pick(entries(level_price, 0), Cat(other, slot)),
                                   pick(entries(level_shares, 0), Cat(other, slot)),
                                   pick(entries(level_orders, 0), Cat(other, slot))))),
        ]

        # ---- Cycle 5: compare the side's best with the one before the message; build the update. -------------
        top_layout = data.StructLayout({"price": _PRICE_BITS, "shares": _SHARES_BITS, "orders": _ORDERS_BITS,
                                        "unknown": 1})
        after, other_top = top_layout(emit_after), top_layout(emit_other)
        bid_top = top_layout(Mux(emit_op.side, emit_other, emit_after))
        ask_top = top_layout(Mux(emit_op.side, emit_after, emit_other))
        changed = emit_valid & (emit_after != emit_before)
        pending, pending_valid = Signal(BboUpdate), Signal()
        m.d.sync += [
            pending_valid.eq(changed),
            pending.slot.eq(emit_op.slot), pending.locate.eq(emit_op.locate),
            pending.bid_price.eq(bid_top.price), pending.bid_shares.eq(bid_top.shares),
            pending.bid_orders.eq(bid_top.orders),
            pending.ask_price.eq(ask_top.price), pending.ask_shares.eq(ask_top.shares),
            pending.ask_orders.eq(ask_top.orders),
            pending.degraded.eq(degraded.bit_select(emit_op.slot[:slot_bits], 1) | after.unknown |
                                other_top.unknown),
            pending.timestamp.eq(emit_op.timestamp), pending.stamp.eq(emit_op.stamp),
        ]
        count("bbo_updates", changed)

        # ---- Cycle 6: the update goes out, straight if the queue is empty and o_bbo ready, else queued. -----
        m.d.comb += [
            self.o_bbo.valid.eq(queue.r_rdy | pending_valid),
            self.o_bbo.payload.eq(Mux(queue.r_rdy, queue.r_data, pending.as_value())),
            queue.r_en.eq(self.o_bbo.ready),
            queue.w_en.eq(pending_valid & (queue.r_rdy | ~self.o_bbo.ready)),
            queue.w_data.eq(pending.as_value()),
        ]

        # ---- Depth snapshot for the host. -----------------------------------------------------------------
        depth_index = Cat(self.depth_side, self.depth_slot)
        for port, table_ in ((self.depth_price, level_price), (self.depth_shares, level_shares),
                             (self.depth_orders, level_orders)):
            flat = Array(Array(table_[s][d][i] for i in range(N)) for s in range(S) for d in range(2))
            m.d.sync += port.eq(flat[depth_index][self.depth_level])
        m.d.sync += self.depth_valid.eq(pick(known, depth_index) > self.depth_level)
        return m
