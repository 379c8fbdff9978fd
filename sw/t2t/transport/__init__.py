"""How the host reaches a card's registers: one small interface, several implementations.

* :class:`t2t.transport.pcie.PcieBar` - a PCIe BAR mapped through sysfs (``pcie://0000:03:00.0``);
* ``t2t_sim.virtual_card.VirtualCard`` - the Verilated gateware in this process (``sim``), which needs the
  project's simulation extra;
* :class:`t2t.transport.remote.RemoteCard` - a card shared by a card server (``t2t serve``) over ZeroMQ with
  CURVE (``tcp://HOST:PORT?key=FILE.key&server_pub=FILE.pub``; the keys default to ``$T2T_KEY`` and
  ``$T2T_SERVER_PUB``).

The driver (:class:`t2t.card.Card`) is written against :class:`Transport` only, so the same code runs on each.
"""

__all__ = ["Transport", "TransportError", "BusError", "CardNotFound", "open_transport"]


class TransportError(Exception):
    """The card could not be reached."""


class CardNotFound(TransportError):
    """No card at the given address."""


class BusError(TransportError):
    """The card answered a register access with an error (e.g. DECERR for an unmapped address)."""

    def __init__(self, message, response=None):
        super().__init__(message)
        self.response = response


class Transport:
    """32-bit register access at byte addresses (multiples of 4)."""

    url = None

    def read32(self, address):
        raise NotImplementedError

    def write32(self, address, value):
        raise NotImplementedError

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_transport(url):
    """Open the transport a card URL names: ``sim``, ``pcie://DOMAIN:BUS:DEV.FN``, ``file://PATH`` or
    ``tcp://HOST:PORT``."""
    if url == "sim":
        try:
            from t2t_sim.virtual_card import VirtualCard
        except ImportError as error:
            raise CardNotFound(f"the virtual card needs the simulation extra (pip install 'tick2trade[sim]'): "
                               f"{error}") from None
        return VirtualCard()
    if url.startswith("pcie://"):
        from .pcie import PcieBar
        return PcieBar.from_bdf(url[len("pcie://"):])
    if url.startswith("file://"):
        from .pcie import PcieBar
        return PcieBar(url[len("file://"):])
    if url.startswith("tcp://"):
        from .remote import RemoteCard
        return RemoteCard.from_url(url)
    raise CardNotFound(f"unknown card URL {url!r}: expected 'sim', 'pcie://0000:03:00.0', 'file://PATH' or "
                       f"'tcp://HOST:PORT'")
