"""The Graph IR: named nodes of layer-level ops on 1-D tensors, in topological order."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ..fixed import FixedPointError, FixedTypeArray, WidthError, as_type_array, check_width, to_codes
from .ops import OP_REGISTRY, Dense, GraphError, Input, Op, Quantize, ReLU
from .ops.elementwise import Add
from .tensor import TensorType


@dataclass(frozen=True)
class Node:
    name: str
    op: Op
    inputs: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class Graph:
    """Nodes in topological order; exactly one Input node; ``outputs`` names the result nodes."""

    nodes: tuple[Node, ...]
    outputs: tuple[str, ...]
    _by_name: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name: dict[str, Node] = {}
        for n in self.nodes:
            if n.name in by_name:
                raise GraphError(f"duplicate node name {n.name!r}")
            if len(n.inputs) != n.op.n_inputs:
                raise GraphError(f"node {n.name!r} ({n.op.kind}) takes {n.op.n_inputs} inputs, got {len(n.inputs)}")
            for i in n.inputs:
                if i not in by_name:
                    raise GraphError(f"node {n.name!r} reads {i!r}, which is not defined before it")
            by_name[n.name] = n
        for o in self.outputs:
            if o not in by_name:
                raise GraphError(f"graph output {o!r} is not a node")
        if sum(isinstance(n.op, Input) for n in self.nodes) != 1:
            raise GraphError("a graph needs exactly one Input node")
        object.__setattr__(self, "_by_name", by_name)

    def __getitem__(self, name: str) -> Node:
        return self._by_name[name]

    @property
    def input(self) -> Node:
        return next(n for n in self.nodes if isinstance(n.op, Input))

    @cached_property
    def types(self) -> dict[str, TensorType]:
        """Exact type of every node's output."""
        types: dict[str, TensorType] = {}
        for n in self.nodes:
            try:
                types[n.name] = n.op.infer([types[i] for i in n.inputs])
            except (GraphError, FixedPointError) as e:
                raise GraphError(f"node {n.name!r} ({n.op.kind}): {e}") from None
        return types

    @property
    def output_types(self) -> list[TensorType]:
        return [self.types[o] for o in self.outputs]

    def quantize_input(self, x) -> np.ndarray:
        """Float (or integer) inputs of shape (N, n_in) to input codes."""
        x = np.asarray(x)
        n_in = self.input.op.size
        if x.ndim != 2 or x.shape[1] != n_in:
            raise GraphError(f"expected inputs of shape (N, {n_in}), got {x.shape}")
        return to_codes(x, self.input.op.types)

    @cached_property
    def _emulators(self) -> dict[str, object]:
        """Per-node emulation functions with their setup done once (width checks included)."""
        types = self.types
        fns = {}
        for n in self.nodes:
            if isinstance(n.op, Input):
                continue
            try:
                check_width(types[n.name].width, f"node {n.name!r} ({n.op.kind})")
                fns[n.name] = n.op.emulator([types[i] for i in n.inputs], types[n.name])
            except WidthError as e:
                msg = str(e) if n.name in str(e) else f"node {n.name!r} ({n.op.kind}): {e}"
                raise WidthError(msg) from None
        return fns

    def emulate_codes(self, xq: np.ndarray, keep_all: bool = False, chunk: int = 1 << 15) -> dict[str, np.ndarray]:
        """Bit-exact integer emulation from input codes; returns output (or all) node codes.

        Large batches run in chunks so that intermediate arrays stay in cache.
        """
        xq = np.asarray(xq, dtype=np.int64)
        fns = self._emulators
        last_use = {}  # node name -> index of the last node that reads it
        for k, n in enumerate(self.nodes):
            for i in n.inputs:
                last_use[i] = k
        parts = [self._emulate_chunk(xq[s:s + chunk], fns, keep_all, last_use)
                 for s in range(0, max(len(xq), 1), chunk)]
        if len(parts) == 1:
            return parts[0]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def _emulate_chunk(self, xq: np.ndarray, fns: dict, keep_all: bool,
                       last_use: dict[str, int]) -> dict[str, np.ndarray]:
        values: dict[str, np.ndarray] = {self.input.name: xq}
        for k, n in enumerate(self.nodes):
            if isinstance(n.op, Input):
                continue
            values[n.name] = fns[n.name]([values[i] for i in n.inputs])
            if not keep_all:
                for i in n.inputs:
                    if last_use[i] == k and i not in self.outputs:
                        del values[i]
        return values if keep_all else {o: values[o] for o in self.outputs}

    def predict(self, x) -> np.ndarray:
        """Quantize ``x`` with the input types, emulate, return the single output as float64."""
        if len(self.outputs) != 1:
            raise GraphError("predict() needs a graph with one output")
        q = self.emulate_codes(self.quantize_input(x))[self.outputs[0]]
        f = self.types[self.outputs[0]].fraction
        return np.ldexp(q.astype(np.float64), -f)

    def to_json(self) -> dict:
        return {
            "nodes": [{"name": n.name, "op": n.op.kind, "inputs": list(n.inputs), **n.op.to_json()} for n in self.nodes],
            "outputs": list(self.outputs),
        }

    @classmethod
    def from_json(cls, data: dict) -> "Graph":
        nodes = []
        for d in data["nodes"]:
            try:
                op_cls = OP_REGISTRY[d["op"]]
            except KeyError:
                raise GraphError(f"node {d.get('name')!r}: unknown op {d['op']!r}") from None
            nodes.append(Node(d["name"], op_cls.from_json(d), tuple(d["inputs"])))
        return cls(tuple(nodes), tuple(data["outputs"]))


class GraphBuilder:
    """Appends nodes with unique names; ``build`` returns the immutable :class:`Graph`."""

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self._names: set[str] = set()

    def _add(self, base: str, op: Op, inputs: tuple[str, ...]) -> str:
        name, k = base, 1
        while name in self._names:
            name, k = f"{base}_{k}", k + 1
        self._names.add(name)
        self.nodes.append(Node(name, op, inputs))
        return name

    def input(self, types: "FixedTypeArray | str", size: int | None = None, name: str = "x") -> str:
        if not isinstance(types, FixedTypeArray):
            if size is None:
                raise GraphError("input() with a scalar type needs a size")
            types = as_type_array(types, (size,))
        return self._add(name, Input(types), ())

    def dense(self, x: str, weight, bias, name: str = "dense") -> str:
        try:
            op = Dense(weight, bias)
        except GraphError as e:
            raise GraphError(f"node {name!r}: {e}") from None
        return self._add(name, op, (x,))

    def relu(self, x: str, name: str = "relu") -> str:
        return self._add(name, ReLU(), (x,))

    def quantize(self, x: str, types: "FixedTypeArray | str", size: int | None = None, name: str = "quant") -> str:
        if not isinstance(types, FixedTypeArray):
            if size is None:
                raise GraphError("quantize() with a scalar type needs a size")
            types = as_type_array(types, (size,))
        return self._add(name, Quantize(types), (x,))

    def add(self, a: str, b: str, name: str = "add") -> str:
        return self._add(name, Add(), (a, b))

    def build(self, outputs: list[str] | str) -> Graph:
        outputs = [outputs] if isinstance(outputs, str) else list(outputs)
        return Graph(tuple(self.nodes), tuple(outputs))
