"""The Netlist IR: scalar fixed-point wires and the small, fixed set of hardware primitives.

Every primitive produces one wire whose exact code interval and fractional bits are stored
with it (:class:`Wire`). Widths follow from the interval, so an adder is only as wide as
the values it can carry; two's-complement arithmetic modulo ``2**width`` then gives the
exact result, which is what lets the Verilog backend compute every adder at its output
width.

Primitive ids are positions in ``Netlist.prims``; arguments always point backwards, so the
tuple is a topological order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from fractions import Fraction

from ..fixed import FixedType, Wire


@dataclass(frozen=True)
class Prim:
    """Base of all primitives: ``wire`` is the type of the value the primitive produces."""

    wire: Wire

    @property
    def args(self) -> tuple[int, ...]:
        """Ids of the wires this primitive reads."""
        return ()

    def with_args(self, args: Sequence[int]) -> Prim:
        """The same primitive reading wires ``args`` instead (in the order of :attr:`args`);
        passes renumber wires with it. Operand fields are named ``a`` and ``b``."""
        return replace(self, **dict(zip(("a", "b"), args))) if args else self

    def key(self) -> tuple:
        """Structural identity (everything but the result type), for hash-consing."""
        return (type(self).__name__,) + tuple(getattr(self, f.name) for f in fields(self) if f.name != "wire")


@dataclass(frozen=True)
class Input(Prim):
    """Element ``index`` of the input bus."""

    index: int


@dataclass(frozen=True)
class Const(Prim):
    """The constant code ``wire.lo`` (== ``wire.hi``)."""

    def key(self) -> tuple:
        return ("Const", self.wire.lo, self.wire.fraction)


@dataclass(frozen=True)
class Add(Prim):
    """``a + b * 2**shift`` (``sub``: minus). Shifts are value-level and may be negative."""

    a: int
    b: int
    shift: int
    sub: bool

    @property
    def args(self) -> tuple[int, ...]:
        return (self.a, self.b)


@dataclass(frozen=True)
class Scale(Prim):
    """``±a * 2**shift``: pure wiring unless ``negate``."""

    a: int
    shift: int
    negate: bool

    @property
    def args(self) -> tuple[int, ...]:
        return (self.a,)


@dataclass(frozen=True)
class Relu(Prim):
    """``max(a, 0)``."""

    a: int

    @property
    def args(self) -> tuple[int, ...]:
        return (self.a,)


@dataclass(frozen=True)
class Quant(Prim):
    """Quantize ``a`` to ``target`` (its rounding then overflow mode)."""

    a: int
    target: FixedType

    @property
    def args(self) -> tuple[int, ...]:
        return (self.a,)


@dataclass(frozen=True)
class Reg(Prim):
    """A pipeline register: ``a`` one clock cycle later."""

    a: int

    @property
    def args(self) -> tuple[int, ...]:
        return (self.a,)


@dataclass(frozen=True, eq=False)
class Netlist:
    """A DAG of primitives with an input bus and an output bus.

    ``input_types[i]`` and ``output_types[j]`` are the bus slots: each output wire is
    presented on its slot at the slot's fraction (a left shift, never a rounding).
    ``latency`` is the number of register stages between the buses (0 before scheduling).
    """

    prims: tuple[Prim, ...]
    input_types: tuple[Wire, ...]
    outputs: tuple[int, ...]
    output_types: tuple[Wire, ...]
    latency: int = 0

    def __post_init__(self) -> None:
        for j, (o, t) in enumerate(zip(self.outputs, self.output_types)):
            w = self.prims[o].wire
            if w.value_lo() < t.value_lo() or w.value_hi() > t.value_hi():
                raise ValueError(f"output {j}: wire {w} does not fit its bus slot {t}")

    def __len__(self) -> int:
        return len(self.prims)

    def count(self, kind: type[Prim]) -> int:
        return sum(isinstance(p, kind) for p in self.prims)
