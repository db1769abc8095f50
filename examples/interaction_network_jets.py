"""An Interaction Network jet tagger over all pairs of particles, to bit-exact Verilog.

    python examples/interaction_network_jets.py [--epochs 40] [--particles 16] [--data FILE.npz] [--small]

Every ordered pair of particles ``(p, q)`` is an edge with the message
``relu(A x_p + B x_q + c)`` (one dense layer over the pair's concatenated features, split
into the two per-particle products so each particle's is computed once); messages are summed
over the senders ``q``, each particle's sum and its own features feed the node network (per
particle, shared weights), whose outputs are summed over the particles and classified.
Activations share their types across particles, so the hardware is permutation invariant
(tests/test_constituents.py). Default: the 16 leading particles (256 edges).
"""

from __future__ import annotations

import torch
from torch import nn

from _constituents import constituent_arguments, run


class InteractionNetwork(nn.Module):
    def __init__(self, L, particles: int, edge: int = 8, node: int = 8) -> None:
        super().__init__()
        self.inp = L.input((particles, 3))
        self.send, self.recv = L.linear(3, edge), L.linear(3, edge, bias=False)
        self.ea = L.relu(granularity="feature")
        self.agg = L.act(granularity="feature")
        self.cat = L.act(granularity="feature")
        self.node, self.na = L.linear(edge + 3, node), L.relu(granularity="feature")
        self.pool = L.act()
        self.out = L.linear(node, 5)

    def forward(self, x):
        x = self.inp(x)
        e = self.ea(self.recv(x)[:, :, None, :] + self.send(x)[:, None, :, :])   # (N, P, P, edge): all pairs
        m = self.agg(e.sum(dim=2))                                             # over the senders
        h = self.na(self.node(self.cat(torch.cat([m, x], dim=2))))
        return self.out(self.pool(h.sum(dim=1)))


def main() -> None:
    args = constituent_arguments(__doc__, epochs=40, particles=16)
    run("interaction network jets", lambda L, p: InteractionNetwork(L, p, *((6, 6) if args.small else (8, 8))),
        args, beta=2e-6)


if __name__ == "__main__":
    main()
