"""The register bank: an AXI4-Lite subordinate elaborated from the resolved register map."""


from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from .axi_lite import AxiLiteSignature, AxiResponse

__all__ = ["RegisterPort", "RegisterBank"]


class RegisterPort:
    """The gateware side of one register.

    ``value``: for ``ro`` the gateware drives it; for ``rw`` it is the value in force (after commit for a
    staged register); for ``w1c`` the sticky bits; for ``strobe`` the last value written.
    ``set`` (``w1c`` only): bits to set this cycle (setting wins over a clear in the same cycle).
    ``strobe`` (``strobe`` only): high for one cycle after a write.
    ``read_strobe`` (``ro`` only): high in the one cycle word 0's value is taken for the answer, for pop-on-read
    FIFOs: what is popped is exactly what was read (an entry arriving in the read's last cycle is not lost).
    """

    def __init__(self, register):
        self.register = register
        name = register.path.replace(".", "_")
        reset = register.reset if register.access == "rw" else 0
        self.value = Signal(register.width, name=name, init=reset)
        if register.access == "w1c":
            self.set = Signal(register.width, name=f"{name}_set")
        if register.access == "strobe":
            self.strobe = Signal(name=f"{name}_strobe")
        if register.access == "ro":
            self.read_strobe = Signal(name=f"{name}_read_strobe")

    def field(self, name):
        """The slice of ``value`` holding field ``name``."""
        field = self.register.field(name)
        return self.value[field.offset:field.offset + field.width]


class RegisterBank(wiring.Component):
    """AXI4-Lite subordinate holding every register of a :class:`t2t.regmap.RegisterMap`.

    One transaction at a time per direction. Latency: a write takes effect, and ``bvalid`` rises, three cycles after
    the AW/W handshake; ``rvalid`` rises three cycles after the AR handshake (address, registered one-hot decode,
    registered answer: the bank's logic depth does not grow with the number of registers beyond an OR tree).
    Writes honour ``wstrb``. Responses: OKAY; SLVERR for a write to a read-only register (nothing changes);
    DECERR for an unmapped address (nothing changes, reads return 0).

    ``id.magic``, ``id.version`` and ``id.map_hash`` are driven here from the map itself.
    Wide registers: reading word 0 latches the whole value into a per-register shadow that the later words
    return; writing words below the last fills a per-register shadow, and writing the last word commits all.
    Staged (commit group) registers: the host writes and reads the staged copy; the gateware's ``value``
    takes the staged copy when the group's bit is written to the commit register, all members in one cycle.
    """

    def __init__(self, regmap):
        self.regmap = regmap
        self.ports = {reg.path: RegisterPort(reg) for reg in regmap}
        super().__init__({"axil": In(AxiLiteSignature(regmap.address_width))})

    def __getitem__(self, path):
        try:
            return self.ports[path]
        except KeyError:
            raise KeyError(f"no register named {path!r} in the register map") from None

    def elaborate(self, platform):
        m = Module()
        bus = self.axil
        regmap = self.regmap

        for path, constant in (("id.magic", regmap.magic), ("id.version", regmap.version),
                               ("id.map_hash", regmap.hash32)):
            m.d.comb += self.ports[path].value.eq(constant)

        # Per-register state the host side needs: the staged copy of rw registers and the wide-access shadows.
        staged = {}
        read_shadow = {}
        write_shadow = {}
        for path, port in self.ports.items():
            reg = port.register
            name = path.replace(".", "_")
            if reg.access == "rw":
                staged[path] = Signal(reg.width, name=f"{name}_staged", init=reg.reset) \
                    if reg.commit else port.value
            if reg.words > 1:
                read_shadow[path] = Signal(32 * (reg.words - 1), name=f"{name}_read_shadow")
                if reg.access == "rw":
                    write_shadow[path] = Signal(32 * (reg.words - 1), name=f"{name}_write_shadow")

        # Every word address gets a registered one-hot "hit", so no path from the bus address to a register
        # crosses a wide comparator and a wide mux in the same cycle: the bank stays off the critical path as
        # the map grows.
        words = [(port, index, address) for port in self.ports.values()
                 for index, address in enumerate(port.register.word_addresses)]

        def decode(prefix, address_reg):
            hits = []
            for port, index, address in words:
                hit = Signal(name=f"{prefix}_{port.register.path.replace('.', '_')}_{index}")
                m.d.sync += hit.eq(address_reg == address >> 2)
                hits.append(hit)
            return hits

        # ---- write channel: accept AW and W together, decode, apply, then answer on B.
        write_pending = Signal()
        write_apply = Signal()
        write_addr = Signal(regmap.address_width - 2)
        write_data = Signal(32)
        write_strb = Signal(4)
        accept_write = Signal()
        m.d.comb += [
            accept_write.eq(bus.awvalid & bus.wvalid & ~write_pending & ~write_apply & ~bus.bvalid),
            bus.awready.eq(accept_write),
            bus.wready.eq(accept_write),
        ]
        m.d.sync += [write_pending.eq(accept_write), write_apply.eq(write_pending)]
        with m.If(accept_write):
            m.d.sync += [write_addr.eq(bus.awaddr[2:]), write_data.eq(bus.wdata), write_strb.eq(bus.wstrb)]
        with m.If(bus.bvalid & bus.bready):
            m.d.sync += bus.bvalid.eq(0)

        byte_mask = Cat(*(b.replicate(8) for b in write_strb))

        def merged(old_word):
            return (old_word & ~byte_mask) | (write_data & byte_mask)

        commit_port = self.ports[regmap.commit_register]
        for port in self.ports.values():
            if port.register.access == "w1c":
                m.d.sync += port.value.eq(port.value | port.set)
            if port.register.access == "strobe":
                m.d.sync += port.strobe.eq(0)

        write_hits = decode("write_hit", write_addr)
        writable_hit = Cat(*(hit for hit, (port, _, _) in zip(write_hits, words) if port.register.access != "ro"))
        read_only_hit = Cat(*(hit for hit, (port, _, _) in zip(write_hits, words) if port.register.access == "ro"))
        with m.If(write_apply):
            m.d.sync += bus.bvalid.eq(1)
            with m.If(writable_hit.any()):
                m.d.sync += bus.bresp.eq(AxiResponse.OKAY)
            with m.Elif(read_only_hit.any()):
                m.d.sync += bus.bresp.eq(AxiResponse.SLVERR)
            with m.Else():
                m.d.sync += bus.bresp.eq(AxiResponse.DECERR)
            for hit, (port, index, _) in zip(write_hits, words):
                if port.register.access != "ro":
                    with m.If(hit):
                        self._write_word(m, port, index, staged, write_shadow, merged)

        # Commit groups: every member's gateware value takes its staged copy in the same cycle.
        for group, field in regmap.commit_groups.items():
            with m.If(commit_port.strobe & commit_port.value[field.offset]):
                for reg in regmap.group_members(group):
                    m.d.sync += self.ports[reg.path].value.eq(staged[reg.path])

        # ---- read channel: accept AR, decode, answer with an AND-OR of the hit word, hold R until taken.
        read_pending = Signal()
        read_answer = Signal()
        read_addr = Signal(regmap.address_width - 2)
        m.d.comb += bus.arready.eq(~read_pending & ~read_answer & ~bus.rvalid)
        m.d.sync += [read_pending.eq(bus.arvalid & bus.arready), read_answer.eq(read_pending)]
        with m.If(bus.arvalid & bus.arready):
            m.d.sync += read_addr.eq(bus.araddr[2:])
        with m.If(bus.rvalid & bus.rready):
            m.d.sync += bus.rvalid.eq(0)

        read_hits = decode("read_hit", read_addr)
        terms = []
        for hit, (port, index, _) in zip(read_hits, words):
            reg = port.register
            path = reg.path
            if reg.access == "strobe":
                continue  # write-only: reads as zero
            if index == 0:
                word = staged.get(path, port.value)[:32]
            else:
                word = read_shadow[path][32 * (index - 1):32 * index]
            terms.append(hit.replicate(32) & word)
        read_data = Signal(32)
        m.d.comb += read_data.eq(_or_tree(terms))
        with m.If(read_answer):
            m.d.sync += [bus.rvalid.eq(1), bus.rdata.eq(read_data),
                         bus.rresp.eq(Mux(Cat(*read_hits).any(), AxiResponse.OKAY, AxiResponse.DECERR))]
            for hit, (port, index, _) in zip(read_hits, words):
                reg = port.register
                if index != 0 or reg.access == "strobe":
                    continue
                with m.If(hit):
                    if reg.words > 1:
                        m.d.sync += read_shadow[reg.path].eq(staged.get(reg.path, port.value)[32:])
                    if reg.access == "ro":
                        # In the cycle the value is captured: a pop a cycle later could take an entry that
                        # arrived in between (the queue read empty), never read by anyone.
                        m.d.comb += port.read_strobe.eq(1)
        return m

    @staticmethod
    def _write_word(m, port, index, staged, write_shadow, merged):
        reg = port.register
        path = reg.path
        if reg.access == "rw":
            target = staged[path]
            if reg.words == 1:
                m.d.sync += target.eq(merged(target))
            elif index < reg.words - 1:
                shadow = write_shadow[path]
                m.d.sync += shadow[32 * index:32 * (index + 1)].eq(merged(target[32 * index:32 * (index + 1)]))
            else:
                top_word = target[32 * index:]
                m.d.sync += target.eq(Cat(write_shadow[path], merged(top_word)[:len(top_word)]))
        elif reg.access == "w1c":
            written_ones = merged(Const(0, 32))[:reg.width]
            m.d.sync += port.value.eq((port.value & ~written_ones) | port.set)
        elif reg.access == "strobe":
            m.d.sync += [port.value.eq(merged(Const(0, 32))[:reg.width]), port.strobe.eq(1)]


def _or_tree(terms):
    """The OR of ``terms`` as a balanced tree: a chained ``a | b | c ...`` of hundreds of words is as many cells
    deep, which costs timing and overflows Yosys's (WebAssembly) stack in its netlist analyses."""
    terms = list(terms) or [Const(0, 32)]
    while len(terms) > 1:
        terms = [terms[i] | terms[i + 1] if i + 1 < len(terms) else terms[i] for i in range(0, len(terms), 2)]
    return terms[0]
