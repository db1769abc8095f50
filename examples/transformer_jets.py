"""A small transformer jet tagger (self-attention over the particles), to bit-exact Verilog.

    python examples/transformer_jets.py [--epochs 40] [--particles 16] [--data FILE.npz] [--small]

Particles are embedded (a dense layer shared by the particles), one attention block
(``rtl4ml.nn.QSelfAttention``: query/key/value projections per particle, scores ``q k^T``
as variable x variable multipliers, softmax over the keys by tables, ``softmax @ v``) adds
to the embedding, a per-particle dense layer follows, the particles are summed and
classified. Default: the 16 leading particles.
"""

from __future__ import annotations

import torch
from torch import nn

import rtl4ml.nn as qnn
from _constituents import constituent_arguments, run


class FloatAttention(nn.Module):
    """The float twin of qnn.QSelfAttention (one head)."""

    def __init__(self, dim: int, head_dim: int) -> None:
        super().__init__()
        self.q, self.k, self.v = nn.Linear(dim, head_dim), nn.Linear(dim, head_dim), nn.Linear(dim, head_dim)
        self.out = nn.Linear(head_dim, dim)

    def forward(self, x):
        s = torch.einsum("npd,nqd->npq", self.q(x), self.k(x))
        return self.out(torch.einsum("npq,nqd->npd", torch.softmax(s, dim=-1), self.v(x)))


class Transformer(nn.Module):
    def __init__(self, L, particles: int, dim: int = 8, head_dim: int = 4) -> None:
        super().__init__()
        self.inp = L.input((particles, 3))
        self.embed, self.ea = L.linear(3, dim), L.act()
        self.att = qnn.QSelfAttention(dim, heads=1, head_dim=head_dim) if L.q else FloatAttention(dim, head_dim)
        self.res = L.act()
        self.ff, self.fa = L.linear(dim, dim), L.relu()
        self.pool = L.act()
        self.out = L.linear(dim, 5)

    def forward(self, x):
        h = self.ea(self.embed(self.inp(x)))
        h = self.res(h + self.att(h))
        h = self.fa(self.ff(h))
        return self.out(self.pool(h.sum(dim=1)))


def main() -> None:
    args = constituent_arguments(__doc__, epochs=40, particles=16)
    run("transformer jets", lambda L, p: Transformer(L, p, *((6, 3) if args.small else (8, 4))), args, beta=2e-6)


if __name__ == "__main__":
    main()
