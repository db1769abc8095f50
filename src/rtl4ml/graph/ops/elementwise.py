"""Element-wise ops: ReLU, Quantize and Add."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...fixed import FixedTypeArray, check_width, quantized_range, requantize
from ..tensor import TensorType
from .base import GraphError, Op
from .serial import types_from_json, types_to_json


@dataclass(frozen=True)
class ReLU(Op):
    """``max(x, 0)``: exact, never rounds."""

    kind = "relu"

    def infer(self, inputs: list[TensorType]) -> TensorType:
        (x,) = inputs
        return TensorType([max(v, 0) for v in x.lo], [max(v, 0) for v in x.hi], x.fraction)

    def emulate(self, inputs, in_types, out_type) -> np.ndarray:
        return np.maximum(inputs[0], 0)

    def lower(self, nl, inputs, in_types, out_type) -> list[int]:
        return [nl.relu(w) for w in inputs[0]]

    def to_json(self) -> dict:
        return {}

    @classmethod
    def from_json(cls, data: dict) -> "ReLU":
        return cls()


@dataclass(frozen=True, eq=False)
class Quantize(Op):
    """Round then handle overflow, element by element, to ``types``. The only op that rounds."""

    types: FixedTypeArray
    kind = "quantize"

    def infer(self, inputs: list[TensorType]) -> TensorType:
        (x,) = inputs
        if len(x) != len(self.types):
            raise GraphError(f"quantizer has {len(self.types)} types for an input of {len(x)} elements")
        r = [quantized_range(lo, hi, int(f), self.types[i])
             for i, (lo, hi, f) in enumerate(zip(x.lo, x.hi, x.fraction))]
        return TensorType([a for a, _ in r], [b for _, b in r], self.types.fraction)

    def emulate(self, inputs, in_types, out_type) -> np.ndarray:
        return requantize(inputs[0], in_types[0].fraction, self.types)

    def lower(self, nl, inputs, in_types, out_type) -> list[int]:
        return [nl.quant(w, self.types[i]) for i, w in enumerate(inputs[0])]

    def to_json(self) -> dict:
        return {"types": types_to_json(self.types)}

    @classmethod
    def from_json(cls, data: dict) -> "Quantize":
        return cls(types_from_json(data["types"]))


def _aligned(x: TensorType, f: np.ndarray, bound: str):
    vals = x.lo if bound == "lo" else x.hi
    return [int(v) << int(ff - xf) for v, ff, xf in zip(vals, f, x.fraction)]


@dataclass(frozen=True)
class Add(Op):
    """Element-wise ``a + b``, exact: the finer fraction of the two, widths from intervals."""

    kind = "add"
    n_inputs = 2

    def infer(self, inputs: list[TensorType]) -> TensorType:
        a, b = inputs
        if len(a) != len(b):
            raise GraphError(f"cannot add tensors of {len(a)} and {len(b)} elements")
        f = np.maximum(a.fraction, b.fraction)
        lo = [x + y for x, y in zip(_aligned(a, f, "lo"), _aligned(b, f, "lo"))]
        hi = [x + y for x, y in zip(_aligned(a, f, "hi"), _aligned(b, f, "hi"))]
        return TensorType(lo, hi, f)

    def emulate(self, inputs, in_types, out_type) -> np.ndarray:
        check_width(out_type.width, "an Add output")
        f = out_type.fraction
        a, b = inputs
        return np.left_shift(a, f - in_types[0].fraction) + np.left_shift(b, f - in_types[1].fraction)

    def lower(self, nl, inputs, in_types, out_type) -> list[int]:
        return [nl.add(a, b) for a, b in zip(*inputs)]

    def to_json(self) -> dict:
        return {}

    @classmethod
    def from_json(cls, data: dict) -> "Add":
        return cls()
