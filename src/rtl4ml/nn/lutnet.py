"""Learned lookup-table networks (DWN-style): thermometer encoder -> LUT layers -> popcount.

    import rtl4ml, rtl4ml.nn as qnn
    types = ["fixed<8,3,TRN,SAT>"] * 2 + ["fixed<6,3,TRN,SAT>"] * 14   # finer inputs where they matter
    enc = qnn.Thermometer(16, 32, input_type=types)
    enc.init_quantiles(x_train)                        # thresholds at the data's quantiles
    model = torch.nn.Sequential(enc, qnn.LUTLayer(enc.out_bits, 200, k=6, mapping="learned"),
                                qnn.GroupSum(5))       # popcount="compressors": fewer LUTs
    qnn.fit_lutnet(model, x_train, y_train, epochs=10) # tau = sqrt(units per class)
    design = rtl4ml.convert(model, clock_ns=2.5)       # model(x) == design.predict(x)

* :class:`Thermometer` quantizes each feature to its fixed-point input type (exactly as the
  design's inputs are quantized) and emits bit ``x > t`` per threshold. The thresholds are
  initialised at the training data's quantiles and may be learned (a sigmoid surrogate
  gradient); on the quantized input the comparison is exact, so the export's comparators
  (shared per distinct ``(feature, code)``) decide as the model does.
* :class:`LUTLayer` units are ``k``-input truth tables (``k <= 6``: one LUT6 each) over
  bits of the previous layer, read through fixed random connections or learned ones. Training
  follows the DWN paper (Bacellar et al., ICML 2024): the forward pass is binary; a table
  entry gets the gradient of the output where it was addressed (straight through); an input
  bit gets the *extended finite difference*: the sum over all ``2**k`` addresses of the
  entry, signed by that address's bit ``i``, divided by one plus the address's Hamming
  distance to the current one on the other bits. Learned connections keep a score per
  (slot, input): the forward reads the best-scoring input, the scores get the output
  gradient times ``2 x - 1`` and the inputs the gradient spread by the softmax of the scores.
* :class:`GroupSum` counts the 1-bits of each class's group of units (a popcount, an adder
  tree in hardware); the training loss divides these counts by a temperature ``tau``.

In eval mode every value is a bit or a count, so ``model(x)`` equals ``design.predict(x)``
exactly (the export builds :class:`~rtl4ml.graph.ops.Thermometer`,
:class:`~rtl4ml.graph.ops.BitLookup` and a Reduce sum or a
:class:`~rtl4ml.graph.ops.luts.Popcount`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..fixed import FixedTypeArray, as_type_array, parse_type, quantize
from ..graph.ops import BitLookup, GraphError
from ..graph.ops import Thermometer as ThermometerOp
from ..graph.ops.luts import MAX_LUT_INPUTS, Popcount
from ..torch_common import ConversionError, ExportContext
from .export import one_input

__all__ = ["GroupSum", "LUTLayer", "MLPLUTLayer", "Thermometer", "default_tau", "fit_lutnet", "lut_units"]


def _input_types(input_type, n: int) -> FixedTypeArray:
    """One type for every feature, a FixedTypeArray of ``n``, or a sequence of ``n`` types (one
    per feature: a few features, such as a jet's mass, may need a finer input than the rest)."""
    if isinstance(input_type, FixedTypeArray):
        if input_type.shape != (n,):
            raise ValueError(f"Thermometer: input types of shape {input_type.shape} for {n} features")
        return input_type
    if isinstance(input_type, (list, tuple)):
        if len(input_type) != n:
            raise ValueError(f"Thermometer: {len(input_type)} input types for {n} features")
        ts = [parse_type(t) for t in input_type]
        modes = {(t.rounding, t.overflow) for t in ts}
        if len(modes) > 1:
            raise ValueError(f"Thermometer: the input types must share one rounding and overflow mode, got "
                             f"{sorted(modes)}")
        return FixedTypeArray(np.array([t.signed for t in ts]), np.array([t.integer for t in ts]),
                              np.array([t.fraction for t in ts]), ts[0].rounding, ts[0].overflow)
    return as_type_array(parse_type(input_type), (n,))


class _SurrogateStep(torch.autograd.Function):
    """``x > t`` forward; the gradient of ``sigmoid((x - t) / s)`` with respect to ``t``."""

    @staticmethod
    def forward(ctx, x, t, s):
        ctx.save_for_backward(x, t, s)
        return (x > t).to(t.dtype)

    @staticmethod
    def backward(ctx, g):
        x, t, s = ctx.saved_tensors
        z = torch.sigmoid((x - t) / s)
        d = g * z * (1 - z) / s
        gx = d.sum(-1, keepdim=True) if ctx.needs_input_grad[0] else None
        gt = -d.sum(0, keepdim=True) if ctx.needs_input_grad[1] else None
        return gx, gt, None


class _StraightThrough(torch.autograd.Function):
    """The exact quantized value ``xq`` forward; the gradient of ``x`` unchanged backward."""

    @staticmethod
    def forward(ctx, x, xq):
        ctx.dtype = x.dtype
        return xq.clone()

    @staticmethod
    def backward(ctx, g):
        return g.to(ctx.dtype), None


class Thermometer(nn.Module):
    """``n_thresholds`` bits per feature: bit ``(i, j)`` is ``x_i > t_ij`` on the quantized input.

    ``input_type``: the design's input type (one type string for every feature, a list of
    ``n_features`` type strings, or a FixedTypeArray of ``n_features``); inputs are quantized to it in the forward pass as
    ``design.predict`` quantizes them. Output: ``(N, n_features * n_thresholds)``, feature-major.
    ``learn``: train the thresholds (sigmoid surrogate of width ``temperature`` input LSBs).
    """

    #: Its outputs are single bits (``qnn.ebops`` counts a QLinear reading them so).
    emits_bits = True

    def __init__(self, n_features: int, n_thresholds: int, input_type="fixed<8,3,TRN,SAT>", learn: bool = False,
                 temperature: float = 2.0) -> None:
        super().__init__()
        if n_features < 1 or n_thresholds < 1:
            raise ValueError(f"Thermometer needs at least one feature and threshold, got {n_features}, "
                             f"{n_thresholds}")
        self.n_features, self.n_thresholds = int(n_features), int(n_thresholds)
        self.types = _input_types(input_type, self.n_features)
        lo = np.ldexp(self.types.min_q.astype(np.float64), -self.types.fraction)
        hi = np.ldexp(self.types.max_q.astype(np.float64), -self.types.fraction)
        grid = np.linspace(0, 1, self.n_thresholds + 2)[1:-1]
        t = lo[:, None] + (hi - lo)[:, None] * grid[None, :]
        self.thresholds = nn.Parameter(torch.tensor(t, dtype=torch.float64), requires_grad=learn)
        lsb = np.ldexp(1.0, -self.types.fraction).astype(np.float64)
        self.register_buffer("width", torch.tensor(lsb * temperature, dtype=torch.float64)[:, None])

    @property
    def out_bits(self) -> int:
        return self.n_features * self.n_thresholds

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        """The inputs as the design sees them (exact float64 values of the input type)."""
        if x.shape[-1] != self.n_features:
            raise ValueError(f"Thermometer of {self.n_features} features got inputs of shape {tuple(x.shape)}")
        xq = quantize(x.detach().cpu().to(torch.float64).numpy(), self.types)
        return torch.from_numpy(xq).to(x.device)

    @torch.no_grad()
    def init_quantiles(self, x) -> Thermometer:
        """Thresholds at the ``j / (n + 1)`` quantiles of each quantized feature, moved half a
        step up so that no input lies exactly on one (ties decide nothing)."""
        xq = self.quantize(torch.as_tensor(np.asarray(x)))
        q = torch.linspace(0, 1, self.n_thresholds + 2, dtype=torch.float64)[1:-1]
        t = torch.quantile(xq[:200_000], q, dim=0).T
        half = torch.tensor(np.ldexp(0.5, -self.types.fraction), dtype=torch.float64)[:, None]
        self.thresholds.copy_(t + half)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xq = self.quantize(x)
        if x.requires_grad:                     # after trainable layers: straight through the rounding
            xq = _StraightThrough.apply(x, xq)
        xq = xq[:, :, None]
        t = self.thresholds[None]
        if self.training and (self.thresholds.requires_grad or x.requires_grad):
            bits = _SurrogateStep.apply(xq, t, self.width[None])
        else:
            bits = (xq > t).to(torch.float64)
        return bits.reshape(len(x), -1).to(torch.float32)

    def op(self) -> ThermometerOp:
        feat = np.repeat(np.arange(self.n_features), self.n_thresholds)
        return ThermometerOp(feat, self.thresholds.detach().cpu().to(torch.float64).numpy().reshape(-1))

    def comparators(self) -> int:
        """Distinct comparators of the exported encoder (shared thresholds counted once, thresholds
        outside the input's range none)."""
        from ..graph.tensor import TensorType
        return self.op().comparators(TensorType.from_types(self.types))

    def rtl4ml_export(self, ctx: ExportContext, name: str, inputs: list) -> str:
        value = one_input(inputs, name, self)
        if ctx.is_unread_input(value):          # the model's input: the encoder fixes its types
            x = ctx.define_input(value, self.types, name)
        else:                                   # after arithmetic layers: quantized as the forward does
            x = ctx.node(value, name, features=self.n_features)
            if ctx.builder.shape(x) != (self.n_features,):
                raise ConversionError(f"layer {name!r} (Thermometer) encodes {self.n_features} features but receives "
                                      f"a tensor of shape {ctx.builder.shape(x)}")
            x = ctx.builder.quantize(x, self.types, name=f"{name or 'thermometer'}_quant")
        try:
            return ctx.builder.node(self.op(), (x,), name or "thermometer")
        except GraphError as e:
            raise ConversionError(f"layer {name!r} (Thermometer): {e}") from None


def _efd_weights(k: int, decay: str = "linear") -> torch.Tensor:
    """``E[a, i, c] = (-1)**(1 - c_i) * w(d)`` with ``d = popcount((a ^ c) without bit i)``.

    ``decay="linear"``: ``w(d) = 1 / (1 + d)`` (the ICML paper); ``"exp"``: ``w(d) = 3**-d``,
    the exponential decay of the authors' later release, which weighs the current address's
    near neighbours more and trains a single LUT layer faster.
    """
    if decay not in ("linear", "exp"):
        raise ValueError(f"EFD decay must be 'linear' or 'exp', got {decay!r}")
    a = torch.arange(1 << k)
    diff = a[:, None] ^ a[None, :]                                        # (a, c)
    bit = 1 << torch.arange(k)
    masked = diff[:, None, :] & ~bit[None, :, None]                       # (a, i, c)
    dist = sum((masked >> j) & 1 for j in range(k))
    sign = torch.where((a[None, None, :] & bit[None, :, None]) != 0, 1.0, -1.0).to(torch.float64)
    d = dist.to(torch.float64)
    return sign * (3.0 ** -d if decay == "exp" else 1.0 / (1.0 + d))


def _addresses(bits: torch.Tensor) -> torch.Tensor:
    """``(N, units, k)`` bits -> ``(N, units)`` table addresses, bit ``j`` of the address bit ``j``."""
    return (bits.to(torch.int64) << torch.arange(bits.shape[-1], device=bits.device)).sum(-1)


class _EFDLookup(torch.autograd.Function):
    """Binary table lookup; straight-through gradients to the entries, EFD to the input bits."""

    @staticmethod
    def forward(ctx, bits, tables, efd):
        k = bits.shape[-1]
        addr = _addresses(bits)
        units = tables.shape[0]
        flat = addr + (torch.arange(units, device=bits.device) << k)
        ctx.save_for_backward(flat, tables, efd)
        ctx.k = k
        return (tables.reshape(-1)[flat] > 0).to(bits.dtype)

    @staticmethod
    def backward(ctx, g):
        flat, tables, efd = ctx.saved_tensors
        k = ctx.k
        units = tables.shape[0]
        gt = torch.zeros(tables.numel(), dtype=tables.dtype, device=g.device)
        gt.index_add_(0, flat.reshape(-1), g.reshape(-1).to(tables.dtype))
        # M[u, a, i] = sum_c E[a, i, c] * A[u, c] for the clamped entries A, then read at each address
        m = torch.einsum("aic,uc->uai", efd.to(tables.dtype), tables.detach().clamp(-1, 1))
        gx = m.reshape(units << k, k)[flat] * g[..., None].to(tables.dtype)
        return gx.to(g.dtype), gt.reshape(tables.shape), None


class _LearnedSelect(torch.autograd.Function):
    """``x[:, argmax(scores, 1)]``; scores get ``g * (2 x - 1)``, inputs ``g @ softmax(scores)``."""

    @staticmethod
    def forward(ctx, x, scores):
        ctx.save_for_backward(x, scores)
        return x[:, scores.argmax(1)]

    @staticmethod
    def backward(ctx, g):
        x, scores = ctx.saved_tensors
        return g @ torch.softmax(scores, 1), g.T @ (2 * x - 1)


class LUTLayer(nn.Module):
    """``units`` truth tables of ``k`` inputs each over ``in_bits`` bits (eval: exactly binary).

    ``mapping``: ``"random"`` (fixed connections; every input used about equally) or
    ``"learned"`` (DWN's learnable mapping, a score per slot and input). ``seed`` draws the
    random connections and the initial tables. ``clamp``: keep the table entries in ``[-1, 1]``
    during training (as DWN does), so that an entry stays a few steps from flipping instead of
    drifting far from zero. ``efd``: the distance decay of the input gradient (``"linear"`` or
    ``"exp"``, see :func:`_efd_weights`).
    """

    #: Its outputs are single bits (``qnn.ebops`` counts a QLinear reading them so).
    emits_bits = True

    def __init__(self, in_bits: int, units: int, k: int = 6, mapping: str = "random", seed: int = 0,
                 clamp: bool = False, efd: str = "linear") -> None:
        super().__init__()
        if not 1 <= k <= MAX_LUT_INPUTS:
            raise ValueError(f"LUTLayer: k={k}; a LUT unit has 1..{MAX_LUT_INPUTS} inputs (one LUT6)")
        if mapping not in ("random", "learned"):
            raise ValueError(f"LUTLayer: mapping must be 'random' or 'learned', got {mapping!r}")
        if in_bits < 1 or units < 1:
            raise ValueError(f"LUTLayer needs inputs and units, got in_bits={in_bits}, units={units}")
        self.in_bits, self.units, self.k, self.mapping = int(in_bits), int(units), int(k), mapping
        self.clamp = bool(clamp)
        gen = torch.Generator().manual_seed(seed)
        n = units * k
        perm = torch.cat([torch.randperm(in_bits, generator=gen) for _ in range(-(-n // in_bits))])[:n]
        self.register_buffer("fixed_connections", perm.reshape(units, k).clone())
        self.tables = nn.Parameter(torch.rand(units, 1 << k, generator=gen) * 2 - 1)
        self.scores = nn.Parameter(torch.randn(n, in_bits, generator=gen) * 0.1) if mapping == "learned" else None
        self.register_buffer("efd", _efd_weights(k, efd), persistent=False)

    @property
    def out_bits(self) -> int:
        return self.units

    @property
    def connections(self) -> torch.Tensor:
        """``(units, k)`` input indices as the forward pass reads them now."""
        if self.scores is None:
            return self.fixed_connections
        return self.scores.detach().argmax(1).reshape(self.units, self.k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_bits:
            raise ValueError(f"LUTLayer of {self.in_bits} inputs got a tensor of shape {tuple(x.shape)}")
        if self.clamp and self.training:
            with torch.no_grad():
                self.tables.clamp_(-1, 1)
        if self.scores is not None and self.training:
            sel = _LearnedSelect.apply(x, self.scores)
        else:
            sel = x[:, self.connections.reshape(-1)]
        return self._lookup(sel.reshape(len(x), self.units, self.k))

    def _lookup(self, bits: torch.Tensor) -> torch.Tensor:
        """``(N, units, k)`` bits -> ``(N, units)``: each unit's table at its address."""
        return _EFDLookup.apply(bits, self.tables, self.efd)

    def truth_tables(self) -> np.ndarray:
        """``(units, 2**k)`` of 0/1: what each unit outputs at each address."""
        return (self.tables.detach().cpu() > 0).numpy().astype(np.int64)

    def rtl4ml_export(self, ctx: ExportContext, name: str, inputs: list) -> str:
        x = ctx.node(one_input(inputs, name, self), name, features=self.in_bits,
                     advice=f"layer {name!r} (LUTLayer) reads bits: put a qnn.Thermometer (or another LUTLayer) "
                     "in front of it")
        try:
            op = BitLookup(self.connections.cpu().numpy(), self.truth_tables())
            return ctx.builder.node(op, (x,), name or "luts")
        except GraphError as e:
            raise ConversionError(f"layer {name!r} (LUTLayer): {e}") from None


class _SurrogateSign(torch.autograd.Function):
    """``z > 0`` forward; the gradient of ``(1 + tanh(z)) / 2`` backward (smooth near the step)."""

    @staticmethod
    def forward(ctx, z):
        ctx.save_for_backward(z)
        return (z > 0).to(z.dtype)

    @staticmethod
    def backward(ctx, g):
        (z,) = ctx.saved_tensors
        return g * (1 - torch.tanh(z) ** 2) / 2


class MLPLUTLayer(LUTLayer):
    """NeuraLUT-style units: each unit's truth table is a small MLP over its ``k`` bits.

    In training, unit ``u`` computes ``z = skip_u . s + W2_u relu(W1_u s + b1_u) + b2_u`` on
    its bits as signs ``s = 2 x - 1`` and outputs ``z > 0`` (straight through the gradient of
    ``tanh``), so its input bits get the MLP's smooth gradient instead of DWN's finite
    difference, and a unit may learn any function of its ``k`` bits (Andronic and
    Constantinides, "NeuraLUT", FPL 2024; there the units read few-bit inputs, here bits). The
    hardware does not see the MLP: in eval mode the forward reads the table the MLP gives at
    all ``2**k`` addresses (:meth:`truth_tables`), the same table the export builds, so
    ``model(x) == design.predict(x)`` whatever float rounding the MLP has. Same connections
    (``mapping``) and export as :class:`LUTLayer`; ``hidden``: the MLP's width.
    """

    def __init__(self, in_bits: int, units: int, k: int = 6, mapping: str = "random", seed: int = 0,
                 hidden: int = 16) -> None:
        super().__init__(in_bits, units, k, mapping, seed)
        if hidden < 1:
            raise ValueError(f"MLPLUTLayer: hidden={hidden}; the unit MLP needs at least one hidden neuron")
        self.hidden = int(hidden)
        gen = torch.Generator().manual_seed(seed + 1)
        del self.tables                                   # the MLPs define the tables
        self.skip = nn.Parameter(torch.randn(units, k, generator=gen) / k ** 0.5)
        self.w1 = nn.Parameter(torch.randn(units, k, hidden, generator=gen) / k ** 0.5)
        self.b1 = nn.Parameter(torch.zeros(units, hidden))
        self.w2 = nn.Parameter(torch.randn(units, hidden, generator=gen) / hidden ** 0.5 * 0.1)
        self.b2 = nn.Parameter(torch.zeros(units))
        addr = torch.arange(1 << k)
        self.register_buffer("corners", ((addr[:, None] >> torch.arange(k)) & 1).to(torch.float32),
                             persistent=False)

    def extra_repr(self) -> str:
        return f"in_bits={self.in_bits}, units={self.units}, k={self.k}, mapping={self.mapping!r}, hidden={self.hidden}"

    def _mlp(self, bits: torch.Tensor) -> torch.Tensor:
        """``(N, units, k)`` bits -> ``(N, units)`` pre-step values."""
        s = 2 * bits - 1
        h = torch.relu(torch.einsum("nuk,ukh->nuh", s, self.w1) + self.b1)
        return (s * self.skip).sum(-1) + (h * self.w2).sum(-1) + self.b2

    def _lookup(self, bits: torch.Tensor) -> torch.Tensor:
        if self.training:
            return _SurrogateSign.apply(self._mlp(bits.to(self.w1.dtype)))
        table = torch.as_tensor(self.truth_tables(), device=bits.device)
        return table.gather(1, _addresses(bits).T).T.to(bits.dtype)

    def truth_tables(self) -> np.ndarray:
        with torch.no_grad():
            z = self._mlp(self.corners[:, None, :].expand(-1, self.units, -1))      # (2**k, units)
        return (z.T > 0).cpu().numpy().astype(np.int64)


class GroupSum(nn.Module):
    """Per class, the number of 1-bits among its ``in_bits / n_classes`` consecutive units.

    ``popcount``: how the export counts: ``"adders"`` (a Reduce sum, a balanced adder tree)
    or ``"compressors"`` (the :class:`~rtl4ml.graph.ops.luts.Popcount` op: LUT6 counting
    tables, then one adder; fewer LUTs for the same count).
    """

    def __init__(self, n_classes: int, popcount: str = "adders") -> None:
        super().__init__()
        if popcount not in ("adders", "compressors"):
            raise ValueError(f"GroupSum: popcount must be 'adders' or 'compressors', got {popcount!r}")
        self.n_classes, self.popcount = int(n_classes), popcount

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % self.n_classes:
            raise ValueError(f"GroupSum of {self.n_classes} classes got {x.shape[-1]} bits, not a multiple")
        return x.reshape(len(x), self.n_classes, -1).sum(-1)

    def rtl4ml_export(self, ctx: ExportContext, name: str, inputs: list) -> str:
        x = ctx.node(one_input(inputs, name, self), name)
        (n,) = ctx.builder.shape(x)
        if n % self.n_classes:
            raise ConversionError(f"layer {name!r} (GroupSum): {n} bits do not split into {self.n_classes} classes")
        if getattr(self, "popcount", "adders") == "compressors":      # models saved before the option: adders
            try:
                return ctx.builder.node(Popcount(self.n_classes), (x,), name or "groupsum")
            except GraphError as e:
                raise ConversionError(f"layer {name!r} (GroupSum): {e}") from None
        r = ctx.builder.reshape(x, (self.n_classes, n // self.n_classes), name=f"{name or 'groupsum'}_groups")
        return ctx.builder.reduce(r, "sum", (1,), name=name or "groupsum")


def lut_units(model: nn.Module) -> int:
    """Truth tables of all LUT layers (each one LUT6 for ``k <= 6``)."""
    return sum(m.units for m in model.modules() if isinstance(m, LUTLayer))


def default_tau(model: nn.Module) -> float:
    """``sqrt(units per class)`` of the last LUT layer and GroupSum head (1 without them)."""
    head = [m for m in model.modules() if isinstance(m, GroupSum)]
    layers = [m for m in model.modules() if isinstance(m, LUTLayer)]
    per = layers[-1].units / head[-1].n_classes if head and layers else 1.0
    return float(np.sqrt(max(per, 1.0)))


def fit_lutnet(model: nn.Module, x, y, *, epochs: int = 10, tau: float | None = None, lr: float = 1e-2,
               batch_size: int = 256, seed: int = 0, label: str = "LUT network") -> nn.Module:
    """Train with :func:`rtl4ml.nn.fit` on ``cross_entropy(counts / tau)``.

    ``tau`` defaults to ``sqrt(units per class)``: a class's count of ``n`` binary votes
    spreads by about ``sqrt(n)``, and dividing by it keeps the softmax neither flat nor
    saturated. On the jets (200 learned LUT6, 40 per class, 3 epochs) accuracy peaks at tau
    between 6 and 8 and falls off on both sides: 62.5 % at 2, 66.8 % at 3.65, 68.1 % at 6,
    67.7 % at 10, 65.9 % at 16 (docs/lutnet.md)."""
    from .train import fit
    tau = default_tau(model) if tau is None else float(tau)
    if not tau > 0:
        raise ValueError(f"fit_lutnet: tau must be positive, got {tau}")
    loss = lambda out, t: nn.functional.cross_entropy(out / tau, t)
    return fit(model, x, y, loss=loss, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, label=label)
