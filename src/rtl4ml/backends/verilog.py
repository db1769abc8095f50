"""Verilog-2005 backend: one flat, synthesizable module per Netlist.

Every wire is a plain unsigned vector at its exact width. Arithmetic is done on operands
brought to the result's width by explicit sign/zero extension or truncation, so the
module never depends on Verilog's signedness rules and stays clean under
``verilator --lint-only -Wall``. Output is deterministic: the same Netlist gives the same
bytes.

Ports: ``clk``, ``valid_in``, ``in_bus`` (element ``i`` in the bits listed in the header),
``valid_out``, ``out_bus``. The latency from ``in_bus`` to ``out_bus`` is
``Netlist.latency`` cycles; ``valid_out`` is ``valid_in`` delayed by the same amount.
"""

from __future__ import annotations

import re

from .._version import __version__
from ..netlist.ir import Add, Const, Input, Netlist, Quant, Reg, Relu, Scale, Wire
from ..fixed import round_code, saturate_bounds

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


def literal(value: int, width: int) -> str:
    """``value`` modulo ``2**width`` as a sized literal."""
    return f"{width}'h{value % (1 << width):x}"


def fit(src: str, width: int, signed: bool, to_width: int, up: int = 0) -> str:
    """Exactly ``to_width`` bits of ``(src as a width-bit integer) * 2**up`` in two's complement.

    Result bit ``i`` is source bit ``i - up``: zero below the source, the sign (or zero)
    above it. ``up < 0`` drops low bits, used only where they are known to be zero.
    ``src`` must be a plain wire name unless it is used whole.
    """
    zeros = min(max(up, 0), to_width)
    lo, hi = max(0, -up), min(width - 1, to_width - 1 - up)
    sign = f"{src}[{width - 1}]" if signed and width else "1'b0"
    parts: list[str] = []
    if hi >= lo:
        ext = to_width - zeros - (hi - lo + 1)
        if ext:
            parts.append(f"{{{ext}{{{sign}}}}}")
        parts.append(src if (lo, hi) == (0, width - 1) else (f"{src}[{hi}:{lo}]" if hi > lo else f"{src}[{lo}]"))
    elif up < 0 and signed and width:  # every surviving bit is a copy of the sign
        parts.append(f"{{{to_width}{{{sign}}}}}")
        zeros = 0
    else:
        return f"{to_width}'h0"
    if zeros:
        parts.append(f"{zeros}'h0")
    return parts[0] if len(parts) == 1 else "{" + ", ".join(parts) + "}"


class _Emitter:
    def __init__(self, nl: Netlist) -> None:
        self.nl = nl
        self.names: dict[int, str] = {}
        self.decls: list[str] = []
        self.regs: list[str] = []

    def src(self, i: int) -> tuple[str, Wire]:
        return self.names.get(i, ""), self.nl.prims[i].wire

    def operand(self, i: int, to_width: int, up: int) -> str:
        w = self.nl.prims[i].wire
        if w.is_const:
            return literal(w.lo << up if up >= 0 else w.lo >> -up, to_width)
        return fit(self.names[i], w.width, w.signed, to_width, up)

    def declare(self, k: int, expr: str) -> None:
        w = self.nl.prims[k].wire
        name = f"n{k}"
        self.names[k] = name
        self.decls.append(f"  wire [{w.width - 1}:0] {name} = {expr};")

    def emit(self, k: int) -> None:
        p = self.nl.prims[k]
        w = p.wire
        if isinstance(p, Const) or w.width == 0:
            return
        if isinstance(p, Input):
            off = sum(t.width for t in self.nl.input_types[:p.index])
            self.declare(k, f"in_bus[{off + w.width - 1}:{off}]")
        elif isinstance(p, Add):
            wa, wb = self.nl.prims[p.a].wire, self.nl.prims[p.b].wire
            a = self.operand(p.a, w.width, w.fraction - wa.fraction)
            b = self.operand(p.b, w.width, w.fraction - wb.fraction + p.shift)
            self.declare(k, f"{a} {'-' if p.sub else '+'} {b}")
        elif isinstance(p, Scale):
            if p.negate:
                self.declare(k, f"{w.width}'h0 - {self.operand(p.a, w.width, 0)}")
            else:
                self.names[k] = self.names[p.a]  # a relabelled scale: same bits
        elif isinstance(p, Relu):
            a, wa = self.names[p.a], self.nl.prims[p.a].wire
            self.declare(k, f"{a}[{wa.width - 1}] ? {w.width}'h0 : {fit(a, wa.width, False, w.width)}")
        elif isinstance(p, Quant):
            self.emit_quant(k, p)
        elif isinstance(p, Reg):
            name = f"n{k}"
            self.names[k] = name
            self.decls.append(f"  reg [{w.width - 1}:0] {name};")
            self.regs.append(f"    {name} <= {self.names[p.a]};")
        else:  # pragma: no cover
            raise TypeError(f"unknown primitive {type(p).__name__}")

    def emit_quant(self, k: int, p: Quant) -> None:
        wa = self.nl.prims[p.a].wire
        a, t, w = self.names[p.a], p.target, p.wire
        d = wa.fraction - t.fraction
        # 1. rounding: r = round(a * 2**-d), declared as a wire of width wr
        if d <= 0:
            r, wr = a, wa.width
            r_up = -d
        elif t.rounding == "TRN":
            if d >= wa.width:  # only the sign survives
                r, wr, r_up = f"{a}[{wa.width - 1}]", 1, 0
            else:
                r, wr, r_up = f"{a}[{wa.width - 1}:{d}]", wa.width - d, 0
        else:
            ws = max(wa.width, d + 1) + 1
            half = (1 << (d - 1)) - (1 if t.rounding == "RND_CONV" else 0)
            expr = f"{fit(a, wa.width, wa.signed, ws)} + {literal(half, ws)}"
            if t.rounding == "RND_CONV":
                bit = f"{a}[{min(d, wa.width - 1)}]" if (d < wa.width or wa.signed) else "1'b0"
                expr += f" + {{{ws - 1}'h0, {bit}}}"
            self.decls.append(f"  wire [{ws - 1}:0] n{k}_s = {expr};")
            r, wr, r_up = f"n{k}_s[{ws - 1}:{d}]", ws - d, 0
        if r_up or r.endswith("]"):
            self.decls.append(f"  wire [{wr + r_up - 1}:0] n{k}_r = {fit(r, wr, wa.signed, wr + r_up, r_up)};")
            r, wr = f"n{k}_r", wr + r_up
        # 2. overflow
        rlo = round_code(wa.lo, d, t.rounding)
        rhi = round_code(wa.hi, d, t.rounding)
        body = fit(r, wr, wa.signed, w.width)
        if t.overflow != "WRAP" and (w.lo, w.hi) != (rlo, rhi):
            slo, shi = saturate_bounds(t)
            hi_over, lo_over = _overflow_flags(r, wr, wa.signed, t)
            if rlo < slo:
                body = f"({lo_over}) ? {literal(slo, w.width)} : {body}"
            if rhi > shi:
                body = f"({hi_over}) ? {literal(shi, w.width)} : {body}"
        self.declare(k, body)


def _any(r: str, hi: int, lo: int) -> str | None:
    """Verilog for 'some bit of r[hi:lo] is set' (None for an empty range)."""
    if hi < lo:
        return None
    return f"{r}[{lo}]" if hi == lo else f"(|{r}[{hi}:{lo}])"


def _not_all(r: str, hi: int, lo: int) -> str | None:
    """Verilog for 'some bit of r[hi:lo] is clear' (None for an empty range)."""
    if hi < lo:
        return None
    return f"~{r}[{lo}]" if hi == lo else f"(~&{r}[{hi}:{lo}])"


def _overflow_flags(r: str, wr: int, signed: bool, t) -> tuple[str, str]:
    """Above-range and below-range flags of the wr-bit code ``r`` for the saturating type ``t``.

    The target range is a power-of-two window, so overflow is a pattern of the top bits
    (not all copies of the sign), which maps to a few LUTs instead of two comparators.
    """
    w = t.width
    top = w - 1 if t.signed else w  # lowest bit position that lies above the target's value bits
    if signed:
        sign = f"{r}[{wr - 1}]"
        mag = _any(r, wr - 2, top)
        hi_over = f"~{sign} & {mag}" if mag else "1'b0"
        if t.signed:
            gap = _not_all(r, wr - 2, top)
            if t.overflow == "SAT_SYM" and wr >= w and w >= 2:  # the most negative code saturates too
                low = _any(r, w - 2, 0)
                gap = f"{gap} | ~{low}" if gap else f"~{low}"
            lo_over = f"{sign} & ({gap})" if gap else "1'b0"
        else:
            lo_over = sign
    else:
        hi_over = _any(r, wr - 1, top) or "1'b0"
        lo_over = "1'b0"
    return hi_over, lo_over


def emit_verilog(nl: Netlist, name: str = "net", valid: bool = True) -> str:
    """The Verilog source of ``nl`` as a module called ``name``."""
    check_module_name(name)
    if nl.latency < 1:
        raise ValueError("the netlist must be pipelined (latency >= 1) before emitting Verilog")
    em = _Emitter(nl)
    for k in range(len(nl.prims)):
        em.emit(k)
    in_w = sum(t.width for t in nl.input_types)
    out_w = sum(t.width for t in nl.output_types)
    # A bus whose elements are all constant (width 0) still needs one bit to be a port.
    in_pad, out_pad = in_w == 0, out_w == 0
    in_w, out_w = max(in_w, 1), max(out_w, 1)
    L = nl.latency
    lines = [
        f"// Generated by rtl4ml {__version__}. Do not edit.",
        f"// Latency: {L} clock cycles from in_bus to out_bus.",
        "// Bus layout (element: bits, signed, fractional bits):",
    ]
    off = 0
    for i, t in enumerate(nl.input_types):
        lines.append(f"//   in[{i}]: " + (f"[{off + t.width - 1}:{off}]" if t.width else "(constant 0, no bits)")
                     + f" {'signed' if t.signed else 'unsigned'} frac={t.fraction}")
        off += t.width
    off = 0
    for j, t in enumerate(nl.output_types):
        lines.append(f"//   out[{j}]: " + (f"[{off + t.width - 1}:{off}]" if t.width else "(constant 0, no bits)")
                     + f" {'signed' if t.signed else 'unsigned'} frac={t.fraction}")
        off += t.width
    ports = ["  input wire clk"]
    if valid:
        ports.append("  input wire valid_in")
    ports.append(f"  input wire [{in_w - 1}:0] in_bus")
    if valid:
        ports.append("  output wire valid_out")
    ports.append(f"  output wire [{out_w - 1}:0] out_bus")
    lines += [f"module {name} (", ",\n".join(ports), ");",
              "  // Truncations and unused input elements leave bits unread by design.",
              *(["  // in_bus carries no information: every input element is the constant 0."] if in_pad else []),
              "  /* verilator lint_off UNUSEDSIGNAL */"]
    lines += em.decls
    lines.append("  /* verilator lint_on UNUSEDSIGNAL */")
    if em.regs:
        lines += ["  always @(posedge clk) begin"] + em.regs + ["  end"]
    if out_pad:
        lines.append("  assign out_bus = 1'h0;  // every output is the constant 0")
    off = 0
    for o, t in zip(nl.outputs, nl.output_types):
        if t.width:
            up = t.fraction - nl.prims[o].wire.fraction
            lines.append(f"  assign out_bus[{off + t.width - 1}:{off}] = {em.operand(o, t.width, up)};")
        off += t.width
    if valid:
        lines.append(f"  reg [{L - 1}:0] valid_sr;")
        shift_in = "valid_in" if L == 1 else f"{{valid_sr[{L - 2}:0], valid_in}}"
        lines += ["  always @(posedge clk) begin", f"    valid_sr <= {shift_in};", "  end",
                  f"  assign valid_out = valid_sr[{L - 1}];"]
    lines.append("endmodule")
    return "\n".join(lines) + "\n"
