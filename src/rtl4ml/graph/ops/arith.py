"""Element-wise binary ops with numpy broadcasting: Add, Sub, Mul, Maximum, Minimum.

All are exact: sums and differences take the finer fraction of their operands, products
the sum of the fractions, and every interval is exact for independent operands. ``Mul`` of
two variables becomes a multiplier; with a constant operand (a :class:`Constant` node) it
is a shift-and-add tree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ...fixed import MAX_WIDTH, WidthError
from ..tensor import TensorType
from .base import GraphError, Op, batched, wire_array


def broadcast_types(a: TensorType, b: TensorType, what: str) -> tuple[TensorType, TensorType]:
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise GraphError(f"cannot {what} tensors of shapes {a.shape} and {b.shape}") from None
    return a.map(lambda v: np.broadcast_to(v, shape)), b.map(lambda v: np.broadcast_to(v, shape))


def add_types(a: TensorType, b: TensorType, sub: bool = False) -> TensorType:
    """Exact type of ``a ± b`` (broadcast)."""
    a, b = broadcast_types(a, b, "subtract" if sub else "add")
    f = np.maximum(a.fraction, b.fraction)
    (alo, ahi), (blo, bhi) = a.aligned(f), b.aligned(f)
    return TensorType(alo - bhi, ahi - blo, f) if sub else TensorType(alo + blo, ahi + bhi, f)


def mul_types(a: TensorType, b: TensorType) -> TensorType:
    """Exact type of ``a * b`` (broadcast)."""
    a, b = broadcast_types(a, b, "multiply")
    p = [a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi]
    return TensorType(np.minimum(np.minimum(p[0], p[1]), np.minimum(p[2], p[3])),
                      np.maximum(np.maximum(p[0], p[1]), np.maximum(p[2], p[3])), a.fraction + b.fraction)


def aligner(t: TensorType, f: np.ndarray):
    """Codes of type ``t`` (batch first) shifted to fractions ``f`` of the output's shape."""
    up = np.broadcast_to(f - np.broadcast_to(t.fraction, f.shape), f.shape)
    nd = f.ndim
    if not up.any():
        return lambda v: batched(v, nd)
    return lambda v: np.left_shift(batched(v, nd), up)


def check_aligned_width(types: list[TensorType], f: np.ndarray, what: str) -> None:
    """Ops that compare true values need their aligned operands to fit the int64 emulator."""
    for t in types:
        lo, hi = t.map(lambda v: np.broadcast_to(v, f.shape)).aligned(f)
        bits = max((max(abs(int(x)), abs(int(y))).bit_length() + 1 for x, y in zip(lo.flat, hi.flat)), default=0)
        if bits > MAX_WIDTH:
            raise WidthError(f"{what} compares values of {bits} bits, more than the {MAX_WIDTH} bits the int64 "
                             "emulator represents exactly")


class _Binary(Op):
    """Shared structure: two inputs, broadcast, one builder call per output element."""

    n_inputs = 2
    verb: ClassVar[str] = ""

    def lower(self, nl, inputs, in_types, out_type) -> np.ndarray:
        a, b = (np.broadcast_to(i, out_type.shape) for i in inputs)
        return wire_array([self.lower_element(nl, int(x), int(y)) for x, y in zip(a.flat, b.flat)], out_type.shape)

    def lower_element(self, nl, a: int, b: int) -> int:
        raise NotImplementedError

    def to_json(self) -> dict:
        return {}

    @classmethod
    def from_json(cls, data: dict) -> "Op":
        return cls()


class _Sum(_Binary):
    subtract: ClassVar[bool] = False

    def infer(self, inputs):
        return add_types(*inputs, sub=self.subtract)

    def emulator(self, in_types, out_type):
        fa, fb = (aligner(t, out_type.fraction) for t in in_types)
        if self.subtract:
            return lambda inputs: fa(inputs[0]) - fb(inputs[1])
        return lambda inputs: fa(inputs[0]) + fb(inputs[1])

    def lower_element(self, nl, a, b):
        return nl.add(a, b, 0, self.subtract)


@dataclass(frozen=True)
class Add(_Sum):
    """``a + b``."""

    kind = "add"


@dataclass(frozen=True)
class Sub(_Sum):
    """``a - b``."""

    kind = "sub"
    subtract = True


@dataclass(frozen=True)
class Mul(_Binary):
    """``a * b``: a variable-by-variable multiplier, or shift-and-add by a constant."""

    kind = "mul"

    def infer(self, inputs):
        return mul_types(*inputs)

    def emulator(self, in_types, out_type):
        nd = len(out_type.shape)
        return lambda inputs: batched(inputs[0], nd) * batched(inputs[1], nd)

    def lower_element(self, nl, a, b):
        return nl.mul(a, b)


class _Extremum(_Binary):
    pick: ClassVar = None

    def infer(self, inputs):
        a, b = broadcast_types(*inputs, self.kind)
        f = np.maximum(a.fraction, b.fraction)
        (alo, ahi), (blo, bhi) = a.aligned(f), b.aligned(f)
        return TensorType(type(self).pick(alo, blo), type(self).pick(ahi, bhi), f)

    def emulator(self, in_types, out_type):
        check_aligned_width(in_types, out_type.fraction, f"{self.kind}")
        fa, fb = (aligner(t, out_type.fraction) for t in in_types)
        pick = type(self).pick
        return lambda inputs: pick(fa(inputs[0]), fb(inputs[1]))


@dataclass(frozen=True)
class Maximum(_Extremum):
    """Element-wise ``max(a, b)``."""

    kind = "maximum"
    pick = np.maximum

    def lower_element(self, nl, a, b):
        return nl.maximum(a, b)


@dataclass(frozen=True)
class Minimum(_Extremum):
    """Element-wise ``min(a, b)``."""

    kind = "minimum"
    pick = np.minimum

    def lower_element(self, nl, a, b):
        return nl.minimum(a, b)


#: Inputs of up to this many bits are squared by a table: 2**8 entries of 16 bits are 64 LUT6,
#: what an 8x8 LUT multiplier costs, in one LUT level (a multiplier's adder tree needs
#: several, too slow for a 2.5 ns clock).
SQUARE_TABLE_BITS = 8


@dataclass(frozen=True)
class Square(Op):
    """``x * x``: a multiplier whose result is known to be non-negative, so it is one bit
    narrower than a product of two independent operands of the same range (squared errors)."""

    kind = "square"

    def infer(self, inputs):
        (x,) = inputs
        a, b = x.lo * x.lo, x.hi * x.hi
        lo = np.where((x.lo <= 0) & (x.hi >= 0), 0, np.minimum(a, b))
        return TensorType(lo, np.maximum(a, b), 2 * x.fraction)

    def emulator(self, in_types, out_type):
        return lambda inputs: inputs[0] * inputs[0]

    def lower(self, nl, inputs, in_types, out_type) -> np.ndarray:
        return wire_array([self._square(nl, int(w)) for w in inputs[0].flat], out_type.shape)

    @staticmethod
    def _square(nl, w: int) -> int:
        """A table of squares up to :data:`SQUARE_TABLE_BITS` input bits (as few LUTs as the
        multiplier there, and one LUT level instead of an adder tree), a multiplier beyond."""
        wire = nl.wire(w)
        if not wire.is_const and wire.width <= SQUARE_TABLE_BITS:
            return nl.lookup(w, [c * c for c in range(wire.lo, wire.hi + 1)], 2 * wire.fraction)
        return nl.square(w)

    def to_json(self) -> dict:
        return {}

    @classmethod
    def from_json(cls, data: dict) -> "Square":
        return cls()
