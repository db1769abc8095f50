"""Verilog-2005 backend: one flat, synthesizable module per Netlist.

The backend knows no primitive: each one writes its own Verilog through the small
:class:`VerilogContext` API (:meth:`~rtl4ml.netlist.ir.Prim.verilog`). This module lays out
the ports, names the wires and assembles the module. Output is deterministic: the same
Netlist gives the same bytes.

Ports: ``clk``, ``valid_in``, one input port per input bus, ``valid_out``, one output port
per output bus. A design with one input and one output has ``in_bus`` and ``out_bus``;
with several, the ports are ``in_<name>`` / ``out_<name>`` after the Graph's input and
output nodes. The latency from the inputs to the outputs is ``Netlist.latency`` cycles;
``valid_out`` is ``valid_in`` delayed by the same amount. Wire ``k`` of layer ``L`` is
called ``n<k>_<L>``, so a waveform or a synthesis report says which layer a signal is in.
"""

from __future__ import annotations

import re

import numpy as np

from .._version import __version__
from ..fixed import Wire
from ..netlist.ir import Bus, Netlist
from ..netlist.vexpr import fit, literal

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Verilog-2005 and SystemVerilog keywords: none may name a module (e.g. 'small' is a charge strength).
_RESERVED = frozenset("""
accept_on alias always always_comb always_ff always_latch and assert assign assume automatic
before begin bind bins binsof bit break buf bufif0 bufif1 byte case casex casez cell chandle
checker class clocking cmos config const constraint context continue cover covergroup
coverpoint cross deassign default defparam design disable dist do edge else end endcase
endchecker endclass endclocking endconfig endfunction endgenerate endgroup endinterface
endmodule endpackage endprimitive endprogram endproperty endsequence endspecify endtable
endtask enum event eventually expect export extends extern final first_match for force foreach
forever fork forkjoin function generate genvar global highz0 highz1 if iff ifnone ignore_bins
illegal_bins implies import incdir include initial inout input inside instance int integer
interface intersect join join_any join_none large let liblist library local localparam logic
longint macromodule matches medium modport module nand negedge new nexttime nmos nor
noshowcancelled not notif0 notif1 null or output package packed parameter pmos posedge
primitive priority program property protected pull0 pull1 pulldown pullup pulsestyle_ondetect
pulsestyle_onevent pure rand randc randcase randsequence rcmos real realtime ref reg reject_on
release repeat restrict return rnmos rpmos rtran rtranif0 rtranif1 s_always s_eventually
s_nexttime s_until s_until_with scalared sequence shortint shortreal showcancelled signed small
solve specify specparam static string strong strong0 strong1 struct super supply0 supply1
sync_accept_on sync_reject_on table tagged task this throughout time timeprecision timeunit
tran tranif0 tranif1 tri tri0 tri1 triand trior trireg type typedef union unique unique0
unsigned until until_with untyped use uwire var vectored virtual void wait wait_order wand weak
weak0 weak1 while wildcard wire with within wor xnor xor
""".split())


def check_module_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise ValueError(f"{name!r} is not a valid Verilog module name (letters, digits, '_', not starting with a digit)")
    if name in _RESERVED:
        raise ValueError(f"{name!r} is not a valid Verilog module name: it is a Verilog/SystemVerilog keyword")
    return name


def identifier_part(name: str) -> str:
    """``name`` with every character a Verilog identifier cannot hold replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def _port_names(buses: tuple[Bus, ...], prefix: str) -> list[str]:
    if len(buses) == 1:
        return [f"{prefix}_bus"]
    names: list[str] = []
    for b in buses:
        base = f"{prefix}_{identifier_part(b.name)}"
        name, k = base, 1
        while name in names:
            name, k = f"{base}_{k}", k + 1
        names.append(name)
    return names


def port_names(nl: Netlist) -> tuple[list[str], list[str]]:
    """Names of the input ports and of the output ports, bus by bus."""
    return _port_names(nl.input_buses, "in"), _port_names(nl.output_buses, "out")


class VerilogContext:
    """What a primitive's ``verilog`` method writes through: names, operands, declarations."""

    def __init__(self, nl: Netlist) -> None:
        self.nl = nl
        self.names: dict[int, str] = {}
        self.decls: list[str] = []
        self.regs: list[str] = []
        in_ports, _ = port_names(nl)
        self._input_bits: list[str] = []
        for bus, port in zip(nl.input_buses, in_ports):
            off = 0
            for t in bus.slots:
                self._input_bits.append(f"{port}[{off + t.width - 1}:{off}]" if t.width > 1 else f"{port}[{off}]")
                off += t.width

    # ------------------------------------------------------------------ reading

    def wire(self, i: int) -> Wire:
        return self.nl.prims[i].wire

    def name(self, i: int) -> str:
        """Identifier of the (non-constant) wire ``i``."""
        return self.names[i]

    def operand(self, i: int, to_width: int, up: int) -> str:
        """Wire ``i`` times ``2**up`` as exactly ``to_width`` two's-complement bits."""
        w = self.wire(i)
        if w.is_const:
            return literal(w.lo << up if up >= 0 else w.lo >> -up, to_width)
        return fit(self.names[i], w.width, w.signed, to_width, up)

    def input_bits(self, index: int) -> str:
        """The port bits of input element ``index`` (all input buses, in order)."""
        return self._input_bits[index]

    # ------------------------------------------------------------------ writing

    def _new_name(self, k: int, suffix: str = "") -> str:
        origin = identifier_part(self.nl.prims[k].origin)
        return f"n{k}{suffix}_{origin}" if origin else f"n{k}{suffix}"

    def declare(self, k: int, expr: str, keep: bool = False) -> None:
        """``wire n<k> = expr`` at wire ``k``'s width.

        ``keep`` marks the wire ``(* keep *)``: synthesis must build it as it stands and may not
        merge it into its readers (``Add`` uses it: each adder one carry chain).
        """
        name = self._new_name(k)
        self.names[k] = name
        attr = "(* keep *) " if keep else ""
        self.decls.append(f"  {attr}wire [{self.wire(k).width - 1}:0] {name} = {expr};")

    def helper(self, k: int, tag: str, width: int, expr: str) -> str:
        """An intermediate wire of primitive ``k`` (``tag`` a single letter); returns its name."""
        name = self._new_name(k, tag)
        self.decls.append(f"  wire [{width - 1}:0] {name} = {expr};")
        return name

    def alias(self, k: int, i: int) -> None:
        """Wire ``k`` has the same bits as wire ``i``."""
        self.names[k] = self.names[i]

    def constant(self, k: int) -> None:
        """Constants are literals at their readers: nothing to declare."""

    def register(self, k: int, i: int) -> None:
        """``n<k> <= n<i>`` on every clock edge."""
        name = self._new_name(k)
        self.names[k] = name
        self.decls.append(f"  reg [{self.wire(k).width - 1}:0] {name};")
        self.regs.append(f"    {name} <= {self.names[i]};")

    def combinational(self, k: int, body: list[str]) -> None:
        """A ``reg`` driven by an ``always @(*)`` block; ``{r}`` in ``body`` is its name."""
        name = self._new_name(k)
        self.names[k] = name
        self.decls.append(f"  reg [{self.wire(k).width - 1}:0] {name};")
        self.decls.append("  always @(*) begin")
        self.decls += [f"    {line.replace('{r}', name)}" for line in body]
        self.decls.append("  end")


def _layout_comment(direction: str, bus: Bus, port: str) -> list[str]:
    shape = "x".join(map(str, bus.shape)) or "scalar"
    lines = [f"//   {direction} {bus.name!r} ({shape}) on {port}:"]
    off = 0
    index = list(np.ndindex(*bus.shape)) if bus.shape else [()]
    for idx, t in zip(index, bus.slots):
        where = f"[{off + t.width - 1}:{off}]" if t.width else "(constant 0, no bits)"
        lines.append(f"//     [{','.join(map(str, idx))}]: {where} {'signed' if t.signed else 'unsigned'} "
                     f"frac={t.fraction}")
        off += t.width
    return lines


def emit_verilog(nl: Netlist, name: str = "net", valid: bool = True) -> str:
    """The Verilog source of ``nl`` as a module called ``name``."""
    check_module_name(name)
    if nl.latency < 1:
        raise ValueError("the netlist must be pipelined (latency >= 1) before emitting Verilog")
    v = VerilogContext(nl)
    for k, p in enumerate(nl.prims):
        if not p.wire.is_const:
            p.verilog(v, k)
    in_ports, out_ports = port_names(nl)
    L = nl.latency
    lines = [f"// Generated by rtl4ml {__version__}. Do not edit.",
             f"// Latency: {L} clock cycles from the inputs to the outputs.",
             "// Bus layout (element: bits, signed, fractional bits):"]
    for bus, port in zip(nl.input_buses, in_ports):
        lines += _layout_comment("input", bus, port)
    for bus, port in zip(nl.output_buses, out_ports):
        lines += _layout_comment("output", bus, port)
    ports = ["  input wire clk"] + (["  input wire valid_in"] if valid else [])
    # A bus whose elements are all constant (width 0) still needs one bit to be a port.
    ports += [f"  input wire [{max(b.width, 1) - 1}:0] {p}" for b, p in zip(nl.input_buses, in_ports)]
    ports += ["  output wire valid_out"] if valid else []
    ports += [f"  output wire [{max(b.width, 1) - 1}:0] {p}" for b, p in zip(nl.output_buses, out_ports)]
    lines += [f"module {name} (", ",\n".join(ports), ");",
              "  // Truncations and unused input elements leave bits unread by design.",
              *[f"  // {p} carries no information: every element is the constant 0."
                for b, p in zip(nl.input_buses, in_ports) if b.width == 0],
              "  /* verilator lint_off UNUSEDSIGNAL */"]
    lines += v.decls
    lines.append("  /* verilator lint_on UNUSEDSIGNAL */")
    if v.regs:
        lines += ["  always @(posedge clk) begin"] + v.regs + ["  end"]
    j = 0
    for bus, port in zip(nl.output_buses, out_ports):
        if bus.width == 0:
            lines.append(f"  assign {port} = 1'h0;  // every element is the constant 0")
        off = 0
        for t in bus.slots:
            o = nl.outputs[j]
            j += 1
            if t.width:
                up = t.fraction - nl.prims[o].wire.fraction
                lines.append(f"  assign {port}[{off + t.width - 1}:{off}] = {v.operand(o, t.width, up)};")
            off += t.width
    if valid:
        lines.append(f"  reg [{L - 1}:0] valid_sr;")
        shift_in = "valid_in" if L == 1 else f"{{valid_sr[{L - 2}:0], valid_in}}"
        lines += ["  always @(posedge clk) begin", f"    valid_sr <= {shift_in};", "  end",
                  f"  assign valid_out = valid_sr[{L - 1}];"]
    lines.append("endmodule")
    return "\n".join(lines) + "\n"
