"""What the layer examples share: data files, the design's proof and its hardware figures.

Examples run from any directory (``python examples/cnn_digits.py``); each finds this file
next to itself. Data default to the small copies in ``examples/data`` and take any file of
the same layout (``--data``), e.g. the full sets of the project's ``shared/data``.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import numpy as np
import torch

import rtl4ml
import rtl4ml.nn as qnn
from rtl4ml.report.evaluate import auc, roc_curve

DATA = Path(__file__).resolve().parent / "data"


def arguments(doc: str, data: Path, epochs: int) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=data, help=f"npz file (default: {data})")
    ap.add_argument("--epochs", type=int, default=epochs)
    ap.add_argument("--beta", type=float, default=None, help="EBOPs coefficient of the QAT model")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--small", action="store_true", help="a smaller model and data (the test suite's setting)")
    ap.add_argument("--no-rtl", action="store_true", help="skip the Verilator simulation")
    ap.add_argument("--no-synth", action="store_true", help="skip Yosys")
    ap.add_argument("--clock-ns", type=float, default=2.5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    torch.manual_seed(args.seed)        # the models' initial weights
    return args


def check_and_measure(model: torch.nn.Module, design: rtl4ml.Design, x: np.ndarray, args) -> np.ndarray:
    """model(x) == design.predict(x) on every sample, the RTL on every sample (unless
    ``--no-rtl``), Yosys figures (unless ``--no-synth``); returns the design's outputs.

    The model runs in float64 (a copy): its rtl4ml.nn layers are exact in any dtype, and in
    float64 so is the arithmetic between them (the score's subtraction, square and sum).
    """
    with torch.no_grad():
        want = copy.deepcopy(model).double()(torch.from_numpy(np.asarray(x, dtype=np.float64))).numpy()
    got = design.predict(x)
    n_same = int(np.all((got == want).reshape(len(x), -1), axis=1).sum())
    print(f"model(x) == design.predict(x) on {n_same} of {len(x)} samples")
    if n_same != len(x):
        raise SystemExit("the design differs from the model")
    if not args.no_rtl:
        r = design.verify(x)
        print(f"RTL (Verilator): {'bit-exact' if r.ok else 'MISMATCH'} on {r.n_samples} samples")
        if not r.ok:
            raise SystemExit(str(r))
    t = time.time()
    est = design.estimate(synth=not args.no_synth)
    if est.lut is not None:
        print(f"Yosys: {est.lut} LUT, {est.ff} FF, {est.dsp} DSP ({time.time() - t:.0f} s)")
    else:
        print(f"analytic: {est.luts_estimate} LUT (estimate), {est.register_bits} register bits")
    print(f"latency: {est.latency_cycles} cycles = {est.latency_ns:.1f} ns at {est.clock_ns} ns "
          f"({1e3 / est.clock_ns:.0f} MHz)")
    return got


def distilled_qat(model: torch.nn.Module, float_model: torch.nn.Module, x: np.ndarray, epochs: int, beta: float,
                  seed: int = 0) -> torch.nn.Module:
    """QAT that keeps the float model's ranking: the float weights, frozen; only the bit
    widths train, on matching the float model's output (distillation) plus ``beta * EBOPs``.

    An autoencoder's anomaly score is not what its training loss (the reconstruction error
    on background) optimizes, so retraining the weights moves the ROC curve by several
    hundredths either way; matching the float score moves it by a few thousandths.
    """
    xt = torch.tensor(x, dtype=torch.float32)
    qnn.init_lazy(model, xt[:8])
    qnn.copy_float_weights(model, float_model)
    bits = qnn.bit_parameters(model)
    for p in model.parameters():
        p.requires_grad_(any(p is b for b in bits))
    with torch.no_grad():
        target = float_model(xt).numpy()
    model = qnn.fit(model, x, target, loss="mse", epochs=epochs, beta=beta, warmup=0, seed=seed,
                    label="QAT (bit widths, distilled)")
    return qnn.calibrate(model, x)


#: anomaly detection on jets: trained on g and q jets, W, Z and top jets are the signals
BACKGROUND = (0, 1)
SIGNALS = {"W": 2, "Z": 3, "t": 4}


def anomaly_split(d, labels: np.ndarray, args, small_test: int) -> tuple[np.ndarray, np.ndarray]:
    """(background jets of the training split, test jets): the file's own split when it has
    one (``jets_pythia8``), else 60 / 40 at random; ``--small`` keeps ``small_test`` test jets."""
    if "split" in d:
        train, test = d["split"] == 0, d["split"] == 2
    else:
        train = np.random.default_rng(args.seed).random(len(labels)) < 0.6
        test = ~train
    if args.small:
        test &= np.cumsum(test) <= small_test
    return train & np.isin(labels, BACKGROUND), test


def anomaly_report(model, float_model, design, x: np.ndarray, labels: np.ndarray, args) -> None:
    """The score's width, the proof and hardware figures, and the AUC per signal for the
    float model and the bit-exact design."""
    score = design.graph.types[design.graph.outputs[0]]
    print(f"design output: the anomaly score, one {score.max_width()}-bit number per jet")
    hw = check_and_measure(model, design, x, args)
    with torch.no_grad():
        fl = float_model(torch.tensor(x, dtype=torch.float32)).numpy()
    for name, k in SIGNALS.items():
        keep = np.isin(labels, BACKGROUND + (k,))
        sig = labels[keep] == k
        print(f"AUC {name} vs q/g: float {roc_auc(fl[keep], sig):.4f}, bit-exact design {roc_auc(hw[keep], sig):.4f}")


def roc_auc(score: np.ndarray, signal: np.ndarray) -> float:
    """Area under the ROC curve of ``score`` (higher: more signal-like)."""
    return auc(*roc_curve(score, signal))
