"""The Graph IR: a DAG of named layer-level ops on N-D tensors, in topological order.

A graph has one or more ``Input`` nodes (in the order they appear) and one or more named
outputs; nodes may fan out and merge (skip connections, concatenations). Arrays always put
the batch first: an input of shape ``(30, 3)`` takes arrays of shape ``(N, 30, 3)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ..fixed import (FixedPointError, FixedType, FixedTypeArray, WidthError, as_type_array, check_width, parse_type,
                     to_codes)
from .ops import (OP_REGISTRY, Add, Affine, Concat, Constant, Dense, GraphError, Input, Maximum, Minimum, Mul, Op,
                  Quantize, Reduce, ReLU, Reshape, Slice, Sub, Transpose)
from .tensor import TensorType
from .ops.conv import Conv
from .ops.lookup import MAX_TABLE_BITS, LookupTable, output_types, resolve_function
from .ops.arith import Square
from .ops.pool import Pool, Upsample
from .ops.reduce import Argmax
from .ops.einsum import Einsum


def as_int64(v: np.ndarray) -> np.ndarray:
    """Codes as int64 (from integer-valued floats where a fast kernel produced them)."""
    return v if v.dtype == np.int64 else v.astype(np.int64)


def _on_int64(fn):
    return lambda inputs: fn([as_int64(v) for v in inputs])


@dataclass(frozen=True)
class Node:
    name: str
    op: Op
    inputs: tuple[str, ...] = ()


def node_error(node: Node, e: Exception) -> str:
    """``e``'s message, prefixed with the node unless it already names it."""
    msg = str(e)
    return msg if f"'{node.name}'" in msg else f"node {node.name!r} ({node.op.kind}): {msg}"


def infer_node(node: Node, in_types: list[TensorType]) -> TensorType:
    try:
        return node.op.infer(in_types)
    except (GraphError, FixedPointError, ValueError) as e:
        raise GraphError(node_error(node, e)) from None


@dataclass(frozen=True, eq=False)
class Graph:
    """Nodes in topological order; ``outputs`` names the result nodes (distinct)."""

    nodes: tuple[Node, ...]
    outputs: tuple[str, ...]
    _by_name: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name: dict[str, Node] = {}
        for n in self.nodes:
            if n.name in by_name:
                raise GraphError(f"duplicate node name {n.name!r}")
            want = n.op.n_inputs
            if (want is None and not n.inputs) or (want is not None and len(n.inputs) != want):
                raise GraphError(f"node {n.name!r} ({n.op.kind}) takes {want if want is not None else 'one or more'} "
                                 f"inputs, got {len(n.inputs)}")
            for i in n.inputs:
                if i not in by_name:
                    raise GraphError(f"node {n.name!r} reads {i!r}, which is not defined before it")
            by_name[n.name] = n
        if not self.outputs:
            raise GraphError("a graph needs at least one output")
        for o in self.outputs:
            if o not in by_name:
                raise GraphError(f"graph output {o!r} is not a node")
        if len(set(self.outputs)) != len(self.outputs):
            raise GraphError(f"graph outputs must be distinct, got {list(self.outputs)}")
        if not any(isinstance(n.op, Input) for n in self.nodes):
            raise GraphError("a graph needs at least one Input node")
        object.__setattr__(self, "_by_name", by_name)

    def __getitem__(self, name: str) -> Node:
        return self._by_name[name]

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    @property
    def inputs(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if isinstance(n.op, Input))

    @property
    def input(self) -> Node:
        """The input node of a single-input graph."""
        if len(self.inputs) != 1:
            raise GraphError(f"the graph has {len(self.inputs)} inputs ({[n.name for n in self.inputs]}); "
                             "use graph.inputs")
        return self.inputs[0]

    @cached_property
    def types(self) -> dict[str, TensorType]:
        """Exact type of every node's output."""
        types: dict[str, TensorType] = {}
        for n in self.nodes:
            types[n.name] = infer_node(n, [types[i] for i in n.inputs])
        return types

    @property
    def output_types(self) -> list[TensorType]:
        return [self.types[o] for o in self.outputs]

    def readers(self) -> dict[str, list[str]]:
        """For every node, the nodes that read it (graph outputs not included)."""
        out: dict[str, list[str]] = {n.name: [] for n in self.nodes}
        for n in self.nodes:
            for i in n.inputs:
                out[i].append(n.name)
        return out

    # ------------------------------------------------------------------ inputs

    def _input_arrays(self, x) -> list:
        names = [n.name for n in self.inputs]
        if isinstance(x, Mapping):
            unknown = sorted(set(x) - set(names))
            missing = [k for k in names if k not in x]
            if unknown or missing:
                raise GraphError(f"inputs are named {names}; got {sorted(x)}"
                                 + (f" (missing {missing})" if missing else ""))
            return [x[k] for k in names]
        if len(names) == 1 and not isinstance(x, (list, tuple)):
            return [x]
        if not isinstance(x, (list, tuple)) or len(x) != len(names):
            raise GraphError(f"the graph has {len(names)} inputs {names}: pass a tuple of {len(names)} arrays "
                             "or a dict by name")
        return list(x)

    def quantize_inputs(self, x) -> list[np.ndarray]:
        """Float (or integer) inputs to input codes, one (N, *shape) int64 array per input.

        ``x``: an array for a single-input graph, else a tuple in input order or a dict by
        input name. Each array is (N, *shape), or (N, elements) flattened.
        """
        out = []
        for node, a in zip(self.inputs, self._input_arrays(x)):
            a = np.asarray(a)
            shape = node.op.shape
            size = node.op.size
            if a.ndim >= 1 and a.shape[1:] == shape:
                pass
            elif a.ndim == 2 and a.shape[1] == size:
                a = a.reshape((len(a),) + shape)
            else:
                want = ", ".join(map(str, (("N",) + shape)))
                raise GraphError(f"expected inputs of shape ({want}) for input {node.name!r}, got {a.shape}"
                                 if len(self.inputs) > 1 or len(shape) > 1 else
                                 f"expected inputs of shape ({want}), got {a.shape}")
            out.append(to_codes(a, node.op.types))
        if len({len(a) for a in out}) > 1:
            raise GraphError(f"inputs have different numbers of samples: {[len(a) for a in out]}")
        return out

    def quantize_input(self, x) -> np.ndarray:
        """Input codes of a single-input graph."""
        if len(self.inputs) != 1:
            raise GraphError(f"the graph has {len(self.inputs)} inputs; use quantize_inputs")
        return self.quantize_inputs(x)[0]

    # ------------------------------------------------------------------ emulation

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
                fn = n.op.emulator([types[i] for i in n.inputs], types[n.name])
                fns[n.name] = fn if n.op.float_codes else _on_int64(fn)
            except (WidthError, GraphError) as e:
                raise type(e)(node_error(n, e)) from None
        return fns

    def emulate_codes(self, xq, keep_all: bool = False, chunk: int = 1 << 15) -> dict[str, np.ndarray]:
        """Bit-exact integer emulation from input codes; returns output (or all) node codes.

        ``xq``: the codes of a single input, or a list of them in input order. Large batches
        run in chunks so that intermediate arrays stay in cache.
        """
        xs = [np.asarray(a, dtype=np.int64) for a in (xq if isinstance(xq, (list, tuple)) else [xq])]
        if len(xs) != len(self.inputs):
            raise GraphError(f"expected codes for {len(self.inputs)} inputs, got {len(xs)}")
        fns = self._emulators
        last_use = {}  # node name -> index of the last node that reads it
        for k, n in enumerate(self.nodes):
            for i in n.inputs:
                last_use[i] = k
        total = len(xs[0])
        parts = [self._emulate_chunk([a[s:s + chunk] for a in xs], fns, keep_all, last_use)
                 for s in range(0, max(total, 1), chunk)]
        if len(parts) == 1:
            return {k: as_int64(v) for k, v in parts[0].items()}
        return {k: as_int64(np.concatenate([p[k] for p in parts])) for k in parts[0]}

    def _emulate_chunk(self, xs: list[np.ndarray], fns: dict, keep_all: bool,
                       last_use: dict[str, int]) -> dict[str, np.ndarray]:
        n = len(xs[0])
        values: dict[str, np.ndarray] = {node.name: a for node, a in zip(self.inputs, xs)}
        for k, node in enumerate(self.nodes):
            if isinstance(node.op, Input):
                continue
            v = fns[node.name]([values[i] for i in node.inputs])
            if len(v) != n:   # a source (constant) or a subgraph of constants: the same on every sample
                v = np.broadcast_to(v, (n,) + v.shape[1:])
            values[node.name] = v
            if not keep_all:
                for i in set(node.inputs):   # a node may read the same input twice (x * x)
                    if last_use[i] == k and i not in self.outputs:
                        del values[i]
        return values if keep_all else {o: values[o] for o in self.outputs}

    def predict(self, x):
        """Quantize ``x`` with the input types, emulate, return the outputs as float64.

        One output: an array. Several: a tuple in output order, or a dict by output name
        when ``x`` is a dict.
        """
        codes = self.emulate_codes(self.quantize_inputs(x))
        ys = [np.ldexp(codes[o].astype(np.float64), -self.types[o].fraction) for o in self.outputs]
        if len(ys) == 1:
            return ys[0]
        return dict(zip(self.outputs, ys)) if isinstance(x, Mapping) else tuple(ys)

    # ------------------------------------------------------------------ serialization

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
    """Appends nodes with unique names and types them as they come (so a frontend sees
    every shape, and a shape error names the node at once); ``build`` returns the Graph."""

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self.types: dict[str, TensorType] = {}

    def node(self, op: Op, inputs: Sequence[str], name: str) -> str:
        """Add ``op`` reading ``inputs``; returns the (unique) node name, ``name`` or ``name_1``, ..."""
        base, k = name, 1
        while name in self.types:
            name, k = f"{base}_{k}", k + 1
        node = Node(name, op, tuple(inputs))
        for i in node.inputs:
            if i not in self.types:
                raise GraphError(f"node {name!r} reads {i!r}, which is not defined before it")
        self.types[name] = infer_node(node, [self.types[i] for i in node.inputs])
        self.nodes.append(node)
        return name

    def _op(self, make, name: str):
        try:
            return make()
        except (GraphError, FixedPointError) as e:
            raise GraphError(f"node {name!r}: {e}") from None

    def shape(self, x: str) -> tuple[int, ...]:
        return self.types[x].shape

    @staticmethod
    def _types(types, shape) -> FixedTypeArray:
        if isinstance(types, FixedTypeArray):
            return types if shape is None else types.broadcast_to(tuple(shape))
        if shape is None:
            raise GraphError("a scalar type needs a shape (or a size)")
        return as_type_array(types, (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape))

    def input(self, types, shape=None, name: str = "x") -> str:
        """An input of per-element ``types`` (a FixedTypeArray), or one type string for
        every element of ``shape`` (an int means a vector of that size)."""
        return self.node(self._op(lambda: Input(self._types(types, shape)), name), (), name)

    def constant(self, values, type: FixedType | str | None = None, name: str = "const") -> str:
        return self.node(self._op(lambda: Constant(values, None if type is None else parse_type(type)), name), (), name)

    def dense(self, x: str, weight, bias, name: str = "dense", weight_type=None, bias_type=None) -> str:
        return self.node(self._op(lambda: Dense(weight, bias, weight_type, bias_type), name), (x,), name)

    def relu(self, x: str, name: str = "relu") -> str:
        return self.node(ReLU(), (x,), name)

    def quantize(self, x: str, types, shape=None, name: str = "quant") -> str:
        t = self._op(lambda: self._types(types, self.shape(x) if shape is None else shape), name)
        return self.node(Quantize(t), (x,), name)

    def add(self, a: str, b: str, name: str = "add") -> str:
        return self.node(Add(), (a, b), name)

    def sub(self, a: str, b: str, name: str = "sub") -> str:
        return self.node(Sub(), (a, b), name)

    def mul(self, a: str, b: str, name: str = "mul") -> str:
        return self.node(Mul(), (a, b), name)

    def maximum(self, a: str, b: str, name: str = "maximum") -> str:
        return self.node(Maximum(), (a, b), name)

    def minimum(self, a: str, b: str, name: str = "minimum") -> str:
        return self.node(Minimum(), (a, b), name)

    def affine(self, x: str, scale, shift, name: str = "affine", scale_type=None, shift_type=None) -> str:
        return self.node(self._op(lambda: Affine(scale, shift, scale_type, shift_type), name), (x,), name)

    def reduce(self, x: str, reduction: str, axes, keepdims: bool = False, name: str = "reduce") -> str:
        axes = (axes,) if isinstance(axes, (int, np.integer)) else tuple(axes)
        return self.node(self._op(lambda: Reduce(reduction, axes, keepdims), name), (x,), name)

    def reshape(self, x: str, shape, name: str = "reshape") -> str:
        return self.node(Reshape(tuple(shape)), (x,), name)

    def flatten(self, x: str, name: str = "flatten") -> str:
        return self.reshape(x, (self.types[x].size,), name)

    def transpose(self, x: str, perm, name: str = "transpose") -> str:
        return self.node(Transpose(tuple(perm)), (x,), name)

    def slice(self, x: str, slices, name: str = "slice") -> str:
        return self.node(self._op(lambda: Slice(tuple(slices)), name), (x,), name)

    def concat(self, xs: Sequence[str], axis: int = -1, name: str = "concat") -> str:
        nd = len(self.shape(xs[0]))
        return self.node(Concat(axis % nd if nd else 0), tuple(xs), name)

    def conv(self, x: str, weight, bias, stride=1, padding=0, dilation=1, groups: int = 1, name: str = "conv",
             weight_type=None, bias_type=None) -> str:
        """Convolution of ``x`` (C_in, *spatial) with ``weight`` (C_out, C_in/groups, *kernel)."""
        return self.node(self._op(lambda: Conv(weight, bias, stride, padding, dilation, groups, weight_type,
                                               bias_type), name), (x,), name)

    def pool(self, x: str, reduction: str, kernel, stride=None, padding=0, dilation=1, name: str = "pool") -> str:
        """Max or sum over windows of ``kernel`` per channel (``stride`` defaults to the kernel)."""
        kernel = (kernel,) * (len(self.shape(x)) - 1) if np.isscalar(kernel) else tuple(kernel)
        return self.node(self._op(lambda: Pool(reduction, kernel, () if stride is None else stride, padding,
                                               dilation), name), (x,), name)

    def square(self, x: str, name: str = "square") -> str:
        return self.node(Square(), (x,), name)

    def argmax(self, x: str, axis: int = -1, name: str = "argmax") -> str:
        return self.node(Argmax(axis), (x,), name)

    def upsample(self, x: str, scale, name: str = "upsample") -> str:
        scale = (scale,) * (len(self.shape(x)) - 1) if np.isscalar(scale) else tuple(scale)
        return self.node(self._op(lambda: Upsample(scale), name), (x,), name)

    def lookup(self, x: str, fn, out_type, name: str | None = None, max_bits: int = MAX_TABLE_BITS) -> str:
        """``fn(x)`` (a name in :data:`~rtl4ml.graph.ops.lookup.FUNCTIONS` or a vectorized
        Python function) as a table over ``x``'s codes, entries quantized to ``out_type``."""
        f, fname = resolve_function(fn)
        name = name or fname
        op = self._op(lambda: LookupTable(fname, output_types(out_type, self.shape(x)),
                                          None if isinstance(fn, str) else f, None, max_bits), name)
        return self.node(op, (x,), name)

    def einsum(self, equation: str, a: str, b: str, name: str = "einsum", dense: bool = True) -> str:
        """``np.einsum(equation, a, b)`` of two nodes, exactly (see :class:`~rtl4ml.graph.ops.Einsum`).

        With ``dense`` a constant 2-D operand (a :class:`Constant` node) whose one axis is
        contracted against the other operand becomes a :class:`Dense` over that axis (with
        free transposes around it): the constant multiplication's adder graph is then solved
        once (CMVM) and shared by every row, rather than one shift-and-add per product.
        """
        op = self._op(lambda: Einsum(equation), name)
        if dense:
            for var, const, swapped in ((a, b, False), (b, a, True)):
                node = next((n for n in self.nodes if n.name == const), None)
                if node is None or not isinstance(node.op, Constant):
                    continue
                out = self._einsum_dense(op, var, node, swapped, name)
                if out is not None:
                    return out
        return self.node(op, (a, b), name)

    def _einsum_dense(self, op: Einsum, var: str, const: Node, swapped: bool, name: str) -> str | None:
        sa, sb, so = op.subscripts
        sv, sc = (sb, sa) if swapped else (sa, sb)
        if len(sc) != 2 or len(self.shape(var)) != len(sv):
            return None
        for k, n in (sc, sc[::-1]):
            if k in sv and k not in so and n not in sv and n in so:
                rest = [c for c in sv if c != k]
                if sorted(rest + [n]) != sorted(so):
                    return None
                w = np.asarray(const.op.effective, dtype=np.float64)
                w = w if sc == k + n else w.T                       # (k, n)
                if w.shape[0] != self.shape(var)[sv.index(k)]:
                    return None
                x = var
                if sv.index(k) != len(sv) - 1:
                    x = self.transpose(x, [sv.index(c) for c in rest] + [sv.index(k)], name=f"{name}_in")
                y_letters = "".join(rest) + n
                if y_letters == so:
                    return self.dense(x, w, np.zeros(w.shape[1]), name=name)
                y = self.dense(x, w, np.zeros(w.shape[1]), name=f"{name}_dense")
                return self.transpose(y, [y_letters.index(c) for c in so], name=name)
        return None

    def build(self, outputs: Sequence[str] | str) -> Graph:
        outputs = [outputs] if isinstance(outputs, str) else list(outputs)
        g = Graph(tuple(self.nodes), tuple(outputs))
        g.__dict__["types"] = dict(self.types)   # already inferred, node by node
        return g
