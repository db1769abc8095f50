"""A permutation-invariant Deep Sets jet tagger on the particles of each jet, to bit-exact Verilog.

    python examples/deepsets_jets.py [--epochs 40] [--particles 30] [--data FILE.npz] [--small] [--no-synth]

``phi`` (two dense layers, the same weights for every particle: one adder graph, instantiated
per particle) maps each particle to 16 numbers, their sum over the particles is quantized,
``rho`` (two dense layers) classifies the jet into 5 classes. Activations of particles share
their types across particles, so shuffling the particles leaves the hardware output
bit-identical (tests/test_constituents.py). Prints float / bit-exact accuracy next to the
16-feature MLP's on the same split, Yosys LUT/FF/DSP and the latency at ``--clock-ns``.
"""

from __future__ import annotations

from torch import nn

from _constituents import constituent_arguments, run


class DeepSets(nn.Module):
    def __init__(self, L, particles: int, width: int = 16) -> None:
        super().__init__()
        self.inp = L.input((particles, 3))
        self.phi1, self.a1 = L.linear(3, width), L.relu(granularity="feature")
        self.phi2, self.a2 = L.linear(width, width), L.relu(granularity="feature")
        self.pool = L.act()
        self.rho1, self.a3 = L.linear(width, width), L.relu()
        self.rho2 = L.linear(width, 5)

    def forward(self, x):
        h = self.a2(self.phi2(self.a1(self.phi1(self.inp(x)))))       # (N, P, width): per particle
        return self.rho2(self.a3(self.rho1(self.pool(h.sum(dim=1)))))


def main() -> None:
    args = constituent_arguments(__doc__, epochs=40, particles=30)
    run("deepsets jets", lambda L, p: DeepSets(L, p, 8 if args.small else 16), args, beta=2e-6)


if __name__ == "__main__":
    main()
