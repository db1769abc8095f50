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

Speed (pure numpy; see ``benchmarks/lowering_speed.py``: a 256x256 layer of 8-bit weights
took about 2 minutes, now about 10 s). Pair counts are kept incrementally, and a round of
substitutions updates them with a few numpy calls over all the outputs it touches: keys of
the pairs its removed terms made (counted down) and of the pairs its new terms make (counted
by one stable sort; keys name the newer variable first, so they come as sorted runs).
Patterns of two inputs are counted at the start by one ``bincount`` and live in a direct
table, the others in a numpy hash table. The best pattern comes from a lazy bucket queue by
weight, the outputs holding a pattern of two inputs from per-input shift bitmasks. All of
this makes exactly the choices of the plain greedy loop (one pattern at a time, a lazy heap).

Large matrices (more than :data:`rtl4ml.cmvm.solvers.EXACT_WEIGHTS` non-zero weights, so no
64x64 or smaller one, e.g. none of the jet MLP's layers) are solved in rounds (``window``):
a round substitutes every pattern within 3 of the best weight that shares no variable with
a better one of the round, and then updates the counts once. Patterns that share no variable
do not change each other's counts, so only the order among nearly equal patterns differs
from the greedy: 0.07 % more adder bits on the 256x256 benchmark layer (128x128: 0.05 %),
in half the time of the exact greedy there (one round per pattern costs a pass of numpy
calls each).
"""

from __future__ import annotations

from itertools import combinations
from typing import Sequence

import numpy as np

from ..fixed import code_width
from ..fixed import Wire
from .core import dyadic_parts

_SHB = 11                 # bits of a term key that hold the shift
_SH = 1 << _SHB
_OFF = _SH // 4           # shifts must lie in [-_OFF, _OFF): relative shifts then fit +-_SH/2
_NARROW = 3              # one more occurrence of a pattern is worth 3 bits of its width
_TREE_BATCH = 1 << 20     # output trees are built in batches of about this many pair keys
_HASH = np.uint64(0x9E3779B97F4A7C15)   # Fibonacci hashing: 2**64 / golden ratio
_DENSE_INIT = 1 << 24     # initial pair counts by bincount when the dense index is at most this large


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
        self._mirror(0)

    def _mirror(self, first: int) -> None:
        """Copy the variables from ``first`` on into the int64 mirror, while values fit it."""
        while len(self.lo) > self.np.shape[1]:
            self.np = np.concatenate([self.np, np.zeros_like(self.np)], axis=1)
        lo, hi, frac = self.lo[first:], self.hi[first:], self.frac[first:]
        if not frac:
            return
        self.bits = max(self.bits, *(abs(x).bit_length() for x in lo + hi))
        self.frac_range = (min(self.frac_range[0], *frac), max(self.frac_range[1], *frac))
        if self.bits > 40 or max(map(abs, frac)) > 200:
            self.exact = False
        else:
            self.np[:, first:len(self.lo)] = (lo, hi, frac)

    def _fits(self, d: np.ndarray) -> bool:
        """Sums with shifts ``d`` are exact in the int64 mirror (``|lo|, |hi| < 2**53``: _bitlen is exact)."""
        spread = int(np.abs(d).max(initial=0)) + self.frac_range[1] - self.frac_range[0]
        return self.exact and self.bits + spread <= 52

    def _sums(self, a: np.ndarray, b: np.ndarray, d: np.ndarray, sub: np.ndarray) -> tuple[np.ndarray, ...]:
        """``(code width, adder bits, lo, hi, fraction)`` of ``a ± b * 2**d``: :func:`estimate_add` in int64."""
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
        return w, np.maximum(cost, 0), lo, hi, f

    def add_costs(self, a: np.ndarray, b: np.ndarray, d: np.ndarray, sub: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
        """``(code width, adder bits)`` of ``a ± b * 2**d`` for arrays of variables (int64).

        Vectorized :func:`estimate_add`; it falls back to Python ints where int64 could overflow.
        """
        if self._fits(d):
            return self._sums(a, b, d, sub)[:2]
        out = [estimate_add(self.wire(x), self.wire(y), s, bool(g))
               for x, y, s, g in zip(a.tolist(), b.tolist(), d.tolist(), sub.tolist())]
        return (np.array([code_width(lo, hi)[1] for _, lo, hi, _ in out], dtype=np.int64),
                np.array([c for c, _, _, _ in out], dtype=np.int64))

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

    def add_many(self, a: np.ndarray, b: np.ndarray, d: np.ndarray, sub: np.ndarray) -> list[int]:
        """:meth:`add` for arrays of operands (of existing variables), in one vectorized step."""
        if not self._fits(d):
            return [self.add(x, y, s, bool(g)) for x, y, s, g in zip(a.tolist(), b.tolist(), d.tolist(), sub.tolist())]
        _, cost, lo, hi, f = self._sums(a, b, d, sub)
        first = len(self.lo)
        a, b = a.tolist(), b.tolist()
        self.cost += int(cost.sum())
        self.lo += lo.tolist()
        self.hi += hi.tolist()
        self.frac += f.tolist()
        self.depth += [max(self.depth[x], self.depth[y]) + 1 for x, y in zip(a, b)]
        self.ops += [(x, y, s, bool(g)) for x, y, s, g in zip(a, b, d.tolist(), sub.tolist())]
        self._mirror(first)
        return list(range(first, len(self.lo)))


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
    """Pair keys ``((t2 >> SHB) * kb + (t2 - t1)) * 2 + sign`` for term keys ``t1 < t2``.

    Keyed by the newer variable first: the patterns of a new variable are born together and
    sort together (runs that a stable sort merges quickly). Ties between equally good
    patterns go to the smallest ``(var a, var b, shift, sign)``, the order of :meth:`rank`.
    Terms are passed as codes ``term key << 1 | sign``; ``kb`` is a power of two.
    """

    def __init__(self, max_vars: int) -> None:
        self.bits = max(max_vars - 1, 1).bit_length() + _SHB
        self.kb = 1 << self.bits
        if 2 * self.bits >= 61:
            raise ValueError("CMVM too large for 63-bit pair keys")

    def keys(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Keys of the pairs of term codes ``x`` and ``y``, elementwise (broadcasting)."""
        t1, t2 = np.minimum(x, y) >> 1, np.maximum(x, y) >> 1
        return ((((t2 >> _SHB) << self.bits) + (t2 - t1)) << 1) | ((x ^ y) & 1)

    def all_pairs(self, codes: np.ndarray) -> np.ndarray:
        i, j = np.triu_indices(len(codes), 1)
        return self.keys(codes[i], codes[j])

    def key(self, a: np.ndarray, b: np.ndarray, d: np.ndarray, sub: np.ndarray) -> np.ndarray:
        """Keys of the patterns ``x_a ± x_b * 2**d`` (``a <= b``)."""
        return (((b << self.bits) + ((b - a) << _SHB) + d) << 1) | sub

    def decode(self, pk: "int | np.ndarray") -> tuple:
        """``(var a, var b, shift of b relative to a, subtract)`` of a key or an array of keys."""
        b, diff = pk >> (self.bits + 1), (pk >> 1) & (self.kb - 1)
        dv = (diff + _SH // 2) >> _SHB
        return b - dv, b, diff - (dv << _SHB), pk & 1

    def rank(self, a: np.ndarray, b: np.ndarray, d: np.ndarray, sub: np.ndarray) -> np.ndarray:
        """Tie-breaking order of patterns: by ``(var a, var b, shift, sign)``."""
        return (((a << self.bits) + ((b - a) << _SHB) + d) << 1) | sub


def _grow(a: np.ndarray, n: int) -> np.ndarray:
    """``a`` with room for at least ``n`` entries (capacity doubles, so appends are amortized O(1))."""
    if n <= len(a):
        return a
    out = np.zeros(max(n, 2 * len(a)), dtype=a.dtype)
    out[:len(a)] = a
    return out


class _Index:
    """Pair keys to ids ``0, 1, ...`` in order of arrival.

    Patterns of two inputs (keys below ``top``) sit in a direct table over ``(var a, var b,
    shift, sign)`` when that is small; the others in an open-addressing hash table in numpy.
    A substitution looks up thousands of keys at once, so lookups and insertions are a few
    vectorized probing rounds (linear probing, at most 30 % of the slots used: a key that is
    not there, a third of the lookups, is then found missing in about one probe). A slot holds
    its key and id side by side: one random memory access per probe.
    """

    _SLOT = np.dtype([("key", np.int64), ("id", np.int64)])

    def __init__(self, pairs: _Pairs, dense: tuple[int, int, int] | None) -> None:
        self.n = 0
        self.keys = np.zeros(16, dtype=np.int64)       # id -> key
        self.pool = np.zeros((0, 2), dtype=np.int64)   # memory that the growing slot table reuses
        self.slots = self._empty(64)
        self.hashed = 0
        self.pairs = pairs
        self.dense = dense                              # (inputs, relative shifts, largest one) of the table
        self.top = 0
        if dense is not None:
            n_in, width, _ = dense
            self.table = np.full(n_in * n_in * width * 2, -1, dtype=np.int32)
            self.top = n_in << (pairs.bits + 1)

    def _cell(self, keys: np.ndarray) -> np.ndarray:
        a, b, d, sub = self.pairs.decode(keys)
        n_in, width, span = self.dense
        return ((a * n_in + b) * width + d + span) * 2 + sub

    def _empty(self, size: int) -> np.ndarray:
        """``size`` free slots. A table that doubles reuses the pages of the previous one (first
        writes to fresh memory cost about as much as all the lookups into it), so memory is
        reserved four doublings ahead: pages are only paid for when the table grows into them."""
        if size > len(self.pool):
            self.pool = np.empty((16 * size, 2), dtype=np.int64)
        self.pool[:size] = -1
        return self.pool[:size].view(self._SLOT)[:, 0]

    def _home(self, keys: np.ndarray) -> np.ndarray:
        shift = np.uint64(64 - (len(self.slots).bit_length() - 1))
        return ((np.ascontiguousarray(keys).view(np.uint64) * _HASH) >> shift).view(np.int64)   # Fibonacci hashing

    def find(self, keys: np.ndarray) -> np.ndarray:
        """Id of every key, -1 for keys never added."""
        if self.top == 0:
            return self._find(keys)
        direct = keys < self.top
        out = np.empty(len(keys), dtype=np.int64)
        out[direct] = self.table[self._cell(keys[direct])]
        out[~direct] = self._find(keys[~direct])
        return out

    def _find(self, keys: np.ndarray) -> np.ndarray:
        pos = self._home(keys)
        slot = self.slots[pos]
        hit = slot["key"] == keys
        out = np.where(hit, slot["id"], -1)
        todo = np.flatnonzero((slot["key"] >= 0) & ~hit)   # home slot taken by another key: probe on,
        pos = pos[todo]                                      # four slots at a time
        mask = len(self.slots) - 1
        while len(todo):
            slot = self.slots[(pos[:, None] + np.arange(1, 5)) & mask]
            hit = slot["key"] == keys[todo, None]
            stop = hit | (slot["key"] < 0)
            at = stop.argmax(axis=1)
            rows = np.arange(len(todo))
            found = hit[rows, at]
            out[todo[found]] = slot["id"][rows, at][found]
            more = ~stop.any(axis=1)
            todo, pos = todo[more], pos[more] + 4
        return out

    def add(self, keys: np.ndarray) -> None:
        """Append new, distinct keys; they get the next ids."""
        first, self.n = self.n, self.n + len(keys)
        self.keys = _grow(self.keys, self.n)
        self.keys[first:self.n] = keys
        ids = np.arange(first, self.n)
        direct = keys < self.top
        if direct.any():
            self.table[self._cell(keys[direct])] = ids[direct]
            ids = ids[~direct]
        self.hashed += len(ids)
        if 10 * self.hashed > 3 * len(self.slots):
            self.slots = self._empty(1 << (4 * self.hashed).bit_length())
            ids = np.flatnonzero(self.keys[:self.n] >= self.top)
        self._place(ids)

    def _place(self, ids: np.ndarray) -> None:
        keys = self.keys[ids]
        pos = self._home(keys)
        mask = len(self.slots) - 1
        while len(ids):
            free = self.slots["key"][pos] < 0
            self.slots["id"][pos[free]] = ids[free]      # where several keys want one slot, one wins
            won = free & (self.slots["id"][pos] == ids)
            self.slots["key"][pos[won]] = keys[won]
            ids, keys, pos = ids[~won], keys[~won], (pos[~won] + 1) & mask


class _Counts:
    """How often each pattern occurs, and which is best.

    Every pattern seen twice or more gets an id (:class:`_Index`); its count is decremented
    in bulk as terms go. Weights ``3 * (count - 1) - width`` only fall, so patterns are filed
    in buckets by the weight they had when filed, and a bucket's patterns are re-filed lower
    when it is read (a lazy bucket queue, read a bucket at a time with numpy).
    """

    def __init__(self, pairs: _Pairs, vs: _Vars, keys: np.ndarray, counts: np.ndarray,
                 dense: tuple[int, int, int] | None, jitter: int = 0) -> None:
        self.rng = np.random.default_rng(jitter) if jitter else None
        self.pairs = pairs
        self.vs = vs
        self.index = _Index(pairs, dense)
        self.cnt = np.zeros(16, dtype=np.int64)
        self.width = np.zeros(16, dtype=np.int64)
        self.rank = np.zeros(16, dtype=np.int64)
        self.levels: dict[int, list[np.ndarray]] = {}   # weight -> ids filed there
        self.add(keys, counts)

    def _widths(self, a: np.ndarray, b: np.ndarray, d: np.ndarray, sub: np.ndarray) -> np.ndarray:
        """Widths of the values the patterns would make, plus seeded tie-breaking noise if asked."""
        w = self.vs.add_costs(a, b, d, sub)[0] if len(a) else np.zeros(0, dtype=np.int64)
        if self.rng is not None:   # break ties differently: up to 2 bits of noise (< _NARROW)
            w = w + self.rng.integers(0, _NARROW, len(w))
        return w

    def add(self, keys: np.ndarray, counts: np.ndarray) -> None:
        """New patterns, seen twice or more when made, and their counts now; they get ids by rank."""
        fields = self.pairs.decode(keys)
        rank = self.pairs.rank(*fields)
        order = np.argsort(rank)
        keys, counts, rank, fields = keys[order], counts[order], rank[order], [f[order] for f in fields]
        first = self.index.n
        self.index.add(keys)
        n = self.index.n
        self.cnt, self.width, self.rank = _grow(self.cnt, n), _grow(self.width, n), _grow(self.rank, n)
        self.cnt[first:n] = counts
        self.width[first:n] = self._widths(*fields)
        self.rank[first:n] = rank
        self._file(np.arange(first, n))

    def remove(self, keys: np.ndarray) -> None:
        """Drop one occurrence of each pair key (keys of patterns never seen twice are ignored)."""
        ids = self.index.find(keys)
        np.subtract.at(self.cnt, ids[ids >= 0], 1)

    def block(self, i: int, n: int) -> None:
        """``n`` occurrences of pattern ``i`` cannot be used (they overlap or break the depth bound)."""
        self.cnt[i] -= n

    def _weights(self, ids: np.ndarray) -> np.ndarray:
        return (self.cnt[ids] - 1) * _NARROW - self.width[ids]

    def _file(self, ids: np.ndarray) -> None:
        ids = ids[self.cnt[ids] >= 2]            # a pattern seen once never becomes useful again
        if not len(ids):
            return
        w = self._weights(ids)
        if w.min() == w.max():
            self.levels.setdefault(int(w[0]), []).append(ids)
            return
        low = w.min()
        order = np.argsort((w - low).astype(np.int16 if w.max() - low < 1 << 15 else np.int64), kind="stable")   # radix
        ids, w = ids[order], w[order]
        edges = (np.flatnonzero(w[1:] != w[:-1]) + 1).tolist()
        for lo, hi in zip([0, *edges], [*edges, len(w)]):
            self.levels.setdefault(int(w[lo]), []).append(ids[lo:hi])

    def _read(self, level: int) -> np.ndarray:
        """Ids still at weight ``level``, by rank; the others are filed lower."""
        ids = np.concatenate(self.levels.pop(level))
        stay = self._weights(ids) == level
        self._file(ids[~stay])
        ids = ids[stay]
        if len(ids):
            ids = ids[np.argsort(self.rank[ids])]
            self.levels[level] = [ids]
        return ids

    def best(self, window: int | None) -> np.ndarray:
        """Ids of the best patterns, best first (highest weight, then rank).

        ``window=None``: the single best; else every pattern within ``window`` of the best.
        """
        while self.levels:
            top = max(self.levels)
            ids = self._read(top)
            if not len(ids):
                continue
            if window is None:
                return ids[:1]
            found = [ids]
            for level in range(top - 1, top - window - 1, -1):   # reading a level files lower
                if level in self.levels:
                    found.append(self._read(level))
            return np.concatenate(found)
        return np.zeros(0, dtype=np.int64)


class _Masks:
    """Bitmasks of the shifts at which each input has positive / negative terms in each output.

    They find the outputs that hold a pattern of two inputs with a few numpy calls, where a
    walk over the outputs would cost microseconds each (inputs are in nearly every output).
    """

    def __init__(self, outs: list[_Output], n_in: int, low: int) -> None:
        self.low = low
        self.m = np.zeros((2, n_in, len(outs)), dtype=np.int64)
        for j, o in enumerate(outs):
            tk, ng = o.live()
            np.bitwise_or.at(self.m, (ng, tk >> _SHB, j), np.left_shift(1, (tk & (_SH - 1)) - low))

    def clear(self, t: int, g: int, j: int) -> None:
        self.m[g, t >> _SHB, j] &= ~(1 << ((t & (_SH - 1)) - self.low))

    def outputs(self, a: int, b: int, d: int, sub: int) -> list[int]:
        """Outputs with a term of ``a`` at some shift ``s`` and one of ``b`` at ``s + d``, signs per ``sub``."""
        ma, mb = self.m[:, a], self.m[:, b]
        mb = mb >> d if d >= 0 else mb << -d
        if sub:
            mb = mb[::-1]
        return np.flatnonzero((ma[0] & mb[0]) | (ma[1] & mb[1])).tolist()


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
    _, exps = dyadic_parts(W)
    for j in range(W.shape[1]):
        col = W[:, j]
        nz = np.flatnonzero(col)
        if len(nz) == 0:
            alias.append(None)
            continue
        e = int(exps[nz, j].min())
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


def _initial_pairs(outs: list[_Output], pairs: _Pairs, n_in: int
                   ) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int] | None]:
    """Keys of the patterns of two input terms that occur twice or more, their counts, and
    the shape ``(inputs, relative shifts, largest relative shift)`` of the dense index, if used.

    The counts come from one ``bincount`` over a dense index ``(var 1, var 2, relative shift,
    sign)`` when that index is small, which is much faster than sorting the keys of all pairs
    (tens of millions for a 256x256 matrix).
    """
    live = [o.live() for o in outs]
    shifts = np.concatenate([tk & (_SH - 1) for tk, _ in live] + [np.zeros(0, dtype=np.int64)])
    if len(shifts) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), None
    span = int(shifts.max() - shifts.min())
    width = 2 * span + 1
    size = n_in * n_in * width * 2
    if size > _DENSE_INIT:
        keys, cnt = np.unique(np.concatenate([pairs.all_pairs((tk << 1) | ng) for tk, ng in live]),
                              return_counts=True)
        return keys[cnt >= 2], cnt[cnt >= 2], None
    total = np.zeros(size, dtype=np.int64)
    chunk: list[np.ndarray] = []
    triu: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for k, (tk, ng) in enumerate(live):
        order = np.argsort(tk)                  # so that term i < term j in every pair (i, j)
        tk, ng = tk[order], ng[order]
        v, s = tk >> _SHB, tk & (_SH - 1)
        if len(tk) not in triu:
            triu[len(tk)] = np.triu_indices(len(tk), 1)
        i, j = triu[len(tk)]
        first, second = 2 * (v * n_in * width - s + span), 2 * (v * width + s)   # index = first[i] + second[j] + sign
        chunk.append(first[i] + second[j] + (ng[i] ^ ng[j]))
        if sum(map(len, chunk)) >= size or k == len(live) - 1:
            total += np.bincount(np.concatenate(chunk), minlength=size)
            chunk = []
    idx = np.flatnonzero(total >= 2)
    rest, sign = np.divmod(idx, 2)
    rest, ds = np.divmod(rest, width)
    a, b = np.divmod(rest, n_in)
    return pairs.key(a, b, ds - span, sign), total[idx], (n_in, width, span)


def _repeated(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The values that occur twice or more in a sorted array, and how often."""
    same = np.flatnonzero(keys[1:] == keys[:-1])          # run continues at same + 1
    if not len(same):
        return keys[:0], same
    start = np.flatnonzero(np.diff(same, prepend=-2) != 1)   # runs of consecutive repeats
    return keys[same[start]], np.diff(np.append(start, len(same))) + 1


def _pairs_with(pairs: _Pairs, rows: list[np.ndarray], cols: np.ndarray, n_cols: np.ndarray) -> np.ndarray:
    """Keys of the pairs each output's ``rows`` make with the later rows and with its ``cols``.

    ``rows``: term codes per output; ``cols``: ``(outputs, width)`` codes, sorted in each
    output, ``n_cols`` of them valid. Rows are taken in code order, so a new variable's pairs
    come out as sorted runs next to each other.
    """
    n_rows = np.array([len(r) for r in rows])
    row = np.concatenate(rows)
    row_t = np.repeat(np.arange(len(rows)), n_rows)
    row_p = np.arange(len(row)) - np.repeat(np.cumsum(n_rows) - n_rows, n_rows)
    order = np.argsort(row, kind="stable")
    row, row_t, row_p = row[order], row_t[order], row_p[order]
    with_cols = pairs.keys(row[:, None], cols[row_t])[np.arange(cols.shape[1]) < n_cols[row_t, None]]
    if n_rows.max() < 2:
        return with_cols
    own = np.full((len(rows), int(n_rows.max())), -1, dtype=np.int64)
    own[row_t, row_p] = row
    q = np.arange(own.shape[1])
    later = (q > row_p[:, None]) & (q < n_rows[row_t, None])
    return np.concatenate([with_cols, pairs.keys(row[:, None], own[row_t])[later]])


def _recount(pairs: _Pairs, counts: _Counts, outs: list[_Output],
             touched: dict[int, list[tuple[int, int, int, int, int]]]) -> None:
    """Count updates after substitutions: pairs with a removed term go, pairs with a new one come.

    ``touched``: per output, its substitutions ``(step, ta, ga, tb, gb)`` in order; their new
    terms are the output's last ones. Several uses of one pattern in an output are made one
    after the other, so a new term is briefly paired with the next use's old terms; those
    pairs count towards "seen twice" (the tie-breaking noise is drawn per pattern seen
    twice) and are then removed again.
    """
    gone, born, rest, brief = [], [], [], []
    for j, subs in touched.items():
        tk, ng = outs[j].live()
        codes = (tk << 1) | ng
        u = len(codes) - len(subs)
        rest.append(codes[:u])
        born.append(codes[u:])
        old = [(t << 1) | g for _, ta, ga, tb, gb in subs for t, g in ((ta, ga), (tb, gb))]
        gone.append(np.array(old, dtype=np.int64))
        for k, m in combinations(range(len(subs)), 2):
            if subs[k][0] == subs[m][0]:
                brief += [(int(codes[u + k]), t) for t in old[2 * m:2 * m + 2]]
    cols, n_cols = _sorted_rows(rest)
    counts.remove(_pairs_with(pairs, gone, cols, n_cols))
    fresh = _pairs_with(pairs, born, cols, n_cols)
    brief_keys = pairs.keys(*np.array(brief, dtype=np.int64).reshape(-1, 2).T)
    keys, n = _repeated(np.sort(np.concatenate([fresh, brief_keys]), kind="stable"))
    if len(brief_keys):
        bk, bn = np.unique(brief_keys, return_counts=True)
        at = np.searchsorted(keys, bk)
        hit = at < len(keys)
        hit[hit] = keys[at[hit]] == bk[hit]
        n[at[hit]] -= bn[hit]
    counts.add(keys, n)


def _sorted_rows(codes: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Term codes per output as a padded ``(outputs, width)`` array sorted along rows, and their numbers."""
    n = np.array([len(c) for c in codes])
    out = np.full((len(codes), int(n.max())), np.iinfo(np.int64).max, dtype=np.int64)
    out[np.repeat(np.arange(len(codes)), n), np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)] \
        = np.concatenate(codes)
    out.sort(axis=1)
    return out, n


def _solve_once(terms: list[list[tuple[int, int, bool]]], inputs: Sequence[Wire], levels: int | None,
                jitter: int = 0, out_levels: Sequence[int] | None = None, window: int | None = None
                ) -> tuple[_Vars, list[tuple[int, int, bool] | None]]:
    """One greedy CSE run and the output trees, at most ``levels`` adders deep where possible.

    ``out_levels`` (with ``levels`` set) bounds each output separately instead. ``jitter > 0``
    perturbs ties (seeded). ``window``: substitute, per round, every pattern within this
    weight of the best that shares no variable with a better one of the round (None: the
    best pattern only, the exact greedy). Outputs with no terms are ``None``.
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

    counts = _Counts(pairs, vs, *_initial_pairs(outs, pairs, n_in), jitter)
    var_outs: list[set[int]] = [set() for _ in range(n_in)]
    for j, o in enumerate(outs):
        for v in o.by_var:
            var_outs[v].add(j)
    shifts = [s for ts in terms for _, s, _ in ts]
    masks = _Masks(outs, n_in, min(shifts) + _OFF) if shifts and max(shifts) - min(shifts) < 63 else None

    def occurrences(a: int, b: int, d: int, sub: int) -> list[tuple[int, int, int, int]]:
        """Disjoint uses ``(output, term a, neg a, term b)`` allowed by the depth bound."""
        found = []
        grow = (1 << (max(vs.depth[a], vs.depth[b]) + 1)) - (1 << vs.depth[a]) - (1 << vs.depth[b])
        js = masks.outputs(a, b, d, sub) if masks is not None and b < n_in else sorted(var_outs[a] & var_outs[b])
        ka, kb = a << _SHB, b << _SHB
        for j in js:
            o = outs[j]
            room = None if levels is None or not grow else (o.bound - o.kraft) // grow   # uses that fit
            if room == 0:
                continue
            da, db = o.by_var.get(a), o.by_var.get(b)
            if not da or not db:
                continue
            n = 0
            used: set[int] = set()   # shifts of var a already paired (a == b only)
            for s in sorted(da):
                g = da[s]
                gb = db.get(s + d)
                if gb is None or (g ^ gb) != sub or (a == b and (s in used or s + d in used)):
                    continue
                if n == room:
                    break
                if a == b:
                    used.update((s, s + d))
                n += 1
                found.append((j, ka | s, g, kb | (s + d)))
        return found

    step = 0
    while len(batch := counts.best(window)):
        taken: set[int] = set()                                # variables this round has used
        touched: dict[int, list[tuple[int, int, int, int, int]]] = {}
        fields = pairs.decode(counts.index.keys[batch])
        for i, a, b, d, sub, c in zip(batch.tolist(), *(f.tolist() for f in fields), counts.cnt[batch].tolist()):
            if a in taken or b in taken:
                continue
            occ = occurrences(a, b, d, sub)
            if len(occ) < c:
                counts.block(i, c - len(occ))
                continue
            taken.update((a, b))
            step += 1
            v = vs.add(a, b, d, bool(sub))
            var_outs.append(set())
            grow = (1 << vs.depth[v]) - (1 << vs.depth[a]) - (1 << vs.depth[b])
            for j, ta, ga, tb in occ:
                o = outs[j]
                o.remove(ta)
                o.remove(tb)
                if masks is not None:
                    if a < n_in:
                        masks.clear(ta, ga, j)
                    if b < n_in:
                        masks.clear(tb, ga ^ sub, j)
                o.append((v << _SHB) | (ta & (_SH - 1)), ga)
                o.kraft += grow
                var_outs[v].add(j)
                touched.setdefault(j, []).append((step, ta, ga, tb, ga ^ sub))
        if touched:
            _recount(pairs, counts, outs, touched)

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
        if K > 8 and 2 * (left.max() + 1) <= K:        # half the slots are retired: drop them, in order
            keep = np.argsort(~alive, axis=1, kind="stable")[:, :left.max() + 1]
            var, sh, neg, alive, weight = (np.take_along_axis(a, keep, 1) for a in (var, sh, neg, alive, weight))
            key = key[np.arange(n)[:, None, None], keep[:, :, None], keep[:, None, :]]
            K = keep.shape[1]
            flat_key = key.reshape(n, K * K)
        room = bound[act] - kraft[act]
        tight = 2 * wmax[act] > room
        flat = np.argmin(flat_key if len(act) == n else flat_key[act], axis=1)
        if tight.any():                                 # only pairs that keep the Kraft sum in bound
            t = act[tight]
            w = weight[t]
            grow = np.abs(w[:, :, None] - w[:, None, :])   # Kraft sum growth of a pair: 2 max - w_i - w_j
            ok = (grow <= room[tight, None, None]).reshape(len(t), K * K)
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
        new = vs.add_many(var[act, base], var[act, other], sh[act, other] - sh[act, base], gx ^ gy)
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
