"""Strategies: turn BBO updates into order requests by rules the host loads and commits atomically.

:class:`ThresholdStrategy` trades each symbol against its own thresholds; :class:`PairStrategy` trades two symbols
against each other (a spread outside a band sends both legs).
"""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from ..streams import BboUpdate, OrderRequest, OrderSide

__all__ = ["CYCLE_BITS", "COUNTERS", "LATENCY", "StrategyRule", "ThresholdStrategy",
           "RATIO_FRACTION_BITS", "PAIR_LATENCY", "PAIR_COUNTERS", "PairRule", "PairStrategy"]

#: Width of the free-running cycle counter the re-arm rule measures time with (wide enough never to wrap).
CYCLE_BITS = 64

#: Cycles from a BBO update's handshake on ``i_bbo`` to its order's ``valid`` on ``o_order``.
LATENCY = 2

#: The wrapping counters (``Out(32)`` ports) of :class:`ThresholdStrategy`.
COUNTERS = ("signals", "suppressed_cooldown", "suppressed_degraded", "suppressed_halted", "suppressed_crossed",
            "suppressed_conflict")


class StrategyRule(data.Struct):
    """The threshold rule of one symbol slot.

    Buy when the best ask is non-zero and ``<= buy_threshold``, at ask + ``offset``; sell when the best bid is
    non-zero and ``>= sell_threshold``, at bid - ``offset`` (at least 1 tick). A threshold of 0 disables its side.
    Prices are Price(4) ticks. After a signal, the same slot and side stays silent for ``cooldown`` cycles; with
    ``one_shot`` it stays silent until the host re-arms it.
    """
    enable: 1
    one_shot: 1
    buy_threshold: 32
    sell_threshold: 32
    shares: 32
    offset: 16
    time_in_force: 32
    cooldown: 32


class ThresholdStrategy(wiring.Component):
    """Sends at most one order per BBO update of a symbol slot, by that slot's :class:`StrategyRule`.

    Parameters
    ----------
    symbols : int
        Number of symbol slots S (``BboUpdate.slot`` 0..S-1; updates of other slots are ignored).

    Attributes
    ----------
    i_bbo : In(stream.Signature(BboUpdate))
        BBO updates. Held back only while ``o_order`` is.
    o_order : Out(stream.Signature(OrderRequest))
        Orders, carrying the ``timestamp`` and ``stamp`` of their update.
    cycle : In(CYCLE_BITS)
        The free-running cycle counter (one more every cycle); an update's time is its value in the update's
        handshake cycle.
    halted : In(S)
        One bit per slot: the symbol is halted (ITCH H), do not trade it. Sampled at the update's handshake.
    rearm : In(S)
        Strobe per slot: re-arms both sides of a one-shot rule, for updates from the cycle of the strobe on.
    rule_we, rule_slot, rule : In(1), In(range(S)), In(StrategyRule)
        Host write of ``rule`` into the staging copy of ``rule_slot``'s rule; no effect until ``rules_commit``.
    rules_commit : In(1)
        Strobe: every staged rule (including one written in the same cycle) becomes active at once, for the
        updates handshaken after this cycle. Rules start disabled.
    signals, suppressed_cooldown, suppressed_degraded, suppressed_halted, suppressed_crossed : Out(32)
    suppressed_conflict : Out(32)
        Wrapping counts (:data:`COUNTERS`), for updates of slots whose rule is enabled: orders sent; a side that
        hit its threshold but was silenced by the cooldown or one-shot; updates ignored because the book was
        degraded, the symbol halted, the book crossed or locked (bid >= ask, both present), or both sides hit at
        once (a rule whose sell threshold is at or below its buy threshold; neither order is sent). Checked in
        that order; one count per update, two cycles after the decision.

    Notes
    -----
    Latency: :data:`LATENCY` = 2 cycles from the update's handshake to the order's ``valid``: in the handshake
    cycle both copies of the slot's rule are read (LUT memory, combinationally), each copy's thresholds compared
    with the update's prices and its order prices worked out (each a carry chain straight into a register), and
    each side's cooldown compared; the next cycle picks the copy in force, decides from those registered bits
    and registers the order. Throughput: one update per cycle, back-to-back updates of one slot included (the
    re-arm state of a signal fired in the cycle before is forwarded).
    """

    def __init__(self, symbols):
        if symbols < 1:
            raise ValueError("at least one symbol slot")
        self.symbols = symbols
        super().__init__({
            "i_bbo": In(stream.Signature(BboUpdate)),
            "o_order": Out(stream.Signature(OrderRequest)),
            "cycle": In(CYCLE_BITS),
            "halted": In(symbols),
            "rearm": In(symbols),
            "rule_we": In(1),
            "rule_slot": In(range(symbols)),
            "rule": In(StrategyRule),
            "rules_commit": In(1),
            **{name: Out(32) for name in COUNTERS},
        })

    def elaborate(self, platform):
        m = Module()
        slots = self.symbols
        slot_bits = max(1, ceil_log2(slots))

        # Two copies of every rule, in two memories. active[slot] says which copy is in force; a host write goes to
        # the other one and marks the slot staged; the commit flips every staged slot at once. An update reads both
        # copies and picks one after the read (after the threshold comparisons), so the slot's active bit is on
        # neither the read address nor the comparisons.
        active = Signal(slots)
        staged = Signal(slots)
        written = Signal(slots)
        m.d.comb += written.bit_select(self.rule_slot, 1).eq(self.rule_we)
        with m.If(self.rules_commit):
            m.d.sync += [active.eq(active ^ (staged | written)), staged.eq(0)]
        with m.Else():
            # Writing a slot twice before a commit overwrites its staging copy: the slot flips once.
            m.d.sync += staged.eq(staged | written)
        # Each copy also keeps what is worked out of the rule alone, when it is written: cooldown > 1 and whether the
        # sell side is enabled (sell threshold not 0).
        slot_rule = data.StructLayout({"rule": StrategyRule, "cooldown_long": 1, "sell_set": 1})
        copies = []
        for copy in range(2):
            m.submodules[f"rules_{copy}"] = memory = Memory(shape=slot_rule, depth=slots, init=[])
            write = memory.write_port()
            m.d.comb += [
                write.addr.eq(self.rule_slot),
                write.data.rule.eq(self.rule),
                write.data.cooldown_long.eq(self.rule.cooldown > 1),
                write.data.sell_set.eq(self.rule.sell_threshold != 0),
                write.en.eq(self.rule_we & (active.bit_select(self.rule_slot, 1) != copy)),
            ]
            copies.append(memory)

        o_order = self.o_order
        advance = ~o_order.valid | o_order.ready
        m.d.comb += self.i_bbo.ready.eq(advance)

        # Re-arm state per slot and side: the first cycle a new signal may fire (written by the decision), and a
        # one-shot's fired bit.
        ready_at_read = {}
        ready_write = {}
        fired = {}
        for side in OrderSide:
            name = side.name.lower()
            m.submodules[f"ready_at_{name}"] = memory = Memory(shape=CYCLE_BITS, depth=slots, init=[])
            ready_at_read[side] = memory.read_port(domain="comb")
            write = memory.write_port()
            # blocks: the signal still silences an update taken in the cycle after its decision.
            ready_write[side] = Signal(data.StructLayout({"en": 1, "addr": slot_bits, "data": CYCLE_BITS,
                                                          "blocks": 1}), name=f"ready_at_write_{name}")
            m.d.comb += [write.addr.eq(ready_write[side].addr), write.data.eq(ready_write[side].data),
                         write.en.eq(ready_write[side].en)]
            fired[side] = Signal(slots, name=f"fired_{name}")

        # Stage 1: the update, with its time, halt bit and each side's re-arm state, registered with everything its
        # rule decides that does not depend on the re-arm state: both copies of the slot's rule are read
        # (combinationally, from LUT memory) and compared with the update's prices, and the order's prices worked
        # out, per copy; the copy in force is picked after the comparisons, so the slot's active bit is on neither
        # the read address nor the comparisons. The cooldown is compared here too; signals decided in this cycle or
        # the one before are not in the memory or the fired bits yet, so they are forwarded.
        bbo = self.i_bbo.payload
        slot_in = bbo.slot[:slot_bits]
        copy_reads = [memory.read_port(domain="comb") for memory in copies]
        for read in copy_reads:
            m.d.comb += read.addr.eq(slot_in)
        copy_in = active.bit_select(slot_in, 1)

        def in_force(value):
            """``value(rule)`` of the rule in force for the update being taken, from both copies."""
            return Mux(copy_in, value(copy_reads[1].data), value(copy_reads[0].data))

        s1_valid = Signal()
        s1 = Signal(BboUpdate)
        s1_cycle = Signal(CYCLE_BITS)
        s1_crossed = Signal()
        s1_halted = Signal()
        # The fields of the rule in force, picked in this cycle (no arithmetic on them here), and which copy it is.
        s1_rule = Signal(data.StructLayout({"enable": 1, "one_shot": 1, "shares": 32, "time_in_force": 32,
                                            "cooldown": 32}))
        s1_copy = Signal()
        # Per copy, each a carry chain straight into its register: ask <= buy threshold, bid >= sell threshold,
        # bid > offset, and the order's prices ask + offset and bid - offset.
        per_copy = data.StructLayout({"buy_le": 1, "sell_ge": 1, "sell_on": 1, "sell_above": 1, "buy_price": 32,
                                      "sell_price": 32})
        s1_copies = [Signal(per_copy, name=f"s1_copy_{copy}") for copy in range(2)]
        s1_ask_on = Signal()
        s1_live = Signal()      # valid, and the rule in force enabled
        s1_open = Signal()      # and neither degraded nor halted
        # Whether each side's cooldown is over: the upper halves of the cycle and the first cycle allowed compared
        # (> and >=, both carry chains), the lower halves (>=), combined in stage 2; blocked by a forwarded signal.
        s1_cooled = {side: Signal(data.StructLayout({"later": 1, "same": 1, "low": 1, "blocked": 1}),
                                  name=f"s1_cooled_{side.name.lower()}") for side in OrderSide}
        slot = s1.slot[:slot_bits]
        fire = {side: Signal(name=f"fire_{side.name.lower()}") for side in OrderSide}
        next_ready_at = s1_cycle + s1_rule.cooldown
        # One more than the cycles since the update in stage 1 was taken (``cycle`` runs freely: its ``cycle`` minus
        # that update's, saturating at 2**32 - 1), so that age + 1 < cooldown is one carry chain.
        s1_age_next = Signal(33, init=1)
        s1_still_young = s1_age_next < s1_rule.cooldown  # the update in stage 2 silences one taken next cycle
        # Cycles since the update in stage 1 was taken < cooldown (the decision in stage 2 still silences an update
        # taken now), kept as a register.
        s1_young = Signal()
        s1_fired = {side: Signal(name=f"s1_fired_{side.name.lower()}") for side in OrderSide}
        fire_one_shot = {side: Signal(data.StructLayout({"en": 1, "slot": slot_bits}),
                                      name=f"fire_one_shot_{side.name.lower()}") for side in OrderSide}
        with m.If(advance):
            m.d.sync += s1_age_next.eq(2)
        with m.Elif(~s1_age_next[32]):
            m.d.sync += s1_age_next.eq(s1_age_next + 1)

        valid_in = self.i_bbo.valid & (bbo.slot < slots)
        halted_in = self.halted.bit_select(slot_in, 1)
        enable_in = in_force(lambda copy: copy.rule.enable)
        with m.If(advance):
            m.d.sync += [
                s1_valid.eq(valid_in),
                s1.eq(bbo),
                s1_cycle.eq(self.cycle),
                s1_halted.eq(halted_in),
                s1_crossed.eq((bbo.bid_price != 0) & (bbo.ask_price != 0) & (bbo.bid_price >= bbo.ask_price)),
                s1_copy.eq(copy_in),
                s1_rule.enable.eq(enable_in),
                s1_rule.one_shot.eq(in_force(lambda copy: copy.rule.one_shot)),
                s1_rule.shares.eq(in_force(lambda copy: copy.rule.shares)),
                s1_rule.time_in_force.eq(in_force(lambda copy: copy.rule.time_in_force)),
                s1_rule.cooldown.eq(in_force(lambda copy: copy.rule.cooldown)),
                s1_young.eq(in_force(lambda copy: copy.cooldown_long)),
                s1_ask_on.eq(bbo.ask_price != 0),
                s1_live.eq(valid_in & enable_in),
                s1_open.eq(valid_in & enable_in & ~bbo.degraded & ~halted_in),
            ]
            for s1_part, read in zip(s1_copies, copy_reads):
                copy = read.data.rule
                m.d.sync += [
                    s1_part.buy_le.eq(bbo.ask_price <= copy.buy_threshold),
                    s1_part.sell_ge.eq(bbo.bid_price >= copy.sell_threshold),
                    s1_part.sell_on.eq(read.data.sell_set & (bbo.bid_price != 0)),
                    s1_part.sell_above.eq(bbo.bid_price > copy.offset),
                    s1_part.buy_price.eq(bbo.ask_price + copy.offset),
                    s1_part.sell_price.eq(bbo.bid_price - copy.offset),
                ]
            for side in OrderSide:
                just_fired = fire[side] & (slot == slot_in) & s1_young
                fired_before = ready_write[side].en & (ready_write[side].addr == slot_in) & ready_write[side].blocks
                half = CYCLE_BITS // 2
                start = ready_at_read[side].data
                # The one-shot's fired bit as of this cycle: a signal set in the cycle before or fired in this one
                # (its bit not set yet), unless re-armed in this cycle.
                fired_bit = (fired[side].bit_select(slot_in, 1) |
                             (fire_one_shot[side].en & (fire_one_shot[side].slot == slot_in)) |
                             (fire[side] & s1_rule.one_shot & (slot == slot_in)))
                m.d.sync += [
                    s1_fired[side].eq(fired_bit & ~self.rearm.bit_select(slot_in, 1)),
                    s1_cooled[side].later.eq(self.cycle[half:] > start[half:]),
                    s1_cooled[side].same.eq(self.cycle[half:] >= start[half:]),
                    s1_cooled[side].low.eq(self.cycle[:half] >= start[:half]),
                    s1_cooled[side].blocked.eq(just_fired | fired_before),
                ]
        with m.Elif(~s1_age_next[32]):
            m.d.sync += s1_young.eq(s1_still_young)
        for side in OrderSide:
            m.d.comb += ready_at_read[side].addr.eq(slot_in)

        # Stage 2: decide, and register the order.
        def picked(value):
            """``value(per_copy)`` of the copy in force."""
            return Mux(s1_copy, value(s1_copies[1]), value(s1_copies[0]))

        buy_hit = Signal()
        sell_hit = Signal()
        m.d.comb += [
            buy_hit.eq(s1_ask_on & picked(lambda part: part.buy_le)),
            sell_hit.eq(picked(lambda part: part.sell_on & part.sell_ge)),
        ]
        live = s1_live
        go = s1_open & ~s1_crossed

        def armed(side):
            cooled = s1_cooled[side]
            return (cooled.later | (cooled.same & cooled.low)) & ~cooled.blocked & ~(s1_rule.one_shot &
                                                                                      s1_fired[side])

        m.d.comb += [
            fire[OrderSide.BUY].eq(go & buy_hit & ~sell_hit & armed(OrderSide.BUY)),
            fire[OrderSide.SELL].eq(go & sell_hit & ~buy_hit & armed(OrderSide.SELL)),
        ]
        for side in OrderSide:
            # Written into the memory one cycle later, off the decision's path (forwarded until then, above).
            m.d.sync += [
                ready_write[side].addr.eq(slot),
                ready_write[side].data.eq(next_ready_at),
                ready_write[side].en.eq(advance & fire[side]),
                ready_write[side].blocks.eq(s1_still_young),
            ]
            # A one-shot's fired bit is set one cycle later, off the decision's path (forwarded until then, above).
            # A re-arm in the same cycle as the decision wins: it applies to every later update.
            set_fired = fire_one_shot[side]
            m.d.sync += [
                set_fired.en.eq(advance & fire[side] & s1_rule.one_shot & ~self.rearm.bit_select(slot, 1)),
                set_fired.slot.eq(slot),
                fired[side].eq(fired[side] & ~self.rearm),
            ]
            with m.If(set_fired.en & ~self.rearm.bit_select(set_fired.slot, 1)):
                m.d.sync += fired[side].bit_select(set_fired.slot, 1).eq(1)

        # The counters count two cycles later, off the decision's path: the decision's inputs are registered, then
        # sorted into one count.
        tally = Signal(data.StructLayout({"live": 1, "degraded": 1, "halted": 1, "crossed": 1, "buy_hit": 1,
                                          "sell_hit": 1, "sent": 1}))
        m.d.sync += [
            tally.live.eq(advance & live),
            tally.degraded.eq(s1.degraded),
            tally.halted.eq(s1_halted),
            tally.crossed.eq(s1_crossed),
            tally.buy_hit.eq(buy_hit),
            tally.sell_hit.eq(sell_hit),
            tally.sent.eq(fire[OrderSide.BUY] | fire[OrderSide.SELL]),
        ]
        events = {name: Signal(name=f"count_{name}") for name in COUNTERS}
        with m.If(tally.live):
            with m.If(tally.degraded):
                m.d.comb += events["suppressed_degraded"].eq(1)
            with m.Elif(tally.halted):
                m.d.comb += events["suppressed_halted"].eq(1)
            with m.Elif(tally.crossed):
                m.d.comb += events["suppressed_crossed"].eq(1)
            with m.Elif(tally.buy_hit & tally.sell_hit):
                m.d.comb += events["suppressed_conflict"].eq(1)
            with m.Elif(tally.sent):
                m.d.comb += events["signals"].eq(1)
            with m.Elif(tally.buy_hit | tally.sell_hit):
                m.d.comb += events["suppressed_cooldown"].eq(1)
        for name, event in events.items():
            counter = getattr(self, name)
            with m.If(event):
                m.d.sync += counter.eq(counter + 1)

        # A side is sent only if its price hit and the other's did not: the buy's price and side, else the sell's.
        with m.If(advance):
            m.d.sync += [
                o_order.valid.eq(fire[OrderSide.BUY] | fire[OrderSide.SELL]),
                o_order.payload.slot.eq(s1.slot),
                o_order.payload.locate.eq(s1.locate),
                o_order.payload.side.eq(Mux(buy_hit, OrderSide.BUY, OrderSide.SELL)),
                o_order.payload.shares.eq(s1_rule.shares),
                o_order.payload.price.eq(Mux(buy_hit, picked(lambda part: part.buy_price),
                                             Mux(picked(lambda part: part.sell_above),
                                                 picked(lambda part: part.sell_price), 1))),
                o_order.payload.time_in_force.eq(s1_rule.time_in_force),
                o_order.payload.timestamp.eq(s1.timestamp),
                o_order.payload.stamp.eq(s1.stamp),
            ]

        return m


#: Fraction bits of :attr:`PairRule.ratio`.
RATIO_FRACTION_BITS = 16

#: Cycles from the BBO update that triggers a pair signal (on ``i_bbo_tap``) to its first leg's ``valid``.
PAIR_LATENCY = 5

#: The wrapping counters (``Out(32)`` ports) of :class:`PairStrategy`.
PAIR_COUNTERS = ("signals", "suppressed_cooldown", "suppressed_untradable", "suppressed_conflict")


class PairRule(data.Struct):
    """The pair rule: legs A and B (symbol slots), priced against each other by ``ratio``.

    ``ratio`` is unsigned fixed point Q16.16 (``ratio / 65536`` shares of B per share of A, e.g. 0x18000 = 1.5).
    With the spread of each trade direction in Price(4) ticks, kept exact by scaling by 65536:

    - A rich: ``bid(A) - ratio x ask(B) > upper`` sells ``shares_a`` of A at bid(A) and buys ``shares_b`` of B at
      ask(B);
    - A cheap: ``ask(A) - ratio x bid(B) < lower`` buys ``shares_a`` of A at ask(A) and sells ``shares_b`` of B at
      bid(B).

    ``upper`` and ``lower`` are signed ticks. After a signal the rule stays silent for ``cooldown`` cycles.
    """
    enable: 1
    slot_a: 8
    slot_b: 8
    ratio: 32
    upper: signed(32)
    lower: signed(32)
    shares_a: 32
    shares_b: 32
    time_in_force: 32
    cooldown: 32


def _product(m, name, a, b):
    """``a x b`` (32 x 32 bits, available one cycle later): four 16 x 16 partial products registered (one DSP block
    each), summed combinationally."""
    pieces = []
    for a_half, b_half, suffix in ((0, 0, "ll"), (0, 1, "lh"), (1, 0, "hl"), (1, 1, "hh")):
        piece = Signal(32, name=f"{name}_{suffix}")
        m.d.sync += piece.eq(a[16 * a_half:16 * a_half + 16] * b[16 * b_half:16 * b_half + 16])
        pieces.append(piece)
    return Cat(pieces[0], pieces[3]) + (pieces[1] << 16) + (pieces[2] << 16)


class PairStrategy(wiring.Component):
    """Sends both legs of a pair trade when the spread between two symbols leaves its band (:class:`PairRule`).

    Parameters
    ----------
    symbols : int
        Number of symbol slots S.

    Attributes
    ----------
    i_bbo_tap : In(stream.Signature(BboUpdate, always_ready=True))
        A copy of the BBO updates; the strategy keeps the last BBO of each leg. An update of a leg triggers an
        evaluation of the rule on both legs' last BBOs; an update arriving while an evaluation or its legs are
        under way triggers one more evaluation after them.
    o_order : Out(stream.Signature(OrderRequest))
        The legs of a signal, A then B on consecutive beats, with the (last) triggering update's ``timestamp`` and
        ``stamp``; leg A has ``more_legs`` set.
    cycle : In(CYCLE_BITS)
        The free-running cycle counter (the cooldown counts from an evaluation's start).
    halted : In(S)
        One bit per slot: the symbol is halted; a pair with a halted leg does not trade. Sampled at the start.
    rule_we, rule : In(1), In(PairRule)
        Host write of the staging copy of the rule; no effect until ``rules_commit``.
    rules_commit : In(1)
        Strobe: the staged rule (one written in the same cycle included) is in force for evaluations starting
        after this cycle. The rule starts disabled.
    signals, suppressed_cooldown, suppressed_untradable, suppressed_conflict : Out(32)
        Wrapping counts, per evaluation: signals sent; a signal silenced by the cooldown; no trade because a leg's
        side is empty, a leg's book is degraded, crossed or locked, or a leg is halted; both directions at once
        (a band with ``lower`` above ``upper``), nothing sent. Checked in that order.

    Notes
    -----
    Latency: :data:`PAIR_LATENCY` = 5 cycles from the triggering update to leg A's ``valid`` (leg B follows):
    the products ratio x price(B) in DSP blocks, their sums, the band comparisons, the decision, a cycle each.
    Integer arithmetic only: A's prices and the band are scaled by 2**16 to meet the ratio's fraction bits, so
    the comparisons are exact. One evaluation at a time: a signal every 7 cycles at most.
    """

    def __init__(self, symbols):
        self.symbols = symbols
        super().__init__({
            "i_bbo_tap": In(stream.Signature(BboUpdate, always_ready=True)),
            "o_order": Out(stream.Signature(OrderRequest)),
            "cycle": In(CYCLE_BITS),
            "halted": In(symbols),
            "rule_we": In(1),
            "rule": In(PairRule),
            "rules_commit": In(1),
            **{name: Out(32) for name in PAIR_COUNTERS},
        })

    def elaborate(self, platform):
        m = Module()
        staged = Signal(PairRule)
        active = Signal(PairRule)
        with m.If(self.rule_we):
            m.d.sync += staged.eq(self.rule)
        with m.If(self.rules_commit):
            m.d.sync += active.eq(Mux(self.rule_we, self.rule, staged))

        # The legs' last BBOs.
        leg_layout = data.StructLayout({"bid": 32, "ask": 32, "degraded": 1, "locate": 16})
        legs = [Signal(leg_layout, name=f"leg_{name}") for name in "ab"]
        tap = self.i_bbo_tap.payload
        hits = [self.i_bbo_tap.valid & (tap.slot == active.slot_a),
                self.i_bbo_tap.valid & (tap.slot == active.slot_b)]
        for leg, hit in zip(legs, hits):
            with m.If(hit):
                m.d.sync += [leg.bid.eq(tap.bid_price), leg.ask.eq(tap.ask_price), leg.degraded.eq(tap.degraded),
                             leg.locate.eq(tap.locate)]

        # One evaluation at a time: stage 1 (products), 2 (sums), 3 (comparisons), 4 (decision), 5 and 6 (legs A
        # and B).
        stage = Signal(range(7))
        pending = Signal()
        trigger = active.enable & (hits[0] | hits[1])
        start = (stage == 0) & (trigger | pending)
        m.d.sync += pending.eq((pending | trigger) & ~start)
        fire = Signal()
        with m.Switch(stage):
            with m.Case(0):
                with m.If(start):
                    m.d.sync += stage.eq(1)
            with m.Case(1, 2, 3):
                m.d.sync += stage.eq(stage + 1)
            with m.Case(4):
                m.d.sync += stage.eq(Mux(fire, 5, 0))
            with m.Case(5):
                with m.If(self.o_order.ready):
                    m.d.sync += stage.eq(6)
            with m.Case(6):
                with m.If(self.o_order.ready):
                    m.d.sync += stage.eq(0)

        # At the start: the rule, time and halt bits (the legs are read one cycle later, with the triggering update
        # in them).
        rule = Signal(PairRule)
        started = Signal(CYCLE_BITS)
        halted = Signal()
        event = Signal(data.StructLayout({"timestamp": 48, "stamp": 16}))
        with m.If(start):
            m.d.sync += [
                rule.eq(active),
                started.eq(self.cycle),
                halted.eq(self.halted.bit_select(active.slot_a, 1) | self.halted.bit_select(active.slot_b, 1)),
            ]
        with m.If(trigger):
            m.d.sync += [event.timestamp.eq(tap.timestamp), event.stamp.eq(tap.stamp)]

        # Stage 1: partial products of ratio x ask(B) and ratio x bid(B); the legs as they are now, and the last
        # update that triggered (both legs carry it, whatever triggers while they are under way).
        snap = [Signal(leg_layout, name=f"snap_{name}") for name in "ab"]
        snap_event = Signal.like(event)
        with m.If(stage == 1):
            m.d.sync += [snap[0].eq(legs[0]), snap[1].eq(legs[1]), snap_event.eq(event)]
        rich_product = _product(m, "ratio_ask_b", rule.ratio, legs[1].ask)
        cheap_product = _product(m, "ratio_bid_b", rule.ratio, legs[1].bid)

        # Stage 2: the products summed; A's prices less the band, scaled like the products.
        rich_b = Signal(64)
        cheap_b = Signal(64)
        rich_a = Signal(signed(34 + RATIO_FRACTION_BITS))
        cheap_a = Signal(signed(34 + RATIO_FRACTION_BITS))
        m.d.sync += [
            rich_b.eq(rich_product),
            cheap_b.eq(cheap_product),
            rich_a.eq((snap[0].bid - rule.upper) << RATIO_FRACTION_BITS),
            cheap_a.eq((snap[0].ask - rule.lower) << RATIO_FRACTION_BITS),
        ]

        # Stage 3: the comparisons.
        def tradable(leg):
            return (leg.bid != 0) & (leg.ask != 0) & (leg.bid < leg.ask) & ~leg.degraded

        rich = Signal()
        cheap = Signal()
        ok = Signal()
        cooled = Signal()
        ready_at = Signal(CYCLE_BITS)
        m.d.sync += [
            rich.eq(rich_a > rich_b),
            cheap.eq(cheap_a < cheap_b),
            ok.eq(tradable(snap[0]) & tradable(snap[1]) & ~halted),
            cooled.eq(started >= ready_at),
        ]

        # Stage 4: the decision.
        sell_a = Signal()
        m.d.comb += fire.eq((stage == 4) & ok & (rich ^ cheap) & cooled)

        def count(name):
            counter = getattr(self, name)
            m.d.sync += counter.eq(counter + 1)

        with m.If(stage == 4):
            m.d.sync += sell_a.eq(rich)
            with m.If(~ok):
                count("suppressed_untradable")
            with m.Elif(rich & cheap):
                count("suppressed_conflict")
            with m.Elif(fire):
                count("signals")
                m.d.sync += ready_at.eq(started + rule.cooldown)
            with m.Elif(rich | cheap):
                count("suppressed_cooldown")

        # Stages 5 and 6: leg A, then leg B, each held until taken; A rich sells A and buys B.
        o_order = self.o_order
        leg_b = stage == 6
        leg = leg_layout(Mux(leg_b, snap[1].as_value(), snap[0].as_value()))
        leg_sells = leg_b ^ sell_a
        m.d.comb += [
            o_order.valid.eq((stage == 5) | leg_b),
            o_order.payload.slot.eq(Mux(leg_b, rule.slot_b, rule.slot_a)),
            o_order.payload.locate.eq(leg.locate),
            o_order.payload.side.eq(Mux(leg_sells, OrderSide.SELL, OrderSide.BUY)),
            o_order.payload.shares.eq(Mux(leg_b, rule.shares_b, rule.shares_a)),
            o_order.payload.price.eq(Mux(leg_sells, leg.bid, leg.ask)),
            o_order.payload.time_in_force.eq(rule.time_in_force),
            o_order.payload.timestamp.eq(snap_event.timestamp),
            o_order.payload.stamp.eq(snap_event.stamp),
            o_order.payload.more_legs.eq(~leg_b),
        ]

        return m
