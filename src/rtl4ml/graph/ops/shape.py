"""Wiring ops: Reshape, Transpose, Slice and Concat. They move elements, never compute, so
they cost no hardware: lowering only rearranges wire ids."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..tensor import TensorType
from .base import GraphError, Op


@dataclass(frozen=True)
class Reshape(Op):
    """The same elements, row-major, in ``shape`` (which excludes the batch)."""

    shape: tuple[int, ...]
    kind = "reshape"
    float_codes = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))

    def infer(self, inputs: list[TensorType]) -> TensorType:
        (x,) = inputs
        if int(np.prod(self.shape, dtype=np.int64)) != x.size:
            raise GraphError(f"cannot reshape a tensor of shape {x.shape} ({x.size} elements) to {self.shape}")
        return x.map(lambda v: v.reshape(self.shape))

    def emulator(self, in_types, out_type):
        return lambda inputs: inputs[0].reshape((len(inputs[0]),) + self.shape)

    def lower(self, nl, inputs, in_types, out_type) -> np.ndarray:
        return inputs[0].reshape(self.shape)

    def to_json(self) -> dict:
        return {"shape": list(self.shape)}

    @classmethod
    def from_json(cls, data: dict) -> "Reshape":
        return cls(tuple(data["shape"]))


@dataclass(frozen=True)
class Transpose(Op):
    """Axes permuted: output axis ``k`` is input axis ``perm[k]``."""

    perm: tuple[int, ...]
    kind = "transpose"
    float_codes = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "perm", tuple(int(p) for p in self.perm))

    def infer(self, inputs: list[TensorType]) -> TensorType:
        (x,) = inputs
        if sorted(self.perm) != list(range(x.ndim)):
            raise GraphError(f"permutation {self.perm} does not fit a tensor of shape {x.shape}")
        return x.map(lambda v: v.transpose(self.perm))

    def emulator(self, in_types, out_type):
        axes = (0,) + tuple(p + 1 for p in self.perm)
        return lambda inputs: inputs[0].transpose(axes)

    def lower(self, nl, inputs, in_types, out_type) -> np.ndarray:
        return inputs[0].transpose(self.perm)

    def to_json(self) -> dict:
        return {"perm": list(self.perm)}

    @classmethod
    def from_json(cls, data: dict) -> "Transpose":
        return cls(tuple(data["perm"]))


@dataclass(frozen=True)
class Slice(Op):
    """``x[start:stop:step, ...]``: one ``(start, stop, step)`` per leading axis (steps > 0)."""

    slices: tuple[tuple[int, int, int], ...]
    kind = "slice"
    float_codes = True

    def __post_init__(self) -> None:
        sl = tuple(tuple(int(v) for v in s) for s in self.slices)
        if any(len(s) != 3 or s[2] < 1 for s in sl):
            raise GraphError(f"slices must be (start, stop, step) with step >= 1, got {self.slices}")
        object.__setattr__(self, "slices", sl)

    @property
    def index(self) -> tuple[slice, ...]:
        return tuple(slice(*s) for s in self.slices)

    def infer(self, inputs: list[TensorType]) -> TensorType:
        (x,) = inputs
        if len(self.slices) > x.ndim:
            raise GraphError(f"{len(self.slices)} slices for a tensor of shape {x.shape}")
        y = x.map(lambda v: v[self.index])
        if y.size == 0:
            raise GraphError(f"slice {self.slices} of a tensor of shape {x.shape} is empty")
        return y

    def emulator(self, in_types, out_type):
        idx = (slice(None),) + self.index
        return lambda inputs: inputs[0][idx]

    def lower(self, nl, inputs, in_types, out_type) -> np.ndarray:
        return inputs[0][self.index]

    def to_json(self) -> dict:
        return {"slices": [list(s) for s in self.slices]}

    @classmethod
    def from_json(cls, data: dict) -> "Slice":
        return cls(tuple(tuple(s) for s in data["slices"]))


@dataclass(frozen=True)
class Concat(Op):
    """Inputs joined along ``axis`` (all other axes equal)."""

    axis: int
    kind = "concat"
    n_inputs = None

    def infer(self, inputs: list[TensorType]) -> TensorType:
        shapes = [x.shape for x in inputs]
        nd = len(shapes[0])
        if not 0 <= self.axis < nd or any(len(s) != nd or s[:self.axis] + s[self.axis + 1:] !=
                                          shapes[0][:self.axis] + shapes[0][self.axis + 1:] for s in shapes):
            raise GraphError(f"cannot concatenate shapes {shapes} along axis {self.axis}")
        return TensorType(*(np.concatenate([getattr(x, a) for x in inputs], axis=self.axis)
                            for a in ("lo", "hi", "fraction")))

    def emulator(self, in_types, out_type):
        return lambda inputs: np.concatenate(inputs, axis=self.axis + 1)

    def lower(self, nl, inputs, in_types, out_type) -> np.ndarray:
        return np.concatenate(inputs, axis=self.axis)

    def to_json(self) -> dict:
        return {"axis": self.axis}

    @classmethod
    def from_json(cls, data: dict) -> "Concat":
        return cls(int(data["axis"]))
