"""Receive stack: Ethernet II (optionally one 802.1Q tag), IPv4 and UDP checks, and the payload realigned to lane 0."""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..streams import BEAT_BYTES, STAMP_BITS, MacBeat, PayloadBeat

__all__ = ["UdpReceiver", "OUTCOMES"]

TPID_VLAN = 0x8100
ETHERTYPE_IPV4 = 0x0800
IP_PROTOCOL_UDP = 17
UDP_HEADER_BYTES = 8
# Flags/fragment-offset word of the IPv4 header: a datagram is a fragment if MF is set or the offset is not 0.
IP_FRAGMENT_MASK = 0x3FFF
# Frame byte offset of the IPv4 header, untagged and behind one 802.1Q tag.
IP_OFFSET_UNTAGGED = 14
IP_OFFSET_TAGGED = 18
# Beat indices saturate here; a frame's headers always end before it (payload starts at beat 10 at the latest).
INDEX_SATURATED = 15

#: The outcome counters, in the order a frame is classified (the first that applies counts it).
OUTCOMES = ("bad_fcs", "not_ipv4", "truncated", "bad_ip_checksum", "fragments", "not_udp", "wrong_port",
            "accepted")


class UdpReceiver(wiring.Component):
    """Checks one MAC RX stream down to UDP and outputs the accepted datagrams' payload, realigned to lane 0.

    Accepted: Ethernet II with at most one 802.1Q tag (TPID 0x8100), ethertype 0x0800, IPv4 version 4 with any
    header length (IHL 5..15, options skipped) and a correct header checksum, not a fragment (MF clear, offset 0),
    protocol 17, destination address ``dst_ip`` and UDP destination port ``dst_port`` (a multicast group is an
    ordinary address; the destination MAC is the MAC's business). The UDP length field sets the payload length, so
    Ethernet padding is trimmed; the IPv4 total length and the UDP checksum are not checked (0 is legal in IPv4).

    Throughput: one beat in per clock, forever, frames back to back; at most one beat out per clock.

    Latency: an output beat is valid 1 cycle after the input beat that carries its highest byte (payload at byte
    42: the first output beat 1 cycle after input beat 6). Two exceptions, both for the final beat of a datagram:
    when its bytes all came in one input beat, that beat also completed the output beat before it, so the final one
    follows a cycle later (2 cycles); and it is never valid before the cycle after the frame's last input beat,
    whose MAC verdict it carries (this only delays it when Ethernet padding follows a payload under 18 bytes).

    Bad input: every check is decided before the first payload beat would leave, so a rejected datagram produces
    no output at all. A bad FCS is only known at the end, so such a datagram is output (cut-through) with ``error``
    on its last beat. A frame that ends inside the payload is output up to its end, ``error`` on the last beat.
    A ``first`` beat while a frame is still open closes that frame as if its previous beat had been ``last`` with
    ``error`` set. Beats outside a frame (no ``first`` since the last ``last``, e.g. after reset) are ignored.

    Parameters
    ----------
    feed_id : int
        0 (feed A) or 1 (feed B), copied into every output beat's ``feed``.

    Attributes
    ----------
    i_mac : In(stream.Signature(MacBeat, always_ready=True))
        Frames without FCS. Never held back; ``valid`` may also drop inside a frame.
    stamp : In(STAMP_BITS)
        Low bits of the cycle counter; each input beat is stamped with it on arrival.
    dst_ip, dst_port : In(32), In(16)
        The subscribed destination, as numbers (``233.54.12.111`` is ``0xE9360C6F``), sampled as the field passes.
    o_payload : Out(stream.Signature(PayloadBeat, always_ready=True))
        The payload of accepted datagrams: ``keep`` contiguous from lane 0, partial only on ``last``; ``stamp`` is
        the arrival stamp of the input beat that carried the output beat's highest valid byte; ``error`` on the last
        beat: the MAC flagged the frame, or the frame ended before the payload did. A datagram with an empty payload
        is accepted and produces no beat.
    frames, bad_fcs, not_ipv4, truncated, bad_ip_checksum, fragments, not_udp, wrong_port, accepted : Out(32)
        Wrapping counters. Each frame counts in ``frames`` and in exactly one of the others (so ``frames`` is their
        sum), the first that applies in this order: ``bad_fcs`` (error flag on the last beat; the headers of such a
        frame cannot be trusted), ``not_ipv4`` (ethertype not 0x0800, also behind the tag, which covers a second tag;
        IP version not 4; IHL < 5), ``truncated`` (the frame ended before the UDP header's last byte),
        ``bad_ip_checksum``, ``fragments``, ``not_udp`` (protocol not 17, or UDP length < 8), ``wrong_port``
        (destination address or port), ``truncated`` (the frame ended inside the payload), ``accepted``. They change
        3 cycles after the frame's last beat.
    """

    i_mac: In(stream.Signature(MacBeat, always_ready=True))
    stamp: In(STAMP_BITS)
    dst_ip: In(32)
    dst_port: In(16)
    o_payload: Out(stream.Signature(PayloadBeat, always_ready=True))
    frames: Out(32)
    bad_fcs: Out(32)
    not_ipv4: Out(32)
    truncated: Out(32)
    bad_ip_checksum: Out(32)
    fragments: Out(32)
    not_udp: Out(32)
    wrong_port: Out(32)
    accepted: Out(32)

    def __init__(self, feed_id):
        if feed_id not in (0, 1):
            raise ValueError(f"feed_id is 0 (feed A) or 1 (feed B), not {feed_id!r}")
        self.feed_id = feed_id
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        beat = self.i_mac.payload

        def lane(i):
            return beat.data[8 * i:8 * i + 8]

        def be16(i):
            # Network byte order: lane i holds the most significant byte.
            return Cat(lane(i + 1), lane(i))

        # --- Where the current beat is in its frame ---------------------------------------------------------------
        frame_open = Signal()            # a frame has started and its last beat has not come yet
        next_index = Signal(4)
        index = Signal(4)                # of the current beat in its frame, saturating
        in_frame = Signal()              # the current beat belongs to a frame
        continues = Signal()             # the current beat is a further beat of the open frame
        abort = Signal()                 # a new frame starts while one is open: the open one is cut off
        m.d.comb += [
            index.eq(Mux(beat.first, 0, next_index)),
            in_frame.eq(self.i_mac.valid & (beat.first | frame_open)),
            continues.eq(self.i_mac.valid & ~beat.first & frame_open),
            abort.eq(self.i_mac.valid & beat.first & frame_open),
        ]
        with m.If(in_frame):
            m.d.sync += [
                next_index.eq(Mux(index == INDEX_SATURATED, INDEX_SATURATED, index + 1)),
                frame_open.eq(~beat.last),
            ]

        # The previous in-frame beat: the realignment window's first half, and what a frame ended with.
        prev_data = Signal(64)
        prev_stamp = Signal(STAMP_BITS)
        prev_keep = Signal(BEAT_BYTES)
        prev_error = Signal()
        prev_index = Signal(4)
        ended = Signal()                 # the previous cycle's beat was its frame's last
        with m.If(in_frame):
            m.d.sync += [
                prev_data.eq(beat.data),
                prev_stamp.eq(self.stamp),
                prev_keep.eq(beat.keep),
                prev_error.eq(beat.error),
                prev_index.eq(index),
            ]
        m.d.sync += ended.eq(in_frame & beat.last)
        # The cycle in which a frame is closed: its outcome is decided and its last payload bytes are flushed.
        # Nothing of the next frame has overwritten this frame's state yet (index 0 only clears it at the cycle's end).
        closing = Signal()
        m.d.comb += closing.eq(ended | abort)

        # --- Header fields, at fixed beat positions given the tag ----------------------------------------------------
        # Untagged, the IPv4 header starts at beat 1 lane 6; tagged at beat 2 lane 2. The headers' geometry is known
        # from the version/IHL byte on: where the UDP header's dst port and length sit, and where the payload starts.
        tagged = Signal()                # registered at beat 1
        tpid_is_vlan = Signal()
        m.d.comb += tpid_is_vlan.eq(be16(4) == TPID_VLAN)
        untagged_ip_start = Signal()     # the current beat holds the ethertype and the version/IHL byte
        tagged_ip_start = Signal()
        m.d.comb += [
            untagged_ip_start.eq((index == 1) & ~tpid_is_vlan),
            tagged_ip_start.eq((index == 2) & tagged),
        ]
        version_ihl = Mux(tagged_ip_start, lane(2), lane(6))
        ihl = version_ihl[0:4]
        # Checks on the ethertype and the version byte only count if those bytes came: a frame that ends before them
        # is truncated, not foreign. Later fields need no such care, a short frame is counted truncated before them.
        not_ipv4_here = Signal()
        m.d.comb += not_ipv4_here.eq(
            (untagged_ip_start & beat.keep[5] & (be16(4) != ETHERTYPE_IPV4))
            | (tagged_ip_start & beat.keep[1] & (be16(0) != ETHERTYPE_IPV4))
            | ((untagged_ip_start & beat.keep[6] | tagged_ip_start & beat.keep[2])
               & ((version_ihl[4:8] != 4) | (ihl < 5))))

        payload_offset = Signal(7)       # frame byte offset of the UDP payload: 42 + 4 per tag and option word
        m.d.comb += payload_offset.eq(
            Mux(tagged_ip_start, IP_OFFSET_TAGGED, IP_OFFSET_UNTAGGED) + ihl * 4 + UDP_HEADER_BYTES)
        # The payload starts at lane 2 or 6 (14 + 4*k), so the realignment is one of two fixed shifts.
        payload_index = Signal(4, init=INDEX_SATURATED)  # beat holding the payload's first byte
        payload_lane6 = Signal()         # it sits at lane 6 (else lane 2)
        udp_index = Signal(4, init=INDEX_SATURATED)  # beat holding the UDP dst port and length
        ip_end_word = Signal(6)          # 16-bit word index (in the frame) just past the IPv4 header
        with m.If(in_frame):
            with m.If(index == 0):
                # Unknown until the version/IHL byte: nothing of this frame may look like payload before.
                m.d.sync += [payload_index.eq(INDEX_SATURATED), udp_index.eq(INDEX_SATURATED)]
            with m.If(index == 1):
                m.d.sync += tagged.eq(tpid_is_vlan)
            with m.If(untagged_ip_start | tagged_ip_start):
                m.d.sync += [
                    payload_index.eq(payload_offset[3:7]),
                    payload_lane6.eq(payload_offset[2]),
                    # Lane 2: dst port and length are in the beat before the payload's; lane 6: in the same beat.
                    udp_index.eq(payload_offset[3:7] - 1 + payload_offset[2]),
                    ip_end_word.eq((payload_offset - UDP_HEADER_BYTES)[1:7]),
                ]

        ip_flags_beat = Signal()         # fragment word and protocol
        m.d.comb += ip_flags_beat.eq(Mux(tagged, index == 3, index == 2))
        fragment_word = Mux(tagged, be16(0), be16(4))
        protocol = Mux(tagged, lane(3), lane(7))
        udp_beat = Signal()
        udp_dst_port = Mux(payload_lane6, be16(0), be16(4))
        udp_length = Mux(payload_lane6, be16(2), be16(6))
        m.d.comb += udp_beat.eq(index == udp_index)
        fragment_here = Signal()
        not_udp_here = Signal()
        wrong_destination_here = Signal()
        m.d.comb += [
            fragment_here.eq(ip_flags_beat & ((fragment_word & IP_FRAGMENT_MASK) != 0)),
            not_udp_here.eq((ip_flags_beat & (protocol != IP_PROTOCOL_UDP))
                            | (udp_beat & (udp_length < UDP_HEADER_BYTES))),
            # The destination address spans beats 3 and 4 untagged, and lies in beat 4 tagged.
            wrong_destination_here.eq(
                (~tagged & (index == 3) & (be16(6) != self.dst_ip[16:32]))
                | (~tagged & (index == 4) & (be16(0) != self.dst_ip[0:16]))
                | (tagged & (index == 4) & (Cat(be16(4), be16(2)) != self.dst_ip))
                | (udp_beat & (udp_dst_port != self.dst_port))),
        ]
        # Failures seen so far in this frame; cleared by its first beat, so a field that never came cannot fail.
        failing_here = {
            "not_ipv4": not_ipv4_here,
            "fragments": fragment_here,
            "not_udp": not_udp_here,
            "wrong_port": wrong_destination_here,
        }
        failed = {name: Signal(name=f"failed_{name}") for name in failing_here}
        with m.If(in_frame):
            for name, here in failing_here.items():
                m.d.sync += failed[name].eq((failed[name] & (index != 0)) | here)

        # --- IPv4 header checksum --------------------------------------------------------------------------------
        # The header starts at an even byte, so its 16-bit words are the beat's 16-bit lanes (byte-swapped, which a
        # one's complement sum does not mind). Each beat adds its 64 bits in four 16-bit lanes whose end-around carry
        # is deferred to the next beat: a 16-bit add per cycle. The lanes are folded in the cycle after the header's
        # last beat, before the first payload beat can leave.
        checksum_lanes = [Signal(16, name=f"checksum_lane{word}") for word in range(4)]
        checksum_carries = [Signal(name=f"checksum_carry{word}") for word in range(4)]
        # Which 16-bit words of the beat are header comes from registered state only (the beat's position is
        # next_index for any beat but a frame's first, which clears the lanes anyway): no comparator sits between
        # the input and the lane adders. Beat 1's word 3 (frame bytes 14-15) is header only when untagged, which
        # that beat's own TPID tells: it is always added, and for a tagged frame taken back at beat 2 by adding its
        # complement in lane 0 (frame bytes 16-17, the inner ethertype, which is not header then): in one's
        # complement, w + ~w adds nothing.
        take_back = (next_index == 2) & tagged
        for word, (acc, carry) in enumerate(zip(checksum_lanes, checksum_carries)):
            data_word = beat.data[16 * word:16 * word + 16]
            if word == 0:
                data_word = Mux(take_back, ~prev_data[48:64], data_word)
            in_header = Mux(next_index == 1, Const(word == 3),
                            (next_index == 2) | (Cat(Const(word, 2), next_index) < ip_end_word))
            header_word = Mux(in_header, data_word, 0)
            with m.If(in_frame):
                m.d.sync += Cat(acc, carry).eq(Mux(index == 0, 0, acc + header_word + carry))
        # 2**16 = 1 modulo 2**16 - 1: the lanes and their pending carries add up to the header's one's complement
        # sum, which is right when it is a nonzero multiple of 0xFFFF (all ones after folding).
        checksum_total = Signal(19)
        checksum_ok = Signal()           # one cycle behind the lanes
        m.d.comb += checksum_total.eq((checksum_lanes[0] + checksum_lanes[1]) + (checksum_lanes[2] + checksum_lanes[3])
                                      + sum(checksum_carries))
        m.d.sync += checksum_ok.eq(checksum_total.matches(*(0xFFFF * k for k in range(1, 5))))

        deliver = Signal()               # valid from the cycle after the payload's first beat on
        m.d.comb += deliver.eq(checksum_ok & ~Cat(*failed.values()).any())

        # --- Payload realignment -----------------------------------------------------------------------------------
        # Output beat k is the previous beat from the payload's start lane s (2 or 6) on, then the current beat's lanes
        # below s. Each in-frame beat past the payload's first one completes such a window (a "step"); when the frame
        # has ended, one more step outputs what is left in the previous beat. Which lanes are kept is the AND of two
        # masks, the lanes the frame has and the lanes the payload still needs: no byte counting in the cycle.
        armed = Signal()                 # payload bytes remain, counted from the previous beat's lane s
        remaining = Signal(16)
        out_first = Signal()
        held = Signal()                  # the final output beat is built and waits for the frame's end
        payload_truncated = Signal()     # the frame ended before the payload did
        with m.If(in_frame & udp_beat):
            m.d.sync += remaining.eq(udp_length - UDP_HEADER_BYTES)
        with m.If(in_frame & (index == payload_index)):
            m.d.sync += [armed.eq(1), out_first.eq(1), payload_truncated.eq(0)]

        step = Signal()
        step_closing = Signal()
        m.d.comb += [
            step.eq(armed & (continues | closing)),
            step_closing.eq(armed & closing),
        ]
        thermometer = Array(Const((1 << n) - 1, BEAT_BYTES) for n in range(BEAT_BYTES + 1))
        payload_goes_on = Signal()       # beyond this window
        payload_keep = Signal(BEAT_BYTES)
        m.d.comb += [
            payload_goes_on.eq(remaining > BEAT_BYTES),
            payload_keep.eq(Mux(payload_goes_on, thermometer[BEAT_BYTES], thermometer[remaining[0:4]])),
        ]
        frame_keep = Signal(BEAT_BYTES)  # lanes of the window the frame has
        frame_goes_on = Signal()         # the frame has bytes beyond this window
        frame_ends_now = Signal()        # the frame's end is known in this step
        with m.If(closing):
            m.d.comb += frame_keep.eq(Mux(payload_lane6, prev_keep[6:8], prev_keep[2:8]))
        with m.Else():
            m.d.comb += [
                frame_keep.eq(Mux(payload_lane6, Cat(Const(0b11, 2), beat.keep[0:6]),
                                  Cat(Const(0b111111, 6), beat.keep[0:2]))),
                frame_goes_on.eq(~beat.last | Mux(payload_lane6, beat.keep[6], beat.keep[2])),
            ]
        m.d.comb += frame_ends_now.eq(closing | beat.last)
        out_keep = Signal(BEAT_BYTES)
        final = Signal()
        truncated_here = Signal()
        m.d.comb += [
            out_keep.eq(frame_keep & payload_keep),
            final.eq(~payload_goes_on | ~frame_goes_on),
            truncated_here.eq(~frame_goes_on & (payload_goes_on | (payload_keep & ~frame_keep).any())),
        ]
        end_error = Mux(closing, prev_error | abort, beat.error)

        out = self.o_payload.payload
        m.d.comb += out.feed.eq(self.feed_id)
        m.d.sync += self.o_payload.valid.eq(0)
        with m.If(step):
            # Only a final step takes less than a whole window, and after it the count no longer matters.
            m.d.sync += [remaining.eq(remaining - BEAT_BYTES), armed.eq(~final)]
            with m.If(truncated_here):
                m.d.sync += payload_truncated.eq(1)
            with m.If(deliver & out_keep[0]):
                m.d.sync += [
                    out.data.eq(Mux(payload_lane6, Cat(prev_data[48:64], beat.data[0:48]),
                                    Cat(prev_data[16:64], beat.data[0:16]))),
                    out.keep.eq(out_keep),
                    out.first.eq(out_first),
                    out.last.eq(final),
                    out.error.eq(final & (truncated_here | end_error)),
                    # Stamped by the current beat if it gave the highest byte, the first lane it fills (8 - s).
                    out.stamp.eq(Mux(Mux(payload_lane6, out_keep[2], out_keep[6]), self.stamp, prev_stamp)),
                    # The last beat must carry the MAC's verdict: if the frame goes on (padding), hold it.
                    self.o_payload.valid.eq(~final | frame_ends_now),
                    held.eq(final & ~frame_ends_now),
                    out_first.eq(0),
                ]
        with m.If(held & ((continues & beat.last) | abort)):
            m.d.sync += [
                self.o_payload.valid.eq(1),
                out.error.eq(abort | beat.error),
                held.eq(0),
            ]

        # --- Outcome of each frame, counted a cycle after it is decided ---------------------------------------------
        headers_complete = Signal()
        m.d.comb += headers_complete.eq(
            (prev_index > payload_index)
            | ((prev_index == payload_index) & Mux(payload_lane6, prev_keep[5], prev_keep[1])))
        outcome = {name: Signal(name=f"outcome_{name}") for name in OUTCOMES}
        counted = Signal()
        m.d.sync += [counted.eq(closing)] + [event.eq(0) for event in outcome.values()]
        with m.If(closing):
            with m.If(end_error):
                m.d.sync += outcome["bad_fcs"].eq(1)
            with m.Elif(failed["not_ipv4"]):
                m.d.sync += outcome["not_ipv4"].eq(1)
            with m.Elif(~headers_complete):
                m.d.sync += outcome["truncated"].eq(1)
            with m.Elif(~checksum_ok):
                m.d.sync += outcome["bad_ip_checksum"].eq(1)
            with m.Elif(failed["fragments"]):
                m.d.sync += outcome["fragments"].eq(1)
            with m.Elif(failed["not_udp"]):
                m.d.sync += outcome["not_udp"].eq(1)
            with m.Elif(failed["wrong_port"]):
                m.d.sync += outcome["wrong_port"].eq(1)
            with m.Elif(payload_truncated | (step_closing & truncated_here)):
                m.d.sync += outcome["truncated"].eq(1)
            with m.Else():
                m.d.sync += outcome["accepted"].eq(1)
        with m.If(counted):
            m.d.sync += self.frames.eq(self.frames + 1)
        for name, event in outcome.items():
            counter = getattr(self, name)
            with m.If(event):
                m.d.sync += counter.eq(counter + 1)
        return m
