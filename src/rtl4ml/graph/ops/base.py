"""The contract every Graph op fulfils.

An op is a frozen dataclass holding its constants. It knows three things about itself, and
nothing else in rtl4ml knows them: how to infer its exact output type (shape included) from
its input types, how to emulate itself on integer codes, and how to lower itself to Netlist
primitives. Backends only ever see the primitives, so adding an op touches its own file and
its tests. A subclass that leaves part of the contract undefined is refused when the class
is created.

Shapes never include the batch: an emulator maps arrays of shape ``(N, *input shape)`` to
``(N, *output shape)``; ``lower`` maps arrays of wire ids of the input shapes to one of the
output shape. Codes are exact integers; an op with ``float_codes`` may receive and return
them as integer-valued float32/float64 arrays (exact below 2**24 / 2**53, which the op
proves from the types before choosing that arithmetic).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from ..tensor import TensorType

if TYPE_CHECKING:  # pragma: no cover
    from ...netlist.builder import NetlistBuilder

OP_REGISTRY: dict[str, type["Op"]] = {}

#: What every op defines itself.
OP_METHODS = ("infer", "emulator", "lower", "to_json", "from_json")

#: ``emulator`` returns one of these: input code arrays to the output code array.
Emulator = Callable[[list[np.ndarray]], np.ndarray]


class GraphError(ValueError):
    """A graph that cannot be built, typed or emulated; the message names the node."""


class Op:
    """Base of Graph ops. Subclasses are frozen dataclasses and set ``kind``.

    ``n_inputs`` is the number of inputs, or None for any number of at least one.
    """

    kind: ClassVar[str] = ""
    n_inputs: ClassVar[int | None] = 1
    #: Whether the emulator accepts codes held as integer-valued floats (what the fast float32
    #: and float64 kernels produce). Ops that shift or multiply codes get int64 instead.
    float_codes: ClassVar[bool] = False

    def __init_subclass__(cls, **kw) -> None:
        super().__init_subclass__(**kw)
        if not cls.kind:
            return
        own = [c for c in cls.__mro__ if c is not Op and issubclass(c, Op)]
        missing = [m for m in OP_METHODS if not any(m in c.__dict__ for c in own)]
        if missing:
            raise TypeError(f"op {cls.__name__} does not define {', '.join(missing)}")
        OP_REGISTRY[cls.kind] = cls

    def infer(self, inputs: list[TensorType]) -> TensorType:
        """The exact output type; raise :class:`GraphError` saying what does not fit."""
        raise NotImplementedError

    def emulator(self, in_types: list[TensorType], out_type: TensorType) -> Emulator:
        """A function of the input codes (int64, batch first) returning the output codes,
        bit-exactly, with any per-call setup (e.g. an integer matrix) done once here."""
        raise NotImplementedError

    def lower(self, nl: "NetlistBuilder", inputs: list[np.ndarray], in_types: list[TensorType],
              out_type: TensorType) -> np.ndarray:
        """Emit Netlist primitives; return the wire ids of the output, shaped like it."""
        raise NotImplementedError

    def to_json(self) -> dict:
        raise NotImplementedError

    @classmethod
    def from_json(cls, data: dict) -> "Op":
        raise NotImplementedError

    def describe(self) -> str:
        """A short human description of the op's parameters (for reports and errors)."""
        return self.kind


def wire_array(ids, shape: tuple[int, ...]) -> np.ndarray:
    """Wire ids as an int64 array of ``shape``."""
    return np.asarray(ids, dtype=np.int64).reshape(shape)


def batched(v: np.ndarray, ndim: int) -> np.ndarray:
    """Batch-first codes with unit axes inserted after the batch so that they broadcast
    against a tensor of ``ndim`` dimensions (numpy aligns shapes from the right)."""
    return v.reshape((v.shape[0],) + (1,) * (ndim - (v.ndim - 1)) + v.shape[1:])
