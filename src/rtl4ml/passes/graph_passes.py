"""Graph-level passes, so that every frontend is a thin translator.

A pass is a pure function ``apply(graph) -> (graph, changed)``; :func:`run_passes` applies a
list of them until none changes anything. All but BatchNorm folding keep the graph's
function bit for bit. BatchNorm folding is the one deliberate exception, as in every
post-training flow: a BatchNorm (an :class:`~rtl4ml.graph.ops.Affine`) after a Dense whose
float weights are still to be quantized is folded into those float weights *before* they
are rounded, so the hardware rounds once instead of twice.

Graph outputs keep their names: a pass never removes or renames an output node.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from fractions import Fraction

import numpy as np

from ..fixed import FixedPointError, FixedType, FixedTypeArray, saturate_bounds
from ..graph.graph import Graph, Node
from ..graph.ops import Affine, Concat, Constant, Conv, Dense, Input, Quantize, ReLU, Reshape, Slice, Transpose

Pass = Callable[[Graph], "tuple[Graph, bool]"]


def rebuild(graph: Graph, decide: Callable[[Node, dict], "Node | str | None"]) -> tuple[Graph, bool]:
    """Walk the nodes in order; ``decide(node with renamed inputs, types)`` returns the node
    (kept, or replaced, possibly under the name of a node dropped before it), the name of an
    earlier node it becomes (an alias), or None (dropped).
    """
    alias: dict[str, str] = {}
    nodes: list[Node] = []
    changed = False
    types = graph.types
    rename = lambda names: tuple(alias.get(i, i) for i in names)  # noqa: E731
    for n in graph.nodes:
        renamed = Node(n.name, n.op, rename(n.inputs))
        res = decide(renamed, types)
        if isinstance(res, str):
            alias[n.name] = alias.get(res, res)
            changed = True
        elif res is None:
            changed = True
        elif res is renamed:
            changed |= renamed.inputs != n.inputs
            nodes.append(renamed)
        else:
            changed = True
            nodes.append(Node(res.name, res.op, rename(res.inputs)))
            if res.name != n.name:   # replaced under another name: readers follow
                alias[n.name] = res.name
    if not changed:
        return graph, False
    return Graph(tuple(nodes), tuple(alias.get(o, o) for o in graph.outputs)), True


# --------------------------------------------------------------------------- BatchNorm folding


def _last_axis_vector(p: np.ndarray, n: int) -> np.ndarray | None:
    """``p`` as a vector over the last axis of length ``n``, if it only varies along it."""
    if p.ndim and any(s != 1 for s in p.shape[:-1]):
        return None
    v = p.reshape(-1)
    if len(v) == 1:
        return np.full(n, v[0])
    return v if len(v) == n else None


def _channel_vector(p: np.ndarray, n: int, ndim: int) -> np.ndarray | None:
    """``p`` as a vector over the first (channel) axis of a tensor of ``ndim`` axes, if it
    only varies along it (a BatchNorm after a convolution: shape ``(C, 1, ..)``)."""
    if p.ndim > ndim or (p.ndim == ndim and any(s != 1 for s in p.shape[1:])) or (0 < p.ndim < ndim and p.size > 1):
        return None
    v = p.reshape(-1)
    if len(v) == 1:
        return np.full(n, v[0])
    return v if len(v) == n else None


def _folded(op, affine: Affine, ndim: int):
    """``op`` (a Dense or Conv with pending weight quantization) with ``affine`` after it
    folded in, or None when the affine does not act per output feature / channel."""
    if isinstance(op, Dense):
        n = op.weight.shape[1]
        s, t = _last_axis_vector(affine.scale, n), _last_axis_vector(affine.shift, n)
        if s is None or t is None:
            return None
        return Dense(op.weight * s[None, :], op.bias * s + t, op.weight_type, op.bias_type)
    n = op.weight.shape[0]
    s, t = _channel_vector(affine.scale, n, ndim), _channel_vector(affine.shift, n, ndim)
    if s is None or t is None:
        return None
    return replace(op, weight=op.weight * s.reshape((n,) + (1,) * (op.weight.ndim - 1)), bias=op.bias * s + t)


def fold_batchnorm(graph: Graph) -> tuple[Graph, bool]:
    """An Affine whose only input is a Dense or Conv with pending weight quantization (and no
    other reader) becomes part of it: ``W * scale``, ``b * scale + shift`` in float64."""
    readers = graph.readers()
    types = graph.types
    fold: dict[str, tuple[str, Dense | Conv]] = {}   # affine node -> (layer node, folded op)
    for n in graph.nodes:
        if not isinstance(n.op, Affine):
            continue
        src = graph[n.inputs[0]]
        if not isinstance(src.op, (Dense, Conv)) or src.op.weight_type is None:
            continue
        if readers[src.name] != [n.name] or src.name in graph.outputs:
            continue
        op = _folded(src.op, n.op, types[src.name].ndim)
        if op is not None:
            fold[n.name] = (src.name, op)
    if not fold:
        return graph, False
    folded_dense = {dense: affine for affine, (dense, _) in fold.items()}

    def decide(n: Node, types):
        if n.name in folded_dense:
            return None                       # reappears in place of its BatchNorm
        if n.name in fold:   # the folded layer keeps the Dense's name (per-layer types, reports)
            dense, op = fold[n.name]
            return Node(n.name if n.name in graph.outputs else dense, op, graph[dense].inputs)
        return n
    return rebuild(graph, decide)


# --------------------------------------------------------------------------- constants


def fold_constants(graph: Graph) -> tuple[Graph, bool]:
    """A node whose inputs are all constants becomes a Constant with its exact values."""
    consts = {n.name for n in graph.nodes if isinstance(n.op, Constant)}
    types = graph.types
    values: dict[str, np.ndarray] = {}
    folded: dict[str, Node] = {}
    for n in graph.nodes:
        if n.name in consts:
            values[n.name] = n.op.emulator([], types[n.name])([])
        elif n.inputs and all(i in consts for i in n.inputs):
            t = types[n.name]
            try:
                v = n.op.emulator([types[i] for i in n.inputs], t)([values[i] for i in n.inputs])
            except (FixedPointError, ValueError):   # too wide for the emulator: leave it to the hardware
                continue
            if t.max_width() > 53:   # float64 holds the exact value only below 2**53
                continue
            consts.add(n.name)
            values[n.name] = v
            folded[n.name] = Node(n.name, Constant(np.ldexp(v[0].astype(np.float64), -t.fraction)), ())
    if not folded:
        return graph, False
    return rebuild(graph, lambda n, _: folded.get(n.name, n))


# --------------------------------------------------------------------------- no-ops


def _is_identity(n: Node, types) -> bool:
    op = n.op
    x = types[n.inputs[0]] if n.inputs else None
    if isinstance(op, Reshape):
        return op.shape == x.shape
    if isinstance(op, Transpose):
        return op.perm == tuple(range(x.ndim))
    if isinstance(op, Slice):
        return all(s == (0, d, 1) or (s[0] == 0 and s[1] >= d and s[2] == 1) for s, d in zip(op.slices, x.shape))
    if isinstance(op, Concat):
        return len(n.inputs) == 1
    if isinstance(op, ReLU):
        return bool(np.all(x.lo >= 0))
    if isinstance(op, Quantize):
        y = types[n.name]
        return bool(np.array_equal(y.fraction, x.fraction) and np.all(y.lo == x.lo) and np.all(y.hi == x.hi))
    return False


def remove_identities(graph: Graph) -> tuple[Graph, bool]:
    """Drop reshapes to the same shape, identity transposes and slices, single-input concats,
    ReLUs of non-negative values and quantizers that change no value and no scale."""
    return rebuild(graph, lambda n, types: n.inputs[0] if n.name not in graph.outputs and n.inputs
                   and _is_identity(n, types) else n)


def remove_dead(graph: Graph) -> tuple[Graph, bool]:
    """Drop nodes no output depends on (inputs stay: they are the design's ports)."""
    live = set(graph.outputs)
    for n in reversed(graph.nodes):
        if n.name in live:
            live.update(n.inputs)
    return rebuild(graph, lambda n, _: n if n.name in live or isinstance(n.op, Input) else None)


# --------------------------------------------------------------------------- quantizers


def compose_quantizers(t1: FixedType, t2: FixedType, fraction: int) -> FixedType | None:
    """One type equivalent to quantizing codes at ``fraction`` to ``t1`` and then to ``t2``,
    for every input, or None.

    Rounding: floor then floor is floor, floor then round-half-up is round-half-up (adding
    an integer commutes with the floor); a quantizer that drops no bits leaves the other's
    rounding. Overflow: wrapping to ``2**m2`` after ``2**m1`` with ``m2 <= m1`` is wrapping to
    ``2**m2``; saturating into a range inside the first one is saturating into it.
    """
    if t2.fraction > t1.fraction:
        return None
    if t1.fraction >= fraction:        # t1 drops no bits
        rounding = t2.rounding
    elif t2.fraction == t1.fraction:   # t2 drops no bits
        rounding = t1.rounding
    elif t1.rounding == "TRN" and t2.rounding in ("TRN", "RND"):
        rounding = t2.rounding
    else:
        return None
    wraps = t1.overflow == "WRAP" and t2.overflow == "WRAP"
    if wraps and int(t2.signed) + t2.integer > int(t1.signed) + t1.integer:
        return None
    if not wraps:
        if t1.overflow == "WRAP" or t2.overflow == "WRAP":
            return None
        (lo1, hi1), (lo2, hi2) = (_saturation_values(t) for t in (t1, t2))
        if lo2 < lo1 or hi2 > hi1:
            return None
    return FixedType(t2.signed, t2.integer, t2.fraction, rounding, t2.overflow)


def _saturation_values(t: FixedType) -> tuple[Fraction, Fraction]:
    """The values a saturating type clamps to (SAT_SYM drops the most negative code)."""
    lo, hi = saturate_bounds(t)
    scale = Fraction(2) ** t.fraction
    return Fraction(lo) / scale, Fraction(hi) / scale


def merge_quantizers(graph: Graph) -> tuple[Graph, bool]:
    """Quantize(Quantize(x)) -> one Quantize, where :func:`compose_quantizers` allows it for
    every element with one rounding and one overflow mode, and the inner one has no other
    reader."""
    readers = graph.readers()
    types = graph.types
    merged: dict[str, Node] = {}
    for n in graph.nodes:
        inner = graph[n.inputs[0]] if isinstance(n.op, Quantize) else None
        if inner is None or not isinstance(inner.op, Quantize) or readers[inner.name] != [n.name] \
                or inner.name in graph.outputs:
            continue
        x = types[inner.inputs[0]]
        t1, t2 = inner.op.types.broadcast_to(x.shape), n.op.types.broadcast_to(x.shape)
        ts = [compose_quantizers(t1[i], t2[i], int(x.fraction[i])) for i in np.ndindex(*x.shape)]
        if any(t is None for t in ts) or len({(t.rounding, t.overflow) for t in ts}) != 1:
            continue
        arr = FixedTypeArray(np.array([t.signed for t in ts]).reshape(x.shape),
                             np.array([t.integer for t in ts]).reshape(x.shape),
                             np.array([t.fraction for t in ts]).reshape(x.shape), ts[0].rounding, ts[0].overflow)
        merged[n.name] = Node(n.name, Quantize(arr), inner.inputs)
    if not merged:
        return graph, False
    gone = {graph[n].inputs[0] for n in merged}
    return rebuild(graph, lambda n, _: None if n.name in gone else merged.get(n.name, n))


#: The default pipeline, in order; :func:`run_passes` repeats it to a fixed point.
DEFAULT_PASSES: tuple[Pass, ...] = (fold_batchnorm, fold_constants, remove_identities, merge_quantizers, remove_dead)


def run_passes(graph: Graph, passes: Sequence[Pass] = DEFAULT_PASSES, max_rounds: int = 50) -> Graph:
    """Apply ``passes`` in order, again and again, until a whole round changes nothing."""
    for _ in range(max_rounds):
        changed = False
        for p in passes:
            graph, c = p(graph)
            changed |= c
        if not changed:
            return graph
    raise RuntimeError(f"graph passes did not reach a fixed point in {max_rounds} rounds")


