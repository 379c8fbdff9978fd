"""Merges two order streams (e.g. the threshold and the pair strategy) into one for the risk gate."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..streams import OrderRequest

__all__ = ["OrderMerge"]


class OrderMerge(wiring.Component):
    """Two :class:`OrderRequest` streams in, one out, round robin, multi-leg orders kept together.

    Parameters
    ----------
    registered : bool
        ``True`` (default): the merged order is registered, 1 cycle from an input's handshake to ``o_order.valid``
        whatever the inputs do, and the merge adds no logic in front of the risk gate's handshake cycle.
        ``False``: no register, 0 cycles (the chosen input's ``valid`` and payload through a 2:1 multiplexer, its
        ``ready`` is ``o_order.ready``); the multiplexer and its choice then sit in front of the gate's checks,
        which costs the gate's clock (out of context with a :class:`RiskGate` behind it, 8 slots: 144-149 MHz,
        against 182-188 MHz registered, seeds 1-3).

    Attributes
    ----------
    i_a, i_b : In(stream.Signature(OrderRequest))
        The two order streams (e.g. ``i_a`` from the :class:`ThresholdStrategy`, ``i_b`` from the
        :class:`PairStrategy`). An order waits (``ready`` low) until the merge takes it: none is lost.
    o_order : Out(stream.Signature(OrderRequest))
        The orders of both, unchanged, each input's in its order.

    Notes
    -----
    Arbitration: round robin. When both inputs offer an order, the one that did not send the last order goes
    first, so neither strategy can hold the other back by more than one order (a fixed priority would let a busy
    threshold strategy, which can signal on every BBO update, starve the pair strategy, or the other way round);
    with one input active, round robin and fixed priority do the same. After an order with ``more_legs`` set the
    merge stays on its input until that input's next order has gone (a pair's leg B right behind leg A, even if
    the other input offers an order in between); the other input waits meanwhile. Unregistered, an order offered
    and not taken stays chosen until it is taken (the payload does not change under a waiting ``valid``).
    Throughput: one order per cycle.
    """

    i_a: In(stream.Signature(OrderRequest))
    i_b: In(stream.Signature(OrderRequest))
    o_order: Out(stream.Signature(OrderRequest))

    def __init__(self, *, registered=True):
        self.registered = registered
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        a, b, out = self.i_a, self.i_b, self.o_order

        last_b = Signal()       # the last order taken came from i_b
        locked = Signal()       # stay on last_b's input: a leg with more_legs set went last
        holding = Signal()      # unregistered: an order was offered and not taken, stay on `held_b`
        held_b = Signal()

        choose_b = Mux(locked, last_b, Mux(holding, held_b, Mux(a.valid & b.valid, ~last_b, b.valid)))
        chosen_valid = Mux(choose_b, b.valid, a.valid)
        chosen = Mux(choose_b, b.payload.as_value(), a.payload.as_value())
        if self.registered:
            advance = ~out.valid | out.ready
            with m.If(advance):
                m.d.sync += [out.valid.eq(chosen_valid), out.payload.eq(chosen)]
        else:
            advance = out.ready
            m.d.comb += [out.valid.eq(chosen_valid), out.payload.eq(chosen)]
            m.d.sync += [holding.eq(chosen_valid & ~out.ready), held_b.eq(choose_b)]
        m.d.comb += [a.ready.eq(advance & ~choose_b), b.ready.eq(advance & choose_b)]
        with m.If(advance & chosen_valid):
            m.d.sync += [last_b.eq(choose_b), locked.eq(Mux(choose_b, b.payload.more_legs, a.payload.more_legs))]
        return m
