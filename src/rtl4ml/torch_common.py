"""What the PyTorch frontend and :mod:`rtl4ml.nn` share, so that neither imports the other.

* :class:`ConversionError`, :func:`check_finite`, :func:`to_numpy` and
  :func:`fold_batchnorm_params` (the one place that folds a BatchNorm into a linear layer:
  QAT layers fold with batch statistics while training, the export with running ones);
* the **export protocol** by which the frontend recognises a quantization-aware layer: a
  module class that defines the method named :data:`EXPORT_METHOD`,

      def rtl4ml_export(self, ctx: ExportContext, name: str, inputs: list) -> str

  is a leaf of the trace (its ``forward`` is not traced), and the frontend calls that method
  to append the layer's Graph nodes; it returns the name of the node holding the layer's
  output. ``inputs`` are the frontend's opaque values of the call's arguments; the layer
  turns them into node names with :meth:`ExportContext.node` (or
  :meth:`ExportContext.define_input` for a layer that defines the types of a model input).
  A subclass that overrides ``forward`` without also defining its own export is refused,
  because its export would not describe what it computes.
* :data:`LOADABLE_ATTR`: a class attribute, set to True on rtl4ml module classes that are not
  layers themselves but parts of one (quantizers), so that a saved model may contain them.

This module imports only :mod:`rtl4ml.graph` (and torch when it is installed).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable

import numpy as np

from .fixed import FixedTypeArray
from .graph import Graph, GraphBuilder, GraphError

try:  # torch is an optional extra
    import torch
except ImportError:  # pragma: no cover - exercised only without the extra
    torch = None

#: The method that makes a module class an exportable (quantization-aware) layer.
EXPORT_METHOD = "rtl4ml_export"

#: Class attribute (True) of rtl4ml module classes a saved model may contain besides layers.
LOADABLE_ATTR = "rtl4ml_loadable"


class ConversionError(GraphError):
    """A model that rtl4ml cannot convert; the message names the layer (and the code line)."""


def export_class(cls: type) -> type | None:
    """The class in ``cls``'s MRO that defines :data:`EXPORT_METHOD`, or None."""
    return next((c for c in cls.__mro__ if EXPORT_METHOD in vars(c)), None)


class ExportContext(ABC):
    """What an exportable layer may use while it appends its nodes (implemented by the frontend).

    ``builder`` is the :class:`~rtl4ml.graph.GraphBuilder` being filled, ``model`` the whole
    model being converted, ``cache`` a per-conversion dict for memos (e.g. a digest of the
    parameters).
    """

    builder: GraphBuilder
    model: Any
    cache: dict

    @abstractmethod
    def node(self, value, layer: str, *, features: int | None = None, shape: tuple[int, ...] | None = None,
             advice: str | None = None) -> str:
        """The graph node of ``value`` (one of the layer's ``inputs``).

        A model input whose shape is not known yet is created here from ``input_type`` with
        ``shape`` (or ``(features,)``); without ``input_type`` the error is ``advice`` when
        given. ``features``: the size the layer needs on the last axis (checked).
        """

    @abstractmethod
    def define_input(self, value, types: FixedTypeArray, layer: str) -> str:
        """Create the model input ``value`` with ``types`` (for a layer that quantizes a model
        input, so that its types are the design's input types); refuses an ``input_type``
        argument for that input and a value that is not a model input read first here."""

    @abstractmethod
    def is_unread_input(self, value) -> bool:
        """Whether ``value`` is a model input that no layer has read yet (so a layer that
        quantizes its input may :meth:`define_input` instead of reading a graph node)."""

    @abstractmethod
    def type_entries(self, layer: str) -> list[str]:
        """The type options (``weight_type``, ...) given as dicts with an entry for ``layer``."""

    @abstractmethod
    def add_check(self, check: Callable[[Graph], None]) -> None:
        """Run ``check(graph)`` on the finished graph (after the graph passes)."""


def check_finite(values: np.ndarray, layer: str, what: str) -> None:
    """Refuse NaN/inf parameters with the layer, the array and the index in the message."""
    values = np.asarray(values)
    if not np.all(np.isfinite(values)):
        idx = tuple(int(i) for i in np.argwhere(~np.isfinite(values))[0])
        raise ConversionError(f"layer {layer!r}: {what} has a non-finite value {float(values[idx])} at index {idx}")


def to_numpy(t) -> np.ndarray:
    """A tensor (or number) as a float64 numpy array, detached and on the CPU."""
    if torch is not None and isinstance(t, torch.Tensor):
        return t.detach().cpu().to(torch.float64).numpy()
    return np.asarray(t, dtype=np.float64)


def fold_batchnorm_params(weight, bias, bn, mean, var):
    """Weight (out, in) and bias (out,) of ``bn(x @ weight.T + bias)`` with the BatchNorm
    ``bn`` normalizing by ``mean`` and ``var``; ``bias`` may be ``None``.

    It computes in ``weight``'s dtype and does not detach, so gradients flow to every input.
    """
    gamma = bn.weight.to(weight.dtype) if bn.affine else torch.ones_like(mean)
    beta = bn.bias.to(weight.dtype) if bn.affine else torch.zeros_like(mean)
    scale = gamma / torch.sqrt(var + bn.eps)
    b0 = bias if bias is not None else torch.zeros_like(mean)
    return weight * scale.reshape((-1,) + (1,) * (weight.ndim - 1)), (b0 - mean) * scale + beta
