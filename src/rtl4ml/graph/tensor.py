"""Exact per-element tensor types of the Graph IR.

A tensor of shape ``s`` (the batch dimension is never part of it) has, per element, an
integer code ``q`` at scale ``2**-fraction`` whose value lies in ``[lo, hi]`` (codes, exact
Python integers in object arrays of shape ``s``). Signedness and widths are derived from
the interval, so a type is always the narrowest one that holds every reachable value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property

import numpy as np

from ..fixed import FixedTypeArray, Interval, Wire, code_width


def int_array(values, shape=None) -> np.ndarray:
    """An object array of exact Python ints (never wraps, whatever the width)."""
    a = np.asarray(values, dtype=object)
    out = np.empty(a.shape, dtype=object)
    out.flat[:] = [int(v) for v in a.flat]
    return out if shape is None else out.reshape(shape)


def aligned_codes(codes: np.ndarray, fraction: np.ndarray, to: np.ndarray) -> np.ndarray:
    """Exact ``codes * 2**(to - fraction)`` (``to >= fraction``) as Python ints."""
    return codes << (np.asarray(to, dtype=np.int64) - fraction).astype(object)


@dataclass(frozen=True, eq=False)
class TensorType:
    """Exact code intervals ``[lo, hi]`` and fractional bits, one per element of a tensor."""

    lo: np.ndarray
    hi: np.ndarray
    fraction: np.ndarray

    def __post_init__(self) -> None:
        lo, hi = int_array(self.lo), int_array(self.hi)
        try:
            if hi.shape != lo.shape:
                raise ValueError
            f = np.broadcast_to(np.asarray(self.fraction, dtype=np.int64), lo.shape).copy()
        except ValueError:
            raise ValueError(f"TensorType arrays must have the same shape, got {lo.shape}, {hi.shape} and "
                             f"{np.shape(self.fraction)}") from None
        if np.any(lo > hi):
            raise ValueError("TensorType has an empty interval")
        for a in (lo, hi, f):
            a.setflags(write=False)
        object.__setattr__(self, "lo", lo)
        object.__setattr__(self, "hi", hi)
        object.__setattr__(self, "fraction", f)

    @classmethod
    def from_types(cls, t: FixedTypeArray) -> "TensorType":
        """The full range of each element's fixed-point type."""
        return cls(int_array(t.min_q), int_array(t.max_q), t.fraction)

    @classmethod
    def from_wires(cls, wires: list[Wire], shape: tuple[int, ...]) -> "TensorType":
        return cls(int_array([w.lo for w in wires], shape), int_array([w.hi for w in wires], shape),
                   np.array([w.fraction for w in wires], dtype=np.int64).reshape(shape))

    # ------------------------------------------------------------------ shape

    @property
    def shape(self) -> tuple[int, ...]:
        return self.lo.shape

    @property
    def ndim(self) -> int:
        return self.lo.ndim

    @property
    def size(self) -> int:
        return self.lo.size

    def __len__(self) -> int:
        return self.size

    def map(self, fn: Callable[[np.ndarray], np.ndarray]) -> "TensorType":
        """The same index transform (reshape, transpose, slice, broadcast) on every array."""
        return TensorType(fn(self.lo), fn(self.hi), fn(self.fraction))

    # ------------------------------------------------------------------ widths

    @cached_property
    def _widths(self) -> tuple[np.ndarray, np.ndarray]:
        sw = [code_width(a, b) for a, b in zip(self.lo.flat, self.hi.flat)]
        return (np.array([s for s, _ in sw], dtype=bool).reshape(self.shape),
                np.array([w for _, w in sw], dtype=np.int64).reshape(self.shape))

    @property
    def signed(self) -> np.ndarray:
        return self._widths[0]

    @property
    def width(self) -> np.ndarray:
        return self._widths[1]

    @property
    def integer(self) -> np.ndarray:
        """Integer bits excluding the sign (may be negative)."""
        return self.width - self.signed - self.fraction

    def max_width(self) -> int:
        return int(self.width.max(initial=0))

    def is_const(self) -> np.ndarray:
        return np.asarray(self.lo == self.hi, dtype=bool)

    # ------------------------------------------------------------------ elements

    def wire(self, idx) -> Wire:
        """The type of one element (a flat index or an index tuple)."""
        if isinstance(idx, (int, np.integer)):
            idx = np.unravel_index(int(idx), self.shape) if self.shape else ()
        return Wire(int(self.lo[idx]), int(self.hi[idx]), int(self.fraction[idx]))

    def wires(self) -> list[Wire]:
        """Every element's type, row-major."""
        return [Wire(int(a), int(b), int(f)) for a, b, f in zip(self.lo.flat, self.hi.flat, self.fraction.flat)]

    def interval(self, idx) -> Interval:
        w = self.wire(idx)
        scale = Fraction(2) ** w.fraction
        return Interval(Fraction(w.lo) / scale, Fraction(w.hi) / scale)

    def aligned(self, to: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(lo, hi)`` at fractions ``to`` (each at least the element's own fraction)."""
        return aligned_codes(self.lo, self.fraction, to), aligned_codes(self.hi, self.fraction, to)

    def describe(self) -> str:
        w = self.width
        shape = "x".join(map(str, self.shape)) or "scalar"
        return f"{shape}, width {int(w.min(initial=0))}..{int(w.max(initial=0))} bits"
