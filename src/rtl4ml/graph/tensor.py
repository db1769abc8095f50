"""Exact per-element tensor types of the Graph IR.

A tensor element ``i`` is an integer code ``q`` at scale ``2**-fraction[i]`` whose value lies
in ``[lo[i], hi[i]]`` (codes, exact Python integers). Signedness and widths are derived from
the interval, so a type is always the narrowest one that holds every reachable value.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..fixed import FixedTypeArray, Interval, code_width


def int_array(values) -> np.ndarray:
    """A 1-D object array of exact Python ints (never wraps, whatever the width)."""
    out = np.empty(len(values), dtype=object)
    out[:] = [int(v) for v in values]
    return out


@dataclass(frozen=True, eq=False)
class TensorType:
    """Exact code intervals ``[lo, hi]`` and fractional bits, one per element of a 1-D tensor."""

    lo: np.ndarray
    hi: np.ndarray
    fraction: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "lo", int_array(self.lo))
        object.__setattr__(self, "hi", int_array(self.hi))
        object.__setattr__(self, "fraction", np.asarray(self.fraction, dtype=np.int64).reshape(-1).copy())
        if not (len(self.lo) == len(self.hi) == len(self.fraction)):
            raise ValueError("TensorType arrays must have the same length")
        if any(a > b for a, b in zip(self.lo, self.hi)):
            raise ValueError("TensorType has an empty interval")

    @classmethod
    def from_types(cls, t: FixedTypeArray) -> "TensorType":
        """The full range of each element's fixed-point type."""
        return cls(t.min_q.reshape(-1), t.max_q.reshape(-1), t.fraction.reshape(-1))

    def __len__(self) -> int:
        return len(self.lo)

    @property
    def size(self) -> int:
        return len(self.lo)

    @property
    def signed(self) -> np.ndarray:
        return np.array([code_width(a, b)[0] for a, b in zip(self.lo, self.hi)], dtype=bool)

    @property
    def width(self) -> np.ndarray:
        return np.array([code_width(a, b)[1] for a, b in zip(self.lo, self.hi)], dtype=np.int64)

    @property
    def integer(self) -> np.ndarray:
        """Integer bits excluding the sign (may be negative)."""
        return self.width - self.signed - self.fraction

    def interval(self, i: int) -> Interval:
        scale = Fraction(2) ** int(self.fraction[i])
        return Interval(Fraction(self.lo[i]) / scale, Fraction(self.hi[i]) / scale)

    def describe(self) -> str:
        w = self.width
        return f"{len(self)} elements, width {int(w.min()) if len(w) else 0}..{int(w.max()) if len(w) else 0} bits"
