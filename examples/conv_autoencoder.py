"""A convolutional autoencoder on jet constituents that computes its anomaly score on chip.

    python examples/conv_autoencoder.py [--epochs 40] [--data FILE.npz] [--small] [--no-synth]

Each jet is its 30 leading particles x (deta, dphi, pT fraction), read as 3 channels over
30 positions. A Conv1D encoder (two convolutions, average pooling) and a dense decoder are
trained on q and g jets; the design outputs ``sum((x - reconstruction)**2)`` over the
quantized input. The QAT twin starts from the float weights and learns only its bit widths,
on matching the float score. Prints the ROC AUC per signal (W, Z, t) for the float model
and the bit-exact design, Yosys LUT/FF and the latency.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import rtl4ml
import rtl4ml.nn as qnn
from _common import DATA, anomaly_report, anomaly_split, arguments, distilled_qat

class ConvAutoencoder(nn.Module):
    """Conv1D encoder, dense decoder; the output is the reconstruction error per jet."""

    def __init__(self, channels: int, latent: int, q: bool, n: int = 30) -> None:
        super().__init__()
        c = channels
        length = ((n // 2) - 3) // 2 + 1            # after the pooling and the strided convolution
        if q:
            self.quant = qnn.QInput((3, n), init_f=6)
            self.encoder = nn.Sequential(qnn.QConv1d(3, c, 3, padding=1), qnn.QReLU(), qnn.QAvgPool1d(2),
                                         qnn.QConv1d(c, c, 3, stride=2), qnn.QReLU(), nn.Flatten(),
                                         qnn.QLinear(c * length, latent), qnn.QReLU())
            self.decoder = qnn.QLinear(latent, 3 * n)
            self.residual = qnn.QActivation((3, n), overflow="SAT", init_f=3)   # rounded before squaring
        else:
            self.quant = nn.Identity()
            self.encoder = nn.Sequential(nn.Conv1d(3, c, 3, padding=1), nn.ReLU(), nn.AvgPool1d(2),
                                         nn.Conv1d(c, c, 3, stride=2), nn.ReLU(), nn.Flatten(),
                                         nn.Linear(c * length, latent), nn.ReLU())
            self.decoder = nn.Linear(latent, 3 * n)
            self.residual = nn.Identity()
        self.n = n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.quant(x)
        r = self.decoder(self.encoder(x)).reshape(x.shape[0], 3, self.n)
        return (self.residual(x - r) ** 2).sum(dim=(1, 2))


def main() -> None:
    args = arguments(__doc__, DATA / "jets_2500.npz", epochs=40)
    d = np.load(args.data)
    x = d["constituents"].astype(np.float64).transpose(0, 2, 1)     # (N, 3, 30): channels first
    y = d["labels"].astype(np.int64)
    tr, test = anomaly_split(d, y, args, small_test=600)
    mean = x[tr].mean(axis=(0, 2), keepdims=True)
    std = x[tr].std(axis=(0, 2), keepdims=True) + 1e-9
    x = (x - mean) / std
    channels, latent = (3, 4) if args.small else (4, 6)
    beta = 1e-6 if args.beta is None else args.beta

    float_ae = qnn.fit(ConvAutoencoder(channels, latent, q=False), x[tr], loss="score", epochs=args.epochs,
                       seed=args.seed, label="float autoencoder")
    model = distilled_qat(ConvAutoencoder(channels, latent, q=True), float_ae, x[tr], max(1, args.epochs // 4), beta,
                          args.seed)
    design = rtl4ml.convert(model, clock_ns=args.clock_ns, name="conv_autoencoder")
    anomaly_report(model, float_ae, design, x[test], y[test], args)


if __name__ == "__main__":
    main()
