"""Tree ensembles: boosted decision trees and random forests, as one op.

``TreeEnsemble`` holds every tree of an ensemble in flat node arrays (one global node index
over all trees) and computes, per output (class), the base score plus the sum of the leaf
values each tree reaches. Every split reads one input feature and compares it with a float
threshold under the model's split convention (``x < t`` or ``x <= t``, left when true).

Thresholds on quantized inputs (the proof is in docs/trees.md): an input element of code
``q`` at fraction ``f`` has the exact value ``q * 2**-f``, so

* ``x <= t``  holds exactly when  ``q <= floor(t * 2**f)``, and
* ``x <  t``  holds exactly when  ``q <= ceil(t * 2**f) - 1``,

both computed in exact rational arithmetic from the float64 threshold. Every split thus
becomes ``q <= T`` with an integer ``T``: the decision on every quantized input is the source
model's decision on that same value. ``T`` at or beyond the ends of the input's interval
makes the split constant, and the dead branch disappears. Splits that land on the same
``(feature, T)`` share one comparator across all trees.

An optional ``missing`` value (XGBoost's ``missing=`` parameter when it is not NaN): an input
equal to it takes each node's default direction. NaN itself cannot be a fixed-point code, so
NaN-missing models need no hardware for it.

Leaf values and base scores are quantized to ``leaf_type`` (or taken exactly when None);
sums never round, so the output is exactly the sum of the quantized leaves.

Hardware: one comparator per distinct ``(feature, T)``, a multiplexer tree per tree and
output over constant leaves (LUT logic of the decision bits after synthesis), and a balanced
adder tree per output over the trees that contribute to it; the pipeline scheduler registers
it to the clock like any other netlist.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ...fixed import FixedType, check_width, quantize
from ..tensor import TensorType, int_array
from .base import GraphError, Op, wire_array
from .io import exact_codes
from .reduce import _tree
from .serial import type_from_json, type_to_json

SPLITS = ("lt", "le")


def _floor_ceil(t: float, f: int) -> tuple[int, int]:
    """``floor`` and ``ceil`` of ``t * 2**f`` in exact arithmetic."""
    v = Fraction(t) * (Fraction(2) ** f)
    return math.floor(v), math.ceil(v)


def threshold_code(t: float, f: int, split: str) -> int:
    """The integer ``T`` such that, for codes ``q`` at fraction ``f``, the split decision
    (``q * 2**-f < t`` or ``<= t``) equals ``q <= T``."""
    fl, ce = _floor_ceil(t, f)
    return fl if split == "le" else ce - 1


@dataclass(frozen=True, eq=False)
class TreeEnsemble(Op):
    """Trees in flat arrays of ``n_nodes`` entries (global node indices, children after their
    parent): ``feature`` (-1 at a leaf), ``threshold``, ``left`` / ``right`` (the child taken
    when the split holds / fails; -1 at a leaf), ``default_left`` (direction of a missing value),
    ``value`` (``n_nodes x n_outputs`` leaf values; zero where a tree does not add to an output),
    ``roots`` (each tree's root node), ``base`` (one score per output). ``split``: ``"lt"``
    (XGBoost, LightGBM-style ``x < t``) or ``"le"`` (scikit-learn, ``x <= t``)."""

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    roots: np.ndarray
    base: np.ndarray
    split: str = "le"
    leaf_type: FixedType | None = None
    default_left: np.ndarray | None = None
    missing: float | None = None
    kind = "tree_ensemble"

    def __post_init__(self) -> None:
        feat = np.asarray(self.feature, dtype=np.int64).reshape(-1)
        n = len(feat)
        arrays = {"feature": feat,
                  "threshold": np.asarray(self.threshold, dtype=np.float64).reshape(-1),
                  "left": np.asarray(self.left, dtype=np.int64).reshape(-1),
                  "right": np.asarray(self.right, dtype=np.int64).reshape(-1),
                  "value": np.asarray(self.value, dtype=np.float64),
                  "roots": np.asarray(self.roots, dtype=np.int64).reshape(-1),
                  "base": np.asarray(self.base, dtype=np.float64).reshape(-1),
                  "default_left": (np.ones(n, dtype=bool) if self.default_left is None
                                   else np.asarray(self.default_left, dtype=bool).reshape(-1))}
        if arrays["value"].ndim == 1:
            arrays["value"] = arrays["value"][:, None]
        for k in ("threshold", "left", "right", "default_left"):
            if len(arrays[k]) != n:
                raise GraphError(f"tree ensemble: {k} has {len(arrays[k])} entries for {n} nodes")
        v = arrays["value"]
        if v.ndim != 2 or len(v) != n:
            raise GraphError(f"tree ensemble: value must be (nodes, outputs) = ({n}, k), got shape {v.shape}")
        if len(arrays["base"]) != v.shape[1]:
            raise GraphError(f"tree ensemble: {len(arrays['base'])} base scores for {v.shape[1]} outputs")
        if self.split not in SPLITS:
            raise GraphError(f"tree ensemble: split must be one of {SPLITS}, got {self.split!r}")
        if not len(arrays["roots"]) or n == 0:
            raise GraphError("tree ensemble: no trees")
        inner = feat >= 0
        idx = np.arange(n)
        for k in ("left", "right"):
            c = arrays[k][inner]
            if np.any(c <= idx[inner]) or np.any(c >= n):
                bad = int(idx[inner][(c <= idx[inner]) | (c >= n)][0])
                raise GraphError(f"tree ensemble: node {bad} has {k} child {int(arrays[k][bad])}; children must "
                                 f"come after their parent, within the {n} nodes")
        for k in ("threshold", "value", "base"):
            a = arrays[k] if k != "threshold" else arrays[k][inner]
            a = a if k != "value" else a[~inner]
            if not np.all(np.isfinite(a)):
                raise GraphError(f"tree ensemble: a {k} is not finite ({a[~np.isfinite(a)].flat[0]})")
        if self.missing is not None and not math.isfinite(self.missing):
            raise GraphError("tree ensemble: missing must be a finite value or None (NaN never reaches "
                             "fixed-point hardware)")
        for k, a in arrays.items():
            a.setflags(write=False)
            object.__setattr__(self, k, a)
        if self.leaf_type is not None:
            object.__setattr__(self, "leaf_type", _as_type(self.leaf_type))

    # ------------------------------------------------------------------ structure

    @property
    def n_trees(self) -> int:
        return len(self.roots)

    @property
    def n_outputs(self) -> int:
        return self.value.shape[1]

    @property
    def n_features(self) -> int:
        return int(self.feature.max(initial=-1)) + 1

    @property
    def effective_value(self) -> np.ndarray:
        """Leaf values as the hardware holds them (quantized to ``leaf_type``)."""
        return self.value if self.leaf_type is None else quantize(self.value, self.leaf_type)

    @property
    def effective_base(self) -> np.ndarray:
        return self.base if self.leaf_type is None else quantize(self.base, self.leaf_type)

    def describe(self) -> str:
        return (f"{self.n_trees} trees, {int((self.feature >= 0).sum())} splits, {self.n_outputs} outputs, "
                f"x {'<' if self.split == 'lt' else '<='} t")

    def _check_input(self, x: TensorType) -> None:
        if x.ndim != 1:
            raise GraphError(f"a tree ensemble reads a vector of features, got shape {x.shape}")
        if self.n_features > x.shape[0]:
            raise GraphError(f"the trees read feature {self.n_features - 1}, the input has {x.shape[0]} features")

    def decisions(self, x: TensorType) -> dict:
        """Per inner node: its comparator ``(feature, T)`` (decision ``q <= T``), whether the
        input interval already decides it, and the missing-value code of its feature."""
        self._check_input(x)
        inner = np.flatnonzero(self.feature >= 0)
        cache: dict[tuple[int, float], int] = {}
        T = np.zeros(len(self.feature), dtype=object)
        known = np.full(len(self.feature), -1, dtype=np.int64)   # -1 unknown, 0 false, 1 true
        for i in inner:
            fe = int(self.feature[i])
            lo, hi, f = int(x.lo[fe]), int(x.hi[fe]), int(x.fraction[fe])
            key = (fe, float(self.threshold[i]))
            if key not in cache:
                cache[key] = threshold_code(key[1], f, self.split)
            t = cache[key]
            T[i] = t
            known[i] = 1 if hi <= t else (0 if lo > t else -1)
        miss = {}
        if self.missing is not None:
            for fe in set(int(v) for v in self.feature[inner]):
                m = Fraction(self.missing) * Fraction(2) ** int(x.fraction[fe])
                if m.denominator == 1 and int(x.lo[fe]) <= m.numerator <= int(x.hi[fe]):
                    miss[fe] = m.numerator
        return {"T": T, "known": known, "missing": miss}

    def _reachable(self, x: TensorType, dec: dict) -> np.ndarray:
        """Which nodes some input of type ``x`` can reach."""
        reach = np.zeros(len(self.feature), dtype=bool)
        reach[self.roots] = True
        for i in range(len(self.feature)):
            fe = int(self.feature[i])
            if not reach[i] or fe < 0:
                continue
            k = int(dec["known"][i])
            can_left, can_right = k != 0, k != 1
            if fe in dec["missing"]:   # the missing code itself takes the default direction
                can_left |= bool(self.default_left[i])
                can_right |= not self.default_left[i]
            reach[self.left[i]] |= can_left
            reach[self.right[i]] |= can_right
        return reach

    def _leaf_codes(self) -> tuple[np.ndarray, np.ndarray, int]:
        """Leaf values and base scores as exact codes (object ints) at one common fraction."""
        v, b = self.effective_value, self.effective_base
        vc, vf = exact_codes(v)
        bc, bf = exact_codes(b)
        f = int(max(vf.max(initial=0), bf.max(initial=0)))
        return vc * (1 << (f - vf)).astype(object), bc * (1 << (f - bf)).astype(object), f

    def _tree_of(self) -> np.ndarray:
        """Tree index of every node."""
        tree = np.full(len(self.feature), -1, dtype=np.int64)
        tree[self.roots] = np.arange(self.n_trees)
        for i in range(len(self.feature)):
            if tree[i] < 0:
                raise GraphError(f"tree ensemble: node {i} is not reachable from any root")
            if self.feature[i] >= 0:
                for c in (self.left[i], self.right[i]):
                    if tree[c] >= 0:
                        raise GraphError(f"tree ensemble: node {int(c)} has two parents")
                    tree[c] = tree[i]
        return tree

    def infer(self, inputs: list[TensorType]) -> TensorType:
        (x,) = inputs
        dec = self.decisions(x)
        reach = self._reachable(x, dec)
        tree = self._tree_of()
        vc, bc, f = self._leaf_codes()
        leaves = reach & (self.feature < 0)
        lo, hi = list(bc), list(bc)
        for t in range(self.n_trees):
            sel = leaves & (tree == t)
            vals = vc[sel]
            for k in range(self.n_outputs):
                lo[k] += min(vals[:, k])
                hi[k] += max(vals[:, k])
        return TensorType(int_array(lo), int_array(hi), np.full(self.n_outputs, f))

    # ------------------------------------------------------------------ emulation

    def emulator(self, in_types, out_type):
        (x,) = in_types
        dec = self.decisions(x)
        vc, bc, f = self._leaf_codes()
        try:
            check_width(out_type.width, "the tree ensemble's sums")
            check_width(TensorType(vc.min(axis=0, initial=0), vc.max(axis=0, initial=0), 0).width, "a leaf value")
        except Exception as e:
            raise GraphError(str(e)) from None
        n = len(self.feature)
        inner = self.feature >= 0
        leaf = ~inner
        feat = np.where(inner, self.feature, 0)
        lo = np.array([int(x.lo[fe]) for fe in feat], dtype=object)
        # thresholds clipped into the int64 range of the codes (the decision is the same)
        T = np.where(inner, dec["T"], 0)
        T = np.array([min(max(int(t), int(a) - 1), int(x.hi[fe])) for t, a, fe in zip(T, lo, feat)], dtype=np.int64)
        left = np.where(inner, self.left, np.arange(n))
        right = np.where(inner, self.right, np.arange(n))
        miss = np.array([dec["missing"].get(int(fe), None) is not None and bool(i) for fe, i in zip(feat, inner)])
        mcode = np.array([dec["missing"].get(int(fe), 0) for fe in feat], dtype=np.int64)
        dleft = self.default_left
        depth = _max_depth(self)
        vals = vc.astype(np.int64)
        base = bc.astype(np.int64)
        outs = [np.flatnonzero(vals[:, k] != 0) for k in range(self.n_outputs)]
        tree = self._tree_of()
        # per output, the trees that add to it
        trees_of = [np.unique(tree[o]) for o in outs]
        roots = self.roots

        def run(inputs):
            X = inputs[0]
            N = len(X)
            out = np.empty((N, self.n_outputs), dtype=np.int64)
            step = max(1, (1 << 22) // max(self.n_trees, 1))
            for s in range(0, N, step):
                Xc = X[s:s + step]
                idx = np.broadcast_to(roots, (len(Xc), len(roots))).copy()
                rows = np.arange(len(Xc))[:, None]
                for _ in range(depth):
                    q = Xc[rows, feat[idx]]
                    go = q <= T[idx]
                    if miss.any():
                        m = miss[idx] & (q == mcode[idx])
                        go = np.where(m, dleft[idx], go)
                    idx = np.where(leaf[idx], idx, np.where(go, left[idx], right[idx]))
                for k in range(self.n_outputs):
                    cols = trees_of[k]
                    out[s:s + step, k] = vals[idx[:, cols], k].sum(axis=1) + base[k]
            return out

        return run

    # ------------------------------------------------------------------ hardware

    def lower(self, nl, inputs, in_types, out_type) -> np.ndarray:
        (x,) = in_types
        xs = inputs[0]
        dec = self.decisions(x)
        vc, bc, f = self._leaf_codes()
        bits: dict[int, int] = {}   # node -> decision wire (1 = go left)
        comparators: dict[tuple[int, int], int] = {}
        missing: dict[int, int] = {}
        for i in np.flatnonzero(self.feature >= 0):
            fe = int(self.feature[i])
            key = (fe, int(dec["T"][i]))
            if key not in comparators:
                comparators[key] = nl.compare("le", int(xs[fe]), nl.const(key[1], int(x.fraction[fe])))
            b = comparators[key]
            if fe in dec["missing"]:
                if fe not in missing:
                    missing[fe] = nl.compare("eq", int(xs[fe]), nl.const(dec["missing"][fe], int(x.fraction[fe])))
                b = nl.select(missing[fe], nl.const(int(self.default_left[i]), 0), b)
            bits[int(i)] = b
        consts: dict[int, int] = {}

        def const(q: int) -> int:
            if q not in consts:
                consts[q] = nl.const(q, f)
            return consts[q]

        outs = []
        for k in range(self.n_outputs):
            terms = []
            for r in self.roots:
                w = self._mux(nl, int(r), k, vc, bits, const, {})
                if not (nl.is_const(w) and nl.wire(w).lo == 0):
                    terms.append(w)
            if bc[k] != 0 or not terms:
                terms.append(const(int(bc[k])))
            outs.append(_tree(nl.add, terms))
        return wire_array(outs, out_type.shape)

    def _mux(self, nl, i: int, k: int, vc, bits, const, memo) -> int:
        """The wire of tree node ``i``'s value for output ``k``: a leaf constant, or a select."""
        if self.feature[i] < 0:
            return const(int(vc[i, k]))
        if i in memo:
            return memo[i]
        b = bits[i]
        if nl.is_const(b):
            w = self._mux(nl, int(self.left[i] if nl.wire(b).lo else self.right[i]), k, vc, bits, const, memo)
        else:
            a = self._mux(nl, int(self.left[i]), k, vc, bits, const, memo)
            c = self._mux(nl, int(self.right[i]), k, vc, bits, const, memo)
            w = a if a == c else nl.select(b, a, c)
        memo[i] = w
        return w

    # ------------------------------------------------------------------ serialization

    def to_json(self) -> dict:
        return {"feature": self.feature.tolist(), "threshold": self.threshold.tolist(), "left": self.left.tolist(),
                "right": self.right.tolist(), "value": self.value.tolist(), "roots": self.roots.tolist(),
                "base": self.base.tolist(), "split": self.split, "leaf_type": type_to_json(self.leaf_type),
                "default_left": self.default_left.astype(int).tolist(), "missing": self.missing}

    @classmethod
    def from_json(cls, data: dict) -> "TreeEnsemble":
        return cls(np.array(data["feature"]), np.array(data["threshold"], dtype=np.float64), np.array(data["left"]),
                   np.array(data["right"]), np.array(data["value"], dtype=np.float64), np.array(data["roots"]),
                   np.array(data["base"], dtype=np.float64), data["split"], type_from_json(data.get("leaf_type")),
                   np.array(data["default_left"], dtype=bool), data.get("missing"))


def _as_type(t) -> FixedType:
    from ...fixed import parse_type
    return parse_type(t) if isinstance(t, str) else t


def _max_depth(op: TreeEnsemble) -> int:
    depth = np.zeros(len(op.feature), dtype=np.int64)
    for i in range(len(op.feature)):
        if op.feature[i] >= 0:
            depth[op.left[i]] = depth[op.right[i]] = depth[i] + 1
    return int(depth.max(initial=0))
