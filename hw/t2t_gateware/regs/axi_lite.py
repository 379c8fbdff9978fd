"""The AXI4-Lite interface: what PCIe bridges (Xilinx XDMA/QDMA BAR masters, LitePCIe) hand the fabric."""

from amaranth.lib import enum, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["AxiResponse", "AxiLiteSignature"]


class AxiResponse(enum.Enum, shape=2):
    OKAY = 0
    EXOKAY = 1
    SLVERR = 2
    DECERR = 3


class AxiLiteSignature(wiring.Signature):
    """An AXI4-Lite link seen from the manager (master): ``In(AxiLiteSignature(...))`` is a subordinate port.

    Port names follow the AMBA specification (``awaddr``, ``wdata``, ``bresp``, ...), so bus models such as
    cocotbext-axi bind to the generated Verilog by prefix.
    """

    def __init__(self, addr_width, data_width=32):
        self.addr_width = addr_width
        self.data_width = data_width
        super().__init__({
            "awaddr": Out(addr_width), "awprot": Out(3), "awvalid": Out(1), "awready": In(1),
            "wdata": Out(data_width), "wstrb": Out(data_width // 8), "wvalid": Out(1), "wready": In(1),
            "bresp": In(AxiResponse), "bvalid": In(1), "bready": Out(1),
            "araddr": Out(addr_width), "arprot": Out(3), "arvalid": Out(1), "arready": In(1),
            "rdata": In(data_width), "rresp": In(AxiResponse), "rvalid": In(1), "rready": Out(1),
        })
