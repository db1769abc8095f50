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


@dataclass(frozen=True)
class Argmax(Op):
    """The index of the largest element along ``axis`` (the first one on ties, as numpy):
    a classifier's decision without its softmax, which is monotonic and so never changes it.
    A tournament of comparators carries each winner's value and index."""

    axis: int = -1
    kind = "argmax"

    def _axis(self, x: TensorType) -> int:
        if not -x.ndim <= self.axis < x.ndim:
            raise GraphError(f"argmax over axis {self.axis} of a tensor of shape {x.shape}")
        return self.axis % x.ndim

    def infer(self, inputs: list[TensorType]) -> TensorType:
        (x,) = inputs
        ax = self._axis(x)
        shape = x.shape[:ax] + x.shape[ax + 1:]
        return TensorType(np.zeros(shape, dtype=object), np.full(shape, x.shape[ax] - 1, dtype=object), 0)

    def emulator(self, in_types, out_type):
        (x,) = in_types
        ax = self._axis(x) + 1
        f = x.fraction.max()
        check_aligned_width([x], np.full(x.shape, f), "argmax")
        up = f - x.fraction
        return lambda inputs: np.argmax(np.left_shift(inputs[0].astype(np.int64), up), axis=ax).astype(np.int64)

    def lower(self, nl, inputs, in_types, out_type) -> np.ndarray:
        (x,) = in_types
        ax = self._axis(x)
        rows = np.moveaxis(inputs[0], ax, -1).reshape(-1, x.shape[ax])
        out = []
        for r in rows:
            cands = [(int(w), nl.const(i, 0)) for i, w in enumerate(r)]
            while len(cands) > 1:   # the later candidate wins only if strictly larger: first index on ties
                nxt = []
                for (va, ia), (vb, ib) in zip(cands[::2], cands[1::2]):
                    c = nl.compare("gt", vb, va)
                    nxt.append((nl.select(c, vb, va), nl.select(c, ib, ia)))
                cands = nxt + ([cands[-1]] if len(cands) % 2 else [])
            out.append(cands[0][1])
        return wire_array(out, out_type.shape)

    def describe(self) -> str:
        return f"argmax over axis {self.axis}"

    def to_json(self) -> dict:
        return {"axis": self.axis}

    @classmethod
    def from_json(cls, data: dict) -> "Argmax":
        return cls(int(data.get("axis", -1)))
