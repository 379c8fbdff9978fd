"""The virtual card: the Verilated top level in this process, driven through a small C++ shim with ctypes.

It is a :class:`t2t.transport.Transport` (32-bit register reads and writes over AXI4-Lite), so the very same
host driver runs against it and against a PCIe card; it also moves batches of network beats in and out.
"""

import ctypes

import numpy as np

from t2t.transport import BusError, Transport

__all__ = ["VirtualCard", "BEAT_FLAGS", "FLAG_FIRST", "FLAG_LAST", "FLAG_ERROR", "FLAG_IDLE", "frame_to_beats"]

FLAG_FIRST, FLAG_LAST, FLAG_ERROR, FLAG_IDLE = 1, 2, 4, 8
BEAT_FLAGS = {"first": FLAG_FIRST, "last": FLAG_LAST, "error": FLAG_ERROR, "idle": FLAG_IDLE}
RESET_CYCLES = 8
AXI_RESPONSES = {0: "OKAY", 1: "EXOKAY", 2: "SLVERR", 3: "DECERR"}

_u64p = np.ctypeslib.ndpointer(np.uint64, flags="C_CONTIGUOUS")
_u8p = np.ctypeslib.ndpointer(np.uint8, flags="C_CONTIGUOUS")


def _load(path):
    lib = ctypes.CDLL(str(path))
    handle = ctypes.c_void_p
    lib.vc_create.restype = handle
    lib.vc_destroy.argtypes = [handle]
    lib.vc_reset.argtypes = [handle, ctypes.c_uint32]
    lib.vc_run.argtypes = [handle, ctypes.c_uint64]
    lib.vc_run_until_rx_drained.argtypes = [handle, ctypes.c_uint64]
    lib.vc_run_until_rx_drained.restype = ctypes.c_uint64
    lib.vc_cycle.argtypes = [handle]
    lib.vc_cycle.restype = ctypes.c_uint64
    lib.vc_axil_write.argtypes = [handle, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint32]
    lib.vc_axil_write.restype = ctypes.c_int
    lib.vc_axil_read.argtypes = [handle, ctypes.c_uint32, ctypes.POINTER(ctypes.c_uint32)]
    lib.vc_axil_read.restype = ctypes.c_int
    lib.vc_rx_push.argtypes = [handle, ctypes.c_int, _u64p, _u8p, _u8p, ctypes.c_uint64]
    lib.vc_rx_pending.argtypes = [handle, ctypes.c_int]
    lib.vc_rx_pending.restype = ctypes.c_uint64
    lib.vc_tx_available.argtypes = [handle]
    lib.vc_tx_available.restype = ctypes.c_uint64
    lib.vc_tx_pop.argtypes = [handle, _u64p, _u8p, _u8p, _u64p, ctypes.c_uint64]
    lib.vc_tx_pop.restype = ctypes.c_uint64
    lib.vc_tap_words.argtypes = [ctypes.c_int]
    lib.vc_tap_words.restype = ctypes.c_uint64
    lib.vc_tap_available.argtypes = [handle, ctypes.c_int]
    lib.vc_tap_available.restype = ctypes.c_uint64
    lib.vc_tap_pop.argtypes = [handle, ctypes.c_int, np.ctypeslib.ndpointer(np.uint32, flags="C_CONTIGUOUS"),
                               _u64p, ctypes.c_uint64]
    lib.vc_tap_pop.restype = ctypes.c_uint64
    return lib


_library = None


def _shared_library():
    global _library
    if _library is None:
        from ..build import virtual_card_library
        _library = _load(virtual_card_library())
    return _library


TAP_BBO, TAP_ORDER = 0, 1


def _layout_fields(layout):
    """``{name: (offset, width)}`` of a tap's payload, from the gateware's own layout."""
    return {name: (field.offset, field.width) for name, field in layout.as_shape()}


def _unpack_fields(rows, fields):
    """Slice bit fields (each at most 64 bits) out of rows of little-endian 32-bit words."""
    result = {}
    for name, (offset, width) in fields.items():
        word, shift = divmod(offset, 32)
        value = np.zeros(len(rows), np.uint64)
        taken = 0
        while taken < width:  # gather the field's bits word by word (a field spans at most three words)
            part = rows[:, word].astype(np.uint64) >> np.uint64(shift)
            value |= part << np.uint64(taken)
            taken += 32 - shift
            word, shift = word + 1, 0
        if width < 64:
            value &= np.uint64((1 << width) - 1)
        result[name] = value
    return result


def frame_to_beats(frame, error=False):
    """Split an Ethernet frame (bytes, without FCS) into 64-bit beats: ``(data, keep, flags)`` numpy arrays."""
    if not frame:
        raise ValueError("a frame has at least one byte")
    count = (len(frame) + 7) // 8
    padded = bytes(frame) + bytes(count * 8 - len(frame))
    data = np.frombuffer(padded, dtype="<u8").copy()
    keep = np.full(count, 0xFF, dtype=np.uint8)
    tail = len(frame) - (count - 1) * 8
    keep[-1] = (1 << tail) - 1
    flags = np.zeros(count, dtype=np.uint8)
    flags[0] |= FLAG_FIRST
    flags[-1] |= FLAG_LAST | (FLAG_ERROR if error else 0)
    return data, keep, flags


class VirtualCard(Transport):
    """The Verilated gateware, reset and ready. Building it (once per gateware change) takes a minute."""

    url = "sim"
    _handle = None

    def __init__(self):
        self._lib = _shared_library()
        self._handle = self._lib.vc_create()
        self._lib.vc_reset(self._handle, RESET_CYCLES)

    def close(self):
        if self._handle:
            self._lib.vc_destroy(self._handle)
            self._handle = None

    def __del__(self):
        self.close()

    # ---- Transport
    def read32(self, address):
        value = ctypes.c_uint32()
        response = self._lib.vc_axil_read(self._handle, address, ctypes.byref(value))
        self._check(response, "read", address)
        return value.value

    def write32(self, address, value):
        self._check(self._lib.vc_axil_write(self._handle, address, value & 0xFFFFFFFF, 0xF), "write", address)

    def write32_strobed(self, address, value, byte_strobe):
        """Write only the bytes whose bit is set in ``byte_strobe`` (AXI ``wstrb``)."""
        self._check(self._lib.vc_axil_write(self._handle, address, value & 0xFFFFFFFF, byte_strobe), "write",
                    address)

    @staticmethod
    def _check(response, what, address):
        if response == -1:
            raise BusError(f"AXI4-Lite {what} at {address:#06x} got no answer (bank hung)")
        if response != 0:
            raise BusError(f"AXI4-Lite {what} at {address:#06x} answered {AXI_RESPONSES[response]}",
                           response=AXI_RESPONSES[response])

    # ---- simulation control
    @property
    def cycle(self):
        """Clock cycles simulated since this card was created."""
        return self._lib.vc_cycle(self._handle)

    def run(self, cycles):
        self._lib.vc_run(self._handle, cycles)

    def push_rx(self, port, data, keep, flags):
        """Queue beats on RX port 0 (feed A) or 1 (feed B); they enter one per cycle while the card runs."""
        data = np.ascontiguousarray(data, dtype=np.uint64)
        keep = np.ascontiguousarray(keep, dtype=np.uint8)
        flags = np.ascontiguousarray(flags, dtype=np.uint8)
        if not len(data) == len(keep) == len(flags):
            raise ValueError("data, keep and flags must have the same length")
        self._lib.vc_rx_push(self._handle, port, data, keep, flags, len(data))

    def push_frame(self, port, frame, error=False, gap=0):
        """Queue one Ethernet frame on a port, followed by ``gap`` idle cycles."""
        data, keep, flags = frame_to_beats(frame, error)
        if gap:
            data = np.concatenate([data, np.zeros(gap, np.uint64)])
            keep = np.concatenate([keep, np.zeros(gap, np.uint8)])
            flags = np.concatenate([flags, np.full(gap, FLAG_IDLE, np.uint8)])
        self.push_rx(port, data, keep, flags)

    def rx_pending(self, port):
        return self._lib.vc_rx_pending(self._handle, port)

    def run_until_rx_drained(self, extra_cycles=32):
        """Run until every queued RX beat has entered the card, then ``extra_cycles`` more; returns cycles run."""
        return self._lib.vc_run_until_rx_drained(self._handle, extra_cycles)

    def pop_tx(self):
        """Every TX beat collected so far: ``(data, keep, flags, cycle)`` numpy arrays."""
        count = self._lib.vc_tx_available(self._handle)
        data = np.zeros(count, np.uint64)
        keep = np.zeros(count, np.uint8)
        flags = np.zeros(count, np.uint8)
        cycles = np.zeros(count, np.uint64)
        self._lib.vc_tx_pop(self._handle, data, keep, flags, cycles, count)
        return data, keep, flags, cycles

    def pop_bbo(self):
        """Every BBO update the book sent since the last call, in order: a dict of numpy arrays keyed by the
        fields of :class:`t2t_gateware.streams.BboUpdate` (``slot``, ``locate``, ``bid_price``, ...), and ``cycle``:
        the cycle the strategy took the update."""
        from t2t_gateware.streams import BboUpdate
        return self._pop_tap(TAP_BBO, BboUpdate)

    def pop_order_tap(self):
        """Every order the risk gate took since the last call (passed or refused), in order: a dict of numpy arrays
        keyed by the fields of :class:`t2t_gateware.streams.OrderRequest`, and ``cycle``: the cycle it was taken."""
        from t2t_gateware.streams import OrderRequest
        return self._pop_tap(TAP_ORDER, OrderRequest)

    def _pop_tap(self, tap, layout):
        words_per_entry = self._lib.vc_tap_words(tap)
        count = self._lib.vc_tap_available(self._handle, tap)
        words = np.zeros(count * words_per_entry, np.uint32)
        cycles = np.zeros(count, np.uint64)
        self._lib.vc_tap_pop(self._handle, tap, words, cycles, count)
        fields = _unpack_fields(words.reshape(count, words_per_entry), _layout_fields(layout))
        fields["cycle"] = cycles
        return fields
