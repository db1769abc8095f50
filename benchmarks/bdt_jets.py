"""Boosted decision trees and a symbolic-expression tagger on the jets (5 classes), as hardware.

For each XGBoost size (trees per class x depth) and for a sparse degree-2 polynomial per
class (scikit-learn Lasso on one-hot targets, written as a sympy expression): float test
accuracy, the design's test accuracy (bit-exact emulation, argmax of the raw scores), the
agreement of their decisions, comparators, Yosys LUT/FF, and the latency in cycles and ns at
``--clock-ns`` (2.5 by default). With ``--verify`` the Verilator RTL is compared with the
emulator on ``--verify-n`` test jets. ``--conifer`` compares the smallest BDT with conifer's
C++ (ap_fixed) emulation on every test jet (docs/trees.md).

Trees read the raw features, each quantized to 16 bits whose integer part covers the
training range (saturating); the polynomial reads standardized features (train mean and
standard deviation, as the MLP benchmarks do) at ``--poly-input-type`` (fixed<7,3>: a 7x7-bit
product fits one 2.5 ns stage in the delay model).

    python benchmarks/bdt_jets.py --verify --conifer      # the full run (writes results/bdt_jets.json)
    python benchmarks/bdt_jets.py --sizes 20x3 --no-synth # a quick look
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "jets_pythia8" / "jets_pythia8.npz"

import rtl4ml  # noqa: E402
from rtl4ml.fixed import FixedTypeArray, quantize  # noqa: E402
from rtl4ml.frontends.expressions import from_expression  # noqa: E402
from rtl4ml.frontends.trees import from_trees  # noqa: E402
from rtl4ml.netlist.prims import Compare  # noqa: E402


def feature_types(x: np.ndarray, width: int = 16) -> FixedTypeArray:
    """Per feature: signed only if negative values occur, integer bits covering max |x|, the
    rest fraction; saturating."""
    lo, hi = x.min(axis=0), x.max(axis=0)
    signed = lo < 0
    m = np.maximum(np.abs(lo), np.abs(hi))
    integer = np.array([max(math.floor(math.log2(v)) + 1, 0) if v > 0 else 0 for v in m])
    fraction = width - signed.astype(int) - integer
    return FixedTypeArray(signed, integer, fraction, "TRN", "SAT")


def figures(design, x_test, y_test, ref_pred, synth: bool, verify_n: int, label: str, float_acc: float,
            extra: dict) -> dict:
    scores, cls = design.predict(x_test)
    row = {"model": label, "float_acc": round(float_acc, 4), "design_acc": round(float((cls == y_test).mean()), 4),
           "agreement": round(float((cls == ref_pred).mean()), 4), **extra}
    nl = design.netlist
    row["comparators"] = sum(1 for p in nl.prims if isinstance(p, Compare) and p.origin != "class")
    row["argmax_comparators"] = sum(1 for p in nl.prims if isinstance(p, Compare) and p.origin == "class")
    t = time.time()
    e = design.estimate(synth=synth)
    row.update(adders=e.adders, adder_bits=e.adder_bits, lut_estimate=e.luts_estimate, register_bits=e.register_bits,
               latency_cycles=e.latency_cycles, latency_ns=e.latency_ns, critical_path_ns=e.critical_path_ns,
               lut=e.lut, ff=e.ff, carry=e.carry, dsp=e.dsp, synth_s=e.synth_seconds)
    print(f"  {label}: estimate in {time.time() - t:.1f} s", flush=True)
    if verify_n:
        t = time.time()
        r = design.verify(x_test[:verify_n])
        row["rtl_verified"] = f"{r.n_samples} jets, {'bit-exact' if r.ok else 'MISMATCH'}"
        print(f"  {label}: {r} ({time.time() - t:.1f} s)", flush=True)
        if not r.ok:
            raise SystemExit(f"{label}: RTL differs from the emulator: {r}")
    return row


def bdt(args, d, n_trees: int, depth: int) -> tuple[dict, object, object]:
    import xgboost as xgb
    x_tr, y_tr, x_te, y_te = d["x_train"], d["y_train"], d["x_test"], d["y_test"]
    t = time.time()
    m = xgb.XGBClassifier(n_estimators=n_trees, max_depth=depth, learning_rate=0.3 if n_trees < 50 else 0.15,
                          n_jobs=2, random_state=0, tree_method="hist").fit(x_tr, y_tr)
    train_s = time.time() - t
    pred = m.predict(x_te)
    types = feature_types(x_tr)
    t = time.time()
    g = from_trees(m, types, accuracy=args.leaf_accuracy, argmax=True)
    design = rtl4ml.convert(g, clock_ns=args.clock_ns, name=f"bdt_{n_trees}x{depth}")
    op = g["scores"].op
    splits = int((op.feature >= 0).sum())
    extra = {"trees": f"{n_trees}/class x depth {depth}", "splits": splits, "leaf_type": str(op.leaf_type),
             "train_s": round(train_s, 1), "convert_s": round(time.time() - t, 2),
             # against XGBoost on the raw features (input rounding included), and on the quantized ones
             "max_score_error": float(np.abs(design.predict(x_te)[0] - m.predict(x_te, output_margin=True)).max()),
             "max_score_error_quantized_inputs": float(np.abs(design.predict(x_te)[0] - m.predict(
                 quantize(x_te, types), output_margin=True)).max())}
    row = figures(design, x_te, y_te, pred, not args.no_synth, args.verify_n if args.verify else 0,
                  f"XGBoost {n_trees}x{depth}", float((pred == y_te).mean()), extra)
    return row, m, design


def polynomial(args, d) -> dict:
    import sympy as sp
    from sklearn.linear_model import Lasso
    from sklearn.preprocessing import PolynomialFeatures
    z_tr, y_tr, z_te, y_te = d["z_train"], d["y_train"], d["z_test"], d["y_test"]
    it = args.poly_input_type
    zq_tr = quantize(z_tr, it)
    poly = PolynomialFeatures(2, include_bias=False)
    P = poly.fit_transform(zq_tr[:args.poly_n])
    names = poly.get_feature_names_out([f"x{i}" for i in range(16)])
    onehot = np.eye(5)[y_tr[:args.poly_n]]
    t = time.time()
    exprs, n_terms = [], []
    for k in range(5):
        lasso = Lasso(alpha=args.poly_alpha, max_iter=5000).fit(P, onehot[:, k])
        terms = [sp.Float(float(lasso.intercept_))]
        for c, nm in zip(lasso.coef_, names):
            if c != 0:
                terms.append(sp.Float(float(c)) * sp.sympify(nm.replace(" ", "*").replace("^", "**")))
        n_terms.append(len(terms) - 1)
        exprs.append(sp.Add(*terms))
    fit_s = time.time() - t
    float_scores = np.stack([sp.lambdify([sp.Symbol(f"x{i}") for i in range(16)], e, "numpy")(
        *[quantize(z_te, it)[:, i] for i in range(16)]) * np.ones(len(z_te)) for e in exprs], axis=1)
    pred = float_scores.argmax(1)
    g = from_expression(exprs, it, variables=[f"x{i}" for i in range(16)], const_bits=args.poly_const_bits,
                        argmax=True)
    design = rtl4ml.convert(g, clock_ns=args.clock_ns, name="poly_tagger")
    extra = {"trees": f"degree-2 polynomial, {sum(n_terms)} terms ({'/'.join(map(str, n_terms))})",
             "splits": 0, "leaf_type": f"constants {args.poly_const_bits} bits", "train_s": round(fit_s, 1),
             "convert_s": 0.0, "max_score_error": float(np.abs(design.predict(z_te)[0] - float_scores).max()),
             "expression_class0": str(exprs[0])[:300]}
    return figures(design, z_te, y_te, pred, not args.no_synth, args.verify_n if args.verify else 0,
                   "sympy polynomial", float((pred == y_te).mean()), extra)


def conifer_comparison(m, d, out: Path) -> dict:
    """conifer's C++ emulation vs rtl4ml on every test jet, same trees, same types."""
    import dataclasses
    import importlib.util
    import os

    import conifer
    import conifer.backends.cpp.writer as writer
    import conifer.converters.xgboost as cxgb
    import nlohmann_json
    spec = importlib.util.find_spec("hls4ml")
    os.environ["XILINX_AP_INCLUDE"] = str(Path(spec.submodule_search_locations[0]) / "templates/vivado/ap_types")
    writer._json_include = lambda: f"-I{Path(nlohmann_json.__file__).parent / 'include'}"
    it, st = "fixed<24,11>", "fixed<24,8>"   # one type for every feature: conifer's C++ backend needs that
    x = quantize(d["x_test"], it)
    ens = cxgb.convert(m)
    conifer_init = list(ens["init_predict"])
    base = json.loads(m.get_booster().save_config())["learner"]["learner_model_param"]["base_score"]
    ens["init_predict"] = [float(v) for v in base.strip("[]").split(",")]
    cm = conifer.model.make_model(ens, {"Backend": "cpp", "ProjectName": "cmp", "OutputDir": str(out),
                                        "InputPrecision": "ap_fixed<24,11>", "ThresholdPrecision": "ap_fixed<24,11>",
                                        "ScorePrecision": "ap_fixed<24,8>"})
    cm.compile()
    theirs = cm.decision_function(x)
    g = from_trees(m, it, leaf_type=st)
    ours = g.predict(x)
    op = g["scores"].op
    dump = np.array([t if f != -2 else 0.0 for row in ens["trees"] for tree in row
                     for t, f in zip(tree["threshold"], tree["feature"])])
    as_conifer = dataclasses.replace(op, threshold=np.floor(dump * 2.0 ** 13) / 2.0 ** 13)
    gb = rtl4ml.graph.GraphBuilder()
    gb.node(as_conifer, (gb.input(it, (16,)),), "scores")
    emulated = gb.build("scores").predict(x)
    # conifer's split is q < floor(dump * 2**13); the exact one is q < ceil(t * 2**13)
    exact = np.array([math.ceil(Fraction(float(t)) * 2 ** 13) for t in op.threshold])
    return {"test_jets": len(x), "types": f"inputs/thresholds {it}, scores {st} (truncating)",
            "conifer_init_predict_from_xgboost3": str(conifer_init),
            "jets_differing": int((ours != theirs).any(axis=1).sum()),
            "jets_differing_with_conifer_thresholds": int((emulated != theirs).any(axis=1).sum()),
            "splits": int((op.feature >= 0).sum()),
            "splits_whose_integer_threshold_conifer_changes": int(((np.floor(dump * 2.0 ** 13) != exact)
                                                                   & (op.feature >= 0)).sum()),
            "dump_below_float32_threshold": int(((dump < op.threshold) & (op.feature >= 0)).sum()),
            "argmax_agreement_with_xgboost": {"rtl4ml": float((ours.argmax(1) == m.predict(x)).mean()),
                                              "conifer": float((theirs.argmax(1) == m.predict(x)).mean())}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--sizes", default="20x3,100x4", help="trees per class x depth, comma separated")
    p.add_argument("--clock-ns", type=float, default=2.5)
    p.add_argument("--leaf-accuracy", type=float, default=2.0 ** -6, help="max rounding error of each class score")
    p.add_argument("--poly-alpha", type=float, default=1e-2, help="Lasso penalty (sparsity of the polynomial)")
    p.add_argument("--poly-n", type=int, default=40000, help="training jets for the polynomial fit")
    p.add_argument("--poly-const-bits", type=int, default=8)
    p.add_argument("--poly-input-type", default="fixed<7,3,TRN,SAT>", help="type of the standardized features")
    p.add_argument("--no-synth", action="store_true")
    p.add_argument("--no-poly", action="store_true")
    p.add_argument("--verify", action="store_true")
    p.add_argument("--verify-n", type=int, default=10000)
    p.add_argument("--conifer", action="store_true")
    p.add_argument("--out", type=Path, default=HERE / "results" / "bdt_jets.json")
    args = p.parse_args()

    raw = np.load(args.data)
    split = raw["split"]
    x = raw["features"].astype(np.float64)
    y = raw["labels"].astype(np.int64)
    mu, sd = x[split == 0].mean(0), x[split == 0].std(0)
    d = {"x_train": x[split == 0], "y_train": y[split == 0], "x_test": x[split == 2], "y_test": y[split == 2]}
    d["z_train"], d["z_test"] = (d["x_train"] - mu) / sd, (d["x_test"] - mu) / sd
    rows, first = [], None
    for size in args.sizes.split(","):
        n, depth = (int(v) for v in size.split("x"))
        print(f"XGBoost {n} trees/class, depth {depth}", flush=True)
        row, m, _ = bdt(args, d, n, depth)
        first = first or m
        rows.append(row)
        print(json.dumps(row), flush=True)
    if not args.no_poly:
        print("sympy polynomial", flush=True)
        rows.append(polynomial(args, d))
        print(json.dumps(rows[-1]), flush=True)
    result = {"command": " ".join(["python", "benchmarks/bdt_jets.py", *sys.argv[1:]]), "clock_ns": args.clock_ns,
              "rows": rows}
    if args.conifer and first is not None:
        print("conifer comparison", flush=True)
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:   # conifer's project and compiled bridge
            result["conifer"] = conifer_comparison(first, d, Path(tmp) / "conifer")
        print(json.dumps(result["conifer"], indent=1), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    head = ("model", "float acc", "design acc", "agree", "comparators", "LUT", "FF", "DSP", "cycles", "ns")
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for r in rows:
        print(f"| {r['model']} ({r['trees']}) | {r['float_acc']:.4f} | {r['design_acc']:.4f} | {r['agreement']:.4f} | "
              f"{r['comparators']} | {r['lut']} | {r['ff']} | {r['dsp']} | {r['latency_cycles']} | {r['latency_ns']} |")


if __name__ == "__main__":
    main()
