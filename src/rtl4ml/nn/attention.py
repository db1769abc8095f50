"""Products of two variables: QEinsum, and attention assembled from rtl4ml.nn parts.

:class:`QEinsum` quantizes both operands with its own learnable activation quantizers and
computes ``einsum(equation, a, b)`` exactly (float64 in evaluation), as the exported
:class:`~rtl4ml.graph.ops.Einsum` does: every product a variable x variable multiplier of
the operands' exact widths, every sum an exact adder tree. Its EBOPs are the bit products
``bits(a_i) * bits(b_j)`` of every product it computes (``einsum`` of the two bit maps).

Attention is written from these parts (see :class:`QSelfAttention` and docs/constituents.md):
``QLinear`` projections of every particle (shared weights), ``QEinsum("pd,qd->pq")`` for the
scores, ``QActivation`` then ``QSoftmax`` over the keys, ``QEinsum("pq,qd->pd")`` for the
weighted values, a ``QLinear`` output projection.
"""

from __future__ import annotations

import string

import torch
from torch import nn

from ..graph.ops.einsum import parse_equation
from .export import export_einsum
from .layers import QActivation, QLinear
from .quantizer import ActivationQuantizer, QuantizerError, cast_checked
from .tables import QSoftmax


class QEinsum(nn.Module):
    """``einsum(equation, quantize(a), quantize(b))``; ``equation`` names the axes of one
    sample (no batch letter), e.g. ``"pf,qf->pq"``.

    Each operand has its own :class:`~rtl4ml.nn.quantizer.ActivationQuantizer` (per element,
    lazily sized; keyword arguments ``init_f``, ``overflow``, ... apply to both). The output is
    exact (not rounded): follow with a :class:`QActivation`.
    """

    def __init__(self, equation: str, **quantizer) -> None:
        super().__init__()
        try:
            self.subscripts = parse_equation(equation)
        except ValueError as e:
            raise QuantizerError(str(e)) from None
        self.equation = equation.replace(" ", "")
        z = next(c for c in string.ascii_letters if c not in self.equation)
        a, b, out = self.subscripts
        self._batched = f"{z}{a},{z}{b}->{z}{out}"
        quantizer.setdefault("init_f", 4.0)
        self.quantizer_a = ActivationQuantizer(None, **quantizer)
        self.quantizer_b = ActivationQuantizer(None, **quantizer)

    @property
    def graph_equation(self) -> str:
        return self.equation

    def extra_repr(self) -> str:
        return f"{self.equation!r}"

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        qa, qb = self.quantizer_a(a), self.quantizer_b(b)
        if self.training:
            return torch.einsum(self._batched, qa, qb)
        y = torch.einsum(self._batched, qa.to(torch.float64), qb.to(torch.float64))
        return cast_checked(y, a.dtype, self)

    def ebops(self) -> torch.Tensor:
        """``sum over products of bits(a) * bits(b)`` (differentiable in both quantizers' bits)."""
        ba = self.quantizer_a.bits().reshape(self.quantizer_a.shape)
        bb = self.quantizer_b.bits().reshape(self.quantizer_b.shape).to(ba.dtype)
        a, b, out = self.subscripts
        return torch.einsum(f"{a},{b}->", ba, bb)

    def rtl4ml_export(self, ctx, name: str, inputs: list) -> str:
        return export_einsum(self, ctx, name, inputs)


class QSelfAttention(nn.Module):
    """Single- or multi-head self-attention over the particles of ``(N, P, dim)``, from parts.

    ``q, k, v = QLinear(dim, heads * head_dim)`` per particle; per head the scores
    ``q_h k_h^T`` (a :class:`QEinsum`), quantized, softmax by tables over the keys
    (:class:`~rtl4ml.nn.QSoftmax`; the usual ``1/sqrt(head_dim)`` is left to the trained
    ``q`` weights), ``softmax @ v_h`` (a :class:`QEinsum`), the heads
    concatenated and projected by ``QLinear(heads * head_dim, dim)``. Every part exports to
    exact graph ops, so the module converts through the torch frontend.
    """

    def __init__(self, dim: int, heads: int = 1, head_dim: int | None = None, init_f: float = 4.0) -> None:
        super().__init__()
        self.heads = int(heads)
        self.head_dim = int(head_dim or dim // heads)
        inner = self.heads * self.head_dim
        self.q, self.k, self.v = QLinear(dim, inner), QLinear(dim, inner), QLinear(dim, inner)
        self.scores = nn.ModuleList(QEinsum("pd,qd->pq", init_f=init_f) for _ in range(self.heads))
        self.score_q = nn.ModuleList(QActivation(overflow="SAT", init_f=init_f) for _ in range(self.heads))
        self.softmax = nn.ModuleList(QSoftmax(dim=-1) for _ in range(self.heads))
        self.mix = nn.ModuleList(QEinsum("pq,qd->pd", init_f=init_f) for _ in range(self.heads))
        self.out_q = QActivation(overflow="SAT", init_f=init_f)
        self.out = QLinear(inner, dim)

    def layer_terms(self, prefix: str, bits_in):
        """(name, layer, input bits) of the parts, for EBOPs (see :mod:`rtl4ml.nn.resources`)."""
        for n in ("q", "k", "v"):
            yield f"{prefix}.{n}", getattr(self, n), bits_in
        for h in range(self.heads):
            yield f"{prefix}.scores.{h}", self.scores[h], None
            q = self.score_q[h].quantizer
            yield f"{prefix}.softmax.{h}", self.softmax[h], q.bits().reshape(q.shape)
            yield f"{prefix}.mix.{h}", self.mix[h], None
        q = self.out_q.quantizer
        yield f"{prefix}.out", self.out, q.bits().reshape(q.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.q(x), self.k(x), self.v(x)
        outs = []
        for h in range(self.heads):
            sl = slice(h * self.head_dim, (h + 1) * self.head_dim)
            s = self.score_q[h](self.scores[h](q[..., sl], k[..., sl]))
            outs.append(self.mix[h](self.softmax[h](s), v[..., sl]))
        return self.out(self.out_q(torch.cat(outs, dim=-1) if self.heads > 1 else outs[0]))
