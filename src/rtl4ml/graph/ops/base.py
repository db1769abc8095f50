"""The contract every Graph op fulfils.

An op is a frozen dataclass holding its constants. It knows three things about itself, and
nothing else in rtl4ml knows them: how to infer its exact output type, how to emulate
itself on integer codes, and how to lower itself to Netlist primitives. Backends only ever
see the primitives, so adding an op touches its own file and its tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np

from ..tensor import TensorType

if TYPE_CHECKING:  # pragma: no cover
    from ...netlist.builder import NetlistBuilder

OP_REGISTRY: dict[str, type["Op"]] = {}


class GraphError(ValueError):
    """A graph that cannot be built, typed or emulated; the message names the node."""


class Op:
    """Base class of Graph ops. Subclasses are frozen dataclasses and set ``kind``."""

    kind: ClassVar[str] = ""
    n_inputs: ClassVar[int] = 1

    def __init_subclass__(cls, **kw) -> None:
        super().__init_subclass__(**kw)
        if cls.kind:
            OP_REGISTRY[cls.kind] = cls

    def infer(self, inputs: list[TensorType]) -> TensorType:
        raise NotImplementedError

    def emulate(self, inputs: list[np.ndarray], in_types: list[TensorType], out_type: TensorType) -> np.ndarray:
        """Map int64 code arrays of shape (N, n) to the output codes, bit-exactly."""
        raise NotImplementedError

    def emulator(self, in_types: list[TensorType], out_type: TensorType):
        """A function of the input codes only, for repeated calls on batches (chunks).

        Ops with per-call setup (e.g. Dense building its integer matrix) override this to
        do the setup once.
        """
        return lambda inputs: self.emulate(inputs, in_types, out_type)

    def lower(self, nl: "NetlistBuilder", inputs: list[list[int]], in_types: list[TensorType],
              out_type: TensorType) -> list[int]:
        """Emit Netlist primitives; return the wire id of each output element."""
        raise NotImplementedError

    def to_json(self) -> dict:
        raise NotImplementedError

    @classmethod
    def from_json(cls, data: dict) -> "Op":
        raise NotImplementedError
