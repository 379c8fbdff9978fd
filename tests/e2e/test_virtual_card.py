"""What only the virtual card shows (Verilated top level + C++ shim): reset values, the cycle counter, wide reads
under a running clock, byte strobes, and the RX ports. Driver tests shared by every backend are in
test_card_driver_backends.py."""

import pytest

from t2t.card import Card
from t2t.feed.netframe import build_udp_frame
from t2t_sim.virtual_card import VirtualCard


@pytest.fixture(scope="module")
def card():
    with Card(VirtualCard()) as card:
        yield card


def test_reset_values_match_the_map():
    with Card(VirtualCard()) as fresh:
        for reg in fresh.regmap:
            if reg.access == "rw":
                assert fresh.read(reg.path) == reg.reset, reg.path


def test_cycle_counter_follows_simulated_cycles(card):
    before = card.read("id.cycles")
    card.transport.run(1_000_000)
    after = card.read("id.cycles")
    assert 1_000_000 <= after - before < 1_000_100
    assert after <= card.transport.cycle


def test_wide_read_is_atomic_across_a_low_word_wrap(card):
    # Reading word 0 latches the high word; 5000 cycles later the high word read must still be the latched one.
    value_before = card.read("id.cycles")
    low_address, high_address = card.regmap["id.cycles"].word_addresses
    low = card.transport.read32(low_address)
    card.transport.run(5000)
    high = card.transport.read32(high_address)
    assert (high << 32 | low) - value_before < 100, "high word must come from the latch taken with the low word"


def test_scratch_and_byte_strobes(card):
    card.write("id.scratch", 0x11223344)
    card.transport.write32_strobed(card.regmap["id.scratch"].address, 0xAABBCCDD, 0b1001)
    assert card.read("id.scratch") == 0xAA2233DD


def feed_frame(card, feed, payload, **changes):
    """A UDP frame to the feed's configured address and port (``changes`` override build_udp_frame's arguments)."""
    address = card.read(f"feed.dst_ip_{feed}")
    arguments = {"dst_ip": ".".join(str((address >> s) & 0xFF) for s in (24, 16, 8, 0)),
                 "dst_port": card.read(f"feed.dst_port_{feed}")}
    arguments.update(changes)
    return build_udp_frame(payload, **arguments)


def test_rx_counters_sort_frames_by_outcome_and_status_is_sticky():
    with Card(VirtualCard()) as card:
        vc = card.transport
        payloads = [bytes(i % 251 for i in range(n)) for n in (1, 20, 300, 1400)]
        for payload in payloads:
            vc.push_frame(0, feed_frame(card, "a", payload), gap=1)
        vc.push_frame(0, feed_frame(card, "a", b"x" * 50, dst_port=1), gap=1)
        vc.push_frame(0, bytes(60), gap=1)  # ethertype 0: not IPv4
        vc.push_frame(1, feed_frame(card, "b", b"y" * 100), error=True)
        vc.push_frame(1, feed_frame(card, "b", b"z" * 64))
        vc.run_until_rx_drained()
        assert card.read("rx_a.frames") == 6
        assert card.read("rx_a.accepted") == 4
        assert card.read("rx_a.payload_bytes") == sum(map(len, payloads))
        assert card.read("rx_a.wrong_port") == 1
        assert card.read("rx_a.not_ipv4") == 1
        assert card.read("rx_b.frames") == 2
        assert card.read("rx_b.bad_fcs") == 1
        assert card.decode("control.status", card.read("control.status")) == {"rx_a_error": 0, "rx_b_error": 1}
        card.write("control.status", 1 << card.regmap["control.status"].field("rx_b_error").offset)
        assert card.read("control.status") == 0


def test_new_feed_port_takes_effect_only_at_commit():
    with Card(VirtualCard()) as card:
        vc = card.transport
        card.write("feed.dst_port_a", 40000)
        vc.push_frame(0, feed_frame(card, "a", b"p" * 40, dst_port=40000))
        vc.run_until_rx_drained()
        assert card.read("rx_a.wrong_port") == 1, "staged port must not be used before commit"
        card.commit("feed")
        vc.push_frame(0, feed_frame(card, "a", b"p" * 40, dst_port=40000))
        vc.run_until_rx_drained()
        assert card.read("rx_a.accepted") == 1


def test_back_to_back_frames_at_full_duty_are_all_accepted():
    with Card(VirtualCard()) as card:
        vc = card.transport
        # Built first: register reads run the clock, and would feed queued beats early.
        frames = {port: feed_frame(card, feed, bytes(22)) for port, feed in ((0, "a"), (1, "b"))}  # 8 beats each
        for _ in range(1000):
            for port, frame in frames.items():
                vc.push_frame(port, frame)  # no idle cycle between frames
        cycles = vc.run_until_rx_drained(extra_cycles=8)
        assert cycles == 1000 * 8 + 8
        assert card.read("rx_a.accepted") == card.read("rx_b.accepted") == 1000
        assert card.read("rx_a.payload_bytes") == 22000
