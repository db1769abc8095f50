"""The Netlist primitives, each defining its whole meaning (see :mod:`rtl4ml.netlist.ir`).

Evaluation is int64 modulo 2**64. Every wire's exact value fits its own width (at most 63
bits, checked by the executor), so a modular result is the exact one even where an
operand, shifted to the output's scale, would not fit: the same argument that lets the
hardware compute each adder at its output width. Primitives that must compare true
values (comparisons, max/min, selects) check that their aligned operands fit int64.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..fixed import FixedType, Wire, WidthError, code_width, quantized_range, requantize, requantize_code, round_code, saturate_bounds
from .ir import Cost, ExecContext, Prim
from .vexpr import fit, literal, overflow_flags


def shift_code(q: int, up: int) -> int:
    """``q * 2**up`` for integer results (``up`` may be negative when the low bits are zero)."""
    return q << up if up >= 0 else q >> -up


def shift_codes(q: np.ndarray, up: int) -> np.ndarray:
    return q << up if up >= 0 else q >> -up


def const_wire(q: int, fraction: int) -> Wire:
    """A constant with trailing zero bits stripped (so equal values share one wire)."""
    q = int(q)
    if q == 0:
        return Wire(0, 0, 0)
    while q % 2 == 0:
        q //= 2
        fraction -= 1
    return Wire(q, q, fraction)


def add_wire(a: Wire, b: Wire, shift: int, sub: bool) -> Wire:
    """Interval of ``a ± b * 2**shift`` assuming a and b independent."""
    f = max(a.fraction, b.fraction - shift)
    sa, sb = f - a.fraction, f - b.fraction + shift
    blo, bhi = (-b.hi, -b.lo) if sub else (b.lo, b.hi)
    return Wire((a.lo << sa) + (blo << sb), (a.hi << sa) + (bhi << sb), f)


def aligned(wires: Sequence[Wire]) -> tuple[int, list[Wire]]:
    """The finest fraction of ``wires`` and each wire's interval at that fraction."""
    f = max(w.fraction for w in wires)
    return f, [Wire(w.lo << (f - w.fraction), w.hi << (f - w.fraction), f) for w in wires]


def signed_width(wires: Sequence[Wire]) -> int:
    """Bits of a two's-complement code holding every value of ``wires`` (aligned), plus a sign."""
    lo, hi = min(w.lo for w in wires), max(w.hi for w in wires)
    return code_width(min(lo, -1), hi)[1]


def _checked_align(vals: list[np.ndarray], wires: Sequence[Wire], what: str) -> list[np.ndarray]:
    f, al = aligned(wires)
    if signed_width(al) > 63:
        raise WidthError(f"a {what} compares values of {signed_width(al)} bits; the int64 executor handles 63")
    return [shift_codes(v, f - w.fraction) for v, w in zip(vals, wires)]


class _Unary(Prim, abstract=True):
    """Helpers for one-operand primitives."""

    @property
    def a(self) -> int:
        return self.args[0]


# --------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class Input(Prim):
    """Element ``index`` of the input buses (all buses, in order)."""

    index: int

    @classmethod
    def output(cls, wires, **params) -> Wire:
        raise TypeError("an Input's type is its bus slot; it is given, not inferred")

    def evaluate(self, vals, wires, ctx: ExecContext) -> np.ndarray:
        return ctx.inputs[:, self.index]

    def fold(self, codes, wires) -> int:
        raise TypeError("an Input is never constant")

    def delay(self, wires, model) -> float:
        return 0.0   # the bus arrives at the start of cycle 0

    def cost(self, wires) -> Cost:
        return Cost()

    def verilog(self, v, k) -> None:
        v.declare(k, v.input_bits(self.index))


@dataclass(frozen=True)
class Const(Prim):
    """The constant code ``wire.lo`` (== ``wire.hi``)."""

    @classmethod
    def output(cls, wires, value: int = 0, fraction: int = 0) -> Wire:
        return const_wire(value, fraction)

    def evaluate(self, vals, wires, ctx) -> np.ndarray:
        return np.full(ctx.n, self.wire.lo, dtype=np.int64)

    def fold(self, codes, wires) -> int:
        return self.wire.lo

    def delay(self, wires, model) -> float:
        return 0.0

    def cost(self, wires) -> Cost:
        return Cost()   # a constant is literal bits at its readers

    def verilog(self, v, k) -> None:
        v.constant(k)

    def key(self) -> tuple:
        return ("Const", self.wire.lo, self.wire.fraction)


# --------------------------------------------------------------------------- arithmetic


def add_cost(out: Wire, wa: Wire, wb: Wire, shift: int, sub: bool) -> int:
    """Bits of carry logic of ``a ± b * 2**shift``: its width, less the low bits only one operand drives."""
    za = out.fraction - wa.fraction            # low zero bits of the aligned a
    zb = out.fraction - wb.fraction + shift    # low zero bits of the aligned b
    if zb > za:
        return max(out.width - zb, 0)
    if za > zb and not sub:
        return max(out.width - za, 0)
    return out.width


#: Adders at least this wide are marked ``(* keep *)`` in the Verilog, so that Yosys builds each
#: as one carry chain (fewer LUTs than the compressor trees it makes of merged sums: 3-14 % on
#: adder graphs). Narrower ones, the sums of a few bits such as a popcount, stay mergeable:
#: there a LUT6 compressing six bits beats a chain of tiny adders (docs/design.md, "Verilog").
KEEP_ADDER_MIN_BITS = 6


@dataclass(frozen=True)
class Add(Prim):
    """``a + b * 2**shift`` (``sub``: minus). Shifts are value-level and may be negative."""

    shift: int
    sub: bool

    @classmethod
    def output(cls, wires, shift: int = 0, sub: bool = False) -> Wire:
        return add_wire(wires[0], wires[1], shift, sub)

    def evaluate(self, vals, wires, ctx) -> np.ndarray:
        f = self.wire.fraction
        ta = shift_codes(vals[0], f - wires[0].fraction)
        tb = shift_codes(vals[1], f - wires[1].fraction + self.shift)
        return ta - tb if self.sub else ta + tb

    def fold(self, codes, wires) -> int:
        qa, qb = codes
        return add_wire(Wire(qa, qa, wires[0].fraction), Wire(qb, qb, wires[1].fraction), self.shift, self.sub).lo

    def identity(self, wires) -> int | None:
        a, b = wires
        if b.is_const and b.lo == 0:
            return 0
        return 1 if a.is_const and a.lo == 0 and self.shift == 0 and not self.sub else None

    def delay(self, wires, model) -> float:
        return model.adder(self.wire.width)

    def cost(self, wires) -> Cost:
        bits = add_cost(self.wire, wires[0], wires[1], self.shift, self.sub)
        return Cost(adders=1, adder_bits=bits, luts=bits, levels=1)

    def verilog(self, v, k) -> None:
        w = self.wire
        a = v.operand(self.args[0], w.width, w.fraction - v.wire(self.args[0]).fraction)
        b = v.operand(self.args[1], w.width, w.fraction - v.wire(self.args[1]).fraction + self.shift)
        v.declare(k, f"{a} {'-' if self.sub else '+'} {b}", keep=w.width >= KEEP_ADDER_MIN_BITS)


@dataclass(frozen=True)
class Scale(_Unary):
    """``±a * 2**shift``: pure wiring (a relabelled scale) unless ``negate``."""

    shift: int
    negate: bool

    @classmethod
    def output(cls, wires, shift: int = 0, negate: bool = False) -> Wire:
        w = wires[0]
        lo, hi = (-w.hi, -w.lo) if negate else (w.lo, w.hi)
        return Wire(lo, hi, w.fraction - shift)

    def evaluate(self, vals, wires, ctx) -> np.ndarray:
        return -vals[0] if self.negate else vals[0]

    def fold(self, codes, wires) -> int:
        return -codes[0] if self.negate else codes[0]

    def delay(self, wires, model) -> float:
        return model.adder(self.wire.width) if self.negate else 0.0

    def cost(self, wires) -> Cost:
        if not self.negate:
            return Cost()
        return Cost(adders=1, adder_bits=self.wire.width, luts=self.wire.width, levels=1)

    def verilog(self, v, k) -> None:
        if self.negate:
            v.declare(k, f"{self.wire.width}'h0 - {v.operand(self.a, self.wire.width, 0)}")
        else:
            v.alias(k, self.a)   # same bits, another scale


#: A variable x variable product with ``bits(a) * bits(b)`` at most this is built from
#: partial products (:meth:`NetlistBuilder.mul <rtl4ml.netlist.builder.NetlistBuilder.mul>`:
#: ``Bit``, ``Select`` and ``Add`` primitives, so LUTs and carry chains that the pipeline
#: scheduler can register between), a wider one is a ``Mul`` written as ``*``, which Yosys
#: maps to a DSP (it does so from 6 x 6 bits up). Measured with synth_xilinx (signed operands,
#: docs/constituents.md): partial products cost about 2 LUTs per bit of ``bits(a) * bits(b)``
#: (8 x 8: 133 LUTs, 10 x 10: 225, 16 x 16: 587), so at the threshold (10 x 10, 12 x 8) a
#: product costs about what a DSP48 slice does in die area (a VU13P has 1,728k LUTs and
#: 12,288 DSPs: one per ~140 LUTs); the narrow products of quantized attention and mixing are far cheaper.
MUL_LUT_MAX_BITS = 100


@dataclass(frozen=True)
class Mul(Prim):
    """``a * b`` of two variables, exact: the product's interval at fraction ``fa + fb``.

    Verilog: the ``*`` operator (a DSP in Yosys). The builder makes a ``Mul`` only of
    products wider than ``MUL_LUT_MAX_BITS``; narrower ones are partial products.
    """

    @classmethod
    def output(cls, wires, **params) -> Wire:
        a, b = wires
        p = [a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi]
        return Wire(min(p), max(p), a.fraction + b.fraction)

    def evaluate(self, vals, wires, ctx) -> np.ndarray:
        return vals[0] * vals[1]   # modulo 2**64, exact: the product fits its (<= 63-bit) wire

    def fold(self, codes, wires) -> int:
        return codes[0] * codes[1]

    def delay(self, wires, model) -> float:
        return model.multiplier(wires[0].width, wires[1].width)

    def cost(self, wires) -> Cost:
        bits = wires[0].width * wires[1].width
        return Cost(multipliers=1, multiplier_bits=bits, luts=bits, levels=1)

    def verilog(self, v, k) -> None:
        w = self.wire.width
        v.declare(k, f"{v.operand(self.args[0], w, 0)} * {v.operand(self.args[1], w, 0)}")


@dataclass(frozen=True)
class Bit(_Unary):
    """Bit ``index`` of ``a``'s two's-complement code (0 or 1, an integer): a wire, no logic.

    An index at or above a signed operand's width reads its sign bit, as sign extension does.
    """

    index: int

    @classmethod
    def output(cls, wires, index: int = 0) -> Wire:
        w = wires[0]
        if w.lo >> index == w.hi >> index:   # every code has the same bits from ``index`` up
            return Wire((w.lo >> index) & 1, (w.lo >> index) & 1, 0)
        return Wire(0, 1, 0)

    def evaluate(self, vals, wires, ctx) -> np.ndarray:
        return (vals[0] >> self.index) & 1

    def fold(self, codes, wires) -> int:
        return (codes[0] >> self.index) & 1

    def delay(self, wires, model) -> float:
        return 0.0

    def cost(self, wires) -> Cost:
        return Cost()

    def verilog(self, v, k) -> None:
        wa = v.wire(self.a)
        v.declare(k, f"{v.name(self.a)}[{min(self.index, wa.width - 1)}]")


# --------------------------------------------------------------------------- selection


@dataclass(frozen=True)
class Relu(_Unary):
    """``max(a, 0)``."""

    @classmethod
    def output(cls, wires, **params) -> Wire:
        w = wires[0]
        return Wire(max(w.lo, 0), max(w.hi, 0), w.fraction)

    def evaluate(self, vals, wires, ctx) -> np.ndarray:
        return np.maximum(vals[0], 0)

    def fold(self, codes, wires) -> int:
        return max(codes[0], 0)

    def identity(self, wires) -> int | None:
        return 0 if wires[0].lo >= 0 else None

    def delay(self, wires, model) -> float:
        return model.mux_ns

    def cost(self, wires) -> Cost:
        return Cost(luts=self.wire.width)

    def verilog(self, v, k) -> None:
        a, wa = v.name(self.a), v.wire(self.a)
        w = self.wire.width
        v.declare(k, f"{a}[{wa.width - 1}] ? {w}'h0 : {fit(a, wa.width, False, w)}")


COMPARISONS = ("lt", "le", "gt", "ge", "eq", "ne")
_NUMPY_COMPARE = {"lt": np.less, "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal,
                  "eq": np.equal, "ne": np.not_equal}
_PY_COMPARE = {"lt": int.__lt__, "le": int.__le__, "gt": int.__gt__, "ge": int.__ge__, "eq": int.__eq__,
               "ne": int.__ne__}


def compare_outcome(op: str, a: Wire, b: Wire) -> bool | None:
    """The result of ``a <op> b`` when the intervals decide it, else None."""
    _, (a, b) = aligned([a, b])
    always = {"lt": a.hi < b.lo, "le": a.hi <= b.lo, "gt": a.lo > b.hi, "ge": a.lo >= b.hi,
              "eq": a.is_const and b.is_const and a.lo == b.lo, "ne": a.hi < b.lo or a.lo > b.hi}
    never = {"lt": a.lo >= b.hi, "le": a.lo > b.hi, "gt": a.hi <= b.lo, "ge": a.hi < b.lo,
             "eq": a.hi < b.lo or a.lo > b.hi, "ne": a.is_const and b.is_const and a.lo == b.lo}
    return True if always[op] else (False if never[op] else None)


def _difference(v, k: int, first: int, second: int, tag: str) -> str:
    """Declare ``first - second`` (aligned, one bit wider than both) and return its sign bit."""
    f, al = aligned([v.wire(first), v.wire(second)])
    w = signed_width(al) + 1
    a = v.operand(first, w, f - v.wire(first).fraction)
    b = v.operand(second, w, f - v.wire(second).fraction)
    d = v.helper(k, tag, w, f"{a} - {b}")
    return f"{d}[{w - 1}]"


@dataclass(frozen=True)
class Compare(Prim):
    """``a <op> b`` as one unsigned bit (``op`` in :data:`COMPARISONS`)."""

    op: str

    def __post_init__(self) -> None:
        if self.op not in COMPARISONS:
            raise ValueError(f"unknown comparison {self.op!r}; expected one of {COMPARISONS}")

    @classmethod
    def output(cls, wires, op: str = "lt") -> Wire:
        known = compare_outcome(op, *wires)
        return Wire(int(known), int(known), 0) if known is not None else Wire(0, 1, 0)

    def evaluate(self, vals, wires, ctx) -> np.ndarray:
        a, b = _checked_align(vals, wires, "comparison")
        return _NUMPY_COMPARE[self.op](a, b).astype(np.int64)

    def fold(self, codes, wires) -> int:
        f = max(w.fraction for w in wires)
        a, b = (c << (f - w.fraction) for c, w in zip(codes, wires))
        return int(_PY_COMPARE[self.op](a, b))

    def delay(self, wires, model) -> float:
        return model.adder(signed_width(aligned(wires)[1]) + 1)

    def cost(self, wires) -> Cost:
        return Cost(luts=signed_width(aligned(wires)[1]) + 1)

    def verilog(self, v, k) -> None:
        a, b = self.args
        if self.op in ("eq", "ne"):
            f, al = aligned([v.wire(a), v.wire(b)])
            w = signed_width(al)
            ea = v.operand(a, w, f - v.wire(a).fraction)
            eb = v.operand(b, w, f - v.wire(b).fraction)
            v.declare(k, f"({ea} {'==' if self.op == 'eq' else '!='} {eb}) ? 1'b1 : 1'b0")
            return
        first, second = (a, b) if self.op in ("lt", "ge") else (b, a)   # lt/ge: sign of a - b
        sign = _difference(v, k, first, second, "d")
        v.declare(k, sign if self.op in ("lt", "gt") else f"~{sign}")


@dataclass(frozen=True)
class Select(Prim):
    """``a if c else b`` for a one-bit condition ``c`` (args ``(c, a, b)``)."""

    @classmethod
    def output(cls, wires, **params) -> Wire:
        _, (a, b) = aligned(wires[1:])
        return Wire(min(a.lo, b.lo), max(a.hi, b.hi), a.fraction)

    def evaluate(self, vals, wires, ctx) -> np.ndarray:
        a, b = _checked_align(vals[1:], wires[1:], "select")
        return np.where(vals[0] != 0, a, b)

    def fold(self, codes, wires) -> int:
        j = 1 if codes[0] else 2
        return codes[j] << (self.wire.fraction - wires[j].fraction)

    def identity(self, wires) -> int | None:
        c = wires[0]
        return (1 if c.lo else 2) if c.is_const else None

    def delay(self, wires, model) -> float:
        return model.mux_ns

    def cost(self, wires) -> Cost:
        return Cost(luts=self.wire.width)

    def verilog(self, v, k) -> None:
        c, a, b = self.args
        w = self.wire
        ea = v.operand(a, w.width, w.fraction - v.wire(a).fraction)
        eb = v.operand(b, w.width, w.fraction - v.wire(b).fraction)
        v.declare(k, f"{v.operand(c, 1, 0)} ? {ea} : {eb}")


class _Extremum(Prim, abstract=True):
    """Shared meaning of :class:`Max` and :class:`Min`: a comparison, then a select."""

    is_max = True

    @classmethod
    def output(cls, wires, **params) -> Wire:
        f, (a, b) = aligned(wires)
        pick = max if cls.is_max else min
        return Wire(pick(a.lo, b.lo), pick(a.hi, b.hi), f)

    def evaluate(self, vals, wires, ctx) -> np.ndarray:
        a, b = _checked_align(vals, wires, "max/min")
        return np.maximum(a, b) if self.is_max else np.minimum(a, b)

    def fold(self, codes, wires) -> int:
        f = self.wire.fraction
        a, b = (c << (f - w.fraction) for c, w in zip(codes, wires))
        return max(a, b) if self.is_max else min(a, b)

    def identity(self, wires) -> int | None:
        f, (a, b) = aligned(wires)
        for j, (x, y) in enumerate(((a, b), (b, a))):
            wins = x.lo >= y.hi if self.is_max else x.hi <= y.lo
            if wins:
                return j
        return None

    def delay(self, wires, model) -> float:
        return model.adder(signed_width(aligned(wires)[1]) + 1) + model.mux_ns

    def cost(self, wires) -> Cost:
        return Cost(luts=signed_width(aligned(wires)[1]) + 1 + self.wire.width)

    def verilog(self, v, k) -> None:
        a, b = self.args
        w = self.wire
        sign = _difference(v, k, a, b, "d")   # a < b
        ea = v.operand(a, w.width, w.fraction - v.wire(a).fraction)
        eb = v.operand(b, w.width, w.fraction - v.wire(b).fraction)
        v.declare(k, f"{sign} ? {eb} : {ea}" if self.is_max else f"{sign} ? {ea} : {eb}")


@dataclass(frozen=True)
class Max(_Extremum):
    """``max(a, b)``."""

    is_max = True


@dataclass(frozen=True)
class Min(_Extremum):
    """``min(a, b)``."""

    is_max = False


# --------------------------------------------------------------------------- quantization and tables


@dataclass(frozen=True)
class Quant(_Unary):
    """Quantize ``a`` to ``target`` (its rounding then overflow mode)."""

    target: FixedType

    @classmethod
    def output(cls, wires, target: FixedType = None) -> Wire:
        w = wires[0]
        lo, hi = quantized_range(w.lo, w.hi, w.fraction, target)
        return Wire(lo, hi, target.fraction)

    def evaluate(self, vals, wires, ctx) -> np.ndarray:
        return requantize(vals[0], wires[0].fraction, self.target)

    def fold(self, codes, wires) -> int:
        return requantize_code(codes[0], wires[0].fraction, self.target)

    def identity(self, wires) -> int | None:
        w, t = wires[0], self.target
        up = t.fraction - w.fraction
        if up >= 0 and (self.wire.lo, self.wire.hi) == (w.lo << up, w.hi << up):
            return 0   # no bits dropped, no overflow possible: the same values
        return None

    def rounds(self, src: Wire) -> bool:
        return self.target.rounding != "TRN" and src.fraction > self.target.fraction

    def saturates(self, src: Wire) -> bool:
        d = src.fraction - self.target.fraction
        rlo, rhi = round_code(src.lo, d, self.target.rounding), round_code(src.hi, d, self.target.rounding)
        return self.target.overflow != "WRAP" and (self.wire.lo, self.wire.hi) != (rlo, rhi)

    def delay(self, wires, model) -> float:
        src = wires[0]
        t = model.adder(src.width + 1) if self.rounds(src) else 0.0
        if self.saturates(src):
            # the Verilog tests the k top bits against the sign (a tree of 6-input LUTs), then
            # selects: no carry chain
            k = max(src.width - self.target.width + 1, 2)
            t += model.mux_ns * (math.ceil(math.log(k, 6)) + 1)
        return t

    def cost(self, wires) -> Cost:
        src = wires[0]
        c = Cost(adders=1, adder_bits=src.width + 1, luts=src.width + 1, levels=1) if self.rounds(src) else Cost()
        if self.saturates(src):
            k = max(src.width - self.target.width + 1, 2)
            c = c + Cost(luts=self.wire.width + math.ceil((k - 1) / 5))
        return c

    def verilog(self, v, k) -> None:
        wa = v.wire(self.a)
        a, t, w = v.name(self.a), self.target, self.wire
        d = wa.fraction - t.fraction
        # 1. rounding: r = round(a * 2**-d), a wire of width wr
        if d <= 0:
            r, wr, r_up = a, wa.width, -d
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
            s = v.helper(k, "s", ws, expr)
            r, wr, r_up = f"{s}[{ws - 1}:{d}]", ws - d, 0
        if r_up or r.endswith("]"):
            r = v.helper(k, "r", wr + r_up, fit(r, wr, wa.signed, wr + r_up, r_up))
            wr = wr + r_up
        # 2. overflow
        body = fit(r, wr, wa.signed, w.width)
        if self.saturates(wa):
            rlo, rhi = round_code(wa.lo, d, t.rounding), round_code(wa.hi, d, t.rounding)
            slo, shi = saturate_bounds(t)
            hi_over, lo_over = overflow_flags(r, wr, wa.signed, t)
            if rlo < slo:
                body = f"({lo_over}) ? {literal(slo, w.width)} : {body}"
            if rhi > shi:
                body = f"({hi_over}) ? {literal(shi, w.width)} : {body}"
        v.declare(k, body)


@dataclass(frozen=True)
class Lookup(_Unary):
    """A constant table indexed by a wire: code ``a.lo + i`` of ``a`` gives code ``table[i]``
    at scale ``2**-fraction``. The table covers exactly the operand's interval."""

    table: tuple[int, ...]
    fraction: int

    @classmethod
    def output(cls, wires, table: Sequence[int] = (), fraction: int = 0) -> Wire:
        w = wires[0]
        if len(table) != w.hi - w.lo + 1:
            raise ValueError(f"a table for codes {w.lo}..{w.hi} needs {w.hi - w.lo + 1} entries, got {len(table)}")
        return Wire(min(table), max(table), fraction)

    def evaluate(self, vals, wires, ctx) -> np.ndarray:
        return np.asarray(self.table, dtype=np.int64)[vals[0] - wires[0].lo]

    def fold(self, codes, wires) -> int:
        return self.table[codes[0] - wires[0].lo]

    def delay(self, wires, model) -> float:
        return model.table(wires[0].width)

    def cost(self, wires) -> Cost:
        # one LUT6 per output bit for up to 6 address bits; doubling per bit beyond
        return Cost(luts=self.wire.width * (1 << max(wires[0].width - 6, 0)))

    def verilog(self, v, k) -> None:
        wa, w = v.wire(self.a), self.wire
        a = v.name(self.a)
        lines = [f"case ({a})"]
        for i, q in enumerate(self.table):
            lines.append(f"  {literal(wa.lo + i, wa.width)}: {{r}} = {literal(q, w.width)};")
        lines += [f"  default: {{r}} = {literal(self.table[0], w.width)};", "endcase"]
        v.combinational(k, lines)


# --------------------------------------------------------------------------- timing


@dataclass(frozen=True)
class Reg(_Unary):
    """A pipeline register: ``a`` one clock cycle later."""

    @classmethod
    def output(cls, wires, **params) -> Wire:
        return wires[0]

    def evaluate(self, vals, wires, ctx) -> np.ndarray:
        return vals[0]   # the executor is not cycle-accurate: a register is its value

    def fold(self, codes, wires) -> int:
        return codes[0]

    def delay(self, wires, model) -> float:
        return 0.0   # clock-to-out is inside the stage budget of the delay model

    def cost(self, wires) -> Cost:
        return Cost(register_bits=self.wire.width)

    def verilog(self, v, k) -> None:
        v.register(k, self.a)
