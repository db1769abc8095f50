"""Sources: Input (the graph's entry points) and Constant (a tensor of fixed values)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...cmvm import dyadic
from ...fixed import FixedType, FixedTypeArray, WidthError, check_width, quantize
from ..tensor import TensorType, int_array
from .base import GraphError, Op, wire_array
from .serial import floats_from_json, floats_to_json, type_from_json, type_to_json, types_from_json, types_to_json


@dataclass(frozen=True, eq=False)
class Input(Op):
    """Input codes arrive already quantized to ``types`` (shape = the input's shape); the
    full type range is reachable."""

    types: FixedTypeArray
    kind = "input"
    n_inputs = 0

    @property
    def shape(self) -> tuple[int, ...]:
        return self.types.shape

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def infer(self, inputs: list[TensorType]) -> TensorType:
        return TensorType.from_types(self.types)

    def emulator(self, in_types, out_type):
        raise TypeError("Input nodes are fed by the emulator, not emulated")

    def lower(self, nl, inputs, in_types, out_type) -> np.ndarray:
        return wire_array([nl.input(w) for w in out_type.wires()], out_type.shape)

    def to_json(self) -> dict:
        return {"types": types_to_json(self.types)}

    @classmethod
    def from_json(cls, data: dict) -> "Input":
        return cls(types_from_json(data["types"]))


def exact_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes (object ints) and fractions of finite float64 values, each exactly ``q * 2**-f``
    with ``q`` odd (or 0 at fraction 0)."""
    codes = np.zeros(values.shape, dtype=object)
    frac = np.zeros(values.shape, dtype=np.int64)
    for idx in np.ndindex(*values.shape):   # 0-d arrays included
        if values[idx] == 0:
            continue
        m, e = dyadic(float(values[idx]))
        codes[idx], frac[idx] = m, -e
    return codes, frac


@dataclass(frozen=True, eq=False)
class Constant(Op):
    """A constant tensor. With ``type``, the values are first quantized to it (a constant of a
    float model, e.g. ``x * 0.45``, gets the weight type); without, every float64 value is
    taken exactly."""

    values: np.ndarray
    type: FixedType | None = None
    kind = "constant"
    n_inputs = 0

    def __post_init__(self) -> None:
        v = np.array(self.values, dtype=np.float64)
        if not np.all(np.isfinite(v)):
            idx = tuple(int(i) for i in np.argwhere(~np.isfinite(v))[0])
            raise GraphError(f"constant has a non-finite value {float(v[idx])} at index {idx}")
        v.setflags(write=False)
        object.__setattr__(self, "values", v)

    @property
    def effective(self) -> np.ndarray:
        """The exact values the hardware uses."""
        return self.values if self.type is None else quantize(self.values, self.type)

    def infer(self, inputs: list[TensorType]) -> TensorType:
        codes, frac = exact_codes(self.effective)
        return TensorType(codes, int_array(codes), frac)

    def emulator(self, in_types, out_type):
        try:
            check_width(out_type.width, "a constant")
        except WidthError as e:
            raise GraphError(str(e)) from None
        q = out_type.lo.astype(np.int64)
        return lambda inputs: q[None]   # the graph broadcasts a source to the batch

    def lower(self, nl, inputs, in_types, out_type) -> np.ndarray:
        return wire_array([nl.const(w.lo, w.fraction) for w in out_type.wires()], out_type.shape)

    def to_json(self) -> dict:
        return {"values": floats_to_json(self.values), "type": type_to_json(self.type)}

    @classmethod
    def from_json(cls, data: dict) -> "Constant":
        return cls(floats_from_json(data["values"]), type_from_json(data.get("type")))
