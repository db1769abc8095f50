"""Building a Netlist: exact wire types, hash-consing and constant folding on the fly.

Ops lower themselves through this builder. Every request goes through :meth:`emit`, which
asks the primitive class for its exact result type, forwards an operand the primitive would
pass through unchanged, folds constants (pruned weights, dead ReLUs and identity quantizers
vanish here) and returns the existing wire when the same primitive is asked for twice.
``origin`` names the Graph node being lowered; every new primitive records it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..cmvm import AdderGraph, csd, solve_cmvm
from ..fixed import FixedType, Wire, code_width
from .ir import Bus, Netlist, Prim
from .prims import (MUL_LUT_MAX_BITS, Add, Bit, Compare, Const, Input, Lookup, Max, Min, Mul, Quant, Relu, Scale,
                    Select, const_wire, shift_code)


def _maxabs(c: np.ndarray) -> int:
    return int(np.abs(c).max(initial=0))


def linear_bounds(ops, xlo: list[int], xhi: list[int]) -> tuple[list[int], list[int], list[int]]:
    """Exact value bounds of every adder of an adder graph over inputs ``[xlo, xhi]`` (codes
    at one common fraction).

    Node ``v`` is ``(coef_v . x) * 2**exp_v``: returns every node's ``exp`` and, per adder, the
    exact bounds ``lo, hi`` of ``coef . x``. The coefficient vectors are built level by level
    (all adders of one depth at once) in int64 while every ``|coef * x|`` sum provably fits;
    otherwise one adder at a time in exact Python ints.
    """
    n = len(xlo)
    exp, level = [0] * n, [0] * n
    for a, b, s, _ in ops:
        exp.append(min(exp[a], exp[b] + s))
        level.append(max(level[a], level[b]) + 1)
    xmax = max((max(abs(a), abs(b)) for a, b in zip(xlo, xhi)), default=0)
    budget = (1 << 62) // max(xmax * max(n, 1), 1)   # largest safe |coefficient|
    found = _linear_bounds_int64(ops, xlo, xhi, exp, level, budget) if budget > 1 else None
    return (exp, *found) if found is not None else (exp, *_linear_bounds_exact(ops, xlo, xhi, exp, budget))


def _linear_bounds_int64(ops, xlo, xhi, exp, level, budget):
    """Level-batched int64 bounds, or None where a coefficient could outgrow ``budget``."""
    n, m = len(xlo), len(ops)
    if not m:
        return [], []
    op = np.array([(a, b, exp[a] - exp[n + k], exp[b] + s - exp[n + k], sub) for k, (a, b, s, sub) in enumerate(ops)],
                  dtype=np.int64)
    if op[:, 2:4].max() >= 62:
        return None
    C = np.zeros((n + m, n), dtype=np.int64)
    C[np.arange(n), np.arange(n)] = 1
    rowmax = np.zeros(n + m, dtype=np.int64)
    rowmax[:n] = 1
    lvl = np.array(level[n:])
    lo, hi = np.zeros(m, dtype=np.int64), np.zeros(m, dtype=np.int64)
    xl, xh = np.array(xlo, dtype=np.int64), np.array(xhi, dtype=np.int64)
    for L in range(1, int(lvl.max()) + 1):
        k = np.flatnonzero(lvl == L)
        a, b, sa, sb, sub = op[k].T
        if np.any((rowmax[a].astype(object) << sa.astype(object)) + (rowmax[b].astype(object) << sb.astype(object))
                  >= budget):
            return None
        c = np.left_shift(C[a], sa[:, None])
        cb = np.left_shift(C[b], sb[:, None])
        c = np.where(sub[:, None] == 1, c - cb, c + cb)
        C[n + k] = c
        rowmax[n + k] = np.abs(c).max(axis=1)
        p, q = c * xl, c * xh
        lo[k] = np.minimum(p, q).sum(axis=1)
        hi[k] = np.maximum(p, q).sum(axis=1)
    return lo.tolist(), hi.tolist()


def _linear_bounds_exact(ops, xlo, xhi, exp, budget):
    """One adder at a time: int64 while it provably fits, exact Python ints beyond."""
    n = len(xlo)
    dtype = np.int64 if budget > 1 else object
    xl, xh = np.array(xlo, dtype=dtype), np.array(xhi, dtype=dtype)
    coef = [np.eye(1, n, i, dtype=np.int64).reshape(n).astype(dtype) for i in range(n)]
    lo, hi = [], []
    for k, (a, b, s, sub) in enumerate(ops):
        e = exp[n + k]
        ca, cb = coef[a], coef[b]
        sa, sb = exp[a] - e, exp[b] + s - e
        if (ca.dtype == object or cb.dtype == object or max(sa, sb) >= 62
                or (_maxabs(ca) << sa) + (_maxabs(cb) << sb) >= budget):
            ca, cb = ca.astype(object), cb.astype(object)   # both exact: int64 would wrap silently
        c = ca * (1 << sa)
        cb = cb * (1 << sb)
        c = c - cb if sub else c + cb
        lo.append(int(np.sum(np.minimum(c * xl, c * xh))))
        hi.append(int(np.sum(np.maximum(c * xl, c * xh))))
        coef.append(c)
    return lo, hi


class NetlistBuilder:
    """Accumulates primitives; ``finish`` returns the immutable :class:`Netlist`."""

    def __init__(self, cmvm_options: dict | None = None) -> None:
        self.cmvm_options = cmvm_options or {"method": "plain"}
        self.prims: list[Prim] = []
        self._index: dict[tuple, int] = {}
        self.input_types: list[Wire] = []
        self.origin = ""

    def wire(self, i: int) -> Wire:
        return self.prims[i].wire

    def is_const(self, i: int) -> bool:
        return self.prims[i].wire.is_const

    def _intern(self, prim: Prim) -> int:
        key = prim.key()
        hit = self._index.get(key)
        if hit is not None:
            return hit
        self.prims.append(prim)
        self._index[key] = len(self.prims) - 1
        return len(self.prims) - 1

    def emit(self, cls: type[Prim], args: Sequence[int], params: dict | None = None, wire: Wire | None = None) -> int:
        """The wire of primitive ``cls(args, **params)``; ``wire`` overrides its inferred type."""
        params = params or {}
        args = tuple(int(a) for a in args)
        wires = [self.wire(a) for a in args]
        w = wire if wire is not None else cls.output(wires, **params)
        p = cls(w, args, **params, origin=self.origin)
        j = p.identity(wires)
        if j is not None:
            return args[j]
        if w.is_const:
            return self.const(w.lo, w.fraction)
        if args and all(x.is_const for x in wires):
            return self.const(p.fold([x.lo for x in wires], wires), w.fraction)
        return self._intern(p)

    # --------------------------------------------------------------- primitives

    def input(self, t: Wire) -> int:
        self.input_types.append(t)
        return self._intern(Input(t, (), len(self.input_types) - 1, origin=self.origin))

    def const(self, q: int, fraction: int) -> int:
        return self._intern(Const(const_wire(q, fraction), (), origin=self.origin))

    def scale(self, a: int, shift: int, negate: bool = False) -> int:
        if shift == 0 and not negate:
            return a
        return self.emit(Scale, (a,), {"shift": shift, "negate": negate})

    def add(self, a: int, b: int, shift: int = 0, sub: bool = False, wire: Wire | None = None) -> int:
        """``a ± b * 2**shift``; ``wire`` overrides the naive interval with an exact one."""
        wa = self.wire(a)
        if wa.is_const and wa.lo == 0:
            return self.scale(b, shift, sub)
        if self.is_const(a) and self.is_const(b):
            wire = None   # folding computes the exact constant
        return self.emit(Add, (a, b), {"shift": shift, "sub": sub}, wire)

    def sub(self, a: int, b: int) -> int:
        return self.add(a, b, 0, True)

    def relu(self, a: int) -> int:
        return self.emit(Relu, (a,))

    def quant(self, a: int, target: FixedType) -> int:
        return self.emit(Quant, (a,), {"target": target})

    def mul(self, a: int, b: int) -> int:
        """``a * b``: shift-and-add when either operand is a constant, partial products of two
        narrow variables, a multiplier (``Mul``, a DSP) of two wide ones."""
        if self.is_const(a):
            a, b = b, a
        wb = self.wire(b)
        if wb.is_const:
            return self.const_mul(a, wb.lo, wb.fraction)
        exact = Mul.output([self.wire(a), wb])
        if self.wire(a).width * wb.width <= MUL_LUT_MAX_BITS:
            return self._partial_products(a, b, exact)
        return self.emit(Mul, (a, b))

    def square(self, a: int) -> int:
        """``a * a``, typed as the non-negative interval it is."""
        w = self.wire(a)
        if w.is_const:
            return self.const(w.lo * w.lo, 2 * w.fraction)
        sq = (w.lo * w.lo, w.hi * w.hi)
        exact = Wire(0 if w.lo <= 0 <= w.hi else min(sq), max(sq), 2 * w.fraction)
        if w.width * w.width <= MUL_LUT_MAX_BITS:
            return self._partial_products(a, a, exact)
        return self.emit(Mul, (a, a), wire=exact)

    def _partial_products(self, a: int, b: int, exact: Wire) -> int:
        """``a * b`` as primitives: ``a`` gated by each bit of the narrower operand's code, the
        gated copies summed by a balanced adder tree (the sign bit of a signed code weighs
        ``-2**(width-1)``: its copy is subtracted). Being ordinary adders, the pipeline
        scheduler may register between them, which one ``Mul`` could not allow. The sum is
        typed by the product's exact interval ``exact`` (the tree's own interval is looser,
        its terms being dependent) by a wrap-around quantizer: a slice or a plain wire."""
        if self.wire(b).width > self.wire(a).width:
            a, b = b, a
        wb = self.wire(b)
        zero = self.const(0, 0)
        terms, sign = [], None
        for i in range(wb.width):
            pp = self.select(self.bit(b, i), a, zero)
            if self.is_const(pp) and self.wire(pp).lo == 0:
                continue
            if wb.signed and i == wb.width - 1:
                sign = (pp, i)
            else:
                terms.append((pp, i))
        if terms:
            x, sx = self.shifted_sum(terms)
            if sign is not None:
                x = self.add(x, sign[0], sign[1] - sx, sub=True)
            y = self.scale(x, sx - wb.fraction)
        elif sign is not None:
            y = self.scale(sign[0], sign[1] - wb.fraction, negate=True)
        else:
            return self.const(0, 0)
        if self.wire(y) == exact:
            return y
        signed, width = code_width(exact.lo, exact.hi)
        return self.emit(Quant, (y,), {"target": FixedType(signed, width - int(signed) - exact.fraction,
                                                           exact.fraction)}, wire=exact)

    def shifted_sum(self, terms: Sequence[tuple[int, int]]) -> tuple[int, int]:
        """``sum_t wire_t * 2**shift_t`` over the (non-empty) ``terms``, added pairwise as a
        balanced tree (``ceil(log2 n)`` adder levels): ``(node, s)``, the sum being
        ``node * 2**s`` with ``s`` the first term's shift."""
        terms = list(terms)
        while len(terms) > 1:
            pairs = [(self.add(x, y, sy - sx), sx) for (x, sx), (y, sy) in zip(terms[0::2], terms[1::2])]
            terms = pairs + terms[2 * len(pairs):]
        return terms[0]

    def const_mul(self, a: int, code: int, fraction: int) -> int:
        """``a * code * 2**-fraction`` as a canonical-signed-digit adder tree (exact widths)."""
        if code == 0:
            return self.const(0, 0)
        level = [(k, d < 0) for k, d in csd(int(code))]   # (shift, negative) per digit
        ops: list[tuple[int, int, int, bool]] = []
        nodes = [0] * len(level)   # adder-graph node of each pending term
        while len(level) > 1:
            nxt, nxt_nodes = [], []
            for i in range(0, len(level) - 1, 2):
                (sa, ga), (sb, gb) = level[i], level[i + 1]
                ops.append((nodes[i], nodes[i + 1], sb - sa, ga != gb))
                nxt.append((sa, ga))
                nxt_nodes.append(len(ops))   # node ids: input 0, then adders 1, 2, ...
            if len(level) % 2:
                nxt.append(level[-1])
                nxt_nodes.append(nodes[-1])
            level, nodes = nxt, nxt_nodes
        (s, neg), = level
        (y,) = self.linear(AdderGraph(1, tuple(ops), ((nodes[0], s, neg),)), [a])
        return self.scale(y, -fraction)

    def bit(self, a: int, index: int) -> int:
        """Bit ``index`` of ``a``'s two's-complement code, as a 0/1 integer wire."""
        return self.emit(Bit, (a,), {"index": int(index)})

    def compare(self, op: str, a: int, b: int) -> int:
        return self.emit(Compare, (a, b), {"op": op})

    def select(self, c: int, a: int, b: int) -> int:
        return self.emit(Select, (c, a, b))

    def maximum(self, a: int, b: int) -> int:
        return self.emit(Max, (a, b))

    def minimum(self, a: int, b: int) -> int:
        return self.emit(Min, (a, b))

    def lookup(self, a: int, table: Sequence[int], fraction: int) -> int:
        return self.emit(Lookup, (a,), {"table": tuple(int(q) for q in table), "fraction": int(fraction)})

    # --------------------------------------------------------------- linear forms

    def solve(self, W: np.ndarray, wires: Sequence[Wire]) -> AdderGraph:
        """The adder graph of ``x @ W`` (constant dyadic ``W``) for inputs of types ``wires``,
        from the configured CMVM solver; emit it with :meth:`linear`."""
        return solve_cmvm(W, list(wires), **self.cmvm_options)

    def linear(self, graph: AdderGraph, xs: Sequence[int]) -> list[int]:
        """Emit an :class:`~rtl4ml.cmvm.AdderGraph` over wires ``xs``.

        Every intermediate wire gets the exact interval of its linear form in the inputs
        (not the looser sum of its operands' intervals), so no adder is wider than the
        values it can actually carry. Returns one wire per output, before any bias.
        """
        ws = [self.wire(x) for x in xs]
        top = max((w.fraction for w in ws), default=0)
        xlo = [w.lo << (top - w.fraction) for w in ws]
        xhi = [w.hi << (top - w.fraction) for w in ws]
        exp, lo, hi = linear_bounds(graph.ops, xlo, xhi)
        ids: list[int] = list(xs)
        for k, (a, b, s, sub) in enumerate(graph.ops):
            f = max(self.wire(ids[a]).fraction, self.wire(ids[b]).fraction - s)
            up = exp[len(xs) + k] - top + f
            exact = Wire(shift_code(lo[k], up), shift_code(hi[k], up), f)
            ids.append(self.add(ids[a], ids[b], s, sub, wire=exact))
        out = []
        for o in graph.outputs:
            if o is None:
                out.append(self.const(0, 0))
            else:
                node, shift, negate = o
                out.append(self.scale(ids[node], shift, negate))
        return out

    def finish(self, outputs: Sequence[int], output_buses: Sequence[Bus | Wire] | None = None,
               input_buses: Sequence[Bus] | None = None) -> Netlist:
        """The Netlist with these outputs.

        ``output_buses``: the output Buses, or the slot types of a single output bus ``y``
        (default: the output wires' own types). ``input_buses`` default to one bus ``x``
        holding every input element, in order.
        """
        outputs = tuple(int(o) for o in outputs)
        if output_buses is None:
            output_buses = [self.wire(o) for o in outputs]
        if output_buses and not isinstance(output_buses[0], Bus):
            output_buses = [Bus("y", (len(output_buses),), tuple(output_buses))]
        if input_buses is None:
            input_buses = [Bus("x", (len(self.input_types),), tuple(self.input_types))] if self.input_types else []
        return Netlist(tuple(self.prims), tuple(input_buses), outputs, tuple(output_buses))
