"""``t2t feed generate|pack|stats`` through the real entry point, checked against the library's own results."""

import json
from collections import Counter

import pytest

from t2t.cli.main import main
from t2t.feed.binaryfile import iter_messages, iter_raw_messages
from t2t.feed.generator import generate_session
from t2t.feed.moldudp64 import decode_packet
from t2t.feed.netframe import parse_udp_frame
from t2t.feed.pcap import read_pcap

SEED, MESSAGES, SYMBOLS = 4, 6_000, ("AAPL", "MSFT", "IBM")


def run(capsys, *argv):
    """Run ``t2t`` with ``argv``; return (exit code, stdout, stderr)."""
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_json(capsys, *argv):
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


@pytest.fixture(scope="module")
def expected_counts():
    counts = Counter(m.type for m in generate_session(seed=SEED, symbols=SYMBOLS, messages=MESSAGES))
    return {**counts, "total": MESSAGES}


@pytest.fixture(scope="module")
def itch_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("feed") / "session.itch.gz"
    assert main(["feed", "generate", "-o", str(path), "--seed", str(SEED), "--messages", str(MESSAGES),
                 "--symbols", ",".join(SYMBOLS)]) == 0
    return path


def pcap_payloads(path):
    """(destination ip, MoldUDP64 packet) of every frame of a capture."""
    frames = [parse_udp_frame(packet.data) for packet in read_pcap(path)]
    return [(frame.dst_ip, decode_packet(frame.payload)) for frame in frames]


def test_generate_writes_the_generators_session(itch_file):
    expected = list(generate_session(seed=SEED, symbols=SYMBOLS, messages=MESSAGES))
    assert [m for m in iter_messages(itch_file)] == expected


def test_stats_json_of_a_binaryfile_equals_the_generators_counts(capsys, itch_file, expected_counts):
    assert run_json(capsys, "feed", "stats", str(itch_file)) == expected_counts


def test_global_json_flag_before_the_command_works_too(capsys, itch_file, expected_counts):
    code, out, _ = run(capsys, "--json", "feed", "stats", str(itch_file))
    assert code == 0 and json.loads(out) == expected_counts


def test_stats_text_output_lists_types_and_total(capsys, itch_file):
    code, out, _ = run(capsys, "feed", "stats", str(itch_file))
    assert code == 0
    assert f"total {MESSAGES} messages (binaryfile)" in out
    assert any(line.split()[0] == "A" for line in out.splitlines())


def test_pack_then_stats_of_the_capture_counts_the_same_messages(capsys, tmp_path, itch_file, expected_counts):
    pcap = tmp_path / "a.pcap"
    summary = run_json(capsys, "feed", "pack", str(itch_file), "-o", str(pcap))
    assert summary["messages"] == MESSAGES
    assert summary["frames"] == summary["packets"]
    assert run_json(capsys, "feed", "stats", str(pcap)) == expected_counts
    packets = [packet for _, packet in pcap_payloads(pcap)]
    assert packets[0].sequence == 1 and packets[0].session == "T2T0000001"
    assert [p.sequence for p in packets[1:]] == [p.sequence + len(p.messages) for p in packets[:-1]]


def test_pack_with_ab_sends_every_packet_twice_to_two_groups(capsys, tmp_path, itch_file, expected_counts):
    single = run_json(capsys, "feed", "pack", str(itch_file), "-o", str(tmp_path / "a.pcap"))
    pcap = tmp_path / "ab.pcap"
    summary = run_json(capsys, "feed", "pack", str(itch_file), "-o", str(pcap), "--ab")
    assert summary["frames"] == 2 * single["packets"] == 2 * summary["packets"]
    frames = pcap_payloads(pcap)
    assert len(frames) == 2 * single["packets"]
    assert [ip for ip, _ in frames[:4]] == ["233.54.12.111", "233.49.196.71"] * 2
    assert frames[0][1] == frames[1][1]
    assert run_json(capsys, "feed", "stats", str(pcap)) == expected_counts


def test_payload_and_message_limits_shape_the_packets(capsys, tmp_path, itch_file):
    small = tmp_path / "small.pcap"
    run_json(capsys, "feed", "pack", str(itch_file), "-o", str(small), "--max-payload", "200")
    assert max(len(parse_udp_frame(p.data).payload) for p in read_pcap(small)) <= 200
    one = run_json(capsys, "feed", "pack", str(itch_file), "-o", str(tmp_path / "one.pcap"), "--max-messages", "1")
    assert one["packets"] == MESSAGES


def test_drops_on_a_single_feed_leave_gaps(capsys, tmp_path, itch_file):
    lossless = tmp_path / "lossless.pcap"
    run_json(capsys, "feed", "pack", str(itch_file), "-o", str(lossless))
    packets = [packet for _, packet in pcap_payloads(lossless)]
    pcap = tmp_path / "lossy.pcap"
    summary = run_json(capsys, "feed", "pack", str(itch_file), "-o", str(pcap), "--drop-every", "10")
    assert summary["dropped"] == len(packets) // 10
    lost = sum(len(packet.messages) for packet in packets[9::10])
    assert run_json(capsys, "feed", "stats", str(pcap))["total"] == MESSAGES - lost
    code, out, _ = run(capsys, "feed", "stats", str(pcap))
    assert code == 0
    assert f"{summary['dropped']} gaps ({lost} messages missing)" in out


def test_drops_and_reordering_on_feed_a_are_recovered_from_feed_b(capsys, tmp_path, itch_file, expected_counts):
    pcap = tmp_path / "ab_lossy.pcap"
    summary = run_json(capsys, "feed", "pack", str(itch_file), "-o", str(pcap), "--ab", "--drop-every", "5",
                       "--reorder-every", "3", "--drop-rate", "0.1")
    assert summary["dropped"] > 0 and summary["reordered"] > 0
    assert summary["frames_by_feed"]["B"] == summary["packets"]
    assert run_json(capsys, "feed", "stats", str(pcap)) == expected_counts


def test_random_drops_are_deterministic_for_a_seed(capsys, tmp_path, itch_file):
    def pack(name, seed):
        path = tmp_path / name
        run_json(capsys, "feed", "pack", str(itch_file), "-o", str(path), "--drop-rate", "0.3", "--seed", seed)
        return path.read_bytes()

    assert pack("s1.pcap", "1") == pack("s1_again.pcap", "1")
    assert pack("s1.pcap", "1") != pack("s2.pcap", "2")


def test_session_and_destination_options(capsys, tmp_path, itch_file):
    pcap = tmp_path / "custom.pcap"
    run_json(capsys, "feed", "pack", str(itch_file), "-o", str(pcap), "--session", "TEST", "--feed-a",
             "239.1.1.1:5000", "--vlan", "7")
    first = parse_udp_frame(next(iter(read_pcap(pcap))).data)
    assert (first.dst_ip, first.dst_port, first.vlan_id) == ("239.1.1.1", 5000, 7)
    assert decode_packet(first.payload).session == "TEST"


@pytest.mark.parametrize("argv", [
    ("feed", "stats", "/nonexistent/day.itch"),
    ("feed", "pack", "/nonexistent/day.itch", "-o", "/tmp/never.pcap"),
])
def test_missing_input_is_exit_code_2(capsys, argv):
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert "no such file" in err


def test_truncated_input_is_exit_code_2_with_the_offset(capsys, tmp_path, itch_file):
    data = b"".join(len(raw).to_bytes(2, "big") + raw for raw in iter_raw_messages(itch_file))
    broken = tmp_path / "broken.itch"
    broken.write_bytes(data[:-5])
    code, _, err = run(capsys, "feed", "stats", str(broken))
    assert code == 2
    assert "offset" in err


def test_bad_generate_arguments_are_exit_code_2(capsys, tmp_path):
    code, _, err = run(capsys, "feed", "generate", "-o", str(tmp_path / "x.itch"), "--messages", "3")
    assert code == 2 and "skeleton" in err
    assert not (tmp_path / "x.itch").exists()
