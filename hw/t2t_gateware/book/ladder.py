"""The book's full-depth price ladder: shares and orders at every penny price of a window per slot and side, and
the search for the best price level beyond the ones the builder keeps (so a kept level that empties is refilled)."""

from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["PENNY", "DepthLadder"]

#: One cent in Price(4) units: the ladder's price step (Reg NMS 612: stocks of $1 and more quote in pennies).
PENNY = 100

_SHARES_BITS = 32
_ORDERS_BITS = 16


class DepthLadder(wiring.Component):
    """Aggregated shares and order count at each penny price of a window of ``ticks`` prices, per slot and side,
    in block RAM; and a search for the first occupied price worse than a given one.

    Parameters
    ----------
    symbols : int
        Book slots S.
    ticks : int
        Prices per slot and side (a power of two): the window is ``ticks`` pennies wide, centred on the price of the
        slot's first order (so 512 covers +/- $2.56 around it). Block RAM: ``2 * S * ticks`` words of 48 bits (24
        DP16KD with S = 8 and 512 ticks).

    Attributes
    ----------
    change_valid, change_slot, change_side, change_price, change_shares, change_orders : In
        One change to the orders at one price: shares and orders to add, two's complement (a removal is
        negative). At most one every other cycle. The first change of a slot that adds one order centres the
        slot's window on its price (both sides).
    search_start, search_slot, search_side, search_from, search_inclusive : In
        Start a search of slot ``search_slot``, side ``search_side``: the first price with orders, from
        ``search_from`` (included if ``search_inclusive``) towards worse prices (lower bids, higher asks). It
        sees every change of the slot presented before the cycle of ``search_start``; the caller makes sure no
        change of that slot comes during the search.
    search_cancel : In(1)
        Drop the search under way.
    search_done, search_found, found_price, found_shares, found_orders : Out
        ``search_done`` is high for one cycle when a search ends: with ``search_found`` and the level found, or
        without when no price of the window worse than ``search_from`` has orders. A search reads one price per
        cycle that no change reads the RAM (at least every other cycle).
    unsafe : Out(2 * S)
        Per slot and side (bit ``2 * slot + side``), sticky until the slot is mapped again (``remap``): an order
        was outside the window on the side's better end (a bid above it, an ask below it) or off the penny grid,
        so a search could pass over it. The builder does not refill such a side. Orders outside the worse end
        cannot be better than a price found in the window and do not make a side unsafe.
    misses : Out(32)
        Wrapping count of changes outside the window or off the penny grid (not kept in the ladder).
    remap : In(S)
        Strobe per slot: the host mapped the slot again; its window is centred anew on its next order and its
        ``unsafe`` bits cleared (the RAM is not cleared, like the builder's levels).

    Notes
    -----
    A change is written 6 cycles after it is presented (price to offset, offset to index, the penny-grid check
    and read, the read data registered, the sum, the write), and a search reads its first price 6 cycles after its
    start, so it sees every change presented before it started. Nothing combinational follows the RAM's read data,
    which is registered first: the sum of a change and the search's found check work on that register, and a
    search's read address does not depend on the check (it reads on, and a read issued in the cycle that ends the
    search is dropped). A change's read misses at most one write, the previous change's, since changes come at
    least 2 cycles apart; the sum then takes that write's data instead (same address) and no other forwarding is
    needed. The price's index is its offset from the window's base divided by 100, as a multiply by the reciprocal
    (exact on the penny grid within the window; an off-grid price fails the check after it). The search keeps the
    price of its cursor and steps it by a penny, so no multiply follows a found price.
    """

    def __init__(self, *, symbols, ticks=512):
        if ticks < 2 or ticks & (ticks - 1):
            raise ValueError(f"ticks must be a power of two of 2 or more, not {ticks}")
        self.symbols = symbols
        self.ticks = ticks
        super().__init__({
            "change_valid": In(1), "change_slot": In(range(symbols)), "change_side": In(1),
            "change_price": In(32), "change_shares": In(_SHARES_BITS), "change_orders": In(_ORDERS_BITS),
            "search_start": In(1), "search_slot": In(range(symbols)), "search_side": In(1),
            "search_from": In(32), "search_inclusive": In(1), "search_cancel": In(1),
            "search_done": Out(1), "search_found": Out(1),
            "found_price": Out(32), "found_shares": Out(_SHARES_BITS), "found_orders": Out(_ORDERS_BITS),
            "unsafe": Out(2 * symbols), "misses": Out(32), "remap": In(symbols),
        })

    def elaborate(self, platform):
        m = Module()
        S, L = self.symbols, self.ticks
        index_bits = L.bit_length() - 1
        span = L * PENNY
        span_bits = span.bit_length()
        # index = offset * reciprocal >> shift, with reciprocal = ceil(2 ** shift / 100) = (2 ** shift + e) / 100,
        # e < 100. The product's fraction (its bits below ``shift``) is k * e for a price on the grid (offset 100 k),
        # below 100 * ticks <= 2 ** span_bits; off the grid (100 k + r, 0 < r < 100) it is at least the reciprocal,
        # above 2 ** (shift - 7). So the grid check is the fraction's top 7 bits all zero, and no second multiply.
        shift = span_bits + 7
        reciprocal = -(-(1 << shift) // PENNY)
        assert (PENNY * reciprocal - (1 << shift)) * L < (1 << span_bits) <= reciprocal

        base = [Signal(signed(34), name=f"base{s}") for s in range(S)]
        centred = Signal(S)
        unsafe = Signal(2 * S)
        misses = Signal(32)
        m.d.comb += [self.unsafe.eq(unsafe), self.misses.eq(misses)]

        def base_of(slot):
            return Array(base)[slot]

        def to_index(slot, price, centre, name):
            """Three registered stages: the price's offset in the slot's window (the middle when ``centre``), its
            product by the reciprocal, the grid check and the index. Returns the last stage's registers: in window
            and on the grid (``ok``), below the window, above it, the index."""
            offset = Signal(signed(34), name=f"{name}_offset")
            m.d.sync += offset.eq(Mux(centre, span // 2, price - base_of(slot)))
            below, above = Signal(name=f"{name}_below_b"), Signal(name=f"{name}_above_b")
            product = Signal(shift + index_bits + 1, name=f"{name}_product")
            m.d.sync += [below.eq(offset < 0), above.eq(offset >= span),
                         product.eq(offset[:span_bits] * reciprocal)]
            ok, below_c, above_c = Signal(name=f"{name}_ok"), Signal(name=f"{name}_below"), Signal(name=f"{name}_above")
            index_c = Signal(index_bits, name=f"{name}_index")
            m.d.sync += [ok.eq(~below & ~above & (product[span_bits:shift] == 0)), below_c.eq(below),
                         above_c.eq(above), index_c.eq(product[shift:])]
            return ok, below_c, above_c, index_c

        m.submodules.ladder = ladder = Memory(shape=_SHARES_BITS + _ORDERS_BITS, depth=2 * S * L, init=[])
        write = ladder.write_port()
        read = ladder.read_port()
        # The read data is registered before anything uses it: the block RAM's clock-to-output and the route from
        # its 24 blocks take most of a cycle on their own.
        current = Signal(_SHARES_BITS + _ORDERS_BITS)
        m.d.sync += current.eq(read.data)
        current_orders = current[_SHARES_BITS:]

        # ---- Changes: offset, index, grid check and read, read data, sum, write. -------------------------------
        names = ("valid", "slot", "side", "shares", "orders")
        stages = [[Signal(shape, name=f"change_{field}_{n}")
                   for field, shape in zip(names, (1, range(S), 1, _SHARES_BITS, _ORDERS_BITS))] for n in range(5)]
        source = [self.change_valid, self.change_slot, self.change_side, self.change_shares, self.change_orders]
        for stage in stages:
            m.d.sync += [register.eq(value) for register, value in zip(stage, source)]
            source = stage
        # The slot's first added order centres its window on its price.
        centring = Signal()
        m.d.comb += centring.eq(self.change_valid & (self.change_orders == 1) &
                                ~centred.bit_select(self.change_slot, 1))
        for s in range(S):
            with m.If(self.remap[s]):
                m.d.sync += [centred[s].eq(0), unsafe[2 * s].eq(0), unsafe[2 * s + 1].eq(0)]
            with m.Elif(centring & (self.change_slot == s)):
                m.d.sync += [centred[s].eq(1), base[s].eq(self.change_price - span // 2)]
        ok, below, above, index = to_index(self.change_slot, self.change_price, centring, "change")
        valid_c, slot_c, side_c = stages[2][:3]
        change_address = Cat(index, side_c, slot_c)
        change_reads = valid_c & ok
        miss = valid_c & ~ok
        m.d.sync += misses.eq(misses + miss)
        # Off the grid, or outside the side's better end: a search could pass over the order.
        with m.If(miss & ((~below & ~above) | Mux(side_c, below, above))):
            m.d.sync += unsafe.bit_select(Cat(side_c, slot_c), 1).eq(1)
        # The read (cycle 3) comes back in ``current`` at cycle 5, where the sum is formed; it is written at cycle 6.
        # The read misses the writes of its own cycle and the next: with changes at least 2 cycles apart that is at
        # most one write, the previous change's, whose sum is still in ``sum_value`` and is used instead.
        read_address, fetched_address = Signal(range(2 * S * L)), Signal(range(2 * S * L))
        fetched, summing, writing = Signal(), Signal(), Signal()
        sum_address, sum_value = Signal(range(2 * S * L)), Signal(_SHARES_BITS + _ORDERS_BITS)
        wrote = Signal(2)           # a write one cycle ago (bit 0), two cycles ago (bit 1)
        m.d.sync += [read_address.eq(change_address), fetched_address.eq(read_address),
                     fetched.eq(change_reads), summing.eq(fetched), writing.eq(summing),
                     wrote.eq(Cat(writing, wrote[0]))]
        stale = Signal()
        m.d.comb += stale.eq(wrote.any() & (sum_address == fetched_address))
        before = Mux(stale, sum_value, current)
        with m.If(summing):
            m.d.sync += [sum_address.eq(fetched_address),
                         sum_value.eq(Cat((before[:_SHARES_BITS] + stages[4][3])[:_SHARES_BITS],
                                          (before[_SHARES_BITS:] + stages[4][4])[:_ORDERS_BITS]))]
        m.d.comb += [write.en.eq(writing), write.addr.eq(sum_address), write.data.eq(sum_value)]

        # ---- Search: the start's index and price, then one price per free read cycle towards worse prices. ------
        # The first read is 6 cycles after the start, when every change presented before the start is written.
        search_slot, search_side, inclusive = Signal(range(S)), Signal(), Signal()
        start_ok, _, _, start_index = to_index(self.search_slot, self.search_from, 0, "search")
        with m.If(self.search_start):
            m.d.sync += [search_slot.eq(self.search_slot), search_side.eq(self.search_side),
                         inclusive.eq(self.search_inclusive)]
        cursor = Signal(index_bits + 1)          # the next index to read; its top bit set: it left the window
        cursor_in = ~cursor[index_bits]
        cursor_price = Signal(32)                # the price at ``cursor``
        cursor_offset, slot_base = Signal(span_bits), Signal(signed(34))
        # A read issued one cycle ago (its data at the RAM's output), two cycles ago (its data in ``current``).
        in_flight, in_flight_price = Signal(2), [Signal(32, name=f"in_flight_price{n}") for n in range(2)]
        found = in_flight[1] & (current_orders != 0)
        m.d.comb += read.addr.eq(change_address)
        m.d.sync += [self.search_done.eq(0), in_flight.eq(Cat(0, in_flight[0])),
                     in_flight_price[1].eq(in_flight_price[0])]
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.search_start & ~self.search_cancel):
                    m.next = "CONVERT0"
            for n in range(2):
                with m.State(f"CONVERT{n}"):
                    m.next = f"CONVERT{n + 1}"
                    with m.If(self.search_cancel):
                        m.next = "IDLE"
            with m.State("CONVERT2"):
                # The start's index is ready: an exclusive start moves one penny worse.
                with m.If(self.search_cancel):
                    m.next = "IDLE"
                with m.Elif(~start_ok):
                    m.d.sync += [self.search_done.eq(1), self.search_found.eq(0)]
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += cursor.eq(Mux(inclusive, start_index,
                                              Mux(search_side, start_index + 1, start_index - 1)))
                    m.next = "CONVERT3"
            with m.State("CONVERT3"):
                m.d.sync += [cursor_offset.eq(cursor[:index_bits] * PENNY), slot_base.eq(base_of(search_slot))]
                m.next = "CONVERT4"
                with m.If(self.search_cancel):
                    m.next = "IDLE"
            with m.State("CONVERT4"):
                m.d.sync += cursor_price.eq(slot_base + cursor_offset)
                m.next = "SCAN"
                with m.If(self.search_cancel):
                    m.next = "IDLE"
            with m.State("SCAN"):
                # A read goes out whenever the RAM is free, whether or not this cycle ends the search (its result is
                # then not used), so the read address does not wait for the found check.
                with m.If(~change_reads & cursor_in):
                    m.d.comb += read.addr.eq(Cat(cursor[:index_bits], search_side, search_slot))
                    m.d.sync += [in_flight[0].eq(1), in_flight_price[0].eq(cursor_price),
                                 cursor.eq(Mux(search_side, cursor + 1, cursor - 1)),
                                 cursor_price.eq(Mux(search_side, cursor_price + PENNY, cursor_price - PENNY))]
                with m.If(self.search_cancel):
                    m.next = "IDLE"
                with m.Elif(found):
                    m.d.sync += [self.search_done.eq(1), self.search_found.eq(1),
                                 self.found_shares.eq(current[:_SHARES_BITS]), self.found_orders.eq(current_orders),
                                 self.found_price.eq(in_flight_price[1])]
                    m.next = "IDLE"
                with m.Elif(~cursor_in & ~in_flight.any()):
                    m.d.sync += [self.search_done.eq(1), self.search_found.eq(0)]
                    m.next = "IDLE"
        return m
