"""What the jet-constituent examples share: the particles of each jet, the 16-feature MLP
baseline on the same split, float/QAT layer pairs, and one train-convert-prove-measure run.

The constituents are ``(N, 30, 3)`` per jet (ordered by momentum); they are standardized
with one mean and deviation per feature over all particles (the same for every particle,
so a permutation-invariant model stays invariant), zero-padded particles included.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from torch import nn

import rtl4ml
import rtl4ml.nn as qnn
from _common import DATA, arguments, check_and_measure

DEFAULT_DATA = DATA / "jets_2500.npz"


def constituent_arguments(doc: str, epochs: int, particles: int) -> argparse.Namespace:
    import sys
    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--particles", type=int, default=None)
    extra.add_argument("--save", type=Path, default=None,
                       help="write the trained models and the baseline's accuracy to this file (torch.save)")
    extra.add_argument("--load", type=Path, default=None,
                       help="skip training: take the models and the baseline's accuracy from a --save file")
    known, rest = extra.parse_known_args()
    sys.argv = [sys.argv[0]] + rest
    args = arguments(doc, DEFAULT_DATA, epochs)
    args.particles = known.particles or (8 if args.small else particles)
    args.save, args.load = known.save, known.load
    return args


def load(args):
    """(constituents (N, P, 3), features (N, 16), labels, train index, test index)."""
    d = np.load(args.data)
    xc = d["constituents"].astype(np.float64)[:, :args.particles]
    xf = d["features"].astype(np.float64)
    y = d["labels"].astype(np.int64)
    if "split" in d:
        tr, te = np.flatnonzero(d["split"] == 0), np.flatnonzero(d["split"] == 2)
    else:
        perm = np.random.default_rng(args.seed).permutation(len(y))
        n_te = len(y) * 2 // 5
        te, tr = perm[:n_te], perm[n_te:]
    if args.small:
        tr, te = tr[:1200], te[:250]
    m, s = xc[tr].reshape(-1, 3).mean(0), xc[tr].reshape(-1, 3).std(0) + 1e-9
    xc = (xc - m) / s
    xf = (xf - xf[tr].mean(0)) / (xf[tr].std(0) + 1e-9)
    return xc, xf, y, tr, te


def mlp_baseline(xf, y, tr, te, args) -> float:
    """Test accuracy of a float 16-feature MLP (16-64-32-5) trained the same way on the same split."""
    m = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 5))
    m = qnn.fit(m, xf[tr], y[tr], epochs=args.epochs, seed=args.seed, label="float 16-feature MLP")
    with torch.no_grad():
        return float((m(torch.tensor(xf[te], dtype=torch.float32)).argmax(1).numpy() == y[te]).mean())


class Layers:
    """A model's layers in float (``q=False``: torch layers, quantizers are identities) or
    in rtl4ml.nn (``q=True``); activations of particles share types across particles."""

    def __init__(self, q: bool) -> None:
        self.q = q

    def linear(self, a: int, b: int, bias: bool = True) -> nn.Module:
        return qnn.QLinear(a, b, bias=bias) if self.q else nn.Linear(a, b, bias=bias)

    def relu(self, **kw) -> nn.Module:
        return qnn.QReLU(**kw) if self.q else nn.ReLU()

    def act(self, **kw) -> nn.Module:
        kw.setdefault("overflow", "SAT")
        kw.setdefault("init_f", 4)
        return qnn.QActivation(**kw) if self.q else nn.Identity()

    def input(self, shape) -> nn.Module:
        return qnn.QInput(shape, granularity="feature", init_f=5) if self.q else nn.Identity()


def run(name: str, make, args, beta: float) -> None:
    """Train the float and QAT twins, convert the QAT one, prove model == design (and the RTL),
    print the accuracies next to the 16-feature MLP's, Yosys figures and the latency."""
    xc, xf, y, tr, te = load(args)
    if args.load is not None:   # training and synthesis in separate runs (benchmarks/constituent_examples.py)
        saved = torch.load(args.load, weights_only=False)
        base, float_model, model = saved["mlp"], saved["float"], saved["model"]
        print(f"models from {args.load} ({saved['epochs']} epochs)")
    else:
        base = mlp_baseline(xf, y, tr, te, args)
        torch.manual_seed(args.seed)
        float_model = qnn.fit(make(Layers(False), args.particles), xc[tr], y[tr], epochs=args.epochs,
                              seed=args.seed, label=f"float {name}")
        torch.manual_seed(args.seed)
        model = qnn.fit(make(Layers(True), args.particles), xc[tr], y[tr], epochs=args.epochs, seed=args.seed,
                        beta=args.beta if args.beta is not None else beta, label=f"QAT {name}")
        qnn.calibrate(model, xc[tr])
        if args.save is not None:
            torch.save({"mlp": base, "float": float_model, "model": model, "epochs": args.epochs}, args.save)
    design = rtl4ml.convert(model, clock_ns=args.clock_ns, name=name.replace(" ", "_").replace("-", "_"))
    with torch.no_grad():
        float_acc = float((float_model(torch.tensor(xc[te], dtype=torch.float32)).argmax(1).numpy()
                           == y[te]).mean())
    out = check_and_measure(model, design, xc[te], args)
    print(f"accuracy on {len(te)} test jets ({args.particles} particles): float {100 * float_acc:.2f} %, "
          f"bit-exact design {100 * (out.argmax(1) == y[te]).mean():.2f} %, 16-feature MLP (float) "
          f"{100 * base:.2f} %")
    print(f"EBOPs {float(qnn.ebops(model).detach()):.0f}")
