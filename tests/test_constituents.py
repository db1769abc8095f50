"""Models of jet constituents: per-particle QLinear, sums and maxima over particles, QEinsum
(variable x variable products) and QSelfAttention. model(x) == design.predict(x) ==
netlist executor bit for bit; EBOPs count every particle and every variable product; the
torch frontend converts the same models written with torch.einsum / @ / x.sum(dim);
shuffling the particles leaves Deep Sets and the Interaction Network bit-identical."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch import nn

import rtl4ml
import rtl4ml.nn as qnn
from rtl4ml.graph import lower_graph
from rtl4ml.netlist.execute import execute, split_outputs

P = 6


class DeepSets(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp = qnn.QInput((P, 3), granularity="feature")
        self.phi = qnn.QLinear(3, 8)
        self.act = qnn.QReLU(granularity="feature")
        self.pool = qnn.QActivation(overflow="SAT", init_f=3)
        self.rho = qnn.QLinear(8, 5)

    def forward(self, x):
        return self.rho(self.pool(self.act(self.phi(self.inp(x))).sum(dim=1)))


class InteractionNet(nn.Module):
    """Edges of all particle pairs: f(x_p - x_q) summed over q, then over p."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = qnn.QInput((P, 3), granularity="feature")
        self.edge = qnn.QLinear(3, 6)
        self.eact = qnn.QReLU(granularity="feature")
        self.agg = qnn.QActivation(overflow="SAT", init_f=3, granularity="feature")
        self.node = qnn.QLinear(6, 6)
        self.nact = qnn.QReLU(granularity="feature")
        self.out = qnn.QLinear(6, 5)

    def forward(self, x):
        x = self.inp(x)
        e = self.eact(self.edge(x[:, :, None, :] - x[:, None, :, :]))      # (N, P, P, 6)
        h = self.nact(self.node(self.agg(e.sum(dim=2))))
        return self.out(h.amax(dim=1))


class Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp = qnn.QInput((P, 3), granularity="feature")
        self.att = qnn.QSelfAttention(3, heads=2, head_dim=4)
        self.q = qnn.QActivation(overflow="SAT", init_f=3)
        self.gram = qnn.QEinsum("pf,qf->pq")
        self.gq = qnn.QActivation(overflow="SAT", init_f=3)
        self.out = qnn.QLinear(P, 5)

    def forward(self, x):
        y = self.q(self.att(self.inp(x)))
        return self.out(self.gq(self.gram(y, y)).amax(dim=2))


def trained(make, seed=0, steps=10):
    torch.manual_seed(seed)
    m = make()
    x = torch.randn(300, P, 3)
    m.train()
    m(x)
    opt = torch.optim.Adam(m.parameters(), 1e-2)
    for _ in range(steps):
        loss = m(x).square().mean() + 1e-6 * qnn.ebops(m)
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    return qnn.calibrate(m, x)


_CACHE: dict = {}


def design_of(make):
    if make not in _CACHE:
        m = trained(make)
        _CACHE[make] = (m, rtl4ml.convert(m, clock_ns=2.5), None)
    m, d, nl = _CACHE[make]
    if nl is None:
        nl = lower_graph(d.graph)
        _CACHE[make] = (m, d, nl)
    return m, d, nl


@pytest.mark.parametrize("make", [DeepSets, InteractionNet, Attention], ids=lambda c: c.__name__)
def test_model_equals_design_and_netlist(make):
    m, d, nl = design_of(make)
    xt = torch.cat([torch.randn(400, P, 3) * 2, torch.randn(100, P, 3) * 8])   # beyond the calibrated range
    with torch.no_grad():
        want = m(xt.double()).numpy()
    np.testing.assert_array_equal(d.predict(xt.numpy()), want)
    (out,) = split_outputs(nl, execute(nl, d.graph.quantize_inputs([xt.numpy()])))
    np.testing.assert_array_equal(out, d.predict_codes(xt.numpy()))


def test_per_particle_linear_counts_every_particle_in_ebops():
    m = trained(DeepSets)
    bx = m.act.quantizer.bits().detach().reshape(P, 8)       # rho reads the pooled sum; phi reads QInput
    bi = m.inp.quantizer.bits().detach().reshape(P, 3)
    bw = m.phi.weight_bits().detach()
    want = sum(float((bw * bi[p][None, :]).sum() + ((bw > 0) * (bw + bi[p][None, :])).sum()) for p in range(P))
    bp = m.pool.quantizer.bits().detach()
    br = m.rho.weight_bits().detach()
    want += float((br * bp[None, :]).sum() + ((br > 0) * (br + bp[None, :])).sum())
    assert bx.shape == (P, 8)
    np.testing.assert_allclose(float(qnn.ebops(m).detach()), want)


def test_qeinsum_ebops_are_bit_products():
    torch.manual_seed(1)
    e = qnn.QEinsum("pf,qf->pq")
    e.train()
    e(torch.randn(32, 4, 3), torch.randn(32, 5, 3))
    ba, bb = e.quantizer_a.bits().reshape(4, 3), e.quantizer_b.bits().reshape(5, 3)
    want = sum(float(ba[p, f] * bb[q, f]) for p in range(4) for q in range(5) for f in range(3))
    np.testing.assert_allclose(float(e.ebops()), want)
    e.ebops().backward()
    assert e.quantizer_a.f.grad is not None and e.quantizer_a.f.grad.abs().sum() > 0


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from(["DeepSets", "InteractionNet"]))
def test_shuffling_particles_leaves_the_hardware_output_bit_identical(seed, which):
    m, d, nl = design_of({"DeepSets": DeepSets, "InteractionNet": InteractionNet}[which])
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=rng.uniform(0.5, 6), size=(64, P, 3))
    x[:8] = np.round(x[:8])                                   # ties and type boundaries
    perm = np.stack([rng.permutation(P) for _ in range(len(x))])
    xs = np.take_along_axis(x, perm[:, :, None], axis=1)
    a, b = d.predict(x), d.predict(xs)
    np.testing.assert_array_equal(a, b)
    qa, qb = (d.graph.quantize_inputs([v]) for v in (x, xs))
    (ea,), (eb,) = split_outputs(nl, execute(nl, qa)), split_outputs(nl, execute(nl, qb))
    np.testing.assert_array_equal(ea, eb)


# --------------------------------------------------------------------------- torch frontend


class TorchAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q, self.k, self.v = nn.Linear(3, 4), nn.Linear(3, 4), nn.Linear(3, 4)
        self.mix = nn.Parameter(torch.randn(P, P) * 0.3)
        self.out = nn.Linear(4, 5)

    def forward(self, x):
        q, k, v = self.q(x), self.k(x), self.v(x)
        s = torch.einsum("npd,nqd->npq", q, k)
        a = torch.softmax(s, dim=-1)
        y = a @ v + torch.bmm(a, v) * 0.5
        y = torch.einsum("pq,nqd->npd", self.mix, y)           # a constant mixing matrix: a Dense
        return self.out(y.sum(dim=1) + (q @ k.transpose(1, 2)).mean(dim=2).sum(dim=1, keepdim=True))


def test_torch_einsum_matmul_and_sums_convert():
    torch.manual_seed(3)
    m = TorchAttention().eval()
    types = dict(input_type="fixed<8,3>", input_shape=(P, 3), weight_type="fixed<8,2,RND,SAT>",
                 result_type="fixed<10,4,RND,SAT>")
    d = rtl4ml.convert(m, **types)
    kinds = [n.op.kind for n in d.graph.nodes]
    assert kinds.count("einsum") >= 3 and "dense" in kinds
    x = np.random.default_rng(0).normal(size=(300, P, 3))
    with torch.no_grad():
        ref = m(torch.tensor(x, dtype=torch.float32)).numpy()
    assert np.abs(d.predict(x) - ref).max() < 0.25 * (1 + np.abs(ref).max())
    nl = lower_graph(d.graph)
    (out,) = split_outputs(nl, execute(nl, d.graph.quantize_inputs([x])))
    np.testing.assert_array_equal(out, d.predict_codes(x))


def test_multihead_attention_is_refused_with_advice():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.att = nn.MultiheadAttention(4, 2, batch_first=True)

        def forward(self, x):
            return self.att(x, x, x)[0]
    with pytest.raises(rtl4ml.graph.GraphError, match=r"nn.MultiheadAttention is not supported.*QSelfAttention"):
        rtl4ml.convert(M().eval(), input_type="fixed<8,3>", input_shape=(P, 4), weight_type="fixed<8,2>")


def test_matmul_of_mismatched_variables_is_refused():
    class M(nn.Module):
        def forward(self, x):
            return x @ x
    with pytest.raises(rtl4ml.graph.GraphError, match=r"axis 'k' has size 3"):
        rtl4ml.convert(M(), input_type="fixed<8,3>", input_shape=(P, 3))
