"""The PCIe BAR transport and the driver's identity checks, on a regular file mapped like a BAR."""

import struct

import pytest

from t2t.card import Card, CardError, MapMismatch
from t2t.regmap import load_packaged_regmap
from t2t.transport import BusError, CardNotFound, TransportError, open_transport
from t2t.transport.pcie import PcieBar

BAR_SIZE = 1 << 16


@pytest.fixture
def bar_file(tmp_path):
    """A file laid out like the card's BAR right after reset (identity registers filled in)."""
    regmap = load_packaged_regmap()
    image = bytearray(BAR_SIZE)
    for path, value in (("id.magic", regmap.magic), ("id.version", regmap.version),
                        ("id.map_hash", regmap.hash32)):
        struct.pack_into("<I", image, regmap[path].address, value)
    path = tmp_path / "resource0"
    path.write_bytes(image)
    return path


def test_same_driver_reads_and_writes_through_the_mapped_bar(bar_file):
    with Card(open_transport(f"file://{bar_file}")) as card:
        card.write("id.scratch", 0xCAFEF00D)
        card.write("feed.session", int.from_bytes(b"0123456789", "big"))
        assert card.read("id.scratch") == 0xCAFEF00D
        assert card.read("feed.session").to_bytes(10, "big") == b"0123456789"
    raw = bar_file.read_bytes()
    regmap = load_packaged_regmap()
    assert struct.unpack_from("<I", raw, regmap["id.scratch"].address)[0] == 0xCAFEF00D
    # Wide registers go low word first.
    session_address = regmap["feed.session"].address
    assert raw[session_address:session_address + 4] == int.from_bytes(b"0123456789", "big").to_bytes(12, "little")[:4]


def test_card_with_another_register_map_is_refused_naming_both_hashes(bar_file):
    regmap = load_packaged_regmap()
    data = bytearray(bar_file.read_bytes())
    struct.pack_into("<I", data, regmap["id.map_hash"].address, 0x0BADF00D)
    bar_file.write_bytes(data)
    with pytest.raises(MapMismatch) as error:
        Card(PcieBar(str(bar_file)))
    assert "0x0badf00d" in str(error.value) and f"{regmap.hash32:#010x}" in str(error.value)


def test_something_that_is_not_a_card_is_refused(tmp_path):
    path = tmp_path / "resource0"
    path.write_bytes(bytes(4096))
    with pytest.raises(CardError, match="not a Tick2Trade card"):
        Card(PcieBar(str(path)))


def test_missing_device_is_reported_clearly():
    with pytest.raises(CardNotFound, match="no such device: PCI 0000:7f:1f.7"):
        open_transport("pcie://0000:7f:1f.7")
    with pytest.raises(CardNotFound, match="not a PCI address"):
        open_transport("pcie://03:00")
    with pytest.raises(CardNotFound, match="unknown card URL"):
        open_transport("usb://1")


def test_permission_denied_is_reported_clearly(bar_file, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr("os.open", refuse)
    with pytest.raises(TransportError, match="permission denied"):
        PcieBar(str(bar_file))


def test_unaligned_and_out_of_range_accesses_are_refused(bar_file):
    bar = PcieBar(str(bar_file))
    with pytest.raises(BusError, match="unaligned"):
        bar.read32(2)
    with pytest.raises(BusError, match="outside"):
        bar.write32(BAR_SIZE, 1)
    bar.close()


def test_value_wider_than_register_is_refused(bar_file):
    with Card(PcieBar(str(bar_file))) as card:
        with pytest.raises(CardError, match="does not fit"):
            card.write("feed.dst_port_a", 1 << 16)
        with pytest.raises(CardError, match="read-only"):
            card.write("id.magic", 1)
