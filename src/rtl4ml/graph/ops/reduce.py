"""Reduce: the sum, maximum or minimum over some axes (sets of particles, positions).

A sum is exact (the finest fraction of the reduced elements, the sum of their intervals)
and becomes a balanced adder tree; a maximum or minimum becomes a tree of comparators and
selects. A mean is a sum followed by a constant multiplication (the frontends do that).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..tensor import TensorType
from .arith import check_aligned_width
from .base import GraphError, Op, wire_array

REDUCTIONS = ("sum", "max", "min")


@dataclass(frozen=True)
class Reduce(Op):
    """``reduction`` in :data:`REDUCTIONS` over ``axes`` (of the input, batch excluded)."""

    reduction: str
    axes: tuple[int, ...]
    keepdims: bool = False
    kind = "reduce"

    def __post_init__(self) -> None:
        if self.reduction not in REDUCTIONS:
            raise GraphError(f"unknown reduction {self.reduction!r}; expected one of {REDUCTIONS}")
        object.__setattr__(self, "axes", tuple(sorted({int(a) for a in self.axes})))

    def _check(self, x: TensorType) -> None:
        if not self.axes or any(not 0 <= a < x.ndim for a in self.axes):
            raise GraphError(f"cannot reduce axes {self.axes} of a tensor of shape {x.shape}")

    def _aligned(self, x: TensorType) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Output fractions (kept dims) and the input bounds aligned to them."""
        f = x.fraction.max(axis=self.axes, keepdims=True)
        lo, hi = x.aligned(np.broadcast_to(f, x.shape))
        return f, lo, hi

    def infer(self, inputs: list[TensorType]) -> TensorType:
        (x,) = inputs
        self._check(x)
        f, lo, hi = self._aligned(x)
        fn = {"sum": np.sum, "max": np.max, "min": np.min}[self.reduction]
        out = TensorType(fn(lo, axis=self.axes, keepdims=True), fn(hi, axis=self.axes, keepdims=True), f)
        return out if self.keepdims else out.map(lambda v: v.squeeze(self.axes))

    def emulator(self, in_types, out_type):
        (x,) = in_types
        f, _, _ = self._aligned(x)
        if self.reduction != "sum":
            check_aligned_width([x], np.broadcast_to(f, x.shape), f"{self.reduction} reduction")
        up = np.broadcast_to(f, x.shape) - x.fraction
        axes = tuple(a + 1 for a in self.axes)
        fn = {"sum": np.sum, "max": np.max, "min": np.min}[self.reduction]
        shape = out_type.shape
        return lambda inputs: fn(np.left_shift(inputs[0], up), axis=axes).reshape((len(inputs[0]),) + shape)

    def lower(self, nl, inputs, in_types, out_type) -> np.ndarray:
        (x,) = in_types
        keep = [a for a in range(x.ndim) if a not in self.axes]
        rows = inputs[0].transpose(keep + list(self.axes)).reshape(-1, int(np.prod([x.shape[a] for a in self.axes])))
        combine = {"sum": nl.add, "max": nl.maximum, "min": nl.minimum}[self.reduction]
        return wire_array([_tree(combine, [int(w) for w in r]) for r in rows], out_type.shape)

    def describe(self) -> str:
        return f"{self.reduction} over axes {self.axes}"

    def to_json(self) -> dict:
        return {"reduction": self.reduction, "axes": list(self.axes), "keepdims": self.keepdims}

    @classmethod
    def from_json(cls, data: dict) -> "Reduce":
        return cls(data["reduction"], tuple(data["axes"]), bool(data.get("keepdims", False)))


def _tree(combine, wires: list[int]) -> int:
    """A balanced tree of ``combine`` over ``wires`` (fewest levels)."""
    while len(wires) > 1:
        wires = [combine(wires[i], wires[i + 1]) for i in range(0, len(wires) - 1, 2)] + \
                ([wires[-1]] if len(wires) % 2 else [])
    return wires[0]
