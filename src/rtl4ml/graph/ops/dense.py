"""Dense: ``y = x @ W + b`` over the last axis, with constant ``W`` and ``b``.

The product-sum is exact: output element ``j`` carries as many fractional bits as its
finest term and an interval that is the exact sum of the terms' intervals. With
``weight_type`` / ``bias_type`` the float parameters are quantized first (post-training
quantization; the BatchNorm-folding pass folds into the float values before that rounding);
without, the float64 values are taken exactly (rtl4ml.nn layers export quantized values).

A tensor with more than one axis is a set of rows (particles, positions) sharing the
weights: the adder graph is solved once for all rows with the same live inputs (on the
union of their input ranges) and emitted per row with each row's exact widths, so lowering
grows linearly with the number of rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property

import numpy as np

from ...fixed import MAX_WIDTH, FixedType, Wire, WidthError, quantize
from ..tensor import TensorType, int_array
from .base import GraphError, Op, wire_array
from .io import exact_codes
from .serial import floats_from_json, floats_to_json, type_from_json, type_to_json

_NEVER = np.iinfo(np.int64).min


def _check_finite(a: np.ndarray, what: str) -> None:
    if not np.all(np.isfinite(a)):
        idx = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
        raise GraphError(f"dense {what} has a non-finite value {float(a[idx])} at index {idx}")


def interval_matmul(lo: np.ndarray, hi: np.ndarray, M: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``[lo, hi] @ M + B`` bounds for rows of intervals (object ints, any width).

    int64 when every term provably fits, Python ints otherwise.
    """
    xmax = max(int(np.abs(lo).max(initial=0)), int(np.abs(hi).max(initial=0)))
    mmax = int(np.abs(M).max(initial=0))
    bmax = int(np.abs(B).max(initial=0))
    if (xmax * mmax * max(M.shape[0], 1) + bmax).bit_length() < 62:
        lo, hi, M, B = (a.astype(np.int64) for a in (lo, hi, M, B))
    a = lo[:, :, None] * M[None]
    b = hi[:, :, None] * M[None]
    return np.minimum(a, b).sum(axis=1) + B, np.maximum(a, b).sum(axis=1) + B


@dataclass(frozen=True, eq=False)
class Dense(Op):
    """``weight`` has shape (n_in, n_out), ``bias`` (n_out,); see the module docstring."""

    weight: np.ndarray
    bias: np.ndarray
    weight_type: FixedType | None = None
    bias_type: FixedType | None = None
    kind = "dense"
    float_codes = True

    def __post_init__(self) -> None:
        w = np.array(self.weight, dtype=np.float64)
        b = np.array(self.bias, dtype=np.float64)
        if w.ndim != 2 or b.shape != (w.shape[1],):
            raise GraphError(f"dense weight must be (n_in, n_out) and bias (n_out,), got {w.shape} and {b.shape}")
        _check_finite(w, "weight")
        _check_finite(b, "bias")
        w.setflags(write=False)
        b.setflags(write=False)
        object.__setattr__(self, "weight", w)
        object.__setattr__(self, "bias", b)

    # ------------------------------------------------------------------ exact parameters

    @cached_property
    def effective_weight(self) -> np.ndarray:
        """The exact weights of the hardware (quantized if ``weight_type`` is given)."""
        return self.weight if self.weight_type is None else quantize(self.weight, self.weight_type)

    @cached_property
    def effective_bias(self) -> np.ndarray:
        t = self.bias_type or self.weight_type
        return self.bias if t is None else quantize(self.bias, t)

    @cached_property
    def _dyadic(self):
        """Odd mantissas (object ints) and fractions of the weights and of the bias."""
        return exact_codes(self.effective_weight) + exact_codes(self.effective_bias)

    def _rows(self, x: TensorType) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Input fractions as rows (R, n_in), their distinct patterns, and each row's pattern."""
        n_in = self.weight.shape[0]
        if x.ndim == 0 or x.shape[-1] != n_in:
            raise GraphError(f"dense layer expects {n_in} features on the last axis, got shape {x.shape}")
        fx = x.fraction.reshape(-1, n_in)
        patterns, which = np.unique(fx, axis=0, return_inverse=True)
        return fx, patterns, np.asarray(which).reshape(-1)

    def _exact_matrix(self, fx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Weight and bias as exact integers in units of each output's LSB, and the output
        fractions, for input fractions ``fx`` (n_in,)."""
        wc, wf, bc, bf = self._dyadic
        live = self.effective_weight != 0
        tf = np.where(live, fx[:, None] + wf, _NEVER)          # fraction of each term x_i * w_ij
        f = np.maximum(tf.max(axis=0, initial=_NEVER), np.where(self.effective_bias != 0, bf, _NEVER))
        f = np.where(f == _NEVER, 0, f)
        M = wc << np.where(live, f[None, :] - tf, 0).astype(object)
        B = bc << np.where(self.effective_bias != 0, f - bf, 0).astype(object)
        return M, B, f

    def infer(self, inputs: list[TensorType]) -> TensorType:
        (x,) = inputs
        fx, patterns, which = self._rows(x)
        n_out = self.weight.shape[1]
        lo = np.empty((len(fx), n_out), dtype=object)
        hi = np.empty((len(fx), n_out), dtype=object)
        f = np.zeros((len(fx), n_out), dtype=np.int64)
        xlo, xhi = x.lo.reshape(fx.shape), x.hi.reshape(fx.shape)
        for p, pattern in enumerate(patterns):
            rows = np.flatnonzero(which == p)
            M, B, fp = self._exact_matrix(pattern)
            lo[rows], hi[rows] = interval_matmul(xlo[rows], xhi[rows], M, B)
            f[rows] = fp
        shape = x.shape[:-1] + (n_out,)
        return TensorType(int_array(lo, shape), int_array(hi, shape), f.reshape(shape))

    @staticmethod
    def _bound(M: np.ndarray, B: np.ndarray, xmax: np.ndarray) -> int:
        return max(int(np.max(np.abs(M).T.dot(xmax) + np.abs(B), initial=0)), 0)

    def sum_bound(self, x: TensorType) -> int:
        """Bound on every partial sum of ``x @ W + b``, in units of the output's LSB.

        Whatever the summation order, each partial sum of output ``j`` is at most
        ``sum_i |w_ij| * max|x_i| + |b_j|`` in magnitude; the largest over ``j`` and over rows
        (an exact integer once aligned to the output fraction) decides whether float32
        (below ``2**24``), float64 (below ``2**53``) or int64 arithmetic computes the layer
        exactly. The emulator picks its arithmetic with it, and export checks that a
        model's float64 forward pass is exact.
        """
        fx, patterns, which = self._rows(x)
        xmag = np.maximum(np.abs(x.lo), np.abs(x.hi)).reshape(fx.shape)
        bound = 0
        for p, pattern in enumerate(patterns):
            M, B, _ = self._exact_matrix(pattern)
            xmax = np.array([max(c, default=0) for c in xmag[which == p].T], dtype=object)
            bound = max(bound, self._bound(M, B, xmax))
        return bound

    def emulator(self, in_types, out_type):
        """Build the exact integer matrix once; pick the cheapest arithmetic that is exact."""
        (x,) = in_types
        fx, patterns, which = self._rows(x)
        bound = self.sum_bound(x)
        if bound >= 2**MAX_WIDTH:
            raise WidthError(
                f"dense layer sums reach {bound.bit_length()} bits, more than the {MAX_WIDTH} bits the "
                "int64 emulator represents exactly; use narrower inputs or weights")
        # every partial sum is an exact integer below 2**24 / 2**53: float32 / float64 BLAS is exact
        dtype = np.float32 if bound < 2**24 else np.float64 if bound < 2**53 else np.int64
        n_in, n_out = self.weight.shape
        mats = [tuple(a.astype(dtype) for a in self._exact_matrix(p)[:2]) for p in patterns]
        lead = x.shape[:-1]
        if len(patterns) == 1:
            M, B = mats[0]

            def run_one(inputs):
                y = inputs[0].reshape(-1, n_in).astype(dtype, copy=False) @ M
                y += B
                return y.reshape((-1,) + lead + (n_out,))
            return run_one
        groups = [np.flatnonzero(which == p) for p in range(len(patterns))]

        def run(inputs):
            v = inputs[0].reshape(len(inputs[0]), -1, n_in).astype(dtype, copy=False)
            out = np.empty(v.shape[:2] + (n_out,), dtype=dtype)
            for rows, (M, B) in zip(groups, mats):
                out[:, rows] = v[:, rows] @ M + B
            return out.reshape((-1,) + lead + (n_out,))
        return run

    def lower(self, nl, inputs, in_types, out_type) -> np.ndarray:
        (ids,) = inputs
        (x,) = in_types
        n_in, n_out = self.weight.shape
        W = self.effective_weight
        rows = ids.reshape(-1, n_in)
        xw = [[nl.wire(int(i)) for i in r] for r in rows]
        live = [tuple(i for i in range(n_in) if not xw[r][i].is_const) for r in range(len(rows))]
        graphs = {}
        for key in dict.fromkeys(live):   # one adder graph per set of live inputs, on the rows' union
            members = [r for r in range(len(rows)) if live[r] == key]
            union = [_union([xw[r][i] for r in members]) for i in key]
            graphs[key] = nl.solve(W[list(key)], union)
        out = []
        for r, key in enumerate(live):
            bias = [Fraction(float(b)) for b in self.effective_bias]
            for i in range(n_in):   # constant inputs (pruned or dead neurons) fold into the bias
                if xw[r][i].is_const:
                    c = xw[r][i].value_lo()
                    for j in np.nonzero(W[i])[0]:
                        bias[j] += Fraction(float(W[i, j])) * c
            ys = nl.linear(graphs[key], [int(rows[r][i]) for i in key])
            out.extend(nl.add(nl.const(b.numerator, b.denominator.bit_length() - 1), y) if b else y
                       for y, b in zip(ys, bias))
        return wire_array(out, out_type.shape)

    def describe(self) -> str:
        n_in, n_out = self.weight.shape
        return f"dense {n_in}->{n_out}"

    def to_json(self) -> dict:
        return {"weight": floats_to_json(self.weight), "bias": floats_to_json(self.bias),
                "weight_type": type_to_json(self.weight_type), "bias_type": type_to_json(self.bias_type)}

    @classmethod
    def from_json(cls, data: dict) -> "Dense":
        bias = floats_from_json(data["bias"])
        return cls(floats_from_json(data["weight"]).reshape(-1, len(bias)), bias,
                   type_from_json(data.get("weight_type")), type_from_json(data.get("bias_type")))


def _union(wires: list[Wire]) -> Wire:
    """The smallest wire holding every value of ``wires``."""
    f = max(w.fraction for w in wires)
    return Wire(min(w.lo << (f - w.fraction) for w in wires), max(w.hi << (f - w.fraction) for w in wires), f)
