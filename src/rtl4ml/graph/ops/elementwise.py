"""Element-wise unary ops: ReLU and Quantize (the only op that rounds)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...fixed import FixedPointError, FixedTypeArray, quantized_range, requantizer
from ..tensor import TensorType, int_array
from .base import GraphError, Op, wire_array
from .serial import types_from_json, types_to_json


@dataclass(frozen=True)
class ReLU(Op):
    """``max(x, 0)``: exact, never rounds."""

    kind = "relu"
    float_codes = True

    def infer(self, inputs: list[TensorType]) -> TensorType:
        (x,) = inputs
        return TensorType(np.maximum(x.lo, 0), np.maximum(x.hi, 0), x.fraction)

    def emulator(self, in_types, out_type):
        return lambda inputs: np.maximum(inputs[0], 0)

    def lower(self, nl, inputs, in_types, out_type) -> np.ndarray:
        return wire_array([nl.relu(int(w)) for w in inputs[0].flat], out_type.shape)

    def to_json(self) -> dict:
        return {}

    @classmethod
    def from_json(cls, data: dict) -> "ReLU":
        return cls()


@dataclass(frozen=True, eq=False)
class Quantize(Op):
    """Round then handle overflow, element by element, to ``types`` (of the input's shape,
    or a shape that broadcasts to it, e.g. one type per feature)."""

    types: FixedTypeArray
    kind = "quantize"
    float_codes = True

    def _types(self, x: TensorType) -> FixedTypeArray:
        try:
            return self.types.broadcast_to(x.shape)
        except FixedPointError:
            raise GraphError(f"quantizer has types of shape {self.types.shape} for an input of shape {x.shape}") \
                from None

    def infer(self, inputs: list[TensorType]) -> TensorType:
        (x,) = inputs
        t = self._types(x)
        r = [quantized_range(lo, hi, int(f), t[idx]) for idx, lo, hi, f in
             zip(np.ndindex(*x.shape), x.lo.flat, x.hi.flat, x.fraction.flat)]
        return TensorType(int_array([a for a, _ in r], x.shape), int_array([b for _, b in r], x.shape), t.fraction)

    def emulator(self, in_types, out_type):
        (x,) = in_types
        run = requantizer(x.fraction, self._types(x), x.lo, x.hi)
        return lambda inputs: run(inputs[0])

    def lower(self, nl, inputs, in_types, out_type) -> np.ndarray:
        t = self._types(in_types[0])
        return wire_array([nl.quant(int(w), t[idx]) for idx, w in zip(np.ndindex(*t.shape), inputs[0].flat)],
                          out_type.shape)

    def to_json(self) -> dict:
        return {"types": types_to_json(self.types)}

    @classmethod
    def from_json(cls, data: dict) -> "Quantize":
        return cls(types_from_json(data["types"]))
