"""Training with rtl4ml.nn on the shipped jet sample: the resource term works and export stays exact."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import rtl4ml  # noqa: E402
import rtl4ml.nn as qnn  # noqa: E402
from rtl4ml.data import load_jets  # noqa: E402

from .test_nn_export import forward64  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models train fastest on one thread (and denormal Adam moments are flushed)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    yield
    torch.set_num_threads(n)
    torch.set_flush_denormal(False)


@pytest.fixture(scope="module")
def jets():
    d = load_jets()
    x, y = d["features"].astype(np.float64), d["labels"].astype(np.int64)
    perm = np.random.default_rng(0).permutation(len(x))
    tr, te = perm[:8000], perm[8000:]
    mean, std = x[tr].mean(0), x[tr].std(0)
    return (x[tr] - mean) / std, y[tr], (x[te] - mean) / std, y[te]


def train(x, y, beta: float, epochs: int = 12, seed: int = 0, l1: float = 0.0):
    torch.manual_seed(seed)
    model = nn.Sequential(qnn.QInput(16), qnn.QLinear(16, 24), qnn.QReLU(), qnn.QLinear(24, 5))
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y)
    qnn.init_lazy(model, xt)
    bits = qnn.bit_parameters(model)
    rest = [p for p in model.parameters() if all(p is not b for b in bits)]
    opt = torch.optim.Adam([{"params": rest}, {"params": bits, "lr": 3e-2}], lr=5e-3)
    sched = qnn.BetaScheduler(beta, warmup=1, ramp=4)
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        perm = torch.randperm(len(xt), generator=gen)
        for s in range(0, len(xt), 256):
            b = perm[s:s + 256]
            loss = nn.functional.cross_entropy(model(xt[b]), yt[b])
            if sched(epoch) > 0:
                loss = loss + sched(epoch) * qnn.ebops(model)
            if l1:
                loss = loss + l1 * qnn.bit_penalty(model)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model


def accuracy_and_design(model, xtr, xte, yte):
    qnn.calibrate(model, xtr)
    design = rtl4ml.convert(model, clock_ns=2.5)
    ref = forward64(model, xte)
    np.testing.assert_array_equal(ref, design.predict(xte))
    return float((ref.argmax(1) == yte).mean()), design


def test_resource_term_trades_bits_for_accuracy(jets):
    xtr, ytr, xte, yte = jets
    small = train(xtr, ytr, beta=1e-4)
    large = train(xtr, ytr, beta=0.0)
    acc_s, d_s = accuracy_and_design(small, xtr, xte, yte)
    acc_l, d_l = accuracy_and_design(large, xtr, xte, yte)
    assert acc_l > 0.6 and acc_s > 0.45          # 5 balanced classes: chance is 0.2
    with torch.no_grad():
        e_s, e_l = float(qnn.ebops(small)), float(qnn.ebops(large))
    assert e_s < 0.2 * e_l
    a_s, a_l = d_s.estimate(synth=False), d_l.estimate(synth=False)
    assert a_s.adder_bits < 0.3 * a_l.adder_bits
    # the pressure pruned weights to zero width, and the hardware has no adders for them
    live = sum(c.live_weights for c in qnn.layer_costs(small))
    assert live < 0.6 * (16 * 24 + 24 * 5)
    assert (d_s.graph["1"].op.weight == 0).sum() + (d_s.graph["3"].op.weight == 0).sum() == \
        16 * 24 + 24 * 5 - live


def test_l1_bit_pressure_lowers_bits(jets):
    xtr, ytr, _, _ = jets
    plain = train(xtr, ytr, beta=0.0, epochs=4)
    pressed = train(xtr, ytr, beta=0.0, epochs=4, l1=1e-3)
    with torch.no_grad():
        plain(torch.tensor(xtr[:512], dtype=torch.float32))
        pressed(torch.tensor(xtr[:512], dtype=torch.float32))
        assert float(qnn.bit_penalty(pressed)) < 0.8 * float(qnn.bit_penalty(plain))


def test_beta_scheduler():
    s = qnn.BetaScheduler(1e-5, warmup=2, ramp=4)
    assert s(0) == s(1) == 0.0
    assert s(2) == pytest.approx(1e-7)
    assert s(4) == pytest.approx(1e-6)
    assert s(6) == s(100) == 1e-5
    lin = qnn.BetaScheduler(2.0, ramp=4, mode="linear")
    assert [lin(e) for e in range(5)] == [0.0, 0.5, 1.0, 1.5, 2.0]
    with pytest.raises(ValueError):
        qnn.BetaScheduler(-1)
