"""Learned LUT networks (rtl4ml.nn.lutnet, DWN-style) on the 16 jet features: accuracy vs Yosys LUTs.

For each size: a thermometer encoder with thresholds at the training quantiles, LUT6 layers
with learned connections trained by extended finite differences, a popcount head; all sizes
trained for the same epochs. Each model is converted with ``rtl4ml.convert`` (no type
arguments), its eval forward pass is checked equal to ``design.predict`` on every test jet,
the accuracy is that of the bit-exact design, Yosys ``synth_xilinx`` gives LUT/FF/CARRY of
the whole design (encoder included) and, unless ``--no-verify``, Verilator checks the RTL
on every test jet.

The features are standardized with the training split's mean and standard deviation (the
design's inputs are standardized features), then quantized to ``--input-type``.

Not run here: ``torch-dwn`` (its LUT kernel is CUDA-only and this machine has no GPU) and
rtl4ml's arithmetic QAT front (``benchmarks/qat_pareto.py`` measures it).

    python benchmarks/lut_networks.py --epochs 3 --out benchmarks/results/lut_networks
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "jets_pythia8" / "jets_pythia8.npz"

#: (label, thresholds per feature, LUT layer widths); every unit has 6 inputs.
SIZES = (("dwn-50", 8, (50,)), ("dwn-200", 16, (200,)), ("dwn-400-100", 16, (400, 100)))


def load(path: Path):
    from sklearn.model_selection import train_test_split
    if not path.exists():
        sys.exit(f"data file {path} not found; pass --data PATH to jets_pythia8.npz")
    with np.load(path, allow_pickle=False) as d:
        x, y = d["features"].astype(np.float64), d["labels"].astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.2, random_state=42)
    mean, std = xtr.mean(0), xtr.std(0)
    return (xtr - mean) / std, ytr, (xte - mean) / std, yte


def build(n_thr: int, widths: tuple[int, ...], input_type: str, x_train, seed: int):
    import torch

    import rtl4ml.nn as qnn
    enc = qnn.Thermometer(16, n_thr, input_type).init_quantiles(x_train)
    layers, n = [enc], enc.out_bits
    for i, w in enumerate(widths):
        layers.append(qnn.LUTLayer(n, w, 6, mapping="learned", seed=seed * 100 + i))
        n = w
    return torch.nn.Sequential(*layers, qnn.GroupSum(5))


def run_point(label, n_thr, widths, data, args) -> dict:
    import torch

    import rtl4ml
    import rtl4ml.nn as qnn
    xtr, ytr, xte, yte = data
    t0 = time.time()
    model = build(n_thr, widths, args.input_type, xtr, args.seed)
    qnn.fit_lutnet(model, xtr, ytr, epochs=args.epochs, lr=args.lr, seed=args.seed, label=label)
    train_s = time.time() - t0
    with torch.no_grad():
        ref = model.eval()(torch.as_tensor(xte)).numpy().astype(np.float64)
    design = rtl4ml.convert(model, clock_ns=args.clock_ns)
    pred = design.predict(xte)
    if not np.array_equal(pred, ref):
        raise SystemExit(f"{label}: design.predict differs from the model on "
                         f"{int((pred != ref).any(1).sum())} test jets")
    acc = float((pred.argmax(1) == yte).mean())
    est = design.estimate(synth=not args.no_synth)
    verified = None
    if not args.no_verify:
        r = design.verify(xte)
        verified = bool(r.ok and np.array_equal(r.outputs, ref))
    return {"label": label, "method": "rtl4ml.nn LUT network (DWN-style, EFD, learned mapping)",
            "accuracy": round(acc, 5), "lut": est.lut, "ff": est.ff, "carry": est.carry,
            "latency_cycles": est.latency_cycles, "rtl_verified": verified,
            "comparators": design_comparators(design, "0"), "thresholds": model[0].comparators(),
            "lut_units": qnn.lut_units(model),
            "thresholds_per_feature": n_thr, "widths": list(widths), "train_seconds": round(train_s, 1)}


def design_comparators(design, encoder: str) -> int:
    """Comparators of the encoder left in the design (thresholds no LUT reads are removed)."""
    from rtl4ml.netlist.prims import Compare, Lookup
    return sum(1 for p in design.netlist.prims if p.origin == encoder and isinstance(p, (Compare, Lookup)))


def table(points: list[dict]) -> str:
    head = "| label | accuracy | Yosys LUT | FF | CARRY4 | comparators | LUT units | cycles | RTL verified |"
    rows = [head, "|" + "---|" * 9]
    for p in points:
        rows.append(f"| {p['label']} | {100 * p['accuracy']:.2f} % | {p['lut']} | {p['ff']} | {p['carry']} | "
                    f"{p['comparators']} | {p['lut_units']} | {p['latency_cycles']} | {p['rtl_verified']} |")
    return "\n".join(rows)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "lut_networks")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--input-type", default="fixed<6,3,TRN,SAT>")
    ap.add_argument("--clock-ns", type=float, default=2.5)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--sizes", default=",".join(s[0] for s in SIZES), help="comma-separated labels to run")
    ap.add_argument("--no-synth", action="store_true")
    ap.add_argument("--no-verify", action="store_true")
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    data = load(args.data)
    wanted = set(args.sizes.split(","))
    points = [run_point(label, n, w, data, args) for label, n, w in SIZES if label in wanted]
    args.out.mkdir(parents=True, exist_ok=True)
    cfg = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    (args.out / "results.json").write_text(json.dumps({"config": cfg, "points": points,
                                                       "not_run": {"torch-dwn": "CUDA-only kernel, no GPU here",
                                                                   "arithmetic QAT": "see benchmarks/qat_pareto.py"}},
                                                      indent=1))
    print(table(points))


if __name__ == "__main__":
    main()
