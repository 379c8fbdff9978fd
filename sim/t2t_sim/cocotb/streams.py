"""Stream drivers and monitors for the top level's network ports and taps, one beat per clock.

* :class:`MacRxDriver` drives one RX port (``rx_a``/``rx_b``: ``valid`` and a ``MacBeat``, never held back) from a
  schedule of Ethernet frames and idle cycles;
* :class:`StreamMonitor` records every transfer of a set of streams (the ``bbo`` and ``order_tap`` taps, ``tx``,
  or an internal stream seen through the Verilator hierarchy), each decoded into the fields of its gateware
  layout, with the value of the top level's cycle counter in the transfer's cycle.

Drivers write just after the rising edge; monitors sample at the falling edge, where everything has settled
for the next rising edge (the edge the transfer happens on).
"""

import cocotb
from cocotb.triggers import FallingEdge, RisingEdge

from t2t_gateware.streams import MacBeat

from ..virtual_card import FLAG_ERROR, FLAG_FIRST, FLAG_LAST, frame_to_beats

__all__ = ["INTER_FRAME_CYCLES", "layout_fields", "unpack", "pack", "frame_words", "MacRxDriver", "StreamMonitor",
           "tx_bytes"]

#: Idle cycles between frames at 10GbE: the 12-byte inter-frame gap and the 8-byte preamble, rounded up to beats.
INTER_FRAME_CYCLES = 3


def layout_fields(layout):
    """``[(name, offset, width)]`` of a gateware payload layout (a ``data.Struct`` class)."""
    return [(name, field.offset, field.width) for name, field in layout.as_shape()]


def unpack(fields, value):
    """A payload's integer value as ``{name: value}``, per :func:`layout_fields`."""
    return {name: (value >> offset) & ((1 << width) - 1) for name, offset, width in fields}


def pack(fields, **values):
    word = 0
    for name, offset, width in fields:
        word |= (values.get(name, 0) & ((1 << width) - 1)) << offset
    return word


_MAC_FIELDS = layout_fields(MacBeat)


def frame_words(frame, error=False):
    """An Ethernet frame (without FCS) as the ``MacBeat`` payload values of its beats."""
    data, keep, flags = frame_to_beats(frame, error)
    return [pack(_MAC_FIELDS, data=int(d), keep=int(k), first=int(f & FLAG_FIRST), last=int(f & FLAG_LAST) >> 1,
                 error=int(f & FLAG_ERROR) >> 2)
            for d, k, f in zip(data.tolist(), keep.tolist(), flags.tolist())]


class MacRxDriver:
    """Drives an RX port (``dut.<name>__valid``, ``dut.<name>__payload``) beat by beat.

    :meth:`send` takes a schedule of ``(idle cycles before, frame)`` and returns once the last beat has been
    presented (the port is idle again); ``frames`` and ``beats`` count what it sent.
    """

    def __init__(self, dut, name):
        self.clk = dut.clk
        self.valid = getattr(dut, f"{name}__valid")
        self.payload = getattr(dut, f"{name}__payload")
        self.valid.value = 0
        self.frames = 0
        self.beats = 0

    async def send(self, schedule):
        edge = RisingEdge(self.clk)
        valid, payload = self.valid, self.payload
        for idle, frame in schedule:
            words = frame if isinstance(frame, list) else frame_words(frame)
            if idle:
                valid.value = 0
                for _ in range(idle):
                    await edge
            for word in words:
                valid.value = 1
                payload.value = word
                await edge
            self.frames += 1
            self.beats += len(words)
        valid.value = 0


class StreamMonitor:
    """Records the transfers of several streams in one coroutine (one sample per cycle, at the falling edge).

    ``add(name, valid, payload, layout, ready=None)``: a transfer is a cycle with ``valid`` (and ``ready`` when
    given) high; ``records[name]`` collects ``{field: value, ..., "cycle": top-level cycle counter}`` for each.
    """

    def __init__(self, dut):
        self.dut = dut
        self.cycles = dut.cycles
        self.streams = []
        self.records = {}
        self._task = None

    def add(self, name, valid, payload, layout, ready=None):
        self.streams.append((name, valid, ready, payload, layout_fields(layout)))
        self.records[name] = []
        return self.records[name]

    def start(self):
        self._task = cocotb.start_soon(self._run())

    def stop(self):
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self):
        edge = FallingEdge(self.dut.clk)
        streams = self.streams
        records = self.records
        cycles = self.cycles
        while True:
            await edge
            for name, valid, ready, payload, fields in streams:
                if valid.value and (ready is None or ready.value):
                    record = unpack(fields, int(payload.value))
                    record["cycle"] = int(cycles.value)
                    records[name].append(record)


def tx_bytes(beats):
    """The bytes of recorded ``MacBeat`` transfers (lanes kept, in order)."""
    out = bytearray()
    for beat in beats:
        out += beat["data"].to_bytes(8, "little")[:bin(beat["keep"]).count("1")]
    return bytes(out)
