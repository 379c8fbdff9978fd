"""The market-data ingest in the whole top level, through the virtual card: a generated ITCH session packed into
MoldUDP64 on both feeds, as an exchange sends it, against the Python reference's counts."""

import collections

import pytest

from t2t.card import Card
from t2t.feed import itch
from t2t.feed.generator import generate_session
from t2t.feed.moldudp64 import encode_packet, pack_messages
from t2t.feed.netframe import build_udp_frame
from t2t_sim.virtual_card import VirtualCard

SESSION = "TEST000001"
FEED_A = ("233.54.12.111", 26477)
FEED_B = ("233.49.196.71", 26477)


def session_packets(messages=3000, seed=11):
    decoded = list(generate_session(seed=seed, messages=messages))
    raw = [itch.encode(message) for message in decoded]
    return decoded, [encode_packet(packet) for packet in pack_messages(raw, SESSION)]


def push(card, port, payloads, feed, gap=2):
    for payload in payloads:
        card.transport.push_frame(port, build_udp_frame(payload, dst_ip=feed[0], dst_port=feed[1]), gap=gap)


def subscribe(card, locates):
    field = card.regmap["itch.subscribe"].field("subscribed")
    for locate in locates:
        card.write("itch.subscribe", locate | 1 << field.offset)


@pytest.fixture(scope="module")
def ab_replay():
    decoded, packets = session_packets()
    card = Card(VirtualCard())
    subscribe(card, [1, 2])
    push(card, 0, packets, FEED_A)
    push(card, 1, packets, FEED_B)
    card.transport.run_until_rx_drained(extra_cycles=200)
    yield card, decoded, packets
    card.close()


def test_every_message_is_counted_once_by_type_with_identical_a_and_b(ab_replay):
    card, decoded, packets = ab_replay
    expected = collections.Counter(message.type for message in decoded)
    for letter in itch.MESSAGE_LENGTHS:
        assert card.read(f"itch.messages_{letter}") == expected.get(letter, 0), letter
    assert card.read("moldudp64.accepted_packets") == len(packets)
    assert card.read("moldudp64.duplicates") == len(packets)
    assert card.read("moldudp64.gaps") == 0
    for name in ("length_errors", "unknown_types", "truncated_messages", "count_errors", "event_overflow"):
        assert card.read(f"itch.{name}") == 0, name


def test_session_is_learned_and_sequence_follows(ab_replay):
    card, decoded, _ = ab_replay
    assert card.read("moldudp64.current_session").to_bytes(10, "big") == SESSION.encode()
    assert card.read("moldudp64.next_expected") == len(decoded) + 1
    status = card.decode("moldudp64.status", card.read("moldudp64.status"))
    assert status["session_known"] == 1 and status["synced"] == 1


def test_only_subscribed_locates_and_system_events_leave(ab_replay):
    card, decoded, _ = ab_replay
    decoded_kinds = set("AFECXDUPQSH")
    passed = [m for m in decoded if m.type in decoded_kinds and (m.locate in (1, 2) or m.type == "S")]
    assert card.read("itch.events") == len(passed)
    last = passed[-1]
    assert card.read("last_event.locate") == last.locate
    assert card.read("last_event.timestamp") == last.timestamp_ns


def test_a_packet_lost_on_both_feeds_is_reported_as_a_gap_then_drained():
    decoded, packets = session_packets(messages=1500, seed=5)
    lost = 3
    first_missing = sum(_count(p) for p in packets[:lost]) + 1
    with Card(VirtualCard()) as card:
        survivors = packets[:lost] + packets[lost + 1:]
        push(card, 0, survivors, FEED_A)
        push(card, 1, survivors, FEED_B)
        card.transport.run_until_rx_drained(extra_cycles=2000)
        assert card.read("moldudp64.gaps") == 1
        gap = card.read("moldudp64.gap")
        assert gap & 0xFFFFFFFF == _count(packets[lost])
        assert gap >> 32 == first_missing
        assert card.read("moldudp64.gap") == 0, "reading the gap took it off the queue"


def test_a_packet_lost_on_one_feed_only_is_filled_by_the_other():
    decoded, packets = session_packets(messages=1500, seed=6)
    with Card(VirtualCard()) as card:
        push(card, 0, packets[:5] + packets[6:], FEED_A)
        push(card, 1, packets, FEED_B)
        card.transport.run_until_rx_drained(extra_cycles=2000)
        assert card.read("moldudp64.gaps") == 0
        assert card.read("moldudp64.next_expected") == len(decoded) + 1
        assert sum(card.read(f"itch.messages_{t}") for t in itch.MESSAGE_LENGTHS) == len(decoded)


def _count(payload):
    return int.from_bytes(payload[18:20], "big")
