"""The PyTorch frontend: post-training quantization of Sequentials and of models with their own
forward (DAGs, several inputs and outputs, N-D tensors), bit-exact, and its errors."""

from __future__ import annotations

import copy
import inspect
from pathlib import Path

import numpy as np
import pytest

import rtl4ml
from rtl4ml.fixed import quantize

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional


def _mlp(seed=0, sizes=(6, 8, 4, 3)):
    torch.manual_seed(seed)
    layers = []
    for a, b in zip(sizes, sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1]).double()


def _reference(model, x, input_type, weight_type, bias_type=None, result_type=None):
    """The documented PTQ semantics, computed independently in float64 (exact for these widths)."""
    h = quantize(x, input_type)
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear):
            wt = weight_type[name] if isinstance(weight_type, dict) else weight_type
            bt = bias_type or wt
            h = h @ quantize(m.weight.detach().numpy().T, wt) + quantize(m.bias.detach().numpy(), bt)
            if result_type:
                h = quantize(h, result_type)
        elif isinstance(m, nn.ReLU):
            h = np.maximum(h, 0)
    return h


def test_ptq_semantics(rng):
    model = _mlp()
    x = rng.normal(size=(1000, 6)) * 3
    for kw in [dict(weight_type="fixed<8,3,RND,SAT>"),
               dict(weight_type="fixed<6,2>", bias_type="fixed<10,4>", result_type="fixed<12,5,RND,SAT>")]:
        d = rtl4ml.convert(model, input_type="fixed<12,4>", **kw)
        np.testing.assert_array_equal(d.predict(x), _reference(model, x, "fixed<12,4>", **kw))


def test_per_layer_weight_types(rng):
    model = _mlp()
    wt = {"0": "fixed<8,3>", "2": "fixed<4,1,RND,SAT>", "4": "fixed<6,2>"}
    d = rtl4ml.convert(model, input_type="fixed<12,4>", weight_type=wt)
    x = rng.normal(size=(300, 6))
    np.testing.assert_array_equal(d.predict(x), _reference(model, x, "fixed<12,4>", wt))


def test_nested_sequential_and_passthrough_layers(rng):
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Sequential(nn.Linear(4, 3), nn.ReLU()), nn.Dropout(0.1), nn.Linear(3, 2))
    d = rtl4ml.convert(model.eval(), input_type="fixed<10,3>", weight_type={"1.0": "fixed<8,2>", "3": "fixed<8,2>"})
    assert [n.name for n in d.graph.nodes] == ["x", "1.0", "1.1", "3"]


def test_unsupported_layer_is_named():
    model = nn.Sequential(nn.Linear(4, 3), nn.Softplus(), nn.Linear(3, 2))
    with pytest.raises(rtl4ml.graph.GraphError, match=r"layer '1' \(Softplus\) is not supported"):
        rtl4ml.convert(model, input_type="fixed<8,3>", weight_type="fixed<8,3>")


def test_nan_weight_is_named():
    model = _mlp()
    with torch.no_grad():
        model[2].weight[1, 3] = float("nan")
    with pytest.raises(rtl4ml.graph.GraphError, match=r"layer '2'.*weight.*nan"):
        rtl4ml.convert(model, input_type="fixed<8,3>", weight_type="fixed<8,3>")


@pytest.mark.parametrize("kw,match", [
    (dict(input_type="fixed<8,3", weight_type="fixed<8,3>"), r"input_type.*'fixed<8,3'"),
    (dict(input_type="fixed<8,3>", weight_type="fixed<8,3,ROUND>"), r"weight_type.*layer '0'.*ROUND"),
    (dict(input_type="fixed<8,3>", weight_type={"0": "fixed<8,3>"}), r"weight_type has no entry for layer '2'"),
    (dict(input_type="fixed<8,3>", weight_type={"0": "fixed<8,3>", "2": "fixed<8,3>", "4": "fixed<8,3>",
                                                "fc9": "fixed<8,3>"}), r"names layers the model does not have: \['fc9'\]"),
    (dict(weight_type="fixed<8,3>"), r"input_type is required"),
])
def test_bad_type_arguments(kw, match):
    with pytest.raises(rtl4ml.graph.GraphError, match=match):
        rtl4ml.convert(_mlp(), **kw)


def test_width_the_emulator_cannot_represent():
    model = _mlp(sizes=(4, 3))
    d = rtl4ml.convert(model, input_type="fixed<50,20>", weight_type="fixed<30,10>")
    with pytest.raises(rtl4ml.fixed.WidthError, match=r"node '0'.*bits"):
        d.predict(np.ones((2, 4)))


def test_bad_convert_arguments():
    with pytest.raises(ValueError, match="clock_ns"):
        rtl4ml.convert(_mlp(), input_type="fixed<8,3>", weight_type="fixed<8,3>", clock_ns=0)
    with pytest.raises(ValueError, match="not a valid Verilog module name"):
        rtl4ml.convert(_mlp(), input_type="fixed<8,3>", weight_type="fixed<8,3>", name="2net")
    with pytest.raises(ValueError, match="'small' .* keyword"):
        rtl4ml.convert(_mlp(), input_type="fixed<8,3>", weight_type="fixed<8,3>", name="small")
    with pytest.raises(TypeError, match="cannot convert a list"):
        rtl4ml.convert([1, 2], input_type="fixed<8,3>")


def test_wrong_input_shape_is_explained():
    d = rtl4ml.convert(_mlp(), input_type="fixed<8,3>", weight_type="fixed<8,3>")
    with pytest.raises(rtl4ml.graph.GraphError, match=r"shape \(N, 6\), got \(5, 4\)"):
        d.predict(np.zeros((5, 4)))


# --------------------------------------------------------------------------- models with their own forward
#
# The reference of a PTQ model is the model's own float64 forward pass with its weights and
# biases rounded to their types, on rounded inputs: every sum and product of those short
# fixed-point values is exact in float64, so it is the documented semantics computed by torch.

IT, WT = "fixed<10,3>", "fixed<8,3,RND,SAT>"


def _rounded(model, wt=WT):
    """A float64 copy of ``model`` with every Linear's weight and bias rounded to ``wt``."""
    m = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for lin in m.modules():
            if isinstance(lin, nn.Linear):
                lin.weight.copy_(torch.from_numpy(quantize(lin.weight.numpy(), wt)))
                if lin.bias is not None:
                    lin.bias.copy_(torch.from_numpy(quantize(lin.bias.numpy(), wt)))
    return m


def _torch_reference(model, *xs, it=IT, wt=WT):
    with torch.no_grad():
        y = _rounded(model, wt)(*(torch.from_numpy(quantize(x, it)) for x in xs))
    return tuple(v.numpy() for v in y) if isinstance(y, tuple) else y.numpy()


def _assert_exact(design, x, ref):
    """design.predict == ref, and the Netlist executes to the emulator's codes."""
    got = design.predict(x)
    for a, b in zip(*((got, ref) if isinstance(ref, tuple) else ((got,), (ref,)))):
        np.testing.assert_array_equal(a, b)
    codes, netlist = design.predict_codes(x), design.execute_netlist(x)
    for a, b in zip(*((codes, netlist) if isinstance(codes, tuple) else ((codes,), (netlist,)))):
        np.testing.assert_array_equal(a, b)


def _line(obj, marker: str) -> str:
    """``file:line`` of the line of ``obj``'s source that contains ``marker``."""
    src, start = inspect.getsourcelines(obj)
    k = next(i for i, s in enumerate(src) if marker in s)
    return f"{Path(inspect.getsourcefile(obj)).name}:{start + k}"


class ResidualMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.out = nn.Linear(6, 8), nn.Linear(8, 8), nn.Linear(8, 3)

    def forward(self, x):
        h = F.relu(self.fc1(x))
        h = h + torch.relu(self.fc2(h))   # skip connection
        return self.out(h - 0.25)


def test_residual_mlp_is_bit_exact(rng):
    torch.manual_seed(0)
    model = ResidualMLP()
    d = rtl4ml.convert(model, input_type=IT, weight_type=WT)
    x = rng.normal(size=(800, 6)) * 3
    _assert_exact(d, x, _torch_reference(model, x))
    assert {"fc1", "fc2", "out", "add"} <= {n.name for n in d.graph.nodes}
    wt = {"fc1": WT, "fc2": "fixed<6,2>", "out": WT}
    d2 = rtl4ml.convert(model, input_type=IT, weight_type=wt)
    ref = _rounded(model)
    with torch.no_grad():
        ref.fc2.weight.copy_(torch.from_numpy(quantize(model.fc2.weight.double().numpy(), "fixed<6,2>")))
        ref.fc2.bias.copy_(torch.from_numpy(quantize(model.fc2.bias.double().numpy(), "fixed<6,2>")))
        np.testing.assert_array_equal(d2.predict(x), ref(torch.from_numpy(quantize(x, IT))).numpy())
    with pytest.raises(rtl4ml.graph.GraphError, match=r"names layers the model does not have: \['fc3'\]"):
        rtl4ml.convert(model, input_type=IT, weight_type={**wt, "fc3": WT})
    with pytest.raises(rtl4ml.graph.GraphError, match=r"entries for layers that do not use it: \['add'\]"):
        rtl4ml.convert(model, input_type=IT, weight_type={**wt, "add": WT})


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 4)

    def forward(self, jets, muons):
        return self.fc(torch.cat([jets, muons], dim=1)) * muons[:, :1]


def test_two_inputs_given_as_tuple_or_dict(rng):
    torch.manual_seed(1)
    model = TwoInputs()
    types = {"jets": IT, "muons": "fixed<8,2>"}
    with pytest.raises(rtl4ml.graph.GraphError, match=r"shape of input 'jets' is not known.*torch\.cat.*"
                       r"pass input_shape="):
        rtl4ml.convert(model, input_type=types, weight_type=WT)
    d = rtl4ml.convert(model, input_type=types, input_shape={"jets": (4,), "muons": 2}, weight_type=WT)
    assert d.input_names == ["jets", "muons"]
    a, b = rng.normal(size=(500, 4)) * 3, rng.normal(size=(500, 2)) * 3
    with torch.no_grad():
        ref = _rounded(model)(torch.from_numpy(quantize(a, IT)), torch.from_numpy(quantize(b, "fixed<8,2>"))).numpy()
    _assert_exact(d, (a, b), ref)
    np.testing.assert_array_equal(d.predict({"muons": b, "jets": a}), ref)
    d2 = rtl4ml.convert(model, input_type=types, input_shape=[(4,), (2,)], weight_type=WT)
    np.testing.assert_array_equal(d2.predict((a, b)), ref)
    with pytest.raises(rtl4ml.graph.GraphError, match=r"input_type names inputs the model does not have: \['x'\]"):
        rtl4ml.convert(model, input_type={"x": IT}, input_shape=[(4,), (2,)], weight_type=WT)


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.body, self.cls, self.reg = nn.Linear(5, 8), nn.Linear(8, 3), nn.Linear(8, 1)

    def forward(self, x):
        h = torch.relu(self.body(x))
        return self.cls(h), self.reg(h)


class NamedHeads(TwoHeads):
    def forward(self, x):
        h = torch.relu(self.body(x))
        return {"scores": self.cls(h), "energy": self.reg(h)}


def test_several_outputs_tuple_and_dict(rng):
    torch.manual_seed(2)
    model = TwoHeads()
    x = rng.normal(size=(400, 5)) * 3
    d = rtl4ml.convert(model, input_type=IT, weight_type=WT)
    assert d.output_names == ["cls", "reg"]
    _assert_exact(d, x, _torch_reference(model, x))
    assert sorted(d.predict({"x": x})) == ["cls", "reg"]
    named = NamedHeads()
    named.load_state_dict(model.state_dict())
    d2 = rtl4ml.convert(named, input_type=IT, weight_type=WT)
    assert d2.output_names == ["scores", "energy"]
    y = d2.predict({"x": x})
    ref = _torch_reference(model, x)
    np.testing.assert_array_equal(y["scores"], ref[0])
    np.testing.assert_array_equal(y["energy"], ref[1])


class Particles(nn.Module):
    """30 particles x 3 features, flattened inside forward."""

    def __init__(self, how):
        super().__init__()
        self.how = how
        self.fc = nn.Linear(90, 5)

    def forward(self, x):
        if self.how == "view":
            x = x.view(x.size(0), -1)
        elif self.how == "flatten":
            x = x.flatten(1)
        else:
            x = torch.reshape(x, (x.shape[0], 30, -1)).reshape(-1, 90)
        return self.fc(x)


@pytest.mark.parametrize("how", ["view", "flatten", "reshape"])
def test_2d_input_flattened_inside(how, rng):
    torch.manual_seed(3)
    model = Particles(how)
    d = rtl4ml.convert(model, input_type=IT, weight_type=WT, input_shape=(30, 3))
    x = rng.normal(size=(300, 30, 3)) * 2
    _assert_exact(d, x, _torch_reference(model, x))
    np.testing.assert_array_equal(d.predict(x.reshape(300, 90)), d.predict(x))   # (N, size) is accepted too
    if how != "reshape":   # without input_shape the Linear fixes a flat input of 90
        d1 = rtl4ml.convert(model, input_type=IT, weight_type=WT)
        assert d1.graph.input.op.shape == (90,)
        np.testing.assert_array_equal(d1.predict(x.reshape(300, 90)), d.predict(x))


class DeepSets(nn.Module):
    """phi on every particle (the last axis), pooled over particles, then rho."""

    def __init__(self, pool):
        super().__init__()
        self.pool = pool
        self.phi, self.rho = nn.Linear(3, 8), nn.Linear(8, 4)

    def forward(self, x):
        h = torch.relu(self.phi(x))
        h = h.sum(dim=-2) if self.pool == "sum" else torch.mean(h, 1)
        return self.rho(h)


@pytest.mark.parametrize("n,pool", [(30, "sum"), (32, "mean"), (30, "mean")])
def test_deep_sets(n, pool, rng):
    torch.manual_seed(4)
    model = DeepSets(pool)
    x = rng.normal(size=(200, n, 3)) * 2
    d = rtl4ml.convert(model, input_type=IT, weight_type=WT, input_shape=(n, 3))
    r = _rounded(model)
    with torch.no_grad():
        h = torch.relu(r.phi(torch.from_numpy(quantize(x, IT)))).sum(1).numpy()
    if pool == "mean":   # 1/32 is exact; 1/30 is rounded to the weight type of the layer 'mean'
        h = h * (1 / 32 if n == 32 else quantize(np.array([1 / 30]), WT)[0])
    with torch.no_grad():
        ref = r.rho(torch.from_numpy(h)).numpy()
    _assert_exact(d, x, ref)
    per_layer = {"phi": WT, "rho": WT}
    if n == 32:
        rtl4ml.convert(model, input_type=IT, weight_type=per_layer, input_shape=(n, 3))
    elif pool == "mean":
        with pytest.raises(rtl4ml.graph.GraphError, match=r"function torch\.mean.*the constant 1/30 \(the mean "
                           r"over 30 elements\) is not a short binary fraction.*weight_type"):
            rtl4ml.convert(model, input_type=IT, weight_type=per_layer, input_shape=(n, 3))


class Slicer(nn.Module):
    """x: (N, 4, 6); permutes, slices, indexes, reduces."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        a = x.permute(0, 2, 1)[:, 1:5, -1]              # (N, 4)
        b = x[..., 0].amax(dim=1, keepdim=True)        # (N, 1)
        c = x.transpose(1, 2)[:, ::2, None, 3]         # (N, 3, 1)
        m = torch.maximum(x[:, 0], x[:, -1]).unsqueeze(1)   # (N, 1, 6)
        e = x.max(dim=2).values - torch.min(x, -1)[0]  # (N, 4)
        return (self.fc(a) - b + c.flatten(1).sum(-1, keepdim=True) + m.squeeze(1)[:, 2:5]
                + e[:, 1:] * 0.5 + torch.clamp(x[:, 1, :3], min=-1.0, max=2.0))


def test_permute_slice_and_reduce_models(rng):
    torch.manual_seed(5)
    model = Slicer()
    d = rtl4ml.convert(model, input_type=IT, weight_type=WT, input_shape=(4, 6))
    x = rng.normal(size=(500, 4, 6)) * 3
    _assert_exact(d, x, _torch_reference(model, x))


class ScaledLinear(nn.Linear):
    """A user's Linear: torch computes 0.45 x what a plain Linear would."""

    def forward(self, x):
        return super().forward(x) * 0.45


class ErfLinear(nn.Linear):
    def forward(self, x):
        return torch.erf(super().forward(x))


def test_linear_subclass_is_traced_through_its_forward(rng):
    torch.manual_seed(6)
    model = nn.Sequential(ScaledLinear(6, 4), nn.ReLU(), nn.Linear(4, 2))
    d = rtl4ml.convert(model, input_type=IT, weight_type=WT)
    assert [n.op.kind for n in d.graph.nodes if n.name.startswith("0")] == ["dense", "constant", "mul"]
    x = rng.normal(size=(500, 6)) * 3
    r = _rounded(model)
    with torch.no_grad():   # 0.45 is not a short binary fraction: rounded to the weight type of layer '0'
        c = quantize(np.array([0.45]), WT)[0]
        h = torch.relu(F.linear(torch.from_numpy(quantize(x, IT)), r[0].weight, r[0].bias) * c)
        ref = r[2](h).numpy()
    _assert_exact(d, x, ref)
    fine = rtl4ml.convert(model, input_type="fixed<16,6>", weight_type="fixed<16,2,RND>")
    x = quantize(x, "fixed<16,6>")
    with torch.no_grad():   # fine weights: close to what torch computes, 0.45 included
        np.testing.assert_allclose(fine.predict(x), model.double()(torch.from_numpy(x)).numpy(), atol=2e-3)


def test_linear_subclass_doing_something_unsupported_is_refused():
    model = nn.Sequential(nn.Linear(6, 6), ErfLinear(6, 2))
    with pytest.raises(rtl4ml.graph.GraphError) as e:
        rtl4ml.convert(model, input_type=IT, weight_type=WT)
    msg = str(e.value)
    assert "function torch.erf in layer '1' (ErfLinear) is not supported" in msg
    assert _line(ErfLinear.forward, "torch.erf") in msg


class WithModule(nn.Module):
    def __init__(self, layer):
        super().__init__()
        self.fc, self.act = nn.Linear(3, 4), layer

    def forward(self, x):
        h = self.act(self.fc(x))
        return h[:, -1] if isinstance(self.act, nn.LSTM) else h


class Lambda(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def test_unsupported_modules_are_named_with_the_line():
    for layer, name in [(nn.Softplus(), "Softplus"), (nn.LSTM(4, 4, batch_first=True), "LSTM")]:
        with pytest.raises(rtl4ml.graph.GraphError) as e:
            rtl4ml.convert(WithModule(layer), input_type=IT, weight_type=WT)
        assert f"layer 'act' ({name}) is not supported" in str(e.value)
        assert _line(WithModule.forward, "self.act(") in str(e.value)


@pytest.mark.parametrize("fn,what", [
    (lambda x: torch.erf(x), "function torch.erf"),
    (lambda x: torch.argsort(x, dim=1), "function torch.argsort"),
    (lambda x: x.erf(), "method Tensor.erf"),
    (lambda x: x.max(dim=1)[1], "indices of method Tensor.max"),
])
def test_unsupported_functions_are_named_with_the_line(fn, what):
    with pytest.raises(rtl4ml.graph.GraphError) as e:
        rtl4ml.convert(Lambda(fn), input_type=IT, input_shape=(6,))
    assert what in str(e.value)
    assert f"{Path(__file__).name}:{inspect.getsourcelines(fn)[1]}" in str(e.value)


@pytest.mark.parametrize("fn", [
    lambda x: x.sum(0), lambda x: x.sum(), lambda x: torch.cat([x, x], dim=0), lambda x: x.permute(1, 0),
    lambda x: x.T, lambda x: x.view(-1), lambda x: x[0], lambda x: torch.flatten(x), lambda x: x * x.size(0),
    lambda x: x.unsqueeze(0), lambda x: x.amax(dim=-2), lambda x: x.reshape(2, 3),
])
def test_operations_on_the_batch_axis_are_refused(fn):
    with pytest.raises(rtl4ml.graph.GraphError, match=r"batch (axis|size).*one sample at a time"):
        rtl4ml.convert(Lambda(fn), input_type=IT, input_shape=(6,))


class Branchy(nn.Module):
    def forward(self, x):
        if x.sum() > 0:
            return x
        return -x


def test_untraceable_forward_is_explained():
    with pytest.raises(rtl4ml.graph.GraphError, match=r"cannot trace Branchy\.forward with torch\.fx") as e:
        rtl4ml.convert(Branchy(), input_type=IT, input_shape=(6,))
    assert _line(Branchy.forward, "if x.sum()") in str(e.value)


def test_inexact_constant_without_a_weight_type_is_refused():
    with pytest.raises(rtl4ml.graph.GraphError, match=r"function operator\.mul.*the constant 0\.3 is not a short "
                       r"binary fraction.*layer 'mul'") as e:
        rtl4ml.convert(Lambda(lambda x: x * 0.3), input_type=IT, input_shape=(6,))
    assert Path(__file__).name in str(e.value)
    d = rtl4ml.convert(Lambda(lambda x: x * 0.375 - 2), input_type=IT, input_shape=(6,))   # exact constants
    x = np.linspace(-4, 4, 60).reshape(10, 6)
    np.testing.assert_array_equal(d.predict(x), quantize(x, IT) * 0.375 - 2)


def test_saved_model_of_a_user_class_is_refused(tmp_path):
    torch.save(ResidualMLP(), tmp_path / "res.pt")
    with pytest.raises(rtl4ml.graph.GraphError, match=r"refused to load.*ResidualMLP.*rtl4ml\.convert\(model\) in "
                       r"Python.*never unpickles"):
        rtl4ml.convert(tmp_path / "res.pt", input_type=IT, weight_type=WT)


@pytest.mark.hw
def test_traced_dag_rtl_is_bit_exact(rng):
    """Two inputs, a skip connection and two outputs, through Verilator."""

    class Dag(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.head = nn.Linear(4, 6), nn.Linear(6, 6), nn.Linear(6, 2)

        def forward(self, jets, muons):
            h = torch.relu(self.a(jets)) + muons
            return self.head(torch.relu(self.b(h)) + h), h.sum(1, keepdim=True)

    torch.manual_seed(7)
    d = rtl4ml.convert(Dag(), input_type=IT, weight_type=WT, input_shape={"jets": 4, "muons": 6}, clock_ns=2.0)
    x = (rng.normal(size=(2000, 4)) * 3, rng.normal(size=(2000, 6)) * 3)
    r = d.verify(x)
    assert r.ok, str(r)
    for got, want in zip(r.outputs, d.predict(x)):
        np.testing.assert_array_equal(got, want)


_W = torch.tensor(np.random.default_rng(0).integers(-8, 8, (6, 3)) / 4.0)


@pytest.mark.parametrize("fn", [
    lambda x: x + x[:, :1] * 2 - 1.5, lambda x: 3 - x, lambda x: -x / 4, lambda x: x * (x + 1), lambda x: abs(x),
    lambda x: torch.add(x, 0.5).sub(1).mul(0.75), lambda x: x.relu() + F.relu6(x),
    lambda x: F.leaky_relu(x, 0.125) + F.hardtanh(x, -0.5, 1.5), lambda x: x.clamp(max=1) + torch.clip(x, -1, None),
    lambda x: torch.maximum(x, x[:, :, :1]) - x.minimum(torch.tensor([0.5] * 6)),
    lambda x: x.sum((1, 2)) + x.mean(1).amin(-1), lambda x: torch.sum(x, dim=1, keepdim=True) * x,
    lambda x: torch.amax(x, dim=(1, 2), keepdim=True),
    lambda x: x.max(1, keepdim=True)[0] + x.min(-1).values[:, :, None],
    lambda x: x.view(x.size(0), 6, 4).permute(0, 2, 1), lambda x: x.reshape(-1, 24)[:, ::5],
    lambda x: x.transpose(-1, -2)[:, 2:, 1], lambda x: x.mT.contiguous().float(), lambda x: x[:, None, 1:3, 2:],
    lambda x: x[..., -1], lambda x: x[:, -2], lambda x: x.unsqueeze(-1).squeeze(-1).squeeze(),
    lambda x: torch.cat([x, x[:, :2] * 2], dim=-2), lambda x: torch.stack([x[:, 0], x[:, 1]], dim=1),
    lambda x: torch.stack([x[:, 0], x[:, 1]], dim=-1), lambda x: x.flatten(1, 2).unflatten(1, (2, 12)),
    lambda x: x @ _W, lambda x: F.linear(x, _W.T, torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)),
    lambda x: x.size(1) * x,
    lambda x: x * x.shape[-1] / 8, lambda x: (x - x[..., :4].mean(dim=(1, 2), keepdim=True)).abs().max(2).values,
    lambda x: torch.flatten(x, 1)[:, 3:9] @ _W,
])
def test_functions_match_torch(fn, rng):
    """Each translated function equals torch's own float64 result on quantized inputs."""
    wt = WT if "_W" in fn.__code__.co_names else None   # quarters: exact in WT
    d = rtl4ml.convert(Lambda(fn), input_type=IT, input_shape=(4, 6), weight_type=wt)
    x = quantize(rng.normal(size=(64, 4, 6)) * 3, IT)
    with torch.no_grad():
        ref = fn(torch.from_numpy(x)).double().numpy()
    _assert_exact(d, x, ref)


class _Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.rand(3, 4) * 0.2)

    def forward(self, x):
        return F.linear(x, self.w) * 0.45


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = _Scaled()

    def forward(self, x):
        return self.block(x)


def test_quantization_warnings_name_functions_and_constants():
    from rtl4ml.fidelity import QuantizationWarning
    torch.manual_seed(0)
    with pytest.warns(QuantizationWarning) as caught:
        d = rtl4ml.convert(_Net(), input_type="fixed<8,3>", weight_type="int<8>")
    msgs = [str(w.message) for w in caught]
    assert msgs[0].startswith("function F.linear in layer 'block' (_Scaled): weight_type fixed<8,8>: 12 of 12 "
                              "non-zero weights become zero; ")
    assert msgs[1].startswith("function operator.mul in layer 'block' (_Scaled): weight_type fixed<8,8>: 1 of 1 "
                              "non-zero constant values become zero; ") and "Try weight_type='fixed<8,0>'" in msgs[1]
    assert len(msgs) == 2   # the bias of F.linear(x, w) is zero: nothing to lose
    assert not d.predict(np.ones((2, 4))).any()   # what the warnings are about


def test_model_files_that_torch_cannot_read_are_named(tmp_path):
    from rtl4ml.frontends.torch import load_torch_file, run_float
    m = nn.Sequential(nn.Linear(3, 2))
    torch.save(m, tmp_path / "m.pt")
    (tmp_path / "half.pt").write_bytes((tmp_path / "m.pt").read_bytes()[:500])
    torch.save(m, tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    np.save(tmp_path / "array.npy", np.ones(3))
    for name, msg in [("half.pt", "(not a torch.save file, or truncated)"), ("array.npy", "(not a torch.save file"),
                      ("old.pt", "it is in torch's old non-zip format (torch < 1.6, or "
                                 "_use_new_zipfile_serialization=False), which cannot be loaded without unpickling")]:
        with pytest.raises(rtl4ml.graph.GraphError) as e:
            load_torch_file(tmp_path / name)
        assert str(e.value).startswith(f"cannot read {tmp_path / name}") and msg in str(e.value)
    # run_float: a float64 copy in evaluation mode; the model itself is not changed
    m.train()
    out = run_float(m, [np.ones((2, 3))])
    assert out.dtype == torch.float64 and m.training and m[0].weight.dtype == torch.float32
