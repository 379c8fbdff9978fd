"""UdpReceiver in the Amaranth simulator against a byte-level reference of what it accepts and when beats leave."""

import gc
import random
import warnings
from dataclasses import dataclass, field

import pytest
from amaranth.hdl import UnusedElaboratable
from amaranth.sim import Simulator

from t2t.feed.netframe import build_udp_frame, ipv4_checksum
from t2t_gateware.net import UdpReceiver
from t2t_gateware.net.udp_receiver import OUTCOMES
from t2t_gateware.streams import BEAT_BYTES, STAMP_BITS

DST_IP = "233.54.12.111"
DST_IP_VALUE = 0xE9360C6F
DST_PORT = 26477
COUNTERS = ("frames", *OUTCOMES)
FILLER = 0xEE  # fills the lanes a beat does not keep; must never reach a kept output lane


# --- Stimulus --------------------------------------------------------------------------------------------------------

@dataclass
class SentFrame:
    data: bytes                  # the bytes sent
    error: bool                  # ended with the MAC error flag, or cut off by the next frame's first beat
    cycles: list                 # cycle of each beat
    closed: int = None           # cycle its end became known: its last beat, or the first beat of the frame cutting it


@dataclass
class Stimulus:
    """One input beat (or ``None``: valid low) per cycle, and what was sent."""
    schedule: list = field(default_factory=list)
    frames: list = field(default_factory=list)

    def idle(self, cycles):
        self.schedule.extend([None] * cycles)

    def add(self, frame, *, error=False, cut_after_beats=None, rng=None, gap_probability=0.0):
        """Send ``frame``; with ``cut_after_beats`` send only that many beats and no ``last`` (the next frame's
        first beat cuts it); with ``rng``, idle cycles appear between beats with ``gap_probability``."""
        chunks = [frame[offset:offset + BEAT_BYTES] for offset in range(0, len(frame), BEAT_BYTES)]
        if cut_after_beats is not None:
            chunks = chunks[:cut_after_beats]
        if self.frames and self.frames[-1].closed is None:
            self.frames[-1].closed = len(self.schedule)
        sent = SentFrame(b"".join(chunks), error or cut_after_beats is not None, [])
        for number, chunk in enumerate(chunks):
            if rng is not None and number and rng.random() < gap_probability:
                self.idle(rng.randint(1, 3))
            last = number == len(chunks) - 1 and cut_after_beats is None
            sent.cycles.append(len(self.schedule))
            self.schedule.append({
                "data": int.from_bytes(chunk + bytes([FILLER]) * (BEAT_BYTES - len(chunk)), "little"),
                "keep": (1 << len(chunk)) - 1,
                "first": number == 0,
                "last": last,
                "error": last and error,
            })
        if cut_after_beats is None:
            sent.closed = sent.cycles[-1]
        self.frames.append(sent)


# --- Reference -------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class OutBeat:
    cycle: int                   # the cycle in which the beat is valid on the output
    data: bytes                  # kept lanes only
    first: bool
    last: bool
    error: bool
    stamp: int


def reference_verdict(frame):
    """(outcome, payload start, payload end) by the contract's rules; start is None when nothing is output."""
    size = len(frame)
    if size < 14:
        return "truncated", None, None
    ip = 14
    ethertype = int.from_bytes(frame[12:14], "big")
    if ethertype == 0x8100:
        if size < 18:
            return "truncated", None, None
        ip = 18
        ethertype = int.from_bytes(frame[16:18], "big")
    if ethertype != 0x0800:
        return "not_ipv4", None, None
    if size <= ip:
        return "truncated", None, None
    if frame[ip] >> 4 != 4 or frame[ip] & 0x0F < 5:
        return "not_ipv4", None, None
    udp = ip + 4 * (frame[ip] & 0x0F)
    start = udp + 8
    if size < start:
        return "truncated", None, None
    if ipv4_checksum(frame[ip:udp]) != 0:
        return "bad_ip_checksum", None, None
    if int.from_bytes(frame[ip + 6:ip + 8], "big") & 0x3FFF:
        return "fragments", None, None
    udp_length = int.from_bytes(frame[udp + 4:udp + 6], "big")
    if frame[ip + 9] != 17 or udp_length < 8:
        return "not_udp", None, None
    if (int.from_bytes(frame[ip + 16:ip + 20], "big") != DST_IP_VALUE
            or int.from_bytes(frame[udp + 2:udp + 4], "big") != DST_PORT):
        return "wrong_port", None, None
    end = start + udp_length - 8
    return ("truncated" if size < end else "accepted"), start, min(end, size)


def reference_output(sent, stamp_offset=0):
    """The outcome of a sent frame and its output beats, with the cycle each is due and its stamp."""
    verdict, start, end = reference_verdict(sent.data)
    outcome = "bad_fcs" if sent.error else verdict
    if start is None or start == end:
        return outcome, []
    lane = start % BEAT_BYTES
    beats = []
    for offset in range(start, end, BEAT_BYTES):
        highest = min(offset + BEAT_BYTES, end) - 1
        arrival = sent.cycles[highest // BEAT_BYTES]
        final = highest == end - 1
        # One cycle after the beat carrying the highest byte. A final beat lying in one input beat comes a cycle later
        # (that input beat may also have completed the output beat before it), and never before the frame's end.
        due = arrival + 1
        if final:
            due = max(due + (highest % BEAT_BYTES >= lane), sent.closed + 1)
        beats.append(OutBeat(due, sent.data[offset:highest + 1], offset == start, final,
                             final and (sent.error or verdict == "truncated"),
                             (arrival + stamp_offset) % (1 << STAMP_BITS)))
    return outcome, beats


# --- Simulation ------------------------------------------------------------------------------------------------------

def simulate(stimulus, *, feed_id=0, stamp_offset=0, drain=6):
    """Run the stimulus; return the output beats and the counters at the end."""
    dut = UdpReceiver(feed_id)
    outputs = []
    counters = {}

    async def testbench(ctx):
        ctx.set(dut.dst_ip, DST_IP_VALUE)
        ctx.set(dut.dst_port, DST_PORT)
        beat = dut.i_mac.payload
        for cycle, sent in enumerate(stimulus.schedule + [None] * drain):
            ctx.set(dut.stamp, (cycle + stamp_offset) % (1 << STAMP_BITS))
            ctx.set(dut.i_mac.valid, sent is not None)
            if sent is not None:
                for name, value in sent.items():
                    ctx.set(getattr(beat, name), value)
            await ctx.tick()
            if ctx.get(dut.o_payload.valid):
                out = dut.o_payload.payload
                keep = ctx.get(out.keep)
                kept = keep.bit_length()
                assert keep == (1 << kept) - 1, f"keep {keep:#x} not contiguous from lane 0"
                assert ctx.get(out.feed) == feed_id
                data = ctx.get(out.data).to_bytes(BEAT_BYTES, "little")[:kept]
                outputs.append(OutBeat(cycle + 1, data, bool(ctx.get(out.first)), bool(ctx.get(out.last)),
                                       bool(ctx.get(out.error)), ctx.get(out.stamp)))
        counters.update({name: ctx.get(getattr(dut, name)) for name in COUNTERS})

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return outputs, counters


def check(stimulus, **kwargs):
    """Simulate and compare every output beat (bytes, framing, stamp, cycle) and every counter with the reference."""
    outputs, counters = simulate(stimulus, **kwargs)
    expected_beats = []
    expected_counters = dict.fromkeys(COUNTERS, 0)
    for sent in stimulus.frames:
        outcome, beats = reference_output(sent, kwargs.get("stamp_offset", 0))
        expected_beats += beats
        expected_counters[outcome] += 1
        expected_counters["frames"] += 1
    assert outputs == expected_beats
    assert counters == expected_counters
    return outputs, counters


def good_frame(payload, **kwargs):
    return build_udp_frame(payload, dst_ip=DST_IP, dst_port=DST_PORT, **kwargs)


def random_payload(rng, size):
    return bytes(rng.getrandbits(8) for _ in range(size))


def patched(frame, offset, value, *, layer="ip", fix_checksum=True):
    """``frame`` with ``value`` written at ``offset`` into its IPv4 or UDP header, the IPv4 checksum kept right."""
    raw = bytearray(frame)
    ip = 18 if raw[12:14] == b"\x81\x00" else 14
    header_length = 4 * (raw[ip] & 0x0F)
    base = ip if layer == "ip" else ip + header_length
    raw[base + offset:base + offset + len(value)] = value
    if fix_checksum:
        # Over the header length the frame was built with, in case the patch changed the IHL.
        raw[ip + 10:ip + 12] = b"\0\0"
        raw[ip + 10:ip + 12] = ipv4_checksum(bytes(raw[ip:ip + header_length])).to_bytes(2, "big")
    return bytes(raw)


# --- Tests -----------------------------------------------------------------------------------------------------------

def test_payloads_of_random_lengths_tags_and_options_come_through_intact_back_to_back():
    rng = random.Random(20240601)
    lengths = [1, 2, 5, 6, 7, 8, 9, 13, 14, 15, 17, 18, 19, 20, 1472] + [rng.randint(1, 1472) for _ in range(25)]
    stimulus = Stimulus()
    for size in lengths:
        options = bytes(rng.getrandbits(8) for _ in range(4 * rng.randint(0, 10) if rng.random() < 0.5 else 0))
        vlan_id = rng.choice([None, 5, 4094])
        stimulus.add(good_frame(random_payload(rng, size), vlan_id=vlan_id, ip_options=options,
                                ip_id=rng.getrandbits(16), ttl=rng.randint(1, 255)))
    outputs, counters = check(stimulus)
    assert counters["accepted"] == len(lengths)
    assert all(stimulus.schedule), "frames must follow each other with no idle cycle"


@pytest.mark.parametrize("ip_header_words", range(5, 16))
def test_every_ip_header_length_is_skipped_with_and_without_a_tag(ip_header_words):
    rng = random.Random(ip_header_words)
    stimulus = Stimulus()
    for vlan_id in (None, 7):
        for size in (1, 6, 7, 30, 77):
            stimulus.add(good_frame(random_payload(rng, size), vlan_id=vlan_id,
                                    ip_options=bytes(range(4 * (ip_header_words - 5)))))
    check(stimulus)


def test_idle_cycles_inside_and_between_frames_change_nothing_but_timing():
    rng = random.Random(7)
    stimulus = Stimulus()
    for _ in range(20):
        stimulus.add(good_frame(random_payload(rng, rng.randint(1, 300)), vlan_id=rng.choice([None, 9])),
                     rng=rng, gap_probability=0.3)
        stimulus.idle(rng.choice([0, 0, 1, 3]))
    check(stimulus)


def test_first_payload_beat_leaves_one_cycle_after_the_beat_completing_it_with_its_stamp():
    stimulus = Stimulus()
    stimulus.idle(3)
    stimulus.add(good_frame(bytes(range(100))))  # payload at byte 42: lane 2 of beat 5
    outputs, _ = check(stimulus, feed_id=1, stamp_offset=0xFFF0)  # stamps wrap inside the frame
    first = outputs[0]
    beat_completing_it = stimulus.frames[0].cycles[6]  # payload bytes 6 and 7 are lanes 0, 1 of beat 6
    assert first.first and first.data == bytes(range(8))
    assert first.cycle - beat_completing_it == 1
    assert first.stamp == (beat_completing_it + 0xFFF0) % (1 << STAMP_BITS)
    # 100 bytes from lane 2: the final 4 bytes lie in the frame's last beat after the beat completing the 12th output.
    assert outputs[-1].cycle - stimulus.frames[0].cycles[-1] == 2
    assert all(beat.cycle - stimulus.frames[0].cycles[6 + number] == 1 for number, beat in enumerate(outputs[:-1]))


def _bad_frames():
    """(outcome, frame, MAC error flag) per kind of bad input."""
    rng = random.Random(99)
    payload = random_payload(rng, 100)
    frame = good_frame(payload)
    tagged = good_frame(payload, vlan_id=3)
    with_options = good_frame(payload, ip_options=bytes(range(1, 41)))
    return {
        "ethertype_ipv6": ("not_ipv4", frame[:12] + b"\x86\xdd" + frame[14:], False),
        "second_vlan_tag": ("not_ipv4", tagged[:16] + b"\x81\x00" + tagged[18:], False),
        "ip_version_6": ("not_ipv4", patched(frame, 0, b"\x65"), False),
        "ip_header_length_4": ("not_ipv4", patched(frame, 0, b"\x44"), False),
        "bad_ip_checksum": ("bad_ip_checksum", patched(frame, 10, b"\x12\x34", fix_checksum=False), False),
        "bad_ip_checksum_in_options": ("bad_ip_checksum",
                                       patched(with_options, 59, b"\x00", fix_checksum=False), False),
        "bad_ip_checksum_tagged": ("bad_ip_checksum", patched(tagged, 8, b"\x01", fix_checksum=False), False),
        "ip_options_are_skipped": ("accepted", with_options, False),
        "more_fragments": ("fragments", good_frame(payload, more_fragments=True), False),
        "fragment_offset": ("fragments", good_frame(payload, fragment_offset=185), False),
        "fragment_offset_tagged": ("fragments", good_frame(payload, fragment_offset=1, vlan_id=3), False),
        "tcp": ("not_udp", patched(frame, 9, b"\x06"), False),
        "udp_length_below_header": ("not_udp", patched(frame, 4, b"\x00\x07", layer="udp"), False),
        "wrong_dst_port": ("wrong_port", build_udp_frame(payload, dst_ip=DST_IP, dst_port=DST_PORT + 1), False),
        "wrong_dst_ip": ("wrong_port", build_udp_frame(payload, dst_ip="233.54.12.112", dst_port=DST_PORT), False),
        "wrong_dst_ip_tagged": ("wrong_port", build_udp_frame(payload, dst_ip="10.54.12.111", dst_port=DST_PORT,
                                                              vlan_id=3), False),
        "cut_in_ethernet_header": ("truncated", frame[:13], False),
        "cut_before_ip_version": ("truncated", frame[:14], False),
        "cut_in_ip_header": ("truncated", frame[:30], False),
        "cut_in_udp_header": ("truncated", frame[:41], False),
        "cut_in_udp_dst_port_tagged": ("truncated", tagged[:41], False),
        "cut_in_udp_checksum_tagged": ("truncated", tagged[:45], False),
        "cut_at_payload_start": ("truncated", frame[:42], False),
        "cut_in_payload": ("truncated", frame[:90], False),
        "cut_in_payload_tagged": ("truncated", tagged[:95], False),
        "udp_length_beyond_frame": ("truncated", patched(frame, 4, b"\x01\x00", layer="udp"), False),
        "runt_of_one_beat": ("truncated", frame[:8], False),
        "runt_of_one_byte": ("truncated", frame[:1], False),
        "bad_fcs": ("bad_fcs", frame, True),
        "bad_fcs_tagged_with_options": ("bad_fcs", good_frame(payload, vlan_id=3, ip_options=b"\x01" * 8), True),
        "bad_fcs_on_padded_short_payload": ("bad_fcs", good_frame(payload[:3]), True),
        "bad_fcs_on_a_foreign_frame": ("bad_fcs", frame[:12] + b"\x08\x06" + frame[14:], True),
        "padded_short_payload": ("accepted", good_frame(payload[:5]), False),
        "padded_short_payload_tagged": ("accepted", good_frame(payload[:2], vlan_id=3), False),
        "empty_payload": ("accepted", good_frame(b""), False),
    }


BAD_FRAMES = _bad_frames()


@pytest.mark.parametrize("case", BAD_FRAMES)
def test_bad_frame_counts_once_and_the_next_good_frame_still_comes_through(case):
    outcome, frame, error = BAD_FRAMES[case]
    rng = random.Random(case)
    stimulus = Stimulus()
    stimulus.add(good_frame(random_payload(rng, 23)))
    stimulus.add(frame, error=error)
    stimulus.add(good_frame(random_payload(rng, 64), vlan_id=8))
    outputs, counters = check(stimulus)
    assert counters[outcome] == 1 + 2 * (outcome == "accepted")
    assert counters["frames"] == 3


def test_a_frame_cut_off_by_the_next_first_beat_ends_its_output_with_error():
    rng = random.Random(3)
    stimulus = Stimulus()
    stimulus.add(good_frame(random_payload(rng, 200)), cut_after_beats=12)
    stimulus.add(good_frame(random_payload(rng, 40)))
    outputs, counters = check(stimulus)
    assert counters["bad_fcs"] == 1 and counters["accepted"] == 1
    assert [beat.error for beat in outputs if beat.last] == [True, False]


def test_randomly_damaged_frames_at_full_rate_match_the_reference():
    rng = random.Random(2024)
    stimulus = Stimulus()
    # Untagged offsets of the ethertype, version/IHL, flags, protocol, dst address, UDP dst port and length.
    fields = [12, 13, 14, 20, 21, 23, 30, 33, 36, 37, 38, 39]
    for _ in range(200):
        frame = bytearray(good_frame(random_payload(rng, rng.choice([rng.randint(0, 24), rng.randint(0, 200)])),
                                     vlan_id=rng.choice([None, 2]),
                                     ip_options=bytes(4 * rng.choice([0, 0, 1, 10]))))
        damage = rng.choice(["flip", "flip", "flip", "flip", "short", "cut", "fcs", None])
        if damage == "flip":  # most often behind a good checksum, to reach the checks after it
            frame[rng.choice([*fields, rng.randrange(12, 50)])] ^= 1 << rng.randrange(8)
            if rng.random() < 0.8:
                frame = bytearray(patched(frame, 0, b""))
        elif damage == "short":
            frame = frame[:rng.randint(1, len(frame))]
        cut = rng.randint(1, (len(frame) + 7) // 8) if damage == "cut" and len(frame) > 8 else None
        stimulus.add(bytes(frame), error=damage == "fcs", cut_after_beats=cut, rng=rng, gap_probability=0.05)
    stimulus.add(good_frame(b"end"))
    outputs, counters = check(stimulus)
    assert all(counters[name] for name in OUTCOMES), str(counters)


def test_beats_outside_a_frame_are_ignored():
    stimulus = Stimulus()
    stimulus.add(good_frame(bytes(50)))
    stimulus.frames.pop()          # the receiver starts listening in the middle of this one
    stimulus.schedule = stimulus.schedule[3:]
    stimulus.add(good_frame(bytes(range(30))))
    check(stimulus)


def test_feed_id_must_be_a_port_number():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)  # the half-built component
        with pytest.raises(ValueError):
            UdpReceiver(2)
        gc.collect()
