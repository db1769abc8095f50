"""Lookup-table networks: a thermometer encoder (comparators) and layers of k-input binary LUTs.

``Thermometer`` turns a vector of fixed-point features into bits, ``x[feature[j]] > t_j``.
On an input code ``q`` at fraction ``f`` the decision is exact as ``q > T`` with
``T = floor(t * 2**f)`` (the tree frontend's :func:`~rtl4ml.graph.ops.trees.threshold_code`),
so the design decides every quantized input as the float model does. A threshold the input
interval already decides is a constant bit (no hardware); equal ``(feature, T)`` pairs
share one comparator. A comparator on an input of at most 6 bits is a one-bit table of it
(one LUT6); on wider inputs a compare primitive (a carry chain).

``BitLookup`` is a layer of learned truth tables: unit ``u`` reads the ``k`` bits
``x[connections[u, 0..k-1]]`` (each in ``{0, 1}``), forms the address
``sum_j x[connections[u, j]] << j`` and outputs ``tables[u, address]`` (one bit). In the
Netlist the address is the concatenation of the bits (shift-and-add of disjoint bits, which
synthesis reduces to wiring) and the table is a :class:`~rtl4ml.netlist.prims.Lookup`: one
LUT6 per unit for ``k <= 6``. A popcount head needs no op of its own: a Reduce sum of bits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...fixed import Wire
from ..tensor import TensorType, int_array
from .base import GraphError, Op, wire_array
from .serial import floats_from_json, floats_to_json
from .trees import threshold_code

#: The widest LUT unit: a LUT6 holds a 6-input truth table.
MAX_LUT_INPUTS = 6


def _check_vector(x: TensorType, what: str) -> None:
    if x.ndim != 1:
        raise GraphError(f"{what} reads a vector, got shape {x.shape}")


def _check_bits(x: TensorType, indices, what: str, advice: str = "") -> None:
    """Refuse the first of the elements ``indices`` of ``x`` that is not a 0/1 integer."""
    for i in indices:
        i = int(i)
        if x.fraction[i] != 0 or x.lo[i] < 0 or x.hi[i] > 1:
            raise GraphError(f"{what}: input {i} is not a bit (codes {x.lo[i]}..{x.hi[i]} at 2^-{x.fraction[i]})"
                             f"{advice}")


def _comparator(nl, x: int, t: int, fraction: int) -> int:
    """The bit ``x > t``: a one-bit table of the input (one LUT6, no carry chain) when the input
    wire has at most :data:`MAX_LUT_INPUTS` bits, otherwise a comparator (a carry chain)."""
    w = nl.wire(x)
    if w.is_const or w.width > MAX_LUT_INPUTS:
        return nl.compare("gt", x, nl.const(t, fraction))
    up = fraction - w.fraction      # the netlist may carry the value with fewer fraction bits
    return nl.lookup(x, [int((c << up) > t) for c in range(w.lo, w.hi + 1)], 0)


@dataclass(frozen=True, eq=False)
class Thermometer(Op):
    """Bit ``j`` is ``x[feature[j]] > threshold[j]`` (float thresholds, exact on the codes)."""

    feature: np.ndarray
    threshold: np.ndarray
    kind = "thermometer"

    def __post_init__(self) -> None:
        feat = np.asarray(self.feature, dtype=np.int64).reshape(-1)
        thr = np.asarray(self.threshold, dtype=np.float64).reshape(-1)
        if len(feat) != len(thr) or not len(feat):
            raise GraphError(f"thermometer: {len(feat)} features for {len(thr)} thresholds (need as many, >= 1)")
        if np.any(feat < 0):
            raise GraphError(f"thermometer: feature index {int(feat[feat < 0][0])} is negative")
        if not np.all(np.isfinite(thr)):
            j = int(np.flatnonzero(~np.isfinite(thr))[0])
            raise GraphError(f"thermometer: threshold {j} (feature {int(feat[j])}) is {thr[j]}, not finite")
        for a in (feat, thr):
            a.setflags(write=False)
        object.__setattr__(self, "feature", feat)
        object.__setattr__(self, "threshold", thr)

    def codes(self, x: TensorType) -> list[int]:
        """Per bit, the integer ``T`` with bit = ``q > T`` on the feature's codes."""
        _check_vector(x, "a thermometer encoder")
        if int(self.feature.max()) >= x.shape[0]:
            raise GraphError(f"thermometer reads feature {int(self.feature.max())}, the input has {x.shape[0]}")
        return [threshold_code(float(t), int(x.fraction[fe]), "le") for fe, t in zip(self.feature, self.threshold)]

    def comparators(self, x: TensorType) -> int:
        """Distinct comparators in hardware: ``(feature, T)`` pairs the input interval leaves open."""
        pairs = {(int(fe), t) for fe, t in zip(self.feature, self.codes(x)) if int(x.lo[fe]) <= t < int(x.hi[fe])}
        return len(pairs)

    def infer(self, inputs: list[TensorType]) -> TensorType:
        (x,) = inputs
        T = self.codes(x)
        lo = [int(int(x.lo[fe]) > t) for fe, t in zip(self.feature, T)]
        hi = [int(int(x.hi[fe]) > t) for fe, t in zip(self.feature, T)]
        return TensorType(int_array(lo), int_array(hi), np.zeros(len(T), dtype=np.int64))

    def emulator(self, in_types, out_type):
        (x,) = in_types
        feat = self.feature
        # clipped into the feature's interval (the decision is the same) so int64 holds them
        T = np.array([min(max(t, int(x.lo[fe]) - 1), int(x.hi[fe])) for fe, t in zip(feat, self.codes(x))],
                     dtype=np.int64)
        return lambda inputs: (inputs[0][:, feat] > T).astype(np.int64)

    def lower(self, nl, inputs, in_types, out_type) -> np.ndarray:
        (x,) = in_types
        xs = inputs[0]
        shared: dict[tuple[int, int], int] = {}
        out = []
        for fe, t in zip(self.feature, self.codes(x)):
            key = (int(fe), t)
            if key not in shared:
                shared[key] = _comparator(nl, int(xs[fe]), t, int(x.fraction[fe]))
            out.append(shared[key])
        return wire_array(out, out_type.shape)

    def describe(self) -> str:
        return f"{len(self.feature)} thresholds on {len(set(self.feature.tolist()))} features"

    def to_json(self) -> dict:
        return {"feature": self.feature.tolist(), "threshold": floats_to_json(self.threshold)}

    @classmethod
    def from_json(cls, data: dict) -> Thermometer:
        return cls(np.array(data["feature"], dtype=np.int64), floats_from_json(data["threshold"]))


def _concatenate(nl, bits: list[int]) -> int:
    """The wire ``sum_j bits[j] << j``: a balanced tree of adds of disjoint bit fields (no
    carries; synthesis leaves wiring), so the pipeline model sees ``ceil(log2 k)`` levels."""
    return nl.shifted_sum([(b, j) for j, b in enumerate(bits)])[0]   # the first part sits at bit 0


@dataclass(frozen=True, eq=False)
class BitLookup(Op):
    """Unit ``u`` outputs ``tables[u, sum_j x[connections[u, j]] << j]`` for bits ``x``.

    ``connections``: ``(units, k)`` input indices, ``k <= 6``; ``tables``: ``(units, 2**k)``
    of 0/1.
    """

    connections: np.ndarray
    tables: np.ndarray
    kind = "bit_lookup"

    def __post_init__(self) -> None:
        conn = np.asarray(self.connections, dtype=np.int64)
        tab = np.asarray(self.tables)
        if conn.ndim != 2 or not conn.size:
            raise GraphError(f"bit lookup: connections must be (units, k), got shape {conn.shape}")
        units, k = conn.shape
        if not 1 <= k <= MAX_LUT_INPUTS:
            raise GraphError(f"bit lookup: units of {k} inputs; a LUT unit has 1..{MAX_LUT_INPUTS}")
        if tab.shape != (units, 1 << k):
            raise GraphError(f"bit lookup: tables must be (units, 2**k) = ({units}, {1 << k}), got {tab.shape}")
        if not np.all((tab == 0) | (tab == 1)):
            u = int(np.argwhere((tab != 0) & (tab != 1))[0][0])
            raise GraphError(f"bit lookup: the table of unit {u} holds values other than 0 and 1")
        if np.any(conn < 0):
            raise GraphError(f"bit lookup: unit {int(np.argwhere(conn < 0)[0][0])} reads a negative input index")
        tab = tab.astype(np.int64)
        for a in (conn, tab):
            a.setflags(write=False)
        object.__setattr__(self, "connections", conn)
        object.__setattr__(self, "tables", tab)

    @property
    def k(self) -> int:
        return self.connections.shape[1]

    def _address_bounds(self, x: TensorType) -> tuple[np.ndarray, np.ndarray]:
        """Per unit, the interval of its address (bits taken independently, as the netlist does)."""
        _check_vector(x, "a LUT layer")
        if int(self.connections.max()) >= x.shape[0]:
            raise GraphError(f"bit lookup: a unit reads input {int(self.connections.max())}, the layer has "
                             f"{x.shape[0]} inputs")
        _check_bits(x, np.unique(self.connections), "bit lookup",
                    "; a LUT layer reads the bits of a thermometer encoder or of another LUT layer")
        w = 1 << np.arange(self.k, dtype=np.int64)
        lo = np.array([int(v) for v in x.lo], dtype=np.int64)[self.connections] @ w
        hi = np.array([int(v) for v in x.hi], dtype=np.int64)[self.connections] @ w
        return lo, hi

    def infer(self, inputs: list[TensorType]) -> TensorType:
        lo, hi = self._address_bounds(inputs[0])
        olo = [int(self.tables[u, a:b + 1].min()) for u, (a, b) in enumerate(zip(lo, hi))]
        ohi = [int(self.tables[u, a:b + 1].max()) for u, (a, b) in enumerate(zip(lo, hi))]
        return TensorType(int_array(olo), int_array(ohi), np.zeros(len(olo), dtype=np.int64))

    def emulator(self, in_types, out_type):
        self._address_bounds(in_types[0])
        conn, flat = self.connections, self.tables.reshape(-1)
        w = 1 << np.arange(self.k, dtype=np.int64)
        base = np.arange(conn.shape[0], dtype=np.int64) << self.k
        return lambda inputs: flat[(inputs[0][:, conn] * w).sum(axis=2) + base]

    def lower(self, nl, inputs, in_types, out_type) -> np.ndarray:
        self._address_bounds(in_types[0])
        xs = inputs[0]
        out = []
        for u, row in enumerate(self.connections):
            addr = _concatenate(nl, [int(xs[i]) for i in row])
            w = nl.wire(addr)
            if w.fraction > 0:
                raise GraphError(f"bit lookup: the address of unit {u} has {w.fraction} fraction bits")
            # the netlist may hold the address without its constant-zero low bits
            entries = [int(self.tables[u, c << -w.fraction]) for c in range(w.lo, w.hi + 1)]
            out.append(nl.lookup(addr, entries, 0))
        return wire_array(out, out_type.shape)

    def describe(self) -> str:
        return f"{self.connections.shape[0]} LUT{self.k} units"

    def to_json(self) -> dict:
        return {"connections": self.connections.tolist(), "tables": self.tables.tolist()}

    @classmethod
    def from_json(cls, data: dict) -> BitLookup:
        return cls(np.array(data["connections"], dtype=np.int64), np.array(data["tables"], dtype=np.int64))


def _bit_table(nl, bits: list[int], fn) -> int:
    """One LUT of the bits ``bits`` (each 0/1): entry ``fn(address)`` at ``sum_j bits[j] << j``."""
    addr = _concatenate(nl, bits)
    w = nl.wire(addr)
    if w.fraction > 0:
        raise GraphError(f"popcount: an address of {len(bits)} bits has {w.fraction} fraction bits")
    return nl.lookup(addr, [int(fn(c << -w.fraction)) for c in range(w.lo, w.hi + 1)], 0)


def _place(nl, parts: list[tuple[int, int]]) -> int | None:
    """``sum wire << position`` over ``parts`` (disjoint positions): a tree of carry-free adds."""
    return nl.scale(*nl.shifted_sum(sorted(parts, key=lambda p: p[1]))) if parts else None


#: Compressor size by the number of bits left in a column: 6 and 5 bits into 3 (one LUT6 per
#: output bit), 3 and 4 into 2 (a full adder, the fourth bit left for the next stage).
_GROUP = {6: 6, 5: 5, 4: 3, 3: 3}


def compress_popcount(nl, bits: list[int], exact) -> int:
    """The count of 1-bits of ``bits`` (each 0/1), typed ``exact`` (its interval).

    A tree of LUT compressors: a column of bits of weight ``2**w`` goes in groups of up to
    six into one table per bit of the group's count, which land in columns ``w, w+1, w+2``,
    until every column holds at most two bits; one adder sums the two rows left (and the
    constant bits) and carries the count's exact interval.
    """
    const = 0
    cols: list[list[int]] = [[]]
    for b in bits:
        w = nl.wire(b)
        if w.is_const:
            const += int(w.lo)
        else:
            cols[0].append(b)
    while any(len(c) > 2 for c in cols):
        new: list[list[int]] = [[] for _ in range(len(cols) + 3)]
        for weight, col in enumerate(cols):
            rest = list(col)
            while len(rest) >= 3:
                m = _GROUP[min(len(rest), 6)]
                grp, rest = rest[:m], rest[m:]
                for j in range(m.bit_length()):
                    new[weight + j].append(_bit_table(nl, grp, lambda c, j=j: (c.bit_count() >> j) & 1))
            new[weight].extend(rest)
        while len(new) > 1 and not new[-1]:
            new.pop()
        cols = new
    rows = [[(c[r], w) for w, c in enumerate(cols) if len(c) > r] for r in range(2)]
    if not rows[1] and len(rows[0]) > 1:
        rows[1] = [rows[0].pop()]      # the top bit apart: the (carry-free) last add types the count
    terms = [_place(nl, r) for r in rows if r] + ([nl.const(const, 0)] if const or not bits else [])
    y = terms[0]
    for k, t in enumerate(terms[1:], 2):
        y = nl.add(y, t, wire=exact if k == len(terms) else None)
    return y


@dataclass(frozen=True, eq=False)
class Popcount(Op):
    """Per group of ``n / groups`` consecutive input bits, the number of 1-bits.

    The same value as a Reduce sum over the reshaped bits, built from LUT compressors: the
    groups' bits pass through 6:3 (and 5:3, 3:2) counting tables until two numbers remain,
    and one adder sums them. Measured with Yosys on 5 groups of 40 and of 80 bits: the adder
    tree (mostly one- and two-bit adders) 235 and 555 LUTs, the compressor tree 200 and 410,
    at more registers and pipeline stages (docs/lutnet.md).
    """

    groups: int
    kind = "popcount"

    def __post_init__(self) -> None:
        if int(self.groups) < 1:
            raise GraphError(f"popcount: groups must be at least 1, got {self.groups}")
        object.__setattr__(self, "groups", int(self.groups))

    def _check(self, x: TensorType) -> int:
        _check_vector(x, "a popcount")
        n = x.shape[0]
        if n % self.groups:
            raise GraphError(f"popcount: {n} bits do not split into {self.groups} groups")
        _check_bits(x, range(n), "popcount")
        return n // self.groups

    def infer(self, inputs: list[TensorType]) -> TensorType:
        (x,) = inputs
        per = self._check(x)
        lo = np.array([int(v) for v in x.lo], dtype=np.int64).reshape(self.groups, per).sum(1)
        hi = np.array([int(v) for v in x.hi], dtype=np.int64).reshape(self.groups, per).sum(1)
        return TensorType(int_array(lo.tolist()), int_array(hi.tolist()), np.zeros(self.groups, dtype=np.int64))

    def emulator(self, in_types, out_type):
        per = self._check(in_types[0])
        return lambda inputs: inputs[0].reshape(len(inputs[0]), self.groups, per).sum(2)

    def lower(self, nl, inputs, in_types, out_type) -> np.ndarray:
        per = self._check(in_types[0])
        out = [compress_popcount(nl, [int(w) for w in inputs[0][g * per:(g + 1) * per]],
                                 Wire(int(out_type.lo[g]), int(out_type.hi[g]), 0)) for g in range(self.groups)]
        return wire_array(out, out_type.shape)

    def describe(self) -> str:
        return f"popcount of {self.groups} groups (LUT compressors)"

    def to_json(self) -> dict:
        return {"groups": self.groups}

    @classmethod
    def from_json(cls, data: dict) -> Popcount:
        return cls(int(data["groups"]))
