"""Counts frames, bad-FCS frames and bytes on one RX port."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..streams import BEAT_BYTES, MacBeat

__all__ = ["RxStatistics"]


class RxStatistics(wiring.Component):
    """Frame, bad-FCS and byte counters of one RX port (taps the stream; never stalls it).

    Counters wrap. They change one cycle after the ``last`` beat that completes a frame. ``bad_fcs_seen`` pulses
    in that cycle for a frame whose MAC flagged an error.
    """

    i_mac: In(stream.Signature(MacBeat, always_ready=True))
    frames: Out(32)
    bad_fcs: Out(32)
    bytes: Out(64)
    bad_fcs_seen: Out(1)

    def elaborate(self, platform):
        m = Module()
        beat = self.i_mac.payload
        # keep is contiguous from lane 0, so the byte count of a beat is the number of set bits.
        beat_bytes = Signal(range(BEAT_BYTES + 1))
        m.d.comb += beat_bytes.eq(Mux(beat.last, sum(beat.keep), BEAT_BYTES))
        m.d.sync += self.bad_fcs_seen.eq(0)
        with m.If(self.i_mac.valid):
            m.d.sync += self.bytes.eq(self.bytes + beat_bytes)
            with m.If(beat.last):
                m.d.sync += self.frames.eq(self.frames + 1)
                with m.If(beat.error):
                    m.d.sync += [self.bad_fcs.eq(self.bad_fcs + 1), self.bad_fcs_seen.eq(1)]
        return m
