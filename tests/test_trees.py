"""Tree ensembles: thresholds at their exact boundaries, round trips against scikit-learn and
XGBoost on real jets (identical decisions, leaf sums equal to the quantized leaf values), and
graph emulator == netlist executor == Verilator RTL in one shared build."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtl4ml.design import Design
from rtl4ml.fixed import FixedType, FixedTypeArray, quantize
from rtl4ml.graph import Graph, GraphBuilder, GraphError
from rtl4ml.graph.ops.trees import TreeEnsemble, threshold_code
from rtl4ml.netlist.prims import Compare

sklearn = pytest.importorskip("sklearn")
xgb = pytest.importorskip("xgboost")

from sklearn.ensemble import (GradientBoostingClassifier, GradientBoostingRegressor,  # noqa: E402
                              HistGradientBoostingClassifier, HistGradientBoostingRegressor, RandomForestClassifier,
                              RandomForestRegressor)
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor  # noqa: E402

from rtl4ml.frontends.trees import from_trees, leaf_type_for  # noqa: E402
from rtl4ml.torch_common import ConversionError  # noqa: E402

JETS = Path(__file__).resolve().parents[2] / "shared" / "data" / "jets_pythia8" / "jets_pythia8_small.npz"
INPUT = "fixed<18,8>"   # the jet features span about -10..150; 10 fractional bits


@pytest.fixture(scope="module")
def jets():
    if not JETS.exists():
        pytest.skip(f"{JETS} not found")
    d = np.load(JETS)
    x = d["features"].astype(np.float64)
    return quantize(x, INPUT), d["labels"].astype(np.int64)


# --------------------------------------------------------------------------- thresholds


def stump(threshold: float, split: str, t: FixedType, missing=None, default_left=True) -> Graph:
    """One split on feature 0: output 1 when the split holds (left), else 0."""
    g = GraphBuilder()
    x = g.input(t, 1)
    op = TreeEnsemble([0, -1, -1], [threshold, 0, 0], [1, -1, -1], [2, -1, -1], [[0.0], [1.0], [0.0]], [0], [0.0],
                      split, None, [default_left, True, True], missing)
    return g.build(g.node(op, (x,), "scores"))


@st.composite
def boundary_case(draw):
    """A type, a threshold on or off its grid (or a float32 value), and inputs at the
    threshold and one LSB either side of it (and of its neighbours on the grid)."""
    signed = draw(st.booleans())
    width = draw(st.integers(2, 20))
    frac = draw(st.integers(-3, width + 3))
    t = FixedType(signed, width - int(signed) - frac, frac)
    lsb = 2.0 ** -frac
    code = draw(st.integers(t.min_q - 2, t.max_q + 2))
    off = draw(st.sampled_from([0.0, 0.5, 0.25, -0.25, 1e-9, -1e-9, 0.999]))
    thr = (code + off) * lsb
    if draw(st.booleans()):
        thr = float(np.float32(thr))
    xs = np.array([(code + d) * lsb for d in (-2, -1, 0, 1, 2)])
    return t, thr, xs


@settings(max_examples=300, deadline=None)
@given(case=boundary_case(), split=st.sampled_from(["lt", "le"]))
def test_split_at_the_threshold_and_one_lsb_either_side(case, split):
    t, thr, xs = case
    g = stump(thr, split, t)
    xq = quantize(xs, t)   # what the hardware sees (wrapped where out of range)
    want = (xq < thr) if split == "lt" else (xq <= thr)
    got = g.predict(xs[:, None])[:, 0]
    np.testing.assert_array_equal(got, want.astype(float), err_msg=f"{t} threshold {thr!r} {split}")
    T = threshold_code(thr, t.fraction, split)
    q = np.round(xq * 2.0 ** t.fraction)
    np.testing.assert_array_equal(q <= T, want)


@settings(max_examples=100, deadline=None)
@given(case=boundary_case(), split=st.sampled_from(["lt", "le"]), default_left=st.booleans())
def test_missing_value_takes_the_default_direction(case, split, default_left):
    t, thr, xs = case
    miss = float(quantize(np.array([xs[2]]), t)[0])
    g = stump(thr, split, t, missing=miss, default_left=default_left)
    xq = quantize(xs, t)
    want = np.where(xq == miss, default_left, (xq < thr) if split == "lt" else (xq <= thr))
    np.testing.assert_array_equal(g.predict(xs[:, None])[:, 0], want.astype(float))


def test_splits_share_comparators_and_constant_splits_vanish():
    t = FixedType(True, 3, 2)   # -8 .. 7.75 in steps of 0.25
    g = GraphBuilder()
    x = g.input(t, 2)
    # two trees: thresholds 1.1 and 1.2 both mean q <= 4 for <=; 100.0 is always true
    feature = [0, -1, -1, 0, 1, -1, -1, -1]
    thr = [1.1, 0, 0, 1.2, 100.0, 0, 0, 0]
    left = [1, -1, -1, 4, 5, -1, -1, -1]
    right = [2, -1, -1, 7, 6, -1, -1, -1]
    value = [[0], [1], [2], [0], [0], [10], [20], [30]]
    op = TreeEnsemble(feature, thr, left, right, value, [0, 3], [0.5], "le")
    g.node(op, (x,), "scores")
    d = Design(g.build("scores"), name="share")
    assert d.netlist.count(Compare) == 1
    ty = d.graph.types["scores"]
    assert (int(ty.lo[0]), int(ty.hi[0])) == (23, 65) and ty.fraction[0] == 1   # 11.5..32.5: 20 is never reached
    xs = np.array([[1.0, 0.0], [1.25, 5.0], [-8.0, 7.75], [1.5, -3.0]])
    np.testing.assert_array_equal(d.predict(xs)[:, 0], [11.5, 32.5, 11.5, 32.5])


def test_bad_ensembles_are_refused_with_the_node():
    with pytest.raises(GraphError, match="node 1 has left child 0"):
        TreeEnsemble([0, 0, -1], [1, 1, 0], [1, 0, -1], [2, 2, -1], [[0], [0], [1]], [0], [0.0])
    with pytest.raises(GraphError, match="split must be one of"):
        TreeEnsemble([-1], [0], [-1], [-1], [[1.0]], [0], [0.0], "gt")
    with pytest.raises(GraphError, match="threshold is not finite"):
        TreeEnsemble([0, -1, -1], [np.nan, 0, 0], [1, -1, -1], [2, -1, -1], [[0], [1], [2]], [0], [0.0])
    g = GraphBuilder()
    x = g.input("fixed<8,4>", 2)
    with pytest.raises(GraphError, match="node 'trees'.*feature 4, the input has 2"):
        g.node(TreeEnsemble([4, -1, -1], [1, 0, 0], [1, -1, -1], [2, -1, -1], [[0], [1], [2]], [0], [0.0]), (x,),
               "trees")


def test_leaf_type_from_an_accuracy_target():
    t = leaf_type_for(np.array([0.3, -2.5]), np.array([0.1]), np.array([99]), 1e-3)
    assert t.fraction == 16 and t.integer == 2 and t.rounding == "RND"   # 100 * 2**-17 < 1e-3 < 100 * 2**-16


# --------------------------------------------------------------------------- round trips on jets


def _leaf_sum(g: Graph, leaf_ids: np.ndarray, values_per_tree) -> np.ndarray:
    """Base + sum of the *quantized* leaf values at the leaves the source library reports."""
    op = g["scores"].op
    v, b = op.effective_value, op.effective_base
    out = np.tile(b, (len(leaf_ids), 1))
    for t, (root, col) in enumerate(values_per_tree):
        out[:, col] += v[root + leaf_ids[:, t], col]
    return out


def test_xgboost_round_trip_on_jets(jets, tmp_path):
    x, y = jets
    m = xgb.XGBClassifier(n_estimators=8, max_depth=4, learning_rate=0.5, n_jobs=1).fit(x[:3000], y[:3000])
    g = from_trees(m, INPUT, accuracy=1e-4, argmax=True)
    scores, cls = g.predict(x)
    booster = m.get_booster()
    leaves = booster.predict(xgb.DMatrix(x), pred_leaf=True).astype(np.int64)   # (N, trees), node ids
    info = json.loads(bytes(booster.save_raw("json")))["learner"]["gradient_booster"]["model"]["tree_info"]
    roots = g["scores"].op.roots
    np.testing.assert_array_equal(scores, _leaf_sum(g, leaves, list(zip(roots, info))))
    margin = m.predict(x, output_margin=True)
    assert np.abs(scores - margin).max() < 1e-4 + 1e-5   # the accuracy target (+ float32 rounding of XGBoost)
    np.testing.assert_array_equal(cls, np.argmax(scores, axis=1))
    assert (cls == m.predict(x)).mean() > 0.999
    # the same model from its .json and .ubj files
    for suffix in (".json", ".ubj"):
        path = tmp_path / f"m{suffix}"
        m.save_model(path)
        np.testing.assert_array_equal(from_trees(path, INPUT, accuracy=1e-4).predict(x), scores)


def test_xgboost_binary_regressor_and_missing(jets):
    x, y = jets
    m = xgb.XGBClassifier(n_estimators=6, max_depth=3, n_jobs=1).fit(x[:2000], y[:2000] == 4)
    g = from_trees(m, INPUT, leaf_type="fixed<20,4,RND,SAT>")
    assert np.abs(g.predict(x)[:, 0] - m.predict(x, output_margin=True)).max() < 2 ** -16 * 7 + 1e-5
    r = xgb.XGBRegressor(n_estimators=6, max_depth=3, n_jobs=1).fit(x[:2000], x[:2000, 0] * 0.1 + y[:2000])
    g = from_trees(r, INPUT, accuracy=1e-4)
    assert np.abs(g.predict(x)[:, 0] - r.predict(x)).max() < 1e-4 + 1e-4
    # missing=0: a zero feature takes the default direction in XGBoost and in rtl4ml
    xm = x.copy()
    xm[::3, :8] = 0.0
    m0 = xgb.XGBClassifier(n_estimators=6, max_depth=3, missing=0.0, n_jobs=1).fit(xm[:2000], y[:2000] == 0)
    g = from_trees(m0, INPUT, accuracy=1e-4)
    assert g["scores"].op.missing == 0.0
    assert np.abs(g.predict(xm)[:, 0] - m0.predict(xm, output_margin=True)).max() < 2e-4


SKLEARN_MODELS = [
    (DecisionTreeClassifier, dict(max_depth=5)),
    (DecisionTreeRegressor, dict(max_depth=5)),
    (RandomForestClassifier, dict(n_estimators=5, max_depth=4)),
    (RandomForestRegressor, dict(n_estimators=4, max_depth=4)),
    (GradientBoostingClassifier, dict(n_estimators=4, max_depth=3, learning_rate=0.3)),
    (GradientBoostingRegressor, dict(n_estimators=5, max_depth=3)),
]


@pytest.mark.parametrize("cls,kw", SKLEARN_MODELS, ids=[c.__name__ for c, _ in SKLEARN_MODELS])
def test_sklearn_round_trip_on_jets(jets, cls, kw):
    x, y = jets
    target = y if "Classifier" in cls.__name__ else x[:, 0] * 0.01 + y
    m = cls(random_state=0, **kw).fit(x[:3000], target[:3000])
    g = from_trees(m, INPUT, accuracy=1e-4)
    scores = g.predict(x)
    op = g["scores"].op
    # the leaves scikit-learn reaches, summed with their quantized values
    if hasattr(m, "tree_"):
        leaves = m.apply(x)[:, None]
    else:
        leaves = m.apply(x).reshape(len(x), -1).astype(np.int64)   # (N, trees), or (N, stages, K) stage-major
    k = scores.shape[1]
    if "GradientBoosting" in cls.__name__:
        cols = [j for _ in range(m.estimators_.shape[0]) for j in range(m.estimators_.shape[1])]
        per_tree = [(r, c) for r, c in zip(op.roots, cols)]
    else:
        per_tree = [(r, slice(None)) for r in op.roots]
    np.testing.assert_array_equal(scores, _leaf_sum(g, leaves, per_tree))
    ref = (m.decision_function(x) if "GradientBoostingClassifier" in cls.__name__ else
           m.predict_proba(x) if "Classifier" in cls.__name__ else m.predict(x))
    ref = ref.reshape(len(x), k)
    assert np.abs(scores - ref).max() < 1e-4 + 1e-9


@pytest.mark.parametrize("cls", [HistGradientBoostingClassifier, HistGradientBoostingRegressor])
def test_hist_gradient_boosting_on_jets(jets, cls):
    x, y = jets
    target = y if cls is HistGradientBoostingClassifier else x[:, 0] * 0.01 + y
    from threadpoolctl import threadpool_limits
    with threadpool_limits(1):   # OpenMP threads on top of pytest-xdist workers only contend
        m = cls(max_iter=6, max_depth=4, random_state=0).fit(x[:3000], target[:3000])
    g = from_trees(m, INPUT, accuracy=1e-5)
    ref = m.decision_function(x) if hasattr(m, "decision_function") else m.predict(x)
    assert np.abs(g.predict(x) - ref.reshape(len(x), -1)).max() < 1e-5 + 1e-9


def test_skops_file_round_trip_and_refusals(jets, tmp_path):
    sio = pytest.importorskip("skops.io")
    x, y = jets
    m = GradientBoostingClassifier(n_estimators=3, max_depth=3).fit(x[:1000], y[:1000])
    path = tmp_path / "gb.skops"
    sio.dump(m, path)
    np.testing.assert_array_equal(from_trees(path, INPUT).predict(x[:200]), from_trees(m, INPUT).predict(x[:200]))
    with pytest.raises(ConversionError, match="needs input_type"):
        from_trees(m, None)
    with pytest.raises(ConversionError, match="not fitted"):
        from_trees(GradientBoostingClassifier(), INPUT)
    with pytest.raises(ConversionError, match="cannot convert a scikit-learn Ridge"):
        from sklearn.linear_model import Ridge
        from_trees(Ridge().fit(x[:100], y[:100]), INPUT)
    bad = tmp_path / "bad.json"
    bad.write_text('{"a": 1}')
    with pytest.raises(ConversionError, match="not an XGBoost model"):
        from_trees(bad, INPUT)


def test_per_feature_input_types_and_json_round_trip(jets):
    x, y = jets
    m = xgb.XGBClassifier(n_estimators=3, max_depth=3, n_jobs=1).fit(x[:1000], y[:1000])
    rng = np.random.default_rng(0)
    types = FixedTypeArray(np.ones(16, dtype=bool), rng.integers(7, 9, 16), rng.integers(4, 12, 16))
    g = from_trees(m, types, leaf_type="fixed<16,4,RND,SAT>", argmax=True)
    g2 = Graph.from_json(json.loads(json.dumps(g.to_json())))
    for a, b in zip(g.predict(x), g2.predict(x)):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- RTL, one build


@pytest.mark.hw
def test_trees_rtl_graph_netlist_and_verilator_agree(jets):
    """In one Verilator build: an XGBoost jet tagger with argmax (x < t, missing = 0), a
    scikit-learn gradient-boosting model (x <= t), and stumps exactly at input grid points."""
    x, y = jets
    xm = x.copy()
    xm[::5, 3] = 0.0
    m = xgb.XGBClassifier(n_estimators=5, max_depth=3, missing=0.0, n_jobs=1).fit(xm[:2000], y[:2000])
    s = GradientBoostingClassifier(n_estimators=3, max_depth=3, random_state=0).fit(x[:2000], y[:2000])
    ga = from_trees(m, INPUT, accuracy=1e-3, argmax=True)
    gs = from_trees(s, INPUT, leaf_type="fixed<12,3,RND,SAT>")
    g = GraphBuilder()
    xin = g.input(INPUT, 16, name="x")
    ya = g.node(ga["scores"].op, (xin,), "xgb")
    from rtl4ml.graph.ops.reduce import Argmax
    ca = g.node(Argmax(), (ya,), "xgb_class")
    ys = g.node(gs["scores"].op, (xin,), "sk")
    # stumps on feature 0 at a grid point, with thresholds and inputs one LSB either side
    thr = [1.0, 1.0 - 2 ** -10, 1.0 + 2 ** -10, 1.0 + 2 ** -11]
    n = len(thr)
    feature = [0, -1, -1] * n
    left = [v + 3 * i if v >= 0 else -1 for i in range(n) for v in (1, -1, -1)]
    right = [v + 3 * i if v >= 0 else -1 for i in range(n) for v in (2, -1, -1)]
    value = np.zeros((3 * n, n))
    for i in range(n):
        value[3 * i + 1, i] = 1.0
    thresholds = [t for tt in thr for t in (tt, 0, 0)]
    for split in ("lt", "le"):
        g.node(TreeEnsemble(feature, thresholds, left, right, value, [3 * i for i in range(n)], np.zeros(n), split),
               (xin,), f"stumps_{split}")
    graph = g.build([ya, ca, ys, "stumps_lt", "stumps_le"])
    d = Design(graph, name="trees", clock_ns=2.5)
    xs = xm.copy()
    xs[:60, 0] = np.repeat(1.0 + np.arange(-3, 3) * 2.0 ** -11, 10)
    got = d.predict(xs)
    np.testing.assert_array_equal(got[0], ga.predict(xs)[0])
    x0 = quantize(xs[:60, 0:1], INPUT)   # off-grid inputs are truncated to the grid first
    np.testing.assert_array_equal(got[3][:60], (x0 < np.array(thr)).astype(float))
    np.testing.assert_array_equal(got[4][:60], (x0 <= np.array(thr)).astype(float))
    assert np.abs(got[0] - m.predict(xs, output_margin=True)).max() < 1e-3 + 1e-5
    for a, b in zip(d.execute_netlist(xs), d.predict_codes(xs)):
        np.testing.assert_array_equal(a, b)
    assert d.pipeline.latency_cycles >= 2
    r = d.verify(xs)
    assert r.ok and r.n_samples == len(xs), str(r)


# --------------------------------------------------------------------------- conifer


def conifer_model(ensemble: dict, out: Path, input_t: str, score_t: str):
    """conifer's C++ backend (its bit-exact ap_fixed emulation), compiled offline with the
    ap_fixed headers that hls4ml ships and nlohmann's JSON header from PyPI."""
    import importlib.util
    import os

    conifer = pytest.importorskip("conifer")
    nlohmann = pytest.importorskip("nlohmann_json")
    spec = importlib.util.find_spec("hls4ml")
    if spec is None:
        pytest.skip("hls4ml (for the ap_fixed headers) is not installed")
    os.environ["XILINX_AP_INCLUDE"] = str(Path(spec.submodule_search_locations[0]) / "templates/vivado/ap_types")
    import conifer.backends.cpp.writer as writer
    writer._json_include = lambda: f"-I{Path(nlohmann.__file__).parent / 'include'}"   # not bundled in the wheel
    cfg = {"Backend": "cpp", "ProjectName": "cmp", "OutputDir": str(out), "InputPrecision": input_t,
           "ThresholdPrecision": input_t, "ScorePrecision": score_t}
    m = conifer.model.make_model(ensemble, cfg)
    m.compile()
    return m


@pytest.mark.slow
def test_conifer_cpp_emulation_of_sklearn_is_bit_exact(jets, tmp_path):
    """Same trees, same types (inputs and thresholds ap_fixed<18,8>, scores ap_fixed<24,8>,
    both truncating): scikit-learn (x <= t, full-precision thresholds) agrees bit for bit."""
    pytest.importorskip("conifer")
    import conifer.converters.sklearn as csk
    x, y = jets
    s = GradientBoostingClassifier(n_estimators=6, max_depth=3, random_state=0).fit(x[:3000], y[:3000])
    cs = conifer_model(csk.convert(s), tmp_path / "sk", "ap_fixed<18,8>", "ap_fixed<24,8>")
    np.testing.assert_array_equal(from_trees(s, INPUT, leaf_type="fixed<24,8>").predict(x), cs.decision_function(x))


@pytest.mark.slow
def test_conifer_cpp_emulation_of_xgboost_differs_only_where_explained(jets, tmp_path):
    """Same trees and types as above, XGBoost (x < t): rtl4ml differs from conifer only through
    conifer's thresholds, read from XGBoost's 9-digit text dump and truncated to the input
    type; with those thresholds rtl4ml agrees bit for bit on every jet (docs/trees.md)."""
    import dataclasses

    pytest.importorskip("conifer")
    pytest.importorskip("pandas")
    import conifer.converters.xgboost as cxgb
    x, y = jets
    m = xgb.XGBClassifier(n_estimators=6, max_depth=3, n_jobs=1).fit(x[:3000], y[:3000])
    ens = cxgb.convert(m)
    base = json.loads(m.get_booster().save_config())["learner"]["learner_model_param"]["base_score"]
    ens["init_predict"] = [float(v) for v in base.strip("[]").split(",")]   # conifer takes a logit: NaN here
    cx = conifer_model(ens, tmp_path / "xgb", "ap_fixed<18,8>", "ap_fixed<24,8>").decision_function(x)
    g = from_trees(m, INPUT, leaf_type="fixed<24,8>")
    ours = g.predict(x)
    op = g["scores"].op
    dump = np.array([t if f != -2 else 0.0 for row in ens["trees"] for tree in row
                     for t, f in zip(tree["threshold"], tree["feature"])])
    assert (dump < op.threshold).any()   # the dump's decimals fall below some float32 thresholds
    assert (ours != cx).any(axis=1).sum() > 0
    as_conifer = dataclasses.replace(op, threshold=np.floor(dump * 2 ** 10) / 2 ** 10)
    gb = GraphBuilder()
    gb.node(as_conifer, (gb.input(INPUT, (16,)),), "scores")
    np.testing.assert_array_equal(gb.build("scores").predict(x), cx)
    # rtl4ml keeps XGBoost's own decisions (leaf sums at the leaves XGBoost reaches)
    leaves = m.get_booster().predict(xgb.DMatrix(x), pred_leaf=True).astype(np.int64)
    info = json.loads(bytes(m.get_booster().save_raw("json")))["learner"]["gradient_booster"]["model"]["tree_info"]
    np.testing.assert_array_equal(ours, _leaf_sum(g, leaves, list(zip(op.roots, info))))


def test_convert_and_cli_take_tree_models_and_files(jets, tmp_path, capsys):
    import rtl4ml
    from rtl4ml.cli import main
    x, y = jets
    m = xgb.XGBClassifier(n_estimators=4, max_depth=3, n_jobs=1).fit(x[:1000], y[:1000])
    d = rtl4ml.convert(m, input_type=INPUT, weight_type="fixed<16,6,RND,SAT>", clock_ns=2.5)
    m.save_model(tmp_path / "bdt.json")
    assert main(["convert", str(tmp_path / "bdt.json"), "--input-type", INPUT, "--weight-type", "fixed<16,6,RND,SAT>",
                 "--clock-ns", "2.5", "-o", str(tmp_path / "out")]) == 0
    assert "latency" in capsys.readouterr().out
    saved = rtl4ml.load(tmp_path / "out")
    np.testing.assert_array_equal(saved.predict(x), d.predict(x))
    assert saved.verilog == d.verilog
    with pytest.raises(ValueError, match="bias_type: not options of a tree model"):
        rtl4ml.convert(m, input_type=INPUT, bias_type="fixed<8,3>")
    assert main(["convert", str(tmp_path / "bdt.json"), "-o", str(tmp_path / "o2")]) == 2
    assert "bdt.json: a tree model needs input_type" in capsys.readouterr().err
    with pytest.raises(ValueError, match="is an XGBoost model, not a saved design"):
        rtl4ml.load(tmp_path / "bdt.json")
