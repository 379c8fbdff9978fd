"""``t2t status`` and ``t2t regs`` against a BAR-like file, and their errors and exit codes."""

import json
import struct

import pytest

from t2t.cli.main import main
from t2t.regmap import load_packaged_regmap


@pytest.fixture
def card_url(tmp_path):
    regmap = load_packaged_regmap()
    image = bytearray(1 << 16)
    for path, value in (("id.magic", regmap.magic), ("id.version", regmap.version),
                        ("id.map_hash", regmap.hash32)):
        struct.pack_into("<I", image, regmap[path].address, value)
    path = tmp_path / "resource0"
    path.write_bytes(image)
    return f"file://{path}"


def test_regs_dump_names_every_readable_register(card_url, capsys):
    assert main(["--card", card_url, "regs", "dump"]) == 0
    out = capsys.readouterr().out
    for reg in load_packaged_regmap():
        if reg.access != "strobe":
            assert reg.path in out


def test_regs_set_then_get_in_json(card_url, capsys):
    assert main(["--card", card_url, "regs", "set", "id.scratch", "0x1234"]) == 0
    capsys.readouterr()
    assert main(["--card", card_url, "--json", "regs", "get", "id.scratch", "id.magic"]) == 0
    assert json.loads(capsys.readouterr().out) == {"id.scratch": 0x1234, "id.magic": 0x54325452}


def test_setting_a_staged_register_says_it_is_staged(card_url, capsys):
    assert main(["--card", card_url, "regs", "set", "feed.dst_port_a", "1000"]) == 0
    assert "staged" in capsys.readouterr().out


def test_unknown_register_is_a_usage_error(card_url, capsys):
    assert main(["--card", card_url, "regs", "get", "id.nosuch"]) == 2
    assert "no register named 'id.nosuch'" in capsys.readouterr().err


def test_bad_number_is_a_usage_error(card_url, capsys):
    assert main(["--card", card_url, "regs", "set", "id.scratch", "12abc"]) == 2


def test_missing_card_exits_3_with_a_clear_message(capsys):
    assert main(["--card", "pcie://0000:7f:00.0", "status"]) == 3
    assert "no such device" in capsys.readouterr().err


def test_status_on_the_virtual_card(capsys):
    assert main(["--card", "sim", "--json", "status"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["map_hash"] == f"{load_packaged_regmap().hash32:#010x}"
    assert status["cycles"] > 0
