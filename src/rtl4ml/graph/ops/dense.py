"""Dense: ``y = x @ W + b`` with constant, already-quantized (dyadic) ``W`` and ``b``.

The product-sum is exact: the output of element ``j`` carries as many fractional bits as
its finest term and an interval that is the exact sum of the terms' intervals.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ...fixed import MAX_WIDTH, WidthError
from ...cmvm import dyadic, solve_cmvm
from ..tensor import TensorType
from .base import GraphError, Op
from .serial import floats_to_json


def _dyadic_matrix(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Odd mantissas (object ints) and exponents of every entry (0, 0 for zeros)."""
    m = np.zeros(a.shape, dtype=object)
    e = np.zeros(a.shape, dtype=np.int64)
    for idx in zip(*np.nonzero(a)):
        m[idx], e[idx] = dyadic(float(a[idx]))
    return m, e


def _exact_shift(m: np.ndarray, sh: np.ndarray) -> np.ndarray:
    """``m << sh`` elementwise in Python ints (never wraps)."""
    out = np.empty(m.shape, dtype=object)
    out.flat[:] = [int(a) << int(s) for a, s in zip(m.flat, sh.flat)]
    return out


@dataclass(frozen=True, eq=False)
class Dense(Op):
    """``weight`` has shape (n_in, n_out); ``bias`` shape (n_out,). Values must be dyadic floats."""

    weight: np.ndarray
    bias: np.ndarray
    kind = "dense"

    def __post_init__(self) -> None:
        w = np.array(self.weight, dtype=np.float64)
        b = np.array(self.bias, dtype=np.float64)
        if w.ndim != 2 or b.shape != (w.shape[1],):
            raise GraphError(f"dense weight must be (n_in, n_out) and bias (n_out,), got {w.shape} and {b.shape}")
        for name, a in (("weight", w), ("bias", b)):
            if not np.all(np.isfinite(a)):
                idx = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
                raise GraphError(f"dense {name} has a non-finite value {float(a[idx])} at index {idx}")
        w.setflags(write=False)
        b.setflags(write=False)
        object.__setattr__(self, "weight", w)
        object.__setattr__(self, "bias", b)

    def _terms(self, x: TensorType):
        """Mantissas, and shifts aligning each term to its output's fraction."""
        n_in, n_out = self.weight.shape
        if len(x) != n_in:
            raise GraphError(f"dense layer expects {n_in} inputs, got {len(x)}")
        m, e = _dyadic_matrix(self.weight)
        bm, be = _dyadic_matrix(self.bias)
        # term (i, j) has codes m * x_q at fraction fx_i - e_ij
        tf = x.fraction[:, None] - e
        tf = np.where(self.weight != 0, tf, np.iinfo(np.int64).min)
        bf = np.where(self.bias != 0, -be, np.iinfo(np.int64).min)
        f = np.maximum(tf.max(axis=0, initial=np.iinfo(np.int64).min), bf)
        f = np.where(f == np.iinfo(np.int64).min, 0, f)
        return m, np.where(self.weight != 0, f[None, :] - tf, 0), bm, np.where(self.bias != 0, f + be, 0), f

    def infer(self, inputs: list[TensorType]) -> TensorType:
        (x,) = inputs
        m, sh, bm, bsh, f = self._terms(x)
        lo = []
        hi = []
        for j in range(self.weight.shape[1]):
            l = h = int(bm[j]) << int(bsh[j])
            for i in np.nonzero(self.weight[:, j])[0]:
                a, b = int(m[i, j]) * int(x.lo[i]), int(m[i, j]) * int(x.hi[i])
                s = int(sh[i, j])
                l += min(a, b) << s
                h += max(a, b) << s
            lo.append(l)
            hi.append(h)
        return TensorType(lo, hi, f)

    def emulate(self, inputs, in_types, out_type) -> np.ndarray:
        return self.emulator(in_types, out_type)(inputs)

    def _exact_matrix(self, x: TensorType) -> tuple[np.ndarray, np.ndarray]:
        """Weight and bias as exact integers (object arrays) in units of each output's LSB."""
        m, sh, bm, bsh, _ = self._terms(x)
        return _exact_shift(m, sh), _exact_shift(bm, bsh)

    @staticmethod
    def _bound(M: np.ndarray, B: np.ndarray, x: TensorType) -> int:
        xmax = np.array([max(abs(int(a)), abs(int(b))) for a, b in zip(x.lo, x.hi)], dtype=object)
        return max(int(np.max(np.abs(M).T.dot(xmax) + np.abs(B), initial=0)), 0)

    def sum_bound(self, x: TensorType) -> int:
        """Bound on every partial sum of ``x @ W + b``, in units of the output's LSB.

        Whatever the summation order, each partial sum of output ``j`` is at most
        ``sum_i |w_ij| * max|x_i| + |b_j|`` in magnitude; the largest over ``j`` (an exact
        integer once aligned to the output fraction) decides whether float64 (below
        ``2**53``) or int64 arithmetic computes the layer exactly. The emulator picks its
        arithmetic with it, and export checks that a model's float64 forward pass is exact.
        """
        return self._bound(*self._exact_matrix(x), x)

    def emulator(self, in_types, out_type):
        """Build the exact integer matrix once; pick float64 BLAS when provably exact."""
        (x,) = in_types
        M, B = self._exact_matrix(x)
        bound = self._bound(M, B, x)
        if bound < 2**53:  # every partial sum is exact in float64: use BLAS
            Mf, Bf = M.astype(np.float64), B.astype(np.float64)
            return lambda inputs: (inputs[0].astype(np.float64) @ Mf + Bf).astype(np.int64)
        if bound < 2**MAX_WIDTH:
            Mi, Bi = M.astype(np.int64), B.astype(np.int64)
            return lambda inputs: inputs[0].astype(np.int64) @ Mi + Bi
        raise WidthError(
            f"dense layer sums reach {bound.bit_length()} bits, more than the {MAX_WIDTH} bits the "
            "int64 emulator represents exactly; use narrower inputs or weights"
        )

    def lower(self, nl, inputs, in_types, out_type) -> list[int]:
        (xs,) = inputs
        # Constant inputs (pruned or dead neurons) fold into the bias, exactly.
        bias = [Fraction(float(b)) for b in self.bias]
        live = []
        for i, w in enumerate(xs):
            wire = nl.wire(w)
            if wire.is_const:
                c = Fraction(wire.lo) / Fraction(2) ** wire.fraction
                for j in np.nonzero(self.weight[i])[0]:
                    bias[j] += Fraction(float(self.weight[i, j])) * c
            else:
                live.append(i)
        W = self.weight[live]
        graph = solve_cmvm(W, [nl.wire(xs[i]) for i in live], **nl.cmvm_options)
        ys = nl.linear(graph, [xs[i] for i in live])
        out = []
        for y, b in zip(ys, bias):
            if b == 0:
                out.append(y)
                continue
            k = 0
            while b.denominator != 1:
                b *= 2
                k += 1
            out.append(nl.add(nl.const(int(b), k), y))
        return out

    def to_json(self) -> dict:
        return {"weight": floats_to_json(self.weight), "bias": floats_to_json(self.bias)}

    @classmethod
    def from_json(cls, data: dict) -> "Dense":
        return cls(np.array(data["weight"], dtype=np.float64).reshape(-1, len(data["bias"])),
                   np.array(data["bias"], dtype=np.float64))
