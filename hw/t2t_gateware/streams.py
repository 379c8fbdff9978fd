"""Payload layouts shared by the pipeline's streams, defined once and imported where used.

Streams are :mod:`amaranth.lib.stream` (valid/ready/payload); framing (``first``/``last``/``keep``) lives inside
the payload. Network-side streams cannot be held back (the wire does not wait): their signatures use
``always_ready=True``.
"""



from amaranth.lib import data, enum, wiring
from amaranth.lib.wiring import Out

__all__ = ["BEAT_BYTES", "STAMP_BITS", "MacBeat", "MacRxSignature", "PayloadBeat", "EventKind", "ItchEvent",
           "BboUpdate", "OrderSide", "OrderRequest"]

#: Bytes per beat of the 64-bit network streams.
BEAT_BYTES = 8

#: Width of the arrival stamp: the low bits of the free-running cycle counter when a beat entered the card.
#: Latencies are differences of stamps modulo 2**STAMP_BITS, so they must stay below 65536 cycles.
STAMP_BITS = 16


class MacBeat(data.Struct):
    """One 64-bit beat between a MAC and the pipeline (RX and TX).

    Byte 0 of the frame is ``data[0:8]`` of the ``first`` beat (little-endian lane order: lane ``i`` is
    ``data[8*i:8*i+8]``). ``keep`` has one bit per lane; only the ``last`` beat may have a partial ``keep``
    (lanes filled from 0 up). ``error`` is meaningful on the ``last`` beat: the MAC saw a bad FCS or a PHY error.
    """
    data: 64
    keep: 8
    first: 1
    last: 1
    error: 1


class MacRxSignature(wiring.Signature):
    """An RX port as a MAC drives it: ``valid`` and a :class:`MacBeat`, and no ``ready``, since the wire does not
    wait. Used at the top level, where a port must be a plain signal (an ``always_ready`` stream's ``ready`` is a
    constant); inside, blocks take ``stream.Signature(MacBeat, always_ready=True)``.
    """

    def __init__(self):
        super().__init__({"valid": Out(1), "payload": Out(MacBeat)})


class PayloadBeat(data.Struct):
    """One beat of an accepted UDP payload, realigned so the payload's byte 0 is lane 0 of the ``first`` beat.

    ``keep`` is contiguous from lane 0 and partial only on the ``last`` beat. ``feed`` says which input port
    (0 = A, 1 = B) the packet came from. ``stamp`` is the arrival stamp of the RX beat that carried this beat's
    highest valid byte. ``error`` on the ``last`` beat: the frame's FCS was bad.
    """
    data: 64
    keep: 8
    first: 1
    last: 1
    error: 1
    feed: 1
    stamp: STAMP_BITS


class EventKind(enum.Enum, shape=4):
    """What a normalized ITCH event means to the book and the strategy."""
    ADD = 0                 # A and F: new order (order_ref, side, shares, price, locate)
    EXECUTE = 1             # E: shares executed at the order's own price
    EXECUTE_WITH_PRICE = 2  # C: shares executed at ``price`` (the book still uses the order's price)
    CANCEL = 3              # X: shares cancelled
    DELETE = 4              # D: order removed
    REPLACE = 5             # U: order_ref replaced by new_order_ref with shares and price
    TRADE = 6               # P: non-cross trade (does not touch the book)
    CROSS_TRADE = 7         # Q: cross trade (does not touch the book)
    SYSTEM_EVENT = 8        # S: ``code`` holds the event code (O S Q M E C)
    TRADING_ACTION = 9      # H: ``code`` holds the trading state (H P Q T)


class ItchEvent(data.Struct):
    """One normalized ITCH 5.0 event, the ingest's output and the book's input.

    Fields a message type does not carry are zero. ``side`` is 1 for a sell ('S'), 0 for a buy ('B').
    ``price`` is Price(4) ticks. ``stamp`` is the arrival stamp of the RX beat that carried the message's last byte.
    """
    kind: EventKind
    locate: 16
    order_ref: 64
    new_order_ref: 64
    side: 1
    shares: 32
    price: 32
    match_number: 64
    timestamp: 48
    code: 8
    stamp: STAMP_BITS


class BboUpdate(data.Struct):
    """The best bid and offer of one subscribed symbol, sent by the book builder when either side's top changes.

    ``slot`` is the symbol's index in the book (0..S-1), ``locate`` its ITCH stock locate. Prices are Price(4)
    ticks; an empty side is price 0, shares 0, orders 0. ``degraded`` is set while the symbol's book may be
    wrong (an order-table overflow): a strategy must not trade it. ``timestamp`` is the triggering message's ITCH
    timestamp (ns since midnight), ``stamp`` its arrival stamp (see :class:`ItchEvent`).
    """
    slot: 8
    locate: 16
    bid_price: 32
    bid_shares: 32
    bid_orders: 16
    ask_price: 32
    ask_shares: 32
    ask_orders: 16
    degraded: 1
    timestamp: 48
    stamp: STAMP_BITS


class OrderSide(enum.Enum, shape=1):
    BUY = 0
    SELL = 1


class OrderRequest(data.Struct):
    """A new order from the strategy, checked by the risk gate and encoded by the order encoder.

    ``price`` is Price(4) ticks, ``shares`` a count; ``time_in_force`` is OUCH 4.2's (0 = immediate or cancel,
    99998 = market hours, 99999 = system hours). ``timestamp`` and ``stamp`` are those of the triggering market
    event, carried for the order log and the tick-to-trade latency. ``more_legs`` is 1 on every leg of a
    multi-leg order but the last (leg A of a pair): a merge of order streams keeps the next order of the same
    stream right behind it.
    """
    slot: 8
    locate: 16
    side: OrderSide
    shares: 32
    price: 32
    time_in_force: 32
    timestamp: 48
    stamp: STAMP_BITS
    more_legs: 1
