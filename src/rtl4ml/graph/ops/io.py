"""Input: the graph's entry point, one fixed-point type per element."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...fixed import FixedTypeArray
from ...netlist.ir import Wire
from ..tensor import TensorType
from .base import Op
from .serial import types_from_json, types_to_json


@dataclass(frozen=True, eq=False)
class Input(Op):
    """Input codes arrive already quantized to ``types``; the full type range is reachable."""

    types: FixedTypeArray
    kind = "input"
    n_inputs = 0

    @property
    def size(self) -> int:
        return len(self.types)

    def infer(self, inputs: list[TensorType]) -> TensorType:
        return TensorType.from_types(self.types)

    def emulate(self, inputs, in_types, out_type) -> np.ndarray:
        raise TypeError("Input nodes are fed by the emulator, not emulated")

    def lower(self, nl, inputs, in_types, out_type) -> list[int]:
        return [nl.input(Wire(lo, hi, int(f))) for lo, hi, f in zip(out_type.lo, out_type.hi, out_type.fraction)]

    def to_json(self) -> dict:
        return {"types": types_to_json(self.types)}

    @classmethod
    def from_json(cls, data: dict) -> "Input":
        return cls(types_from_json(data["types"]))
