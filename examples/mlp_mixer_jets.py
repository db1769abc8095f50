"""An MLP-Mixer jet tagger on the particles of each jet, to bit-exact Verilog.

    python examples/mlp_mixer_jets.py [--epochs 40] [--particles 30] [--data FILE.npz] [--small]

Each particle is embedded (a dense layer shared by the particles); a token-mixing dense
layer mixes the particles per channel (the tensor transposed: free wiring, one adder graph
shared by the channels), a channel-mixing one mixes the channels per particle, then the
particles are summed and classified. The particles come ordered by momentum, and token
mixing uses that order (the model is not permutation invariant).
"""

from __future__ import annotations

from torch import nn

from _constituents import constituent_arguments, run


class Mixer(nn.Module):
    def __init__(self, L, particles: int, channels: int = 12) -> None:
        super().__init__()
        self.inp = L.input((particles, 3))
        self.embed, self.ea = L.linear(3, channels), L.relu()
        self.token, self.ta = L.linear(particles, particles), L.relu()
        self.channel, self.ca = L.linear(channels, channels), L.relu()
        self.pool = L.act()
        self.out = L.linear(channels, 5)

    def forward(self, x):
        h = self.ea(self.embed(self.inp(x)).transpose(1, 2))         # (N, C, P)
        h = self.ta(self.token(h).transpose(1, 2))                    # mixes the particles: (N, P, C)
        h = self.ca(self.channel(h))                                  # mixes the channels
        return self.out(self.pool(h.sum(dim=1)))


def main() -> None:
    args = constituent_arguments(__doc__, epochs=40, particles=30)
    run("mlp-mixer jets", lambda L, p: Mixer(L, p, 8 if args.small else 12), args, beta=2e-6)


if __name__ == "__main__":
    main()
