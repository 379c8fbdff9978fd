"""A card's BAR 0 mapped through Linux sysfs (``/sys/bus/pci/devices/<BDF>/resource0``)."""

import mmap
import os
import re

from . import BusError, CardNotFound, Transport, TransportError

__all__ = ["PcieBar", "SYSFS_PCI_DEVICES"]

SYSFS_PCI_DEVICES = "/sys/bus/pci/devices"
_BDF = re.compile(r"^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$")
# What a PCIe read of a missing or failing target returns; the AXI bridge maps DECERR to it too.
ALL_ONES = 0xFFFFFFFF


class PcieBar(Transport):
    """32-bit accesses to a memory-mapped BAR (any file that can be mmapped: a sysfs resource, or a plain file
    in tests). Every access is one aligned 4-byte load or store through a ``memoryview`` cast to ``I``, so the
    bridge sees single 32-bit transactions.
    """

    def __init__(self, path):
        self.url = f"file://{path}"
        try:
            fd = os.open(path, os.O_RDWR | os.O_SYNC)
        except FileNotFoundError:
            raise CardNotFound(f"no such device: {path}") from None
        except PermissionError:
            raise TransportError(f"permission denied opening {path} (run as root or grant access to the "
                                 f"device's resource0)") from None
        try:
            size = os.fstat(fd).st_size
            if size < 4:
                raise TransportError(f"{path} is too small to be a BAR ({size} bytes)")
            self._map = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            os.close(fd)
        self._words = memoryview(self._map).cast("I")
        self.size = size

    @classmethod
    def from_bdf(cls, bdf):
        if not _BDF.match(bdf):
            raise CardNotFound(f"{bdf!r} is not a PCI address like 0000:03:00.0")
        device = os.path.join(SYSFS_PCI_DEVICES, bdf)
        if not os.path.isdir(device):
            raise CardNotFound(f"no such device: PCI {bdf} (nothing at {device})")
        bar = cls(os.path.join(device, "resource0"))
        bar.url = f"pcie://{bdf}"
        return bar

    def _index(self, address):
        if address % 4:
            raise BusError(f"unaligned register address {address:#x}")
        if not 0 <= address < self.size:
            raise BusError(f"address {address:#x} outside the {self.size}-byte BAR")
        return address // 4

    def read32(self, address):
        return self._words[self._index(address)]

    def write32(self, address, value):
        self._words[self._index(address)] = value & 0xFFFFFFFF

    def close(self):
        if self._map is not None:
            self._words.release()
            self._map.close()
            self._map = None
