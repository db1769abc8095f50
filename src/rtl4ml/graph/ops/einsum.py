"""Einsum: ``out[o] = sum over the contracted indices of a[..] * b[..]`` of two tensors.

The equation names the axes of both operands and of the output with letters (``"pf,qf->pq"``:
every pair of particles' dot product; ``"pq,qf->pf"``: attention weights times values);
the batch is never named (shapes exclude it). Letters absent from the output are summed.
Repeated letters within one operand (diagonals) and ``...`` are not supported.

Exact like every rtl4ml op: each product carries the sum of its operands' fractions and
its exact interval, each output the finest fraction of its terms and the exact sum of their
intervals. In hardware every product is a netlist multiplier (shift-and-add when an operand
is a constant wire) and each output a balanced adder tree over its terms. A constant matrix
is cheaper as a :class:`~rtl4ml.graph.ops.Dense` (one adder graph shared by the rows):
:meth:`rtl4ml.graph.GraphBuilder.einsum` maps it there where the equation allows.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ...fixed import MAX_WIDTH, WidthError
from ..tensor import TensorType
from .base import GraphError, Op, wire_array
from .reduce import _tree


def parse_equation(eq: str) -> tuple[str, str, str]:
    """``"ab,bc->ac"`` as ``("ab", "bc", "ac")``; refuses what the op does not support."""
    eq = eq.replace(" ", "")
    if "->" not in eq or eq.count(",") != 1:
        raise GraphError(f"einsum equation {eq!r} must be 'A,B->C' with two operands and an explicit output")
    lhs, out = eq.split("->")
    a, b = lhs.split(",")
    for s, what in ((a, "first operand"), (b, "second operand"), (out, "output")):
        if "." in s:
            raise GraphError(f"einsum equation {eq!r}: '...' is not supported; name every axis")
        if not all(c in string.ascii_letters for c in s):
            raise GraphError(f"einsum equation {eq!r}: the {what} {s!r} must be letters")
        if len(set(s)) != len(s):
            raise GraphError(f"einsum equation {eq!r}: the {what} {s!r} repeats a letter (diagonals are not "
                             "supported)")
    missing = set(out) - set(a) - set(b)
    if missing:
        raise GraphError(f"einsum equation {eq!r}: output letters {sorted(missing)} appear in no operand")
    return a, b, out


@dataclass(frozen=True)
class Einsum(Op):
    """Two-operand einsum with an explicit output (see the module docstring)."""

    equation: str
    kind = "einsum"
    n_inputs = 2

    def __post_init__(self) -> None:
        object.__setattr__(self, "equation", self.equation.replace(" ", ""))
        parse_equation(self.equation)

    @cached_property
    def subscripts(self) -> tuple[str, str, str]:
        return parse_equation(self.equation)

    @cached_property
    def letters(self) -> str:
        """Every index: the output's first, then the contracted ones."""
        a, b, out = self.subscripts
        return out + "".join(dict.fromkeys(c for c in a + b if c not in out))

    def _sizes(self, ta: TensorType, tb: TensorType) -> dict[str, int]:
        a, b, _ = self.subscripts
        sizes: dict[str, int] = {}
        for subs, t, what in ((a, ta, "first"), (b, tb, "second")):
            if len(subs) != t.ndim:
                raise GraphError(f"einsum {self.equation!r}: the {what} operand is named {subs!r} but has shape "
                                 f"{t.shape}")
            for c, n in zip(subs, t.shape):
                if sizes.setdefault(c, n) != n:
                    raise GraphError(f"einsum {self.equation!r}: axis {c!r} has size {sizes[c]} in one operand and "
                                     f"{n} in another (shapes {ta.shape} and {tb.shape})")
        return sizes

    def _full(self, v: np.ndarray, subs: str) -> np.ndarray:
        """An operand's array over all indices (unit axes where it has none), in ``letters`` order."""
        order = [c for c in self.letters if c in subs]
        v = np.transpose(v, [subs.index(c) for c in order])
        return v.reshape([v.shape[order.index(c)] if c in subs else 1 for c in self.letters])

    def _terms(self, ta: TensorType, tb: TensorType):
        """Exact product bounds, aligned to each output's fraction, over all indices; and the
        output fractions (output shape)."""
        a, b, out = self.subscripts
        sizes = self._sizes(ta, tb)
        full = tuple(sizes[c] for c in self.letters)
        alo, ahi, af = (np.broadcast_to(self._full(v, a), full) for v in (ta.lo, ta.hi, ta.fraction))
        blo, bhi, bf = (np.broadcast_to(self._full(v, b), full) for v in (tb.lo, tb.hi, tb.fraction))
        p = [alo * blo, alo * bhi, ahi * blo, ahi * bhi]
        plo = np.minimum(np.minimum(p[0], p[1]), np.minimum(p[2], p[3]))
        phi = np.maximum(np.maximum(p[0], p[1]), np.maximum(p[2], p[3]))
        pf = af + bf
        axes = tuple(range(len(out), len(self.letters)))
        f = pf.max(axis=axes, keepdims=True) if axes else pf
        up = (np.broadcast_to(f, full) - pf).astype(object)
        return plo * (2 ** up), phi * (2 ** up), f.reshape(full[:len(out)]), axes

    def infer(self, inputs: list[TensorType]) -> TensorType:
        ta, tb = inputs
        lo, hi, f, axes = self._terms(ta, tb)
        if axes:
            lo, hi = lo.sum(axis=axes), hi.sum(axis=axes)
        return TensorType(np.asarray(lo, dtype=object).reshape(f.shape), np.asarray(hi, dtype=object).reshape(f.shape),
                          f)

    def sum_bound(self, ta: TensorType, tb: TensorType) -> int:
        """Bound on every partial sum of the products with both operands aligned to their
        finest fraction (in units of the product of those LSBs): below 2**53 float64
        computes the einsum exactly in any order, below 2**62 int64 does."""
        a, b, out = self.subscripts
        Fa, Fb = int(ta.fraction.max(initial=0)), int(tb.fraction.max(initial=0))
        ma = np.maximum(np.abs(ta.lo), np.abs(ta.hi)) * (2 ** (Fa - ta.fraction).astype(object))
        mb = np.maximum(np.abs(tb.lo), np.abs(tb.hi)) * (2 ** (Fb - tb.fraction).astype(object))
        if not ma.size or not mb.size:
            return 0
        bound = np.einsum(f"{a},{b}->{out}", np.asarray(ma, dtype=object), np.asarray(mb, dtype=object))
        return int(np.max(bound, initial=0)) if np.ndim(bound) else int(bound)

    def emulator(self, in_types, out_type):
        """Both operands aligned to their finest fraction, one ``np.einsum`` (float64 when every
        partial sum is provably below 2**53, else int64), then an exact right shift to each
        output's fraction (the true sum is a multiple of it)."""
        ta, tb = in_types
        Fa, Fb = int(ta.fraction.max(initial=0)), int(tb.fraction.max(initial=0))
        ua, ub = Fa - ta.fraction, Fb - tb.fraction
        a, b, out = self.subscripts
        bound = self.sum_bound(ta, tb)
        if bound >= 2**MAX_WIDTH:
            raise WidthError(f"einsum {self.equation!r} sums reach {bound.bit_length()} bits, more than the "
                             f"{MAX_WIDTH} bits the int64 emulator represents exactly; quantize its operands to "
                             "fewer bits")
        down = (Fa + Fb - out_type.fraction).astype(np.int64)
        dtype = np.float64 if bound < 2**53 else np.int64
        z = next(c for c in string.ascii_letters if c not in self.equation)
        spec = f"{z}{a},{z}{b}->{z}{out}"
        ua, ub = ua.astype(np.int64), ub.astype(np.int64)

        def run(inputs):
            va, vb = inputs
            n = max(len(va), len(vb))
            va = np.broadcast_to(np.left_shift(va, ua) if ua.any() else va, (n,) + va.shape[1:])
            vb = np.broadcast_to(np.left_shift(vb, ub) if ub.any() else vb, (n,) + vb.shape[1:])
            y = np.einsum(spec, va.astype(dtype), vb.astype(dtype), optimize=dtype is np.float64)
            y = y.astype(np.int64)
            return np.right_shift(y, down) if down.any() else y
        return run

    def lower(self, nl, inputs, in_types, out_type) -> np.ndarray:
        a, b, out = self.subscripts
        sizes = self._sizes(*in_types)
        full = tuple(sizes[c] for c in self.letters)
        ia = np.broadcast_to(self._full(inputs[0], a), full)
        ib = np.broadcast_to(self._full(inputs[1], b), full)
        n_out = int(np.prod(full[:len(out)]))
        ia, ib = ia.reshape(n_out, -1), ib.reshape(n_out, -1)
        ids = [_tree(nl.add, [nl.mul(int(x), int(y)) for x, y in zip(ra, rb)]) if ra.size else nl.const(0, 0)
               for ra, rb in zip(ia, ib)]
        return wire_array(ids, out_type.shape)

    def describe(self) -> str:
        return f"einsum {self.equation}"

    def to_json(self) -> dict:
        return {"equation": self.equation}

    @classmethod
    def from_json(cls, data: dict) -> "Einsum":
        return cls(data["equation"])
