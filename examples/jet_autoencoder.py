"""An anomaly-detection autoencoder whose hardware outputs the anomaly score itself.

    python examples/jet_autoencoder.py [--epochs 60] [--data FILE.npz] [--small] [--no-synth]

Trains on q and g jets only (the 16 jet features), then scores W, Z and top jets as
signals. The model's output, and so the design's, is the reconstruction error
``sum((x - decoder(encoder(x)))**2)`` of the quantized input: the FPGA emits one number per
jet, the trigger cuts on it. The QAT twin starts from the float weights and learns only its
bit widths, on matching the float score (see ``distilled_qat`` in ``_common.py``). Prints the
ROC AUC per signal for the float autoencoder and for the bit-exact design, Yosys LUT/FF and
the latency.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import rtl4ml
import rtl4ml.nn as qnn
from _common import DATA, anomaly_report, anomaly_split, arguments, distilled_qat

class Autoencoder(nn.Module):
    """``score(x) = sum((x - decode(encode(x)))**2)`` over the features, one per sample.

    With ``q=True`` the input is quantized first (the score compares the decoder's output
    with the quantized input, as the hardware does), every layer is an rtl4ml.nn one, and
    the residual is quantized before it is squared.
    """

    def __init__(self, n: int, hidden: tuple[int, ...], q: bool) -> None:
        super().__init__()
        dims = (n,) + hidden + hidden[-2::-1] + (n,)
        mods: list[nn.Module] = []
        for k, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            last = k == len(dims) - 2
            mods.append(qnn.QLinear(a, b) if q else nn.Linear(a, b))
            if not last:
                mods.append(qnn.QReLU() if q else nn.ReLU())
        self.quant = qnn.QInput(n, init_f=8) if q else nn.Identity()
        self.net = nn.Sequential(*mods)
        # the residual is rounded before it is squared: narrower multipliers, bits learned too
        self.residual = qnn.QActivation(n, overflow="SAT", init_f=3) if q else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.quant(x)
        return (self.residual(x - self.net(x)) ** 2).sum(dim=1)


def main() -> None:
    args = arguments(__doc__, DATA / "jets_2500.npz", epochs=60)
    d = np.load(args.data)
    x, y = d["features"].astype(np.float64), d["labels"].astype(np.int64)
    tr, test = anomaly_split(d, y, args, small_test=1000)
    mean, std = x[tr].mean(0), x[tr].std(0) + 1e-9
    x = (x - mean) / std
    hidden = (8, 3) if args.small else (12, 4)
    beta = 1e-6 if args.beta is None else args.beta

    float_ae = qnn.fit(Autoencoder(16, hidden, q=False), x[tr], loss="score", epochs=args.epochs,
                       seed=args.seed, label="float autoencoder")
    model = distilled_qat(Autoencoder(16, hidden, q=True), float_ae, x[tr], max(1, args.epochs // 4), beta,
                          args.seed)
    design = rtl4ml.convert(model, clock_ns=args.clock_ns, name="jet_autoencoder")
    anomaly_report(model, float_ae, design, x[test], y[test], args)


if __name__ == "__main__":
    main()
