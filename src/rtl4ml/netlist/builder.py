"""Building a Netlist: exact wire types, hash-consing and constant folding on the fly.

Ops lower themselves through this builder. It computes each new wire's exact interval,
folds constants (pruned weights, dead ReLUs, identity quantizers vanish here), and returns
the existing wire when the same primitive is asked for twice.
"""

from __future__ import annotations

import numpy as np

from ..fixed import FixedType, quantized_range, requantize_code
from .ir import Add, Const, Input, Netlist, Prim, Quant, Relu, Scale, Wire


def const_wire(q: int, fraction: int) -> Wire:
    """A constant with trailing zero bits stripped (so equal values share one wire)."""
    q = int(q)
    if q == 0:
        return Wire(0, 0, 0)
    while q % 2 == 0:
        q //= 2
        fraction -= 1
    return Wire(q, q, fraction)


def shift_code(q: int, up: int) -> int:
    """``q * 2**up`` for integer results (``up`` may be negative when the low bits are zero)."""
    return q << up if up >= 0 else q >> -up


def add_wire(a: Wire, b: Wire, shift: int, sub: bool) -> Wire:
    """Interval of ``a ± b * 2**shift`` assuming a and b independent."""
    f = max(a.fraction, b.fraction - shift)
    sa, sb = f - a.fraction, f - b.fraction + shift
    blo, bhi = (-b.hi, -b.lo) if sub else (b.lo, b.hi)
    return Wire((a.lo << sa) + (blo << sb), (a.hi << sa) + (bhi << sb), f)


def _maxabs(c: np.ndarray) -> int:
    return int(np.abs(c).max(initial=0))


class NetlistBuilder:
    """Accumulates primitives; ``finish`` returns the immutable :class:`Netlist`."""

    def __init__(self, cmvm_options: dict | None = None) -> None:
        self.cmvm_options = cmvm_options or {"method": "plain"}
        self.prims: list[Prim] = []
        self._index: dict[tuple, int] = {}
        self.input_types: list[Wire] = []

    def wire(self, i: int) -> Wire:
        return self.prims[i].wire

    def _emit(self, prim: Prim) -> int:
        key = prim.key()
        hit = self._index.get(key)
        if hit is not None:
            return hit
        self.prims.append(prim)
        self._index[key] = len(self.prims) - 1
        return len(self.prims) - 1

    def is_const(self, i: int) -> bool:
        return isinstance(self.prims[i], Const)

    # --------------------------------------------------------------- primitives

    def input(self, t: Wire) -> int:
        self.input_types.append(t)
        return self._emit(Input(t, len(self.input_types) - 1))

    def const(self, q: int, fraction: int) -> int:
        return self._emit(Const(const_wire(q, fraction)))

    def scale(self, a: int, shift: int, negate: bool = False) -> int:
        if shift == 0 and not negate:
            return a
        w = self.wire(a)
        if w.is_const:
            return self.const(-w.lo if negate else w.lo, w.fraction - shift)
        lo, hi = (-w.hi, -w.lo) if negate else (w.lo, w.hi)
        return self._emit(Scale(Wire(lo, hi, w.fraction - shift), a, shift, negate))

    def add(self, a: int, b: int, shift: int = 0, sub: bool = False, wire: Wire | None = None) -> int:
        """``a ± b * 2**shift``; ``wire`` overrides the naive interval with an exact one."""
        wa, wb = self.wire(a), self.wire(b)
        if wb.is_const and wb.lo == 0:
            return a
        if wa.is_const and wa.lo == 0:
            return self.scale(b, shift, sub)
        naive = add_wire(wa, wb, shift, sub)
        if wa.is_const and wb.is_const:
            return self.const(naive.lo, naive.fraction)
        w = naive if wire is None else wire
        return self._emit(Add(w, a, b, shift, sub))

    def relu(self, a: int) -> int:
        w = self.wire(a)
        if w.lo >= 0:
            return a
        if w.hi <= 0:
            return self.const(0, 0)
        return self._emit(Relu(Wire(0, w.hi, w.fraction), a))

    def quant(self, a: int, target: FixedType) -> int:
        w = self.wire(a)
        if w.is_const:
            return self.const(requantize_code(w.lo, w.fraction, target), target.fraction)
        lo, hi = quantized_range(w.lo, w.hi, w.fraction, target)
        if w.fraction <= target.fraction and (lo, hi) == (w.lo << (target.fraction - w.fraction),
                                                         w.hi << (target.fraction - w.fraction)):
            return a  # no bits dropped, no overflow possible: the identity
        if lo == hi:
            return self.const(lo, target.fraction)
        return self._emit(Quant(Wire(lo, hi, target.fraction), a, target))

    # --------------------------------------------------------------- linear forms

    def linear(self, graph, xs: list[int]) -> list[int]:
        """Emit an :class:`~rtl4ml.cmvm.AdderGraph` over wires ``xs``.

        Every intermediate wire gets the exact interval of its linear form in the inputs
        (not the looser sum of its operands' intervals), so no adder is wider than the
        values it can actually carry. Returns one wire per output, before any bias.
        """
        n = len(xs)
        ws = [self.wire(x) for x in xs]
        top = max((w.fraction for w in ws), default=0)
        xlo_l = [w.lo << (top - w.fraction) for w in ws]
        xhi_l = [w.hi << (top - w.fraction) for w in ws]
        # int64 arithmetic while every |coefficient * x| sum provably fits; exact Python ints otherwise
        xmax = max((max(abs(a), abs(b)) for a, b in zip(xlo_l, xhi_l)), default=0)
        budget = (1 << 62) // max(xmax * max(n, 1), 1)   # largest safe |coefficient|
        dtype = np.int64 if budget > 1 else object
        xlo = np.array(xlo_l, dtype=dtype)
        xhi = np.array(xhi_l, dtype=dtype)
        # node value = (coef . x_scaled) * 2**(exp - top); x_scaled = x codes at fraction `top`
        coef: list[np.ndarray] = []
        exp: list[int] = []
        ids: list[int] = list(xs)
        for i in range(n):
            c = np.zeros(n, dtype=dtype)
            c[i] = 1
            coef.append(c)
            exp.append(0)
        for a, b, s, sub in graph.ops:
            e = min(exp[a], exp[b] + s)
            ca, cb = coef[a], coef[b]
            sa, sb = exp[a] - e, exp[b] + s - e
            if (ca.dtype == object or cb.dtype == object or max(sa, sb) >= 62
                    or (_maxabs(ca) << sa) + (_maxabs(cb) << sb) >= budget):
                ca, cb = ca.astype(object), cb.astype(object)   # both exact: int64 would wrap silently
            c = ca * (1 << sa)
            cb = cb * (1 << sb)
            c = c - cb if sub else c + cb
            lo = int(np.sum(np.minimum(c * xlo, c * xhi)))
            hi = int(np.sum(np.maximum(c * xlo, c * xhi)))
            f = max(self.wire(ids[a]).fraction, self.wire(ids[b]).fraction - s)
            up = e - top + f
            exact = Wire(shift_code(lo, up), shift_code(hi, up), f)
            ids.append(self.add(ids[a], ids[b], s, sub, wire=exact))
            coef.append(c)
            exp.append(e)
        out = []
        for o in graph.outputs:
            if o is None:
                out.append(self.const(0, 0))
            else:
                node, shift, negate = o
                out.append(self.scale(ids[node], shift, negate))
        return out

    def finish(self, outputs: list[int], output_types: list[Wire]) -> Netlist:
        return Netlist(tuple(self.prims), tuple(self.input_types), tuple(outputs), tuple(output_types))
