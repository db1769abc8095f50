"""A quantization-aware CNN digit classifier, to bit-exact Verilog.

    python examples/cnn_digits.py [--epochs 60] [--beta 3e-6] [--data FILE.npz] [--small] [--no-synth]

Trains a float CNN and its QAT twin (rtl4ml.nn: per-weight bits, BatchNorm folded into the
convolutions while training) on the 1,797 8x8 digits shipped in ``examples/data`` (or
``--data``: any npz with ``X`` (N, H, W) images and ``y`` labels, e.g. ``mnist_5k``), the
same epochs and split. Then converts the QAT model, proves model == design on every test
image and RTL == design in Verilator, and prints accuracy, Yosys LUT/FF and the latency.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import rtl4ml
import rtl4ml.nn as qnn
from _common import DATA, arguments, check_and_measure


def layers(q: bool, c1: int, c2: int, side: int, classes: int) -> nn.Sequential:
    """The same CNN in float (``q=False``) or in rtl4ml.nn layers."""
    flat = c2 * (side // 4) ** 2
    if not q:
        return nn.Sequential(nn.Conv2d(1, c1, 3, padding=1), nn.BatchNorm2d(c1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(c1, c2, 3, padding=1), nn.BatchNorm2d(c2), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(flat, classes))
    return nn.Sequential(qnn.QInput((1, side, side), init_f=4), qnn.QConv2d(1, c1, 3, padding=1, batchnorm=True),
                         qnn.QReLU(), qnn.QMaxPool2d(2), qnn.QConv2d(c1, c2, 3, padding=1, batchnorm=True),
                         qnn.QReLU(), qnn.QMaxPool2d(2), nn.Flatten(), qnn.QLinear(flat, classes))


def main() -> None:
    args = arguments(__doc__, DATA / "digits_8x8.npz", epochs=60)
    d = np.load(args.data)
    X, y = d["X"].astype(np.float64), d["y"].astype(np.int64)
    X = (X / X.max())[:, None]                              # (N, 1, H, W) in [0, 1]
    perm = np.random.default_rng(args.seed).permutation(len(X))
    n_test = len(X) // 5
    if args.small:
        perm = perm[:600]
        n_test = 200
    te, tr = perm[:n_test], perm[n_test:]
    side, classes = X.shape[-1], int(y.max()) + 1
    c1, c2 = (3, 6) if args.small else (4, 8)
    beta = 3e-6 if args.beta is None else args.beta

    float_model = qnn.fit(layers(False, c1, c2, side, classes), X[tr], y[tr], epochs=args.epochs, seed=args.seed,
                          batch_size=64,
                          label="float CNN")
    model = qnn.fit(layers(True, c1, c2, side, classes), X[tr], y[tr], epochs=args.epochs, seed=args.seed,
                    beta=beta, batch_size=64, label="QAT CNN")
    qnn.calibrate(model, X[tr])
    design = rtl4ml.convert(model, clock_ns=args.clock_ns, name="cnn_digits")

    with torch.no_grad():
        float_acc = (float_model(torch.tensor(X[te], dtype=torch.float32)).argmax(1).numpy() == y[te]).mean()
    out = check_and_measure(model, design, X[te], args)
    print(f"accuracy on {len(te)} test images: float {100 * float_acc:.2f} %, bit-exact design "
          f"{100 * (out.argmax(1) == y[te]).mean():.2f} %")
    print(f"EBOPs {float(qnn.ebops(model).detach()):.0f}")


if __name__ == "__main__":
    main()
