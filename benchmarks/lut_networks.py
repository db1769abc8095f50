"""Learned LUT networks (rtl4ml.nn.lutnet) on the 16 jet features: accuracy vs Yosys LUTs.

For each size: a thermometer encoder with thresholds at the training quantiles, LUT6 layers
with learned connections (``dwn-*``: tables trained by extended finite differences;
``neuralut-*``: each unit a small MLP, tabulated), a popcount head; all sizes trained for the
same epochs. Each model is converted with ``rtl4ml.convert`` (no type
arguments), its eval forward pass is checked equal to ``design.predict`` on every test jet,
the accuracy is that of the bit-exact design, Yosys ``synth_xilinx`` gives LUT/FF/CARRY of
the whole design (encoder included) and, unless ``--no-verify``, Verilator checks the RTL
on every test jet.

The features are standardized with the training split's mean and standard deviation (the
design's inputs are standardized features), then quantized to ``--input-type`` (6 bits: each
comparator is one LUT6 of the input), except the two masses, quantized to ``--fine-type``
(8 bits: each comparator is a ``Compare`` primitive, which Yosys maps to a carry chain; the
CARRY column counts those cells, which Yosys's LUT count leaves out). The loss divides the
class counts by ``--tau`` (default ``sqrt(units per class)``).

The same run trains rtl4ml's arithmetic QAT front beside them (``--qat-betas``, the
16-64-32-32-5 MLP with ``benchmarks/qat_pareto.py``'s recipe and float baseline at
``--qat-epochs``, on the same split; ``--qat-betas ""`` skips it), measured and verified the
same way, and draws every point in ``OUT/pareto.png``. Not run: ``torch-dwn`` (its LUT
kernel is CUDA-only and this machine has no GPU).

    python benchmarks/lut_networks.py --epochs 10 --seed 0 --out benchmarks/results/lut_networks
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

#: The features read at ``--fine-type`` instead of ``--input-type``: j_mass and j_mass_mmdt.
#: W (80 GeV) and Z (91 GeV) jets differ mainly in mass; at the 6-bit input's 1/8 of a standard
#: deviation they share bins (3 epochs, 200 units: 67.7 % with every feature at 6 bits, 69.7 %
#: with these two at 8 bits, 69.9 % with all at 8 bits; docs/lutnet.md).
FINE_FEATURES = (0, 1)

#: (label, thresholds per feature, LUT layer widths); every unit has 6 inputs, the first layer
#: learns its connections, the popcount head has ``width / 5`` units per class. The label's
#: prefix is the family: ``dwn`` (qnn.LUTLayer, tables trained by EFD) or ``neuralut``
#: (qnn.MLPLUTLayer, a 16-wide MLP per unit, tabulated).
SIZES = (("dwn-50", 32, (50,)), ("dwn-100", 32, (100,)), ("dwn-150", 32, (150,)), ("dwn-200", 32, (200,)),
         ("dwn-400", 32, (400,)), ("neuralut-50", 32, (50,)), ("neuralut-100", 32, (100,)),
         ("neuralut-200", 32, (200,)), ("neuralut-400", 32, (400,)))

#: What each family's points are, for results.json.
METHODS = {"dwn": "rtl4ml.nn LUT network (DWN-style, EFD, learned mapping)",
           "neuralut": "rtl4ml.nn LUT network (NeuraLUT-style MLP units, tabulated, learned mapping)"}

#: Hidden width of a NeuraLUT unit's MLP.
NEURALUT_HIDDEN = 16


#: The issue's target: the smallest HGQ2 design at 120 epochs (accuracy, Yosys LUTs).
TARGET = (0.6954, 1386)


def load(path: Path):
    from sklearn.model_selection import train_test_split
    if not path.exists():
        sys.exit(f"data file {path} not found; pass --data PATH to jets_pythia8.npz")
    with np.load(path, allow_pickle=False) as d:
        x, y = d["features"].astype(np.float64), d["labels"].astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.2, random_state=42)
    mean, std = xtr.mean(0), xtr.std(0)
    return (xtr - mean) / std, ytr, (xte - mean) / std, yte


def input_types(args) -> list[str]:
    """Per feature: ``--fine-type`` for :data:`FINE_FEATURES`, ``--input-type`` for the rest."""
    return [args.fine_type if i in FINE_FEATURES else args.input_type for i in range(16)]


def family(label: str) -> str:
    return label.split("-")[0]


def build(label: str, n_thr: int, widths: tuple[int, ...], types: list[str], x_train, seed: int):
    import torch

    import rtl4ml.nn as qnn
    enc = qnn.Thermometer(16, n_thr, types).init_quantiles(x_train)
    layers, n = [enc], enc.out_bits
    for i, w in enumerate(widths):
        if family(label) == "neuralut":
            layers.append(qnn.MLPLUTLayer(n, w, 6, mapping="learned", seed=seed * 100 + i, hidden=NEURALUT_HIDDEN))
        else:
            layers.append(qnn.LUTLayer(n, w, 6, mapping="learned", seed=seed * 100 + i))
        n = w
    return torch.nn.Sequential(*layers, qnn.GroupSum(5))


def run_point(label, n_thr, widths, data, args) -> dict:
    import torch

    import rtl4ml
    import rtl4ml.nn as qnn
    from rtl4ml.nn.lutnet import default_tau
    xtr, ytr, xte, yte = data
    t0 = time.time()
    saved = args.load_models / f"{label}-seed{args.seed}.pt" if args.load_models else None
    if saved is not None:
        if not saved.exists():
            sys.exit(f"--load-models: {saved} not found (written by a run with --save-models)")
        kept = torch.load(saved, weights_only=False)          # {"model", "train_seconds", "epochs"}
        model, train_s, epochs = kept["model"], kept["train_seconds"], kept["epochs"]
        tau = default_tau(model) if args.tau is None else args.tau
    else:
        model = build(label, n_thr, widths, input_types(args), xtr, args.seed)
        tau = default_tau(model) if args.tau is None else args.tau
        qnn.fit_lutnet(model, xtr, ytr, epochs=args.epochs, lr=args.lr, tau=tau, seed=args.seed, label=label)
        train_s, epochs = round(time.time() - t0, 1), args.epochs
    model[-1].popcount = args.popcount
    if args.save_models and saved is None:
        args.save_models.mkdir(parents=True, exist_ok=True)
        torch.save({"model": model, "train_seconds": train_s, "epochs": args.epochs},
                   args.save_models / f"{label}-seed{args.seed}.pt")
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
    return {"label": label, "method": METHODS[family(label)],
            "accuracy": round(acc, 5), "lut": est.lut, "ff": est.ff, "carry": est.carry,
            "latency_cycles": est.latency_cycles, "rtl_verified": verified,
            "comparators": design_comparators(design, "0"), "thresholds": model[0].comparators(),
            "lut_units": qnn.lut_units(model),
            "thresholds_per_feature": n_thr, "widths": list(widths), "tau": round(tau, 4),
            "popcount": args.popcount, "epochs": epochs, "train_seconds": train_s}


def design_comparators(design, encoder: str) -> int:
    """Comparators of the encoder left in the design (thresholds no LUT reads are removed)."""
    from rtl4ml.netlist.prims import Compare, Lookup
    return sum(1 for p in design.netlist.prims if p.origin == encoder and isinstance(p, (Compare, Lookup)))


def table(points: list[dict]) -> str:
    head = "| label | accuracy | Yosys LUT | FF | CARRY | comparators | LUT units | cycles | RTL verified |"
    rows = [head, "|" + "---|" * 9]
    for p in points:
        rows.append(f"| {p['label']} | {100 * p['accuracy']:.2f} % | {p['lut']} | {p['ff']} | {p['carry']} | "
                    f"{p['comparators']} | {p['lut_units']} | {p['latency_cycles']} | {p['rtl_verified']} |")
    return "\n".join(rows)


def parser() -> argparse.ArgumentParser:
    """The command line (``benchmarks/qat_pareto.py --lutnet`` builds its LUT-network points from it)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "lut_networks")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--tau", type=float, default=None, help="GroupSum temperature (default: sqrt(units per class))")
    ap.add_argument("--input-type", default="fixed<6,3,TRN,SAT>")
    ap.add_argument("--fine-type", default="fixed<8,3,TRN,SAT>", help="input type of the two mass features")
    ap.add_argument("--clock-ns", type=float, default=2.5)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--sizes", default=",".join(s[0] for s in SIZES), help="comma-separated labels to run")
    ap.add_argument("--save-models", type=Path, default=None, help="folder to torch.save each trained model to")
    ap.add_argument("--load-models", type=Path, default=None,
                    help="export the models a --save-models run trained (same --seed) instead of training")
    ap.add_argument("--popcount", choices=("adders", "compressors"), default="adders",
                    help="the head's export: an adder tree or LUT compressors (qnn.GroupSum)")
    ap.add_argument("--qat-betas", default="1e-6,4e-6,1.2e-5,2.5e-5",
                    help="EBOPs coefficients of the arithmetic QAT front trained in the same run ('' for none)")
    ap.add_argument("--qat-epochs", type=int, default=120, help="epochs of the QAT models and their float baseline")
    ap.add_argument("--no-synth", action="store_true")
    ap.add_argument("--no-verify", action="store_true")
    return ap


def qat_front(args) -> list[dict]:
    """rtl4ml's arithmetic QAT points, trained here with ``qat_pareto.py``'s recipe (Fisher start
    and distillation from a float baseline trained as long, neuron group lasso) on the split
    :func:`load` uses; each converted, checked equal to ``design.predict`` and measured as the
    LUT networks are."""
    sys.path.insert(0, str(HERE))
    import qat_pareto as qp
    betas = [float(b) for b in args.qat_betas.split(",") if b]
    if not betas:
        return []
    data = qp.load_data(args.data, "random")
    cfg = qp.TrainConfig()                                  # qat_pareto's batch and learning rate
    fm, _, teacher = qp.train_float(data, args.qat_epochs, cfg.batch, cfg.lr, args.seed)
    recipe = qp.DEFAULT_RECIPE
    init = qp.qat_init(fm, teacher)
    cfg_kw = dict(epochs=args.qat_epochs, bits_lr=recipe["bits_lr"], distill=recipe["distill"],
                  temperature=recipe["temperature"], group_lasso=recipe["group_lasso"], seed=args.seed)
    opts = dict(threads=1, clock_ns=args.clock_ns, synth=not args.no_synth, verify=not args.no_verify,
                write_designs=False, out=str(args.out))
    points = []
    for k, beta in enumerate(betas):
        p = qp.qat_point(k, str(args.data), "random", beta, cfg_kw, {}, init, opts)["point"]
        points.append({"label": f"qat-{beta:g}", "method": "rtl4ml.nn arithmetic QAT (16-64-32-32-5, qat_pareto recipe)",
                       "accuracy": round(p.accuracy, 5), "lut": p.lut, "ff": p.ff, "carry": p.carry,
                       "latency_cycles": p.latency_cycles, "rtl_verified": None if args.no_verify else bool(p.rtl_verified),
                       "comparators": 0, "lut_units": 0, "beta": beta, "epochs": args.qat_epochs,
                       "train_seconds": round(p.train_seconds, 1)})
    return points


def plot(points: list[dict], path: Path) -> None:
    """Accuracy against Yosys LUTs, one marker per family, and the issue's target."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    sys.path.insert(0, str(HERE))
    from qat_pareto import save_plot
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    families = {"dwn": ("D", "C1", "LUT network, DWN units"), "neuralut": ("s", "C4", "LUT network, NeuraLUT units"),
                "qat": ("o", "C0", "arithmetic QAT")}
    for fam, (marker, color, name) in families.items():
        pts = sorted((p for p in points if family(p["label"]) == fam and p["lut"]), key=lambda p: p["lut"])
        if pts:
            ax.plot([p["lut"] for p in pts], [100 * p["accuracy"] for p in pts], marker + "-", color=color, label=name)
    ax.plot([TARGET[1]], [100 * TARGET[0]], "^", color="C2", label="smallest HGQ2 design (120 epochs)")
    save_plot(fig, ax, path, "LUT (Yosys synth_xilinx, xcup; encoder included)",
              "16 jet features: LUT networks and arithmetic QAT")


def main(argv=None) -> None:
    args = parser().parse_args(argv)
    import torch
    torch.set_num_threads(1)
    data = load(args.data)
    wanted = set(args.sizes.split(","))
    unknown = wanted - {s[0] for s in SIZES}
    if unknown:
        sys.exit(f"--sizes: unknown labels {sorted(unknown)}; known: {[s[0] for s in SIZES]}")
    args.out.mkdir(parents=True, exist_ok=True)
    cfg = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    points = []
    for label, n, w in SIZES:
        if label in wanted:
            points.append(run_point(label, n, w, data, args))
            write(args.out, cfg, points)                  # after every point: a long run keeps what it measured
    points += qat_front(args)
    write(args.out, cfg, points)
    print(table(points))
    print(target_line(points))
    if any(p["lut"] for p in points):
        plot(points, args.out / "pareto.png")
        print(f"plot: {args.out / 'pareto.png'}")


def target_line(points: list[dict]) -> str:
    """Whether a point reaches the issue's target (the smallest HGQ2 design's accuracy and LUTs)."""
    acc, lut = TARGET
    hits = [p for p in points if family(p["label"]) in ("dwn", "neuralut") and p["lut"] is not None
            and p["accuracy"] >= acc and p["lut"] <= lut]
    if not hits:
        return f"target ({100 * acc:.2f} % at <= {lut} LUTs): not met"
    best = min(hits, key=lambda p: p["lut"])
    return (f"target ({100 * acc:.2f} % at <= {lut} LUTs): met by {', '.join(p['label'] for p in hits)}; "
            f"smallest {best['label']}: {100 * best['accuracy']:.2f} % at {best['lut']} LUTs")


def write(out: Path, cfg: dict, points: list[dict]) -> None:
    (out / "results.json").write_text(json.dumps({"config": cfg, "points": points,
                                                  "target": {"accuracy": TARGET[0], "lut": TARGET[1],
                                                             "met": target_line(points)},
                                                  "not_run": {"torch-dwn": "CUDA-only kernel, no GPU here"}},
                                                 indent=1))


if __name__ == "__main__":
    main()
