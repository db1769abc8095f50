"""The ``cse`` CMVM solver: frequent-and-narrow CSE, depth-bounded trees, a small portfolio.

Algorithm (docs/cmvm.md has the measurements behind each choice):

1. Every weight is written in canonical signed digits, so output ``j`` is a sum of terms
   ``±x_i * 2**s``. Columns equal up to sign and a power of two are solved once.
2. Greedy two-term CSE: a *pattern* is ``x_a ± x_b * 2**d`` (operands are inputs or earlier
   subexpressions), counted over all outputs at every relative shift. The pattern with the
   highest ``3 * (count - 1) - width`` is made an adder and substituted everywhere, where
   ``width`` is the bit width of the value it creates. Frequency first, then the narrowest
   new value: a narrow subexpression keeps every later adder that reads it narrow. (Ranking
   by "adder width saved", widest first, was measured to cost 4-6% more adder bits.)
3. Depth bound: every variable has an adder depth, and an output whose remaining terms have
   depths ``d_t`` needs at least ``ceil(log2(sum 2**d_t))`` more levels (Kraft). A
   substitution is made only where that stays within ``levels = (fewest levels any output
   needs with no sharing) + depth_slack``; ``depth_slack=None`` removes the bound.
4. Each output's remaining terms are summed narrowest partial sum first (then the cheaper
   adder), among the pairs that keep the output within the bound.
5. Portfolio: small matrices are solved a few times with seeded tie-breaking noise, and
   correlated columns are also tried as differences of each other
   (:mod:`rtl4ml.cmvm.decompose`); the fewest estimated adder bits win.

Pair counts are maintained incrementally (numpy computes the pair keys of one output at a
time; counts of pairs of two inputs live in a numpy array, the others in dicts updated in C)
and the best pattern sits in a lazy max-heap of plain ints.
"""

from __future__ import annotations

import heapq
from collections import Counter
from typing import Sequence

import numpy as np

from ..fixed import code_width
from ..fixed import Wire
from .core import dyadic

_SHB = 11                 # bits of a term key that hold the shift
_SH = 1 << _SHB
_OFF = _SH // 4           # shifts must lie in [-_OFF, _OFF): relative shifts then fit +-_SH/2
_NARROW = 3              # one more occurrence of a pattern is worth 3 bits of its width
_TREE_BATCH = 1 << 20     # output trees are built in batches of about this many pair keys
_BIAS = 1 << 40           # heap entries are ints ((_BIAS - weight) << 62 | pair key): fast compares


def estimate_add(a: tuple[int, int, int], b: tuple[int, int, int], shift: int, sub: bool) -> tuple[int, int, int, int]:
    """``(adder bits, lo, hi, fraction)`` of ``a ± b * 2**shift`` for wires ``(lo, hi, fraction)``.

    Interval arithmetic (an upper bound of the exact width the builder later computes);
    the cost rule is :func:`rtl4ml.estimate.analytic.add_cost`: low bits that only one
    operand drives are wires, not adder bits.
    """
    la, ha, fa = a
    lb, hb, fb = b
    f = max(fa, fb - shift)
    sa, sb = f - fa, f - fb + shift
    if sub:
        lb, hb = -hb, -lb
    lo = (la << sa) + (lb << sb)
    hi = (ha << sa) + (hb << sb)
    w = code_width(lo, hi)[1]
    if sb > sa:
        w -= sb
    elif sa > sb and not sub:
        w -= sa
    return max(w, 0), lo, hi, f


class _Vars:
    """Variables (inputs, then adders): exact-enough intervals, fractions and adder depths."""

    def __init__(self, inputs: Sequence[Wire]) -> None:
        self.lo = [w.lo for w in inputs]
        self.hi = [w.hi for w in inputs]
        self.frac = [w.fraction for w in inputs]
        self.depth = [0] * len(inputs)
        self.ops: list[tuple[int, int, int, bool]] = []
        cap = len(inputs) + 16
        self.np = np.zeros((3, cap), dtype=np.int64)    # lo, hi, fraction, for vectorized costs
        self.exact = True                                # every value fits the int64 mirror
        self.bits = 0                                    # widest |value| so far, in bits
        self.cost = 0                                    # estimated adder bits of all adders so far
        self.frac_range = (min(self.frac, default=0), max(self.frac, default=0))
        for v in range(len(inputs)):
            self._mirror(v)

    def _mirror(self, v: int) -> None:
        if v >= self.np.shape[1]:
            self.np = np.concatenate([self.np, np.zeros_like(self.np)], axis=1)
        self.bits = max(self.bits, abs(self.lo[v]).bit_length(), abs(self.hi[v]).bit_length())
        self.frac_range = (min(self.frac_range[0], self.frac[v]), max(self.frac_range[1], self.frac[v]))
        if self.bits > 40 or abs(self.frac[v]) > 200:
            self.exact = False
        else:
            self.np[:, v] = (self.lo[v], self.hi[v], self.frac[v])

    def widths(self, pairs: "_Pairs", keys: np.ndarray) -> np.ndarray:
        """Code widths of the variables that pair keys would make."""
        if len(keys) == 0:
            return np.zeros(0, dtype=np.int64)
        return self.add_costs(*pairs.decode_many(keys))[0]

    def add_costs(self, a: np.ndarray, b: np.ndarray, d: np.ndarray, sub: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
        """``(code width, adder bits)`` of ``a ± b * 2**d`` for arrays of variables (int64).

        Vectorized :func:`estimate_add`; it falls back to Python ints where int64 could overflow.
        """
        spread = int(np.abs(d).max(initial=0)) + self.frac_range[1] - self.frac_range[0]
        if not self.exact or self.bits + spread > 52:   # |lo|, |hi| < 2**53: _bitlen is exact
            out = [estimate_add(self.wire(x), self.wire(y), s, bool(g))
                   for x, y, s, g in zip(a.tolist(), b.tolist(), d.tolist(), sub.tolist())]
            return (np.array([code_width(lo, hi)[1] for _, lo, hi, _ in out], dtype=np.int64),
                    np.array([c for c, _, _, _ in out], dtype=np.int64))
        la, ha, fa = self.np[:, a]
        lb, hb, fb = self.np[:, b]
        f = np.maximum(fa, fb - d)
        sa, sb = f - fa, f - fb + d
        neg = sub == 1
        lb, hb = np.where(neg, -hb, lb), np.where(neg, -lb, hb)
        lo = (la << sa) + (lb << sb)
        hi = (ha << sa) + (hb << sb)
        pos = _bitlen(np.maximum(hi, 0))
        w = np.where(lo < 0, 1 + np.maximum(pos, _bitlen(np.maximum(-lo - 1, 0))), pos)
        cost = w - np.where(sb > sa, sb, np.where((sa > sb) & ~neg, sa, 0))
        return w, np.maximum(cost, 0)

    def wire(self, v: int) -> tuple[int, int, int]:
        return self.lo[v], self.hi[v], self.frac[v]

    def add(self, a: int, b: int, shift: int, sub: bool) -> int:
        cost, lo, hi, f = estimate_add(self.wire(a), self.wire(b), shift, sub)
        self.cost += cost
        self.lo.append(lo)
        self.hi.append(hi)
        self.frac.append(f)
        self.depth.append(max(self.depth[a], self.depth[b]) + 1)
        self.ops.append((a, b, shift, sub))
        self._mirror(len(self.lo) - 1)
        return len(self.lo) - 1


class _Output:
    """The live terms of one output: numpy slots for vectorized pair keys, a dict to find them."""

    def __init__(self, keys: list[int], negs: list[int], capacity: int) -> None:
        self.tk = np.zeros(capacity, dtype=np.int64)
        self.ng = np.zeros(capacity, dtype=np.int64)
        self.alive = np.zeros(capacity, dtype=bool)
        self.n = len(keys)
        self.tk[:self.n] = keys
        self.ng[:self.n] = negs
        self.alive[:self.n] = True
        self.slot = {k: i for i, k in enumerate(keys)}   # term key -> slot
        self.by_var: dict[int, dict[int, int]] = {}        # var -> {shift key: neg}
        for k, g in zip(keys, negs):
            self.by_var.setdefault(k >> _SHB, {})[k & (_SH - 1)] = g
        self.kraft = 0                                     # sum of 2**depth over terms
        self.bound: int | None = None                      # the most kraft may reach (2**levels)

    def live(self) -> tuple[np.ndarray, np.ndarray]:
        m = self.alive[:self.n]
        return self.tk[:self.n][m], self.ng[:self.n][m]

    def remove(self, t: int) -> None:
        self.alive[self.slot.pop(t)] = False
        v = t >> _SHB
        d = self.by_var[v]
        del d[t & (_SH - 1)]
        if not d:
            del self.by_var[v]

    def append(self, t: int, g: int) -> None:
        if self.n == len(self.tk):
            for name in ("tk", "ng", "alive"):
                a = getattr(self, name)
                setattr(self, name, np.concatenate([a, np.zeros_like(a)]))
        self.tk[self.n], self.ng[self.n], self.alive[self.n] = t, g, True
        self.slot[t] = self.n
        self.n += 1
        self.by_var.setdefault(t >> _SHB, {})[t & (_SH - 1)] = g


class _Pairs:
    """Pair keys: ``((t1 >> SHB) * kb + (t2 - t1)) * 2 + sign`` for term keys ``t1 < t2``."""

    def __init__(self, max_vars: int) -> None:
        self.kb = max_vars << _SHB
        if (self.kb * self.kb) >= (1 << 61):
            raise ValueError("CMVM too large for 63-bit pair keys")

    def keys_rows(self, ts: np.ndarray, gs: np.ndarray, tk: np.ndarray, ng: np.ndarray) -> np.ndarray:
        """Keys of every term ``ts[r]`` (sign ``gs[r]``) paired with every term of ``tk``: (rows, n)."""
        t1 = np.minimum(tk[None, :], ts[:, None])
        t2 = np.maximum(tk[None, :], ts[:, None])
        return (((t1 >> _SHB) * self.kb + (t2 - t1)) << 1) | (ng[None, :] ^ gs[:, None])

    def key(self, t1: int, t2: int, sub: int) -> int:
        return (((t1 >> _SHB) * self.kb + (t2 - t1)) << 1) | sub

    def all_pairs(self, tk: np.ndarray, ng: np.ndarray) -> np.ndarray:
        i, j = np.triu_indices(len(tk), 1)
        t1, t2 = np.minimum(tk[i], tk[j]), np.maximum(tk[i], tk[j])
        return (((t1 >> _SHB) * self.kb + (t2 - t1)) << 1) | (ng[i] ^ ng[j])

    def decode_many(self, pk: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        sub = pk & 1
        v1, diff = np.divmod(pk >> 1, self.kb)
        dv = (diff + _SH // 2) >> _SHB
        return v1, v1 + dv, diff - (dv << _SHB), sub

    def decode(self, pk: int) -> tuple[int, int, int, int]:
        """``(var a, var b, shift of b relative to a, subtract)``."""
        sub = pk & 1
        v1, diff = divmod(pk >> 1, self.kb)
        dv = (diff + _SH // 2) >> _SHB
        return v1, v1 + dv, diff - (dv << _SHB), sub


class _Counts:
    """How often each pattern occurs.

    Pairs of two input terms can only lose occurrences after the start, so their counts
    live in a numpy array (decremented in bulk; pairs seen once are never tracked). Pairs
    involving a subexpression are all born when it is made: plain dicts updated in C.
    """

    def __init__(self, pairs: _Pairs, vs: _Vars, initial: list[np.ndarray], jitter: int = 0) -> None:
        self.rng = np.random.default_rng(jitter) if jitter else None
        self.pairs = pairs
        self.vs = vs
        allk = np.concatenate(initial) if initial else np.zeros(0, dtype=np.int64)
        uk, cnt = np.unique(allk, return_counts=True)
        keep = cnt >= 2
        self.keys, self.cnt = uk[keep], cnt[keep].astype(np.int64)
        self.index = dict(zip(self.keys.tolist(), range(len(self.keys))))
        self.widths = np.zeros(len(self.keys), dtype=np.int64)
        self.plus: dict[int, int] = {}      # pairs with a subexpression seen twice or more: count << 10 | width
        self.minus: Counter = Counter()

    def _widths(self, keys: np.ndarray) -> np.ndarray:
        """Widths of the values the pairs would make, plus seeded tie-breaking noise if asked."""
        w = self.vs.widths(self.pairs, keys)
        if self.rng is not None:   # break ties differently: up to 2 bits of noise (< _NARROW)
            w = w + self.rng.integers(0, _NARROW, len(w))
        return w

    @staticmethod
    def _entries(keys: np.ndarray, cnt: np.ndarray, widths: np.ndarray) -> list[int]:
        """Heap entries ``(_BIAS - weight) << 62 | key`` with ``weight = 3 (count - 1) - width``."""
        return (((_BIAS - (cnt - 1) * _NARROW + widths) << 62) | keys).tolist()

    def initial_heap(self) -> list[int]:
        self.widths = self._widths(self.keys)
        heap = self._entries(self.keys, self.cnt, self.widths)
        heapq.heapify(heap)
        return heap

    def remove(self, old: np.ndarray, new: np.ndarray) -> None:
        """Drop one occurrence of each pair key: ``old`` pairs of two inputs, ``new`` the rest."""
        if len(new):
            self.minus.update(new.tolist())
        if len(old):
            k = old
            if len(self.keys):
                i = np.searchsorted(self.keys, k)
                ok = i < len(self.keys)
                i, k = i[ok], k[ok]
                np.subtract.at(self.cnt, i[self.keys[i] == k], 1)

    def add_fresh(self, keys: np.ndarray) -> list[int]:
        """Count the pairs of a new subexpression; heap entries for those seen twice or more.

        All its pairs are born now and can only lose occurrences later, so pairs seen once
        are never candidates and are not stored.
        """
        uk, cnt = np.unique(keys, return_counts=True)
        many = cnt >= 2
        uk, cnt = uk[many], cnt[many]
        w = self._widths(uk)
        self.plus.update(zip(uk.tolist(), ((cnt << 10) | w).tolist()))
        return self._entries(uk, cnt, w)


def _bitlen(x: np.ndarray) -> np.ndarray:
    """``int.bit_length`` of non-negative int64 values below 2**53."""
    return np.where(x > 0, np.frexp(x.astype(np.float64))[1], 0).astype(np.int64)


def _unique_columns(W: np.ndarray) -> tuple[list[int], list[tuple[int, int, bool] | None]]:
    """Representative columns, and for every column ``(rep index, shift, negate)`` of it.

    Columns equal up to sign and a power of two are one CMVM output plus free wiring.
    """
    reps: dict[bytes, int] = {}
    rep_cols: list[int] = []
    rep_scale: list[tuple[int, bool]] = []
    alias: list[tuple[int, int, bool] | None] = []
    for j in range(W.shape[1]):
        col = W[:, j]
        nz = np.flatnonzero(col)
        if len(nz) == 0:
            alias.append(None)
            continue
        e = min(dyadic(float(x))[1] for x in col[nz])
        norm = np.ldexp(col, -e)
        neg = bool(norm[nz[0]] < 0)
        if neg:
            norm = -norm
        key = (norm + 0.0).tobytes()   # + 0.0 turns -0.0 into 0.0
        if key not in reps:
            reps[key] = len(rep_cols)
            rep_cols.append(j)
            rep_scale.append((e, neg))
        k = reps[key]
        alias.append((k, e - rep_scale[k][0], neg != rep_scale[k][1]))
    return rep_cols, alias


def _solve_once(terms: list[list[tuple[int, int, bool]]], inputs: Sequence[Wire], levels: int | None,
                jitter: int = 0, out_levels: Sequence[int] | None = None
                ) -> tuple[_Vars, list[tuple[int, int, bool] | None]]:
    """One greedy CSE run and the output trees, at most ``levels`` adders deep where possible.

    ``out_levels`` (with ``levels`` set) bounds each output separately instead. ``jitter > 0``
    perturbs ties (seeded). Outputs with no terms are ``None``.
    """
    n_in = len(inputs)
    vs = _Vars(inputs)
    total = sum(len(t) for t in terms)
    pairs = _Pairs(n_in + total + 1)
    outs: list[_Output] = []
    for ts in terms:
        keys = [(i << _SHB) | (s + _OFF) for i, s, _ in ts]
        outs.append(_Output(keys, [int(g) for _, _, g in ts], max(len(ts), 1)))
        outs[-1].kraft = len(ts)
    need = [max(len(t) - 1, 0).bit_length() for t in terms]
    for o, nd, lv in zip(outs, need, out_levels if out_levels is not None else [levels] * len(outs)):
        o.bound = None if levels is None else 1 << max(lv, nd)

    counts = _Counts(pairs, vs, [pairs.all_pairs(*o.live()) for o in outs], jitter)
    heap = counts.initial_heap()
    var_outs: list[set[int]] = [set() for _ in range(n_in)]
    for j, o in enumerate(outs):
        for v in o.by_var:
            var_outs[v].add(j)
    blocked: dict[int, int] = {}

    def occurrences(a: int, b: int, d: int, sub: int) -> list[tuple[int, int, int, int]]:
        """Disjoint uses ``(output, term a, neg a, term b)`` allowed by the depth bound."""
        found = []
        grow = (1 << (max(vs.depth[a], vs.depth[b]) + 1)) - (1 << vs.depth[a]) - (1 << vs.depth[b])
        for j in sorted(var_outs[a] & var_outs[b]):
            o = outs[j]
            if levels is not None and o.kraft + grow > o.bound:
                continue
            da, db = o.by_var.get(a), o.by_var.get(b)
            if not da or not db:
                continue
            used: set[int] = set()   # shifts of var a already paired (a == b only)
            n = 0
            for s in sorted(da):
                g = da[s]
                if a == b and s in used:
                    continue
                gb = db.get(s + d)
                if gb is None or (g ^ gb) != sub or (a == b and s + d in used):
                    continue
                if levels is not None and o.kraft + grow * (n + 1) > o.bound:
                    break
                if a == b:
                    used.update((s, s + d))
                n += 1
                found.append((j, (a << _SHB) | s, g, (b << _SHB) | (s + d)))
        return found

    mask = (1 << 62) - 1
    pop, push = heapq.heappop, heapq.heappush
    index_get, plus_get, minus_get, blocked_get = counts.index.get, counts.plus.get, counts.minus.get, blocked.get
    input_pairs, input_widths = counts.cnt, counts.widths
    while heap:
        e = pop(heap)
        pk = e & mask
        i = index_get(pk)
        if i is not None:
            c, wd = input_pairs.item(i), input_widths.item(i)
        else:
            pv = plus_get(pk, 0)
            c, wd = (pv >> 10) - minus_get(pk, 0), pv & 1023
        if c < 2:
            continue
        if blocked:
            c -= blocked_get(pk, 0)
            if c < 2:
                continue
        w = (c - 1) * _NARROW - wd
        if w < _BIAS - (e >> 62):
            push(heap, ((_BIAS - w) << 62) | pk)
            continue
        a, b, d, sub = pairs.decode(pk)
        occ = occurrences(a, b, d, sub)
        if len(occ) < c:
            blocked[pk] = blocked.get(pk, 0) + c - len(occ)
            if len(occ) >= 2:
                push(heap, ((_BIAS - ((len(occ) - 1) * _NARROW - wd)) << 62) | pk)
            continue
        v = vs.add(a, b, d, bool(sub))
        var_outs.append(set())
        grow = (1 << vs.depth[v]) - (1 << vs.depth[a]) - (1 << vs.depth[b])
        old, new, fresh = [], [], []
        a_orig, b_orig = a < n_in, b < n_in
        for j, ta, ga, tb in occ:
            o = outs[j]
            o.remove(ta)
            o.remove(tb)
            tk, ng = o.live()
            tv = (v << _SHB) | (ta & (_SH - 1))
            K = pairs.keys_rows(np.array([ta, tb, tv]), np.array([ga, ga ^ sub, ga]), tk, ng)
            both_in = np.outer([a_orig, b_orig], (tk >> _SHB) < n_in)   # pairs of two input terms
            old.append(K[:2][both_in])
            new.append(K[:2][~both_in])
            t1, t2 = min(ta, tb), max(ta, tb)
            (old if a_orig and b_orig else new).append(np.array([pairs.key(t1, t2, sub)]))
            fresh.append(K[2])
            o.append(tv, ga)
            o.kraft += grow
            var_outs[v].add(j)
        counts.remove(np.concatenate(old), np.concatenate(new))
        for entry in counts.add_fresh(np.concatenate(fresh)):
            heapq.heappush(heap, entry)

    max_depth = max(vs.depth, default=0)
    free = 1 << max(max(need, default=0), max_depth)   # unbounded: no deeper than needed anyway
    return vs, _trees(vs, outs, [free if levels is None else o.bound for o in outs])


def _trees(vs: _Vars, outs: list[_Output], bounds: list[int]) -> list[tuple[int, int, bool] | None]:
    """Sum each output's terms, narrowest partial sum first, within its Kraft depth bound.

    Each step adds the pair of live terms whose sum has the fewest bits (then the cheaper
    adder), among the pairs that keep the output within its bound. Narrowest-first pairs
    similarly aligned, similarly small terms, so carries stay short and low bits that only
    one operand drives stay wires. (Smallest-magnitude-first Huffman, the previous rule,
    gave 1-2 % more adder bits on random 16-64 square 8-bit matrices.)

    Outputs are summed in lockstep, a batch at a time: the terms of output ``o`` sit in
    slots ``0..k_o-1`` of a ``(batch, K, K)`` array of pair keys; a sum takes the slot of
    one operand and retires the other's. A step is then a few numpy calls for the whole
    batch plus one :meth:`_Vars.add` per output.
    """
    roots: list[tuple[int, int, bool] | None] = [None] * len(outs)
    todo = [j for j, o in enumerate(outs) if o.slot]
    start = 0
    while start < len(todo):
        K = max(len(outs[todo[start]].slot), 1)
        stop = start + 1
        while stop < len(todo) and (stop - start + 1) * max(K, len(outs[todo[stop]].slot)) ** 2 <= _TREE_BATCH:
            K = max(K, len(outs[todo[stop]].slot))
            stop += 1
        batch = todo[start:stop]
        for j, r in zip(batch, _trees_batch(vs, [outs[j] for j in batch], [bounds[j] for j in batch], K)):
            roots[j] = r
        start = stop
    return roots


def _trees_batch(vs: _Vars, outs: list[_Output], bounds: list[int], K: int) -> list[tuple[int, int, bool]]:
    """:func:`_trees` for a batch of outputs with at most ``K`` terms each."""
    n = len(outs)
    var = np.zeros((n, K), dtype=np.int64)
    sh = np.zeros((n, K), dtype=np.int64)
    neg = np.zeros((n, K), dtype=np.int64)
    alive = np.zeros((n, K), dtype=bool)
    for r, o in enumerate(outs):
        tk, ng = o.live()
        var[r, :len(tk)], sh[r, :len(tk)], neg[r, :len(tk)] = tk >> _SHB, (tk & (_SH - 1)) - _OFF, ng
        alive[r, :len(tk)] = True
    depth = np.array(vs.depth, dtype=np.int64)
    if max(bounds).bit_length() > 56 or depth.max(initial=0) > 56:   # Kraft sums are int64 here
        raise ValueError(f"CMVM adder depth {max(int(depth.max(initial=0)), max(bounds).bit_length() - 1)} "
                         "is beyond the supported 56 levels")
    weight = np.where(alive, np.left_shift(1, depth[var]), 0)          # 2**depth of each slot's term
    kraft = weight.sum(axis=1)
    bound = np.array(bounds, dtype=np.int64)
    bound = np.maximum(bound, np.left_shift(1, _bitlen(np.maximum(kraft - 1, 0))))
    never = np.iinfo(np.int64).max
    key = np.full((n, K, K), never, dtype=np.int64)

    def fill(r: np.ndarray, i: np.ndarray, j: np.ndarray) -> None:
        """Keys of the pairs (slot i, slot j) of outputs r: (width of the sum) << 20 | adder bits."""
        gi, gj = neg[r, i], neg[r, j]
        swap = (gi == 1) & (gj == 0)                   # a positive operand first: a - b, never -a + b
        base, other = np.where(swap, j, i), np.where(swap, i, j)
        w, c = vs.add_costs(var[r, base], var[r, other], sh[r, other] - sh[r, base], gi ^ gj)
        key[r, i, j] = key[r, j, i] = (w << 20) + c

    iu, ju = np.triu_indices(K, 1)
    pr, pi = np.nonzero(alive[:, iu] & alive[:, ju])
    fill(pr, iu[pi], ju[pi])
    left = alive.sum(axis=1) - 1                        # sums still to make per output
    wmax = weight.max(axis=1)                           # a sum outweighs both operands: max over live
    flat_key = key.reshape(n, K * K)
    while (act := np.flatnonzero(left > 0)).size:
        tight = kraft[act] + 2 * wmax[act] > bound[act]
        flat = np.argmin(flat_key[act], axis=1)
        if tight.any():                                 # only pairs that keep the Kraft sum in bound
            t = act[tight]
            w = weight[t]
            grow = 2 * np.maximum(w[:, :, None], w[:, None, :]) - w[:, :, None] - w[:, None, :]
            ok = (kraft[t, None, None] + grow <= bound[t, None, None]).reshape(len(t), K * K)
            pick = np.argmin(np.where(ok, flat_key[t], never), axis=1)
            got = np.arange(len(t))
            if not (ok[got, pick] & (flat_key[t, pick] != never)).all():
                raise AssertionError("no pair of terms fits the depth bound")   # Kraft: cannot happen
            flat[tight] = pick
        x, y = np.divmod(flat, K)
        wx, wy = weight[act, x], weight[act, y]
        kraft[act] += 2 * np.maximum(wx, wy) - wx - wy
        gx, gy = neg[act, x], neg[act, y]
        swap = (gx == 1) & (gy == 0)
        base, other = np.where(swap, y, x), np.where(swap, x, y)
        vb, vo = var[act, base].tolist(), var[act, other].tolist()
        d = (sh[act, other] - sh[act, base]).tolist()
        sub = (gx ^ gy).tolist()
        new = [vs.add(a, b, s, bool(g)) for a, b, s, g in zip(vb, vo, d, sub)]
        sh[act, x], neg[act, x] = sh[act, base], neg[act, base]
        var[act, x] = new
        weight[act, x] = np.left_shift(1, np.array([vs.depth[v] for v in new], dtype=np.int64))
        wmax[act] = np.maximum(wmax[act], weight[act, x])
        alive[act, y] = False
        key[act, y, :] = never                          # a retired slot never pairs again
        key[act, :, y] = never
        left[act] -= 1
        alive[act, x] = False
        r, j = np.nonzero(alive[act])
        alive[act, x] = True
        fill(act[r], x[r], j)
    roots = []
    for r in range(n):
        (x,) = np.flatnonzero(alive[r])
        roots.append((int(var[r, x]), int(sh[r, x]), bool(neg[r, x])))
    return roots
