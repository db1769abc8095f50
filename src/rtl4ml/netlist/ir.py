"""The Netlist IR: scalar fixed-point wires and the small, fixed set of hardware primitives.

Every primitive produces one wire whose exact code interval and fractional bits are stored
with it (:class:`~rtl4ml.fixed.Wire`). Widths follow from the interval, so an adder is only
as wide as the values it can carry; two's-complement arithmetic modulo ``2**width`` then
gives the exact result, which is what lets the Verilog backend compute every adder at its
output width.

A primitive owns its meaning, as a cell does in Amaranth's netlist: each class defines in
one place its result type (:meth:`Prim.output`), vectorized evaluation, constant folding,
delay, cost and Verilog text. Consumers (builder, executor, passes, scheduler, estimator,
backend) dispatch to these methods and keep no ``isinstance`` chains of their own. A
subclass that leaves any of them undefined is refused when the class is created, so there
is no silent default such as zero delay or zero cost.

Primitive ids are positions in ``Netlist.prims``; arguments always point backwards, so the
tuple is a topological order. Every primitive records ``origin``, the Graph node it was
lowered from, for per-layer reports and readable Verilog names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from ..fixed import Wire

if TYPE_CHECKING:  # pragma: no cover
    from ..backends.verilog import VerilogContext

#: Every concrete primitive class, by name (filled as the classes are defined).
PRIMITIVES: dict[str, type["Prim"]] = {}

#: The methods every primitive must define itself: the meaning each consumer relies on.
REQUIRED_METHODS = ("output", "evaluate", "fold", "delay", "cost", "verilog")


@dataclass(frozen=True)
class Cost:
    """Resources of one primitive, for the analytic estimator (a LUT6 FPGA in mind)."""

    adders: int = 0            # two-operand adders/subtractors (negations, rounding adders)
    adder_bits: int = 0        # carry-chain bits of those adders
    luts: int = 0              # estimated LUT6s
    register_bits: int = 0
    multipliers: int = 0       # variable x variable multipliers
    multiplier_bits: int = 0   # their partial-product bits (width_a x width_b)
    levels: int = 0            # adder levels the primitive adds to a path (for adder depth)

    def __add__(self, o: "Cost") -> "Cost":
        return Cost(*(getattr(self, f.name) + getattr(o, f.name) for f in fields(self)))


@dataclass(frozen=True)
class ExecContext:
    """What an executing primitive may read besides its operands: the input bus codes."""

    inputs: np.ndarray   # (N, number of input elements), int64
    n: int


@dataclass(frozen=True)
class Prim:
    """Base of all primitives.

    ``wire`` is the exact type of the value produced, ``args`` the ids of the wires read.
    Subclasses add their parameters as fields and define every method of
    :data:`REQUIRED_METHODS`; ``wires`` below always means the operand wires, in ``args``
    order.
    """

    wire: Wire
    args: tuple[int, ...]
    origin: str = field(default="", kw_only=True, compare=False)

    def __init_subclass__(cls, abstract: bool = False, **kw) -> None:
        super().__init_subclass__(**kw)
        if abstract:   # a helper base shared by concrete primitives
            return
        own = [c for c in cls.__mro__ if c is not Prim and issubclass(c, Prim)]
        missing = [m for m in REQUIRED_METHODS if not any(m in c.__dict__ for c in own)]
        if missing:
            raise TypeError(f"primitive {cls.__name__} does not define {', '.join(missing)}: "
                            "a primitive must own every part of its meaning")
        PRIMITIVES[cls.__name__] = cls

    # ------------------------------------------------------------------ the contract

    @classmethod
    def output(cls, wires: Sequence[Wire], **params) -> Wire:
        """The exact result type for operands of types ``wires``."""
        raise NotImplementedError

    def evaluate(self, vals: list[np.ndarray], wires: Sequence[Wire], ctx: ExecContext) -> np.ndarray:
        """Result codes (int64, modulo 2**64) for operand codes ``vals``, vectorized over a batch."""
        raise NotImplementedError

    def fold(self, codes: list[int], wires: Sequence[Wire]) -> int:
        """The exact result code (Python int, any width) for constant operand codes."""
        raise NotImplementedError

    def delay(self, wires: Sequence[Wire], model) -> float:
        """Combinational delay in ns under the scheduler's delay ``model``."""
        raise NotImplementedError

    def cost(self, wires: Sequence[Wire]) -> Cost:
        raise NotImplementedError

    def verilog(self, v: "VerilogContext", k: int) -> None:
        """Declare wire ``k`` (this primitive) through the backend's context ``v``."""
        raise NotImplementedError

    def identity(self, wires: Sequence[Wire]) -> int | None:
        """Position in ``args`` of an operand this primitive passes through unchanged, given
        the operand types (e.g. a ReLU of a non-negative value), else None. An optimization
        hint for the builder and constant folding, never needed for correctness."""
        return None

    # ------------------------------------------------------------------ structure

    def with_args(self, args: Sequence[int]) -> "Prim":
        """The same primitive reading wires ``args`` instead; passes renumber wires with it."""
        args = tuple(args)
        return self if args == self.args else replace(self, args=args)

    def key(self) -> tuple:
        """Structural identity (operands, parameters, result scale), for hash-consing."""
        params = tuple(getattr(self, f.name) for f in fields(self) if f.name not in ("wire", "origin"))
        return (type(self).__name__, self.wire.fraction) + params


@dataclass(frozen=True)
class Bus:
    """One port of the design: a tensor of ``shape`` whose elements (row-major) are ``slots``."""

    name: str
    shape: tuple[int, ...]
    slots: tuple[Wire, ...]

    @property
    def width(self) -> int:
        return sum(t.width for t in self.slots)


@dataclass(frozen=True, eq=False)
class Netlist:
    """A DAG of primitives between input buses and output buses.

    ``outputs`` are the wire ids of every output element, bus after bus; each is presented
    on its slot (``output_types``) at the slot's fraction (a left shift, never a rounding).
    ``Input`` primitives index the input elements bus after bus (``input_types``).
    ``latency`` is the number of register stages between the buses (0 before scheduling).
    """

    prims: tuple[Prim, ...]
    input_buses: tuple[Bus, ...]
    outputs: tuple[int, ...]
    output_buses: tuple[Bus, ...]
    latency: int = 0

    def __post_init__(self) -> None:
        if len(self.outputs) != len(self.output_types):
            raise ValueError(f"{len(self.outputs)} output wires for {len(self.output_types)} output slots")
        for j, (o, t) in enumerate(zip(self.outputs, self.output_types)):
            w = self.prims[o].wire
            if w.value_lo() < t.value_lo() or w.value_hi() > t.value_hi():
                raise ValueError(f"output {j}: wire {w} does not fit its bus slot {t}")

    def __len__(self) -> int:
        return len(self.prims)

    @cached_property
    def input_types(self) -> tuple[Wire, ...]:
        return tuple(t for b in self.input_buses for t in b.slots)

    @cached_property
    def output_types(self) -> tuple[Wire, ...]:
        return tuple(t for b in self.output_buses for t in b.slots)

    @cached_property
    def operand_wires(self) -> tuple[tuple[Wire, ...], ...]:
        """For every primitive, the types of the wires it reads."""
        prims = self.prims
        return tuple(tuple(prims[a].wire for a in p.args) for p in prims)

    def count(self, kind: type[Prim]) -> int:
        return sum(isinstance(p, kind) for p in self.prims)

    def with_prims(self, prims: Sequence[Prim], outputs: Sequence[int], latency: int | None = None) -> "Netlist":
        """The same buses around new primitives (what every pass returns)."""
        return Netlist(tuple(prims), self.input_buses, tuple(outputs), self.output_buses,
                       self.latency if latency is None else latency)
