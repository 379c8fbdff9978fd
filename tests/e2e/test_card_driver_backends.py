"""The same driver tests on every backend this machine reaches: the virtual card, the card server over tcp://
(serving a virtual card), and a PCIe BAR (a regular file mapped as one)."""

import contextlib
import struct

import pytest

from t2t.card import Card, CardError
from t2t.regmap import load_packaged_regmap
from t2t.server import CardServer, Client, new_keypair
from t2t.transport import BusError
from t2t.transport.pcie import PcieBar
from t2t.transport.remote import RemoteCard
from t2t_sim.virtual_card import VirtualCard

@contextlib.contextmanager
def open_backend(name, folder):
    """A :class:`Card` on backend ``name``: ``sim``, ``tcp`` (a card server on a virtual card) or ``bar``."""
    if name == "sim":
        with Card(VirtualCard()) as card:
            yield card
    elif name == "tcp":
        server_keys, client_keys = new_keypair(), new_keypair()
        clients = {client_keys.public: Client("rita", "risk", client_keys.public)}
        with Card(VirtualCard()) as served:
            server = CardServer(served, server_keys, clients, bind="tcp://127.0.0.1:*")
            server.start()
            try:
                with Card(RemoteCard(server.endpoint, client_keys, server_keys.public)) as card:
                    yield card
            finally:
                server.stop()
    else:
        # A file laid out like the BAR after reset: the identity registers filled in.
        regmap = load_packaged_regmap()
        image = bytearray(1 << 16)
        for path, value in (("id.magic", regmap.magic), ("id.version", regmap.version),
                            ("id.map_hash", regmap.hash32)):
            struct.pack_into("<I", image, regmap[path].address, value)
        (folder / "resource0").write_bytes(image)
        with Card(PcieBar(str(folder / "resource0"))) as card:
            yield card


@pytest.fixture(scope="module", params=["sim", "tcp", "bar"])
def card(request, tmp_path_factory):
    with open_backend(request.param, tmp_path_factory.mktemp("bar")) as card:
        yield card


# A mapped file has no register bank behind it to answer bus errors: only the gateware backends.
@pytest.fixture(scope="module", params=["sim", "tcp"])
def card_with_bank(request, tmp_path_factory):
    with open_backend(request.param, tmp_path_factory.mktemp("bar")) as card:
        yield card


def test_card_opens_and_identifies_itself(card):
    assert card.read("id.magic") == card.regmap.magic
    assert card.read("id.map_hash") == card.regmap.hash32
    assert card.read("id.version") == card.regmap.version


def test_a_register_reads_back_what_was_written(card):
    for value in (0, 0xFFFFFFFF, 0x5A5A1234):
        card.write("id.scratch", value)
        assert card.read("id.scratch") == value


def test_a_wide_register_round_trips_and_a_commit_group_applies(card):
    card.write("feed.dst_port_a", 31337)
    card.write("feed.session", int.from_bytes(b"SESSION001", "big"))
    card.commit("feed")
    assert card.read("feed.dst_port_a") == 31337
    assert card.read("feed.session").to_bytes(10, "big") == b"SESSION001"


def test_the_driver_refuses_values_that_do_not_fit_and_read_only_registers(card):
    with pytest.raises(CardError, match="does not fit"):
        card.write("feed.dst_port_a", 1 << 16)
    with pytest.raises(CardError, match="read-only"):
        card.write("id.magic", 1)


def test_unmapped_and_read_only_addresses_are_refused_and_change_nothing(card_with_bank):
    card = card_with_bank
    card.write("id.scratch", 77)
    with pytest.raises(BusError, match="DECERR|not in the register map"):
        card.transport.read32(0x0F00)
    with pytest.raises(BusError, match="DECERR|not in the register map"):
        card.transport.write32(0x0F00, 1)
    with pytest.raises(BusError, match="SLVERR|read-only"):
        card.transport.write32(card.regmap["id.magic"].address, 0)
    assert card.read("id.scratch") == 77
