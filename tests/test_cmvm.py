"""CMVM solvers: every adder graph is bit-exact, the cse solver shares, respects its depth bound."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from rtl4ml.design import Design
from rtl4ml.estimate.analytic import adder_stats
from rtl4ml.fixed import code_width, quantize
from rtl4ml.graph import GraphBuilder, lower_graph
from rtl4ml.netlist.builder import NetlistBuilder
from rtl4ml.netlist.execute import execute
from rtl4ml.fixed import Wire
from rtl4ml.netlist.prims import Add, add_cost
from rtl4ml.cmvm import SOLVERS, AdderGraph, csd, dyadic, solve_cmvm, solve_cse, weight_terms
from rtl4ml.cmvm import cse as cmvm_cse
from rtl4ml.cmvm import decompose, solvers as cmvm_solvers
from rtl4ml.cmvm.cse import estimate_add
from rtl4ml.passes.dce import simplify

from .conftest import boundary_inputs, random_mlp

BYTE = Wire(-128, 127, 0)


def int_matrix(rng, n_in, n_out, bits, zeros=0.1) -> np.ndarray:
    W = rng.integers(-2 ** (bits - 1), 2 ** (bits - 1), size=(n_in, n_out)).astype(np.float64)
    W[rng.random(W.shape) < zeros] = 0
    return W


def corner_inputs(wires, n, rng) -> np.ndarray:
    """Integer codes: every input at its min or max (all sign patterns when few), plus random."""
    lo = np.array([w.lo for w in wires])
    hi = np.array([w.hi for w in wires])
    pick = rng.integers(0, 2, size=(n, len(wires)))
    x = np.where(pick == 1, hi, lo)
    x[n // 2:] = rng.integers(lo, hi + 1, size=(n - n // 2, len(wires)))
    return x


def netlist_of(graph: AdderGraph, wires):
    nb = NetlistBuilder()
    xs = [nb.input(w) for w in wires]
    ys = nb.linear(graph, xs)
    return simplify(nb.finish(ys, [nb.wire(y) for y in ys]))


def check_exact(W, wires, graph, rng, n=200):
    """AdderGraph, and its exact-width Netlist, both equal x @ W on corner and random inputs."""
    xq = corner_inputs(wires, n, rng)
    fr = np.array([w.fraction for w in wires])
    x = np.ldexp(xq.astype(np.float64), -fr)
    ref = x @ W
    assert np.array_equal(graph.evaluate(x), ref)
    nl = netlist_of(graph, wires)
    got = execute(nl, xq)
    of = np.array([t.fraction for t in nl.output_types])
    assert np.array_equal(np.ldexp(got.astype(np.float64), -of), ref)
    return nl


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n_in=st.integers(1, 12), n_out=st.integers(1, 12), bits=st.integers(1, 9), seed=st.integers(0, 2**32 - 1),
       slack=st.sampled_from([0, 1, 3, None]), tries=st.sampled_from([1, 3]))
def test_cse_is_exact_on_random_matrices(n_in, n_out, bits, seed, slack, tries):
    rng = np.random.default_rng(seed)
    W = int_matrix(rng, n_in, n_out, bits, zeros=rng.random() * 0.6)
    W *= 2.0 ** rng.integers(-4, 5, size=(1, n_out))  # dyadic, some fractional columns
    wires = [Wire(int(lo), int(lo) + int(rng.integers(0, 3000)), int(f))
             for lo, f in zip(rng.integers(-1500, 100, n_in), rng.integers(-3, 6, n_in))]
    check_exact(W, wires, solve_cse(W, wires, depth_slack=slack, tries=tries), rng)


def test_cse_beats_plain_by_a_lot_and_is_no_deeper():
    rng = np.random.default_rng(0)
    W = int_matrix(rng, 16, 16, 8, zeros=0)
    wires = [BYTE] * 16
    plain = adder_stats(check_exact(W, wires, solve_cmvm(W, wires, "plain"), rng))
    cse = adder_stats(check_exact(W, wires, solve_cmvm(W, wires, "cse", depth_slack=0), rng))
    assert cse.adders < 0.75 * plain.adders
    assert cse.adder_bits < 0.7 * plain.adder_bits
    assert cse.adder_depth <= plain.adder_depth     # depth_slack=0: as shallow as unshared trees


@pytest.mark.parametrize("slack", [0, 1, 2])
def test_depth_bound_holds(slack):
    rng = np.random.default_rng(slack)
    W = int_matrix(rng, 24, 20, 8)
    wires = [BYTE] * 24
    terms = max(len(t) for t in weight_terms(W))
    st_ = adder_stats(check_exact(W, wires, solve_cse(W, wires, depth_slack=slack), rng))
    assert st_.adder_depth <= (terms - 1).bit_length() + slack


def test_more_slack_never_needs_more_bits_by_much_and_none_is_unbounded():
    rng = np.random.default_rng(3)
    W = int_matrix(rng, 16, 16, 6)
    wires = [BYTE] * 16
    bits = [adder_stats(netlist_of(solve_cse(W, wires, depth_slack=s), wires)).adder_bits for s in (0, 2, None)]
    assert bits[1] <= bits[0] * 1.02 and bits[2] <= bits[0] * 1.02


def test_scaled_and_negated_columns_are_solved_once():
    rng = np.random.default_rng(1)
    base = int_matrix(rng, 10, 4, 8, zeros=0)
    W = np.concatenate([base, -4 * base[:, :1], 0.5 * base[:, 1:2], np.zeros((10, 1))], axis=1)
    wires = [BYTE] * 10
    g = solve_cse(W, wires, tries=1)
    g_base = solve_cse(base, wires, tries=1)
    assert len(g.ops) == len(g_base.ops)
    assert g.outputs[-1] is None
    check_exact(W, wires, g, rng)


def test_degenerate_matrices():
    rng = np.random.default_rng(2)
    for W in (np.zeros((3, 2)), np.eye(4), np.array([[3.0]]), np.array([[-1.0, 0.0], [0.0, 0.0]]),
              np.full((5, 3), -7.0), np.array([[2.0 ** -20, 2.0 ** 20]])):
        wires = [BYTE] * W.shape[0]
        check_exact(W, wires, solve_cse(W, wires), rng)
    g = solve_cse(np.zeros((0, 3)), [])
    assert g.outputs == (None, None, None)


def test_wide_values_take_the_exact_python_path():
    """Intervals past the int64 mirror (> 40 bits) must give exact graphs too."""
    rng = np.random.default_rng(4)
    W = int_matrix(rng, 6, 5, 8, zeros=0)
    wires = [Wire(-(1 << 45), (1 << 45) - 1, 0)] * 6
    g = solve_cse(W, wires)
    x = np.array([[(1 << 45) - 1] * 6, [-(1 << 45)] * 6], dtype=object)
    ref = x.dot(W.astype(np.int64).astype(object))
    v = [[Fraction(q) for q in x[:, i]] for i in range(6)]   # exact rationals: shifts may be negative
    for a, b, s, sub in g.ops:
        vb = [q * Fraction(2) ** s for q in v[b]]
        v.append([qa - qb if sub else qa + qb for qa, qb in zip(v[a], vb)])
    for j, o in enumerate(g.outputs):
        col = [0, 0] if o is None else [(-1) ** o[2] * q * Fraction(2) ** o[1] for q in v[o[0]]]
        assert col == list(ref[:, j])
    # the builder's exact intervals switch from int64 to Python ints where products get wide
    nl = netlist_of(g, wires)
    assert execute(nl, x.astype(np.int64)).tolist() == ref.tolist()


def test_linear_keeps_exact_intervals_when_one_operand_is_already_wide():
    """A node whose coefficients left int64 added to one still in int64: no silent wrap-around."""
    g = AdderGraph(2, ((0, 1, 70, False), (0, 1, 50, False), (2, 3, 20, False)), ((4, 0, False),))
    nb = NetlistBuilder()
    xs = [nb.input(BYTE) for _ in range(2)]
    nb.linear(g, xs)
    coef = {0: (1, 0), 1: (0, 1)}   # node -> exact coefficients of (x0, x1), Python ints
    for k, (a, b, s, sub) in enumerate(g.ops, start=2):
        sign = -1 if sub else 1
        coef[k] = tuple(ca + sign * (cb << s) for ca, cb in zip(coef[a], coef[b]))
    top = coef[4]
    lo = sum(min(c * BYTE.lo, c * BYTE.hi) for c in top)
    hi = sum(max(c * BYTE.lo, c * BYTE.hi) for c in top)
    assert (nb.prims[-1].wire.lo, nb.prims[-1].wire.hi) == (lo, hi)


def test_cse_is_deterministic():
    rng = np.random.default_rng(5)
    W = int_matrix(rng, 12, 12, 8)
    assert solve_cse(W, [BYTE] * 12) == solve_cse(W, [BYTE] * 12)


def test_errors_are_clear():
    with pytest.raises(ValueError, match="unknown CMVM method"):
        solve_cmvm(np.eye(2), [BYTE] * 2, "magic")
    with pytest.raises(ValueError, match="depth_slack"):
        solve_cse(np.eye(2), [BYTE] * 2, depth_slack=-1)
    with pytest.raises(ValueError, match="input wires"):
        solve_cse(np.eye(2), [BYTE])
    assert set(SOLVERS) >= {"plain", "cse"}
    assert csd(7) == [(0, -1), (3, 1)] and dyadic(0.375) == (3, -3)   # the module's public helpers stay


@settings(max_examples=200, deadline=None)
@given(la=st.integers(-300, 300), wa=st.integers(0, 400), fa=st.integers(-3, 5),
       lb=st.integers(-300, 300), wb=st.integers(0, 400), fb=st.integers(-3, 5),
       shift=st.integers(-6, 6), sub=st.booleans())
def test_estimate_add_matches_the_analytic_cost_for_independent_operands(la, wa, fa, lb, wb, fb, shift, sub):
    a, b = Wire(la, la + wa, fa), Wire(lb, lb + wb, fb)
    nb = NetlistBuilder()
    ia, ib = nb.input(a), nb.input(b)
    k = nb.add(ia, ib, shift, sub)
    p = nb.prims[k]
    if not isinstance(p, Add):
        return  # a constant operand was folded
    cost, lo, hi, f = estimate_add((a.lo, a.hi, a.fraction), (b.lo, b.hi, b.fraction), shift, sub)
    assert (lo, hi, f) == (p.wire.lo, p.wire.hi, p.wire.fraction)
    assert cost == add_cost(p.wire, a, b, shift, sub)


def random_wires(rng, wide: bool) -> list[Wire]:
    """Six wires of random intervals (up to 50 bits when ``wide``: past the int64 mirror) and fractions."""
    top = 50 if wide else 12
    wires = []
    for _ in range(6):
        lo = int(rng.integers(-(1 << int(rng.integers(0, top))), 1))
        wires.append(Wire(lo, lo + int(rng.integers(0, 1 << int(rng.integers(0, top)))), int(rng.integers(-4, 6))))
    return wires


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), wide=st.booleans())
def test_vectorized_add_costs_equal_estimate_add(seed, wide):
    """The tree builder's numpy costs equal the scalar rule, on the int64 and the Python path."""
    rng = np.random.default_rng(seed)
    vs = cmvm_cse._Vars(random_wires(rng, wide))
    for _ in range(4):   # some sums too, so intervals are not only the inputs'
        vs.add(int(rng.integers(0, len(vs.lo))), int(rng.integers(0, len(vs.lo))), int(rng.integers(-5, 6)),
               bool(rng.integers(0, 2)))
    n = 50
    a, b = rng.integers(0, len(vs.lo), n), rng.integers(0, len(vs.lo), n)
    d, sub = rng.integers(-8, 9, n), rng.integers(0, 2, n)
    width, cost = vs.add_costs(a, b, d, sub)
    for i in range(n):
        c, lo, hi, _ = estimate_add(vs.wire(int(a[i])), vs.wire(int(b[i])), int(d[i]), bool(sub[i]))
        assert (int(width[i]), int(cost[i])) == (code_width(lo, hi)[1], c)


@pytest.mark.parametrize("slack", [0, 1])
def test_output_trees_do_not_depend_on_the_batch_size(monkeypatch, slack):
    """Trees are built a batch of outputs at a time; one output per batch gives the same graph."""
    rng = np.random.default_rng(21)
    W = int_matrix(rng, 20, 24, 8)
    wires = [BYTE] * 20
    together = solve_cse(W, wires, depth_slack=slack, tries=1)
    monkeypatch.setattr(cmvm_cse, "_TREE_BATCH", 1)
    alone = solve_cse(W, wires, depth_slack=slack, tries=1)
    assert together != alone   # the adders come in another order ...
    s1 = adder_stats(check_exact(W, wires, together, rng))
    s2 = adder_stats(check_exact(W, wires, alone, rng))
    assert (s1.adders, s1.adder_bits, s1.adder_depth) == (s2.adders, s2.adder_bits, s2.adder_depth)   # ... same graph


@pytest.mark.parametrize("seed", range(12))
def test_random_networks_lowered_with_cse_match_the_emulator(seed):
    rng = np.random.default_rng(100 + seed)
    graph = random_mlp(rng, max_in=10, max_layers=3)
    x = boundary_inputs(graph.input.op.types, 300, rng, overshoot=True)
    xq = graph.quantize_input(x)
    want = graph.emulate_codes(xq)[graph.outputs[0]]
    for slack in (0, None):
        nl = simplify(lower_graph(graph, cmvm="cse", depth_slack=slack))
        assert np.array_equal(execute(nl, xq), want)


def test_cse_design_saves_bits_on_a_quantized_layer_and_round_trips():
    rng = np.random.default_rng(9)
    gb = GraphBuilder()
    x = gb.input("fixed<10,4>", 24)
    W = quantize(rng.normal(size=(24, 16)), "fixed<6,2,RND,SAT>")
    g = gb.build(gb.relu(gb.dense(x, W, quantize(rng.normal(size=16), "fixed<6,2>"))))
    plain = Design(g, cmvm="plain").estimate(synth=False)
    d = Design(g, cmvm="cse", cmvm_depth_slack=1)
    cse = d.estimate(synth=False)
    assert cse.adder_bits < 0.8 * plain.adder_bits
    again = Design.from_json(d.to_json())
    assert again.cmvm_depth_slack == 1 and again.verilog == d.verilog


def test_convert_exposes_the_knob():
    import inspect
    import rtl4ml
    params = inspect.signature(rtl4ml.convert).parameters
    assert params["cmvm"].default == "cse" and params["cmvm_depth_slack"].default == 1
    gb = GraphBuilder()
    with pytest.raises(ValueError, match="cmvm_depth_slack"):
        Design(gb.build(gb.input("fixed<4,2>", 2)), cmvm_depth_slack=-2)


def test_portfolio_budget():
    assert cmvm_solvers.MAX_TRIES >= 1 and cmvm_solvers.TRY_BUDGET > 0


@pytest.mark.hw
def test_cse_rtl_matches_emulator_and_netlist():
    rng = np.random.default_rng(11)
    graph = random_mlp(rng, max_in=8, max_layers=3)
    d = Design(graph, name="cse_rtl", clock_ns=1.5, cmvm="cse", cmvm_depth_slack=1)
    x = boundary_inputs(graph.input.op.types, 2000, rng, overshoot=True)
    assert np.array_equal(d.execute_netlist(x), d.predict_codes(x))
    r = d.verify(x)
    assert r.ok, str(r)


@pytest.mark.parametrize("slack", [1, 3, None])
def test_correlated_columns_are_built_from_each_other_within_the_bound(slack):
    rng = np.random.default_rng(17)
    base = rng.integers(-128, 128, size=(20, 1)).astype(np.float64)
    cols = [base]
    for _ in range(11):   # each column: an earlier one, scaled and negated, plus two small changes
        c = cols[int(rng.integers(len(cols)))] * float(rng.choice([1, -1, 2, 0.5]))
        c = c.copy()
        c[rng.integers(0, 20, 2)] += rng.integers(-3, 4, size=(2, 1))
        cols.append(c)
    W = np.concatenate(cols, axis=1)
    wires = [BYTE] * 20
    direct = adder_stats(netlist_of(solve_cse(W, wires, depth_slack=slack, decompose=False), wires))
    g = solve_cse(W, wires, depth_slack=slack)
    dec = adder_stats(check_exact(W, wires, g, rng))
    assert dec.adder_bits < 0.9 * direct.adder_bits
    if slack is not None:
        terms = max(len(t) for t in weight_terms(W))
        assert dec.adder_depth <= (terms - 1).bit_length() + slack


def test_weight_terms_are_the_csd_digits_of_every_weight():
    rng = np.random.default_rng(23)
    W = int_matrix(rng, 9, 7, 9, zeros=0.3) * 2.0 ** rng.integers(-12, 12, size=(9, 7))
    W[0, 0], W[1, 1] = 2.0 ** -40, -(2.0 ** 30) + 1
    want: list[list[tuple[int, int, bool]]] = [[] for _ in range(7)]
    for i, j in zip(*np.nonzero(W)):   # the scalar definition, weight by weight
        m, e = dyadic(float(W[i, j]))
        want[j] += [(int(i), e + k, d < 0) for k, d in csd(m)]
    assert weight_terms(W) == want


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), wide=st.booleans())
def test_adders_made_at_once_equal_adders_made_one_by_one(seed, wide):
    """The output trees add a batch of adders with numpy; the result is that of :meth:`_Vars.add`."""
    rng = np.random.default_rng(seed)
    wires = random_wires(rng, wide)
    at_once, one_by_one = cmvm_cse._Vars(wires), cmvm_cse._Vars(wires)
    n = 20
    a, b = rng.integers(0, 6, n), rng.integers(0, 6, n)
    d, sub = rng.integers(-8, 9, n), rng.integers(0, 2, n)
    new = at_once.add_many(a, b, d, sub)
    assert new == [one_by_one.add(int(x), int(y), int(s), bool(g)) for x, y, s, g in zip(a, b, d, sub)]
    for name in ("lo", "hi", "frac", "depth", "ops", "cost", "exact", "bits"):
        assert getattr(at_once, name) == getattr(one_by_one, name), name


def test_pair_index_finds_every_key_across_collisions_and_growth():
    rng = np.random.default_rng(8)
    pairs = cmvm_cse._Pairs(4000)
    index = cmvm_cse._Index(pairs, (12, 7, 3))   # patterns of two of 12 inputs, shifts -3..3: direct table
    a = rng.integers(0, 12, 300)
    b = a + rng.integers(0, 12, 300) % (12 - a)
    d = np.where(a == b, rng.integers(1, 4, 300), rng.integers(-3, 4, 300))
    direct = pairs.key(a, b, d, rng.integers(0, 2, 300))
    hashed = pairs.key(rng.integers(0, 4000, 5000), rng.integers(12, 4000, 5000), rng.integers(-500, 500, 5000),
                       rng.integers(0, 2, 5000))
    keys = np.unique(np.concatenate([direct, hashed]))
    keys = keys[rng.permutation(len(keys))]
    absent, keys = keys[:500], keys[500:]
    for part in np.array_split(keys, 7):   # several inserts: the hash table grows and rehashes
        index.add(part)
    assert np.array_equal(index.find(keys), np.arange(len(keys)))
    assert (index.find(absent) == -1).all()


def test_repeated_values_of_a_sorted_array():
    rng = np.random.default_rng(9)
    for _ in range(200):
        x = np.sort(rng.integers(0, int(rng.integers(1, 30)), int(rng.integers(0, 40))))
        values, counts = np.unique(x, return_counts=True)
        got = cmvm_cse._repeated(x)
        assert np.array_equal(got[0], values[counts >= 2]) and np.array_equal(got[1], counts[counts >= 2])


def test_parent_distances_use_the_transposed_left_shifts_for_right_shifts():
    """Digit counts do not change under negation and powers of two; the shortcut is exact."""
    rng = np.random.default_rng(10)
    M = rng.integers(-300, 300, size=(9, 8)) * np.array([1, 2, 4, 8, 1, 3, 4, 12])   # some columns not even
    combos = [(s, g) for s in decompose.SHIFTS for g in (1, -1)]
    dist = decompose._distances(M, combos)
    for c, (s, g) in enumerate(combos):
        P = (M << s) if s >= 0 else (M >> -s)
        want = decompose.csd_weight(M[:, :, None] - g * P[:, None, :]).sum(axis=0)
        if s < 0:
            want[:, ((P << -s) != M).any(axis=0)] = 1 << 40
        assert np.array_equal(dist[:, :, c], want)


@pytest.mark.parametrize("slack", [0, 1, None])
def test_large_matrices_substitute_in_rounds_exactly_within_the_bound(monkeypatch, slack):
    """Above EXACT_WEIGHTS non-zero weights several patterns are substituted per round:
    the graph stays bit-exact, within the depth bound and deterministic, with about the
    greedy's adder bits."""
    rng = np.random.default_rng(31)
    W = int_matrix(rng, 24, 20, 8)
    wires = [BYTE] * 24
    greedy = adder_stats(netlist_of(solve_cse(W, wires, depth_slack=slack, tries=1), wires))
    windows = []
    solve_once = cmvm_solvers._solve_once
    monkeypatch.setattr(cmvm_solvers, "_solve_once", lambda *a, **k: windows.append(k["window"]) or solve_once(*a, **k))
    monkeypatch.setattr(cmvm_solvers, "EXACT_WEIGHTS", np.count_nonzero(W) - 1)
    g = solve_cse(W, wires, depth_slack=slack, tries=1)
    assert windows == [cmvm_solvers.WINDOW]
    rounds = adder_stats(check_exact(W, wires, g, rng))
    assert rounds.adder_bits <= 1.02 * greedy.adder_bits
    if slack is not None:
        assert rounds.adder_depth <= (max(len(t) for t in weight_terms(W)) - 1).bit_length() + slack
    assert g == solve_cse(W, wires, depth_slack=slack, tries=1)


def test_a_layer_above_the_exact_size_is_bit_exact_and_within_the_bound():
    rng = np.random.default_rng(32)
    W = quantize(rng.normal(scale=0.25, size=(72, 64)), "fixed<8,1,RND,SAT>")   # 4608 weights
    assert np.count_nonzero(W) > cmvm_solvers.EXACT_WEIGHTS
    wires = [Wire(-128, 127, 5)] * 72
    nl = check_exact(W, wires, solve_cse(W, wires, depth_slack=1), rng)
    assert adder_stats(nl).adder_depth <= (max(len(t) for t in weight_terms(W)) - 1).bit_length() + 1


# ----------------------------------------------------------------------------- low-bit weights

def graph_depth(g: AdderGraph) -> int:
    """Adder levels of the deepest output of an adder graph (negated outputs are flags here)."""
    depth = [0] * g.n_inputs
    for a, b, _, _ in g.ops:
        depth.append(max(depth[a], depth[b]) + 1)
    return max((depth[o[0]] for o in g.outputs if o is not None), default=0)


@pytest.mark.parametrize("bits", [2, 3, 4])
@pytest.mark.parametrize("n", [8, 16, 32])
def test_low_bit_square_matrices_are_exact_and_within_the_bound(bits, n):
    """2-4 bit weights (one or two signed digits each): sharing and tree shape carry the cost."""
    rng = np.random.default_rng(100 * bits + n)
    W = int_matrix(rng, n, n, bits, zeros=0)
    wires = [BYTE] * n
    g = solve_cse(W, wires)
    nl = check_exact(W, wires, g, rng, n=300)
    terms = max(len(t) for t in weight_terms(W))
    assert graph_depth(g) <= (terms - 1).bit_length() + 1
    plain = adder_stats(netlist_of(solve_cmvm(W, wires, "plain"), wires))
    assert adder_stats(nl).adder_bits < plain.adder_bits


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n_in=st.integers(1, 20), n_out=st.integers(1, 20), bits=st.integers(2, 4), seed=st.integers(0, 2**32 - 1),
       slack=st.sampled_from([0, 1, 2, None]), unsigned=st.booleans())
def test_low_bit_matrices_are_exact_within_the_bound(n_in, n_out, bits, seed, slack, unsigned):
    rng = np.random.default_rng(seed)
    W = int_matrix(rng, n_in, n_out, bits, zeros=rng.random() * 0.3)
    wires = [Wire(0, 255, 0) if unsigned else BYTE] * n_in
    g = solve_cse(W, wires, depth_slack=slack)
    check_exact(W, wires, g, rng)
    if slack is not None:
        terms = max((len(t) for t in weight_terms(W)), default=0)
        assert graph_depth(g) <= max(terms - 1, 0).bit_length() + slack


def test_joined_columns_put_the_positive_operand_first():
    """A column rebuilt from its parent minus a term is ``parent - term``, not ``-(term - parent)``.

    The second form needs a negation adder at the output (as wide as the sum itself).
    """
    rng = np.random.default_rng(5)
    base = rng.integers(-128, 128, size=(12, 1)).astype(np.float64)
    cols = [base]
    for i in range(6):   # the base column minus one input: a difference of a single negative digit
        c = base.copy()
        c[i] -= 1 if base[i] != 1 else -3
        cols.append(c)
    W = np.concatenate(cols, axis=1)
    wires = [BYTE] * 12
    g = solve_cse(W, wires)
    check_exact(W, wires, g, rng)
    assert not any(o[2] for o in g.outputs)
    nl = netlist_of(g, wires)
    assert adder_stats(nl).adders == len(g.ops)    # no negations added for the outputs
