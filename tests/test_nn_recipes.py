"""The training recipes of rtl4ml.nn: distillation, structured pruning, sensitivity-guided bits."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import rtl4ml  # noqa: E402
import rtl4ml.nn as qnn  # noqa: E402
from rtl4ml.data import load_jets  # noqa: E402

from .test_nn_export import assert_bit_exact  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def jets():
    d = load_jets()
    x, y = d["features"].astype(np.float64), d["labels"].astype(np.int64)
    perm = np.random.default_rng(0).permutation(len(x))
    tr, te = perm[:6000], perm[6000:8000]
    mean, std = x[tr].mean(0), x[tr].std(0)
    return (x[tr] - mean) / std, y[tr], (x[te] - mean) / std, y[te]


def float_mlp(hidden=(24, 12)):
    sizes = (16, *hidden)
    layers: list = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(sizes[-1], 5))


def qat_mlp(hidden=(24, 12), init_f=6.0, **linear):
    sizes = (16, *hidden)
    layers: list = [qnn.QInput(16, init_f=init_f, init_i=3)]
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [qnn.QLinear(a, b, init_f=init_f, **linear), qnn.QReLU(b, init_f=init_f)]
    return nn.Sequential(*layers, qnn.QLinear(sizes[-1], 5, init_f=init_f))


@pytest.fixture(scope="module")
def teacher(jets):
    xtr, ytr, _, _ = jets
    torch.manual_seed(0)
    return qnn.fit(float_mlp(), xtr, ytr, epochs=4, batch_size=256, seed=0, label="teacher")


# --------------------------------------------------------------------------- distillation


def test_distillation_loss_mixes_the_labels_and_the_teacher():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(32, 5, generator=g), torch.randn(32, 5, generator=g)
    y = torch.randint(0, 5, (32,), generator=g)
    assert torch.allclose(qnn.distillation_loss(s, t, y, alpha=0.0), F.cross_entropy(s, y))
    assert float(qnn.distillation_loss(t, t, y, alpha=1.0)) == pytest.approx(0.0, abs=1e-6)
    # the soft term at T: T**2 * KL(p_t || p_s), mixed with the hard term
    temp = 3.0
    kl = (F.softmax(t / temp, 1) * (F.log_softmax(t / temp, 1) - F.log_softmax(s / temp, 1))).sum(1).mean()
    want = 0.25 * F.cross_entropy(s, y) + 0.75 * temp ** 2 * kl
    assert torch.allclose(qnn.distillation_loss(s, t, y, alpha=0.75, temperature=temp), want, atol=1e-6)
    # a gradient step on the soft term alone moves the student's probabilities toward the teacher's
    sp = s.clone().requires_grad_(True)
    qnn.distillation_loss(sp, t, y, alpha=1.0).backward()
    before = (F.softmax(s, 1) - F.softmax(t, 1)).abs().sum()
    after = (F.softmax(s - 0.5 * sp.grad * 32, 1) - F.softmax(t, 1)).abs().sum()
    assert after < before


@pytest.mark.parametrize("kw, msg", [({"alpha": 1.5}, "alpha must be in"), ({"temperature": 0.0}, "temperature")])
def test_distillation_loss_rejects_bad_settings(kw, msg):
    s = torch.zeros(2, 5)
    with pytest.raises(qnn.QuantizerError, match=msg):
        qnn.distillation_loss(s, s, torch.zeros(2, dtype=torch.long), **kw)
    with pytest.raises(qnn.QuantizerError, match=r"\(2, 5\) and teacher logits \(2, 4\)"):
        qnn.distillation_loss(s, torch.zeros(2, 4), torch.zeros(2, dtype=torch.long))


# --------------------------------------------------------------------------- structured pruning


def test_neuron_penalty_is_the_group_lasso_of_each_hidden_neuron():
    torch.manual_seed(0)
    m = qat_mlp()
    a, b = m[1], m[3]
    want = math.sqrt(16 + 12 + 1) * torch.sqrt(a.weight.pow(2).sum(1) + a.bias.pow(2) + b.weight.pow(2).sum(0)).sum()
    c, d = m[3], m[5]
    want = want + math.sqrt(24 + 5 + 1) * torch.sqrt(c.weight.pow(2).sum(1) + c.bias.pow(2) + d.weight.pow(2).sum(0)).sum()
    assert torch.allclose(qnn.neuron_penalty(m), want, rtol=1e-5)
    with pytest.raises(ValueError, match="no pair of consecutive QLinear"):
        qnn.neuron_penalty(nn.Sequential(qnn.QInput(4), qnn.QLinear(4, 2)))


def test_a_pruned_neuron_costs_what_a_model_without_it_costs(jets):
    """Zero a hidden neuron's row and column: the design equals, adder for adder, the model built
    without that neuron (the next layer lost an input, not only weights)."""
    xtr, _, xte, _ = jets
    torch.manual_seed(1)
    full = qat_mlp(init_f=4.0)
    qnn.init_lazy(full, torch.tensor(xtr[:8], dtype=torch.float32))
    gone = [2, 5, 11]
    keep = [k for k in range(24) if k not in gone]
    with torch.no_grad():
        full[1].weight[gone] = 0.0
        full[1].bias[gone] = 0.0
        full[3].weight[:, gone] = 0.0
    qnn.calibrate(full, xtr[:2000])
    assert qnn.live_neurons(full) == {"1": (21, 24), "3": (12, 12)}
    small = qat_mlp(hidden=(21, 12), init_f=4.0)
    qnn.init_lazy(small, torch.tensor(xtr[:8], dtype=torch.float32))
    with torch.no_grad():
        small.load_state_dict({k: v for k, v in full.state_dict().items()
                               if not k.startswith(("1.", "2.", "3."))}, strict=False)
        small[1].weight.copy_(full[1].weight[keep])
        small[1].bias.copy_(full[1].bias[keep])
        small[1].weight_quantizer.f.copy_(full[1].weight_quantizer.f[keep])
        small[1].bias_quantizer.f.copy_(full[1].bias_quantizer.f[keep])
        small[3].weight.copy_(full[3].weight[:, keep])
        small[3].bias.copy_(full[3].bias)
        small[3].weight_quantizer.f.copy_(full[3].weight_quantizer.f[:, keep])
        small[3].bias_quantizer.f.copy_(full[3].bias_quantizer.f)
        small[2].quantizer.f.copy_(full[2].quantizer.f[keep])
        small[4].quantizer.f.copy_(full[4].quantizer.f)
    qnn.calibrate(small, xtr[:2000])
    d_full, d_small = rtl4ml.convert(full, name="full"), rtl4ml.convert(small, name="reduced")
    assert_bit_exact(full, d_full, xte)
    np.testing.assert_array_equal(d_full.predict(xte), d_small.predict(xte))
    e_full, e_small = d_full.estimate(), d_small.estimate()
    assert (e_full.adders, e_full.adder_bits) == (e_small.adders, e_small.adder_bits)


def test_group_lasso_training_prunes_neurons_and_stays_bit_exact(jets):
    xtr, ytr, xte, _ = jets
    torch.manual_seed(0)
    plain = qnn.fit(qat_mlp(), xtr, ytr, epochs=2, batch_size=64, seed=0, label="plain")
    torch.manual_seed(0)
    pruned = qnn.fit(qat_mlp(), xtr, ytr, epochs=2, batch_size=64, group_lasso=3e-3, seed=0, label="pruned")
    live_plain = sum(n for n, _ in qnn.live_neurons(plain).values())
    live_pruned = sum(n for n, _ in qnn.live_neurons(pruned).values())
    assert live_pruned < live_plain == 36
    assert float(qnn.neuron_penalty(pruned)) < 0.7 * float(qnn.neuron_penalty(plain))
    qnn.calibrate(pruned, xtr)
    assert_bit_exact(pruned, rtl4ml.convert(pruned), xte)


# --------------------------------------------------------------------------- sensitivity-guided bits


def test_sensitivity_init_gives_the_sensitive_weights_more_bits(jets, teacher):
    xtr, ytr, _, _ = jets
    q = qat_mlp(granularity="element")
    qnn.init_lazy(q, torch.tensor(xtr[:8], dtype=torch.float32))
    qnn.sensitivity_init(q, teacher, xtr, ytr, spread=3.0, batches=16)
    fw, fa = qnn.fisher_diagonal(teacher, xtr, ytr, batches=16)
    qlin = [m for m in q.modules() if isinstance(m, qnn.QLinear)]
    flin = [m for m in teacher.modules() if type(m) is nn.Linear]
    for a, b in zip(qlin, flin):
        assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)   # warm start
    f = torch.cat([m.weight_quantizer.f.detach().flatten() for m in qlin])
    fish = torch.cat([x.flatten() for x in fw])
    assert float(f.mean()) == pytest.approx(6.0, abs=1e-3)                      # the budget is kept
    assert float(f.min()) >= 3.0 - 1e-6 and float(f.max()) <= 9.0 + 1e-6      # mean +- spread
    assert float(f.max() - f.min()) > 2.0                                        # and it is spent unevenly
    order = torch.argsort(fish)
    live = fish[order] > torch.quantile(fish, 0.01)
    assert bool((f[order][live].diff() >= -1e-5).all())                         # more Fisher, no fewer bits
    acts = [m.quantizer.f.detach() for m in q.modules() if isinstance(m, qnn.QActivation)]
    assert [a.shape[0] for a in acts] == [x.shape[0] for x in fa] == [16, 24, 12]
    assert float(torch.cat(acts).mean()) == pytest.approx(6.0, abs=1e-3)


def test_sensitivity_init_then_distillation_trains_an_exact_design(jets, teacher):
    xtr, ytr, xte, yte = jets
    torch.manual_seed(0)
    q = qat_mlp(granularity="channel")
    qnn.init_lazy(q, torch.tensor(xtr[:8], dtype=torch.float32))
    qnn.sensitivity_init(q, teacher, xtr, ytr, batches=8)
    assert q[1].weight_quantizer.f.shape == (24, 1)                              # one width per channel kept
    qnn.fit(q, xtr, ytr, epochs=2, batch_size=256, beta=1e-6, teacher=teacher, distill=0.5, seed=0)
    qnn.calibrate(q, xtr)
    design = rtl4ml.convert(q)
    out = assert_bit_exact(q, design, xte)
    with torch.no_grad():
        teacher_acc = (teacher(torch.tensor(xte, dtype=torch.float32)).argmax(1).numpy() == yte).mean()
    print(f"teacher {teacher_acc:.3f}, distilled QAT student {(out.argmax(1) == yte).mean():.3f}")
    assert (out.argmax(1) == yte).mean() > teacher_acc - 0.05       # it started from the teacher's solution
    with pytest.raises(ValueError, match="teacher needs loss='cross_entropy'"):
        qnn.fit(qat_mlp(), xtr, xtr[:, :5], loss="mse", teacher=teacher, epochs=1)


# --------------------------------------------------------------------------- per-layer beta


def test_layer_beta_weighs_each_layers_ebops(jets):
    xtr = torch.tensor(jets[0][:64], dtype=torch.float32)
    torch.manual_seed(0)
    m = qat_mlp()
    qnn.init_lazy(m, xtr)
    m(xtr)
    parts = {name: qnn.ebops(m, layer_beta={n: float(n == name) for n in ("1", "3", "5")}) for name in ("1", "3", "5")}
    assert all(float(v.detach()) > 0 for v in parts.values())
    assert torch.allclose(sum(parts.values()), qnn.ebops(m), rtol=1e-6)
    weighted = qnn.ebops(m, layer_beta={"5": 0.25, "1": 2.0})
    assert torch.allclose(weighted, 2 * parts["1"] + parts["3"] + 0.25 * parts["5"], rtol=1e-6)
    with pytest.raises(qnn.QuantizerError, match=r"\['7'\].*\['1', '3', '5'\]"):
        qnn.ebops(m, layer_beta={"7": 0.5})
    with pytest.raises(qnn.QuantizerError, match="finite and >= 0"):
        qnn.ebops(m, layer_beta={"5": -1.0})


def test_a_free_layer_keeps_its_bits_and_the_design_stays_exact(jets):
    """The head at weight 0 pays nothing, so it ends with more weight bits than when it pays."""
    xtr, ytr, xte, _ = jets
    bits = {}
    for w in (1.0, 0.0):
        torch.manual_seed(0)
        m = qnn.fit(qat_mlp(), xtr, ytr, epochs=3, beta=3e-4, warmup=0, layer_beta={"5": w}, seed=0,
                    label="layer beta")
        qnn.calibrate(m, xtr)
        bits[w] = float(m[5].weight_bits().sum())
    assert bits[0.0] > 1.2 * bits[1.0], bits
    assert_bit_exact(m, rtl4ml.convert(m, name="layer_beta"), xte[:500])
