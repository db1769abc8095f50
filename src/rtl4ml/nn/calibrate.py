"""Calibration: fix the data-dependent integer bits of every activation quantizer before export.

A WRAP quantizer's integer bits (and an automatic sign) come from the range of the values
it sees. While training they follow each batch; for hardware they must be fixed once, on a
representative sample (the training set is the usual choice). Forgetting this step is a
known trap: widths taken from whatever batch came last are silently wrong. Here
:func:`rtl4ml.convert` refuses a model that was not calibrated, or whose parameters changed
after calibration, with a message that says to call :func:`calibrate`.

Calibration runs in float64 (the exact arithmetic of the hardware) whatever the model's
dtype, so a float32 model cannot end up with a range rounded one bit too narrow.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from torch import nn

from .quantizer import ActivationQuantizer, QuantizerError

#: Buffers that calibration itself writes (excluded from the parameter digest).
_CALIBRATION_BUFFERS = {"cal_lo", "cal_hi", "calibrated", "calib_digest", "i_ready"}


def parameter_digest(model: nn.Module) -> int:
    """A 63-bit digest of every floating-point parameter and buffer, as float64 values.

    Calibration stores it; export recomputes it to detect a model trained (or otherwise
    changed) after calibration. Casting the model between float32 and float64 does not
    change it.
    """
    h = hashlib.sha256()
    for mod_name, mod in model.named_modules():
        skip = _CALIBRATION_BUFFERS if isinstance(mod, ActivationQuantizer) else set()
        tensors = list(mod._parameters.items()) + list(mod._buffers.items())
        for name, t in tensors:
            if t is None or name in skip or not t.is_floating_point():
                continue
            if isinstance(t, nn.parameter.UninitializedParameter):
                h.update(f"{mod_name}.{name}:uninitialized".encode())
                continue
            h.update(f"{mod_name}.{name}:{tuple(t.shape)}".encode())
            h.update(t.detach().to(torch.float64).cpu().contiguous().numpy().tobytes())
    return int.from_bytes(h.digest()[:8], "little") >> 1


def _layer_names(model: nn.Module) -> dict:
    """Quantizer -> the name of the layer that owns it (``'2'`` for ``model[2].quantizer``)."""
    names = {}
    for name, m in model.named_modules():
        if isinstance(m, ActivationQuantizer):
            names[m] = name[:-len(".quantizer")] if name.endswith(".quantizer") else name
    return names


def _as_tensor(x) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        a = np.asarray(x)
        if a.dtype.kind not in "fiub":
            raise QuantizerError(f"calibration data must be numeric, got dtype {a.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(a))
    if t.ndim < 2:
        raise QuantizerError(f"calibration data must have shape (N, features...), got {tuple(t.shape)}")
    if t.shape[0] == 0:
        raise QuantizerError("calibration data is empty")
    t = t.to(torch.float64)
    if not torch.isfinite(t).all():
        raise QuantizerError("calibration data contains NaN or infinite values")
    return t


def calibrate(model: nn.Module, x, batch_size: int = 16384, max_passes: int | None = None) -> nn.Module:
    """Record each activation quantizer's range on ``x`` and fix its integer bits for export.

    Runs the model in evaluation mode and float64. Already-calibrated quantizers apply their
    final types in later passes; the passes repeat until no range changes (two passes for
    most models: the second one confirms that no value overflows its calibrated type on
    ``x``). Returns ``model`` in evaluation mode, dtype unchanged.
    """
    xs = _as_tensor(x)
    names = _layer_names(model)
    quants = list(names)  # the quantizers, in module order
    if not quants:
        raise QuantizerError("the model has no rtl4ml.nn activation quantizers to calibrate")
    params = [p for p in model.parameters() if p.is_floating_point()]
    dtype = params[0].dtype if params else torch.float32
    device = params[0].device if params else torch.device("cpu")
    if any(not q.initialized for q in quants):
        init_lazy(model, xs[:8].to(dtype))
    model.eval()
    for q in quants:
        if q.saturating and not bool(q.i_ready):
            raise QuantizerError("a SAT quantizer without init_i has not been trained; train the model (or pass "
                                 "init_i) before calibrating")
        q.calibrated.fill_(False)
    dtypes = _tensor_dtypes(model)
    model.double()
    try:
        previous = None
        limit = max_passes if max_passes is not None else len(quants) + 2
        for _ in range(limit):
            for q in quants:
                q.calibrating, q._cal_acc = True, None
            with torch.no_grad():
                for s in range(0, len(xs), batch_size):
                    model(xs[s:s + batch_size].to(device))
            ranges = [q._cal_acc for q in quants]
            for q, r in zip(quants, ranges):
                if r is None:
                    raise QuantizerError(f"layer {names[q]!r} was not reached by the forward pass; calibrate the "
                                         "whole model")
                if not (torch.isfinite(r[0]).all() and torch.isfinite(r[1]).all()):
                    raise QuantizerError(f"layer {names[q]!r} saw non-finite values (NaN or infinity) during "
                                         "calibration; check the parameters of the layers before it")
            stable = previous is not None and all(
                torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(ranges, previous))
            digest = parameter_digest(model)
            for q, (lo, hi) in zip(quants, ranges):
                q.set_calibration(lo, hi, digest)
            if stable:
                break
            previous = ranges
        else:
            raise QuantizerError(f"calibration did not converge in {limit} passes")
    finally:
        for q in quants:
            q.calibrating, q._cal_acc = False, None
        _restore_dtypes(model, dtypes)
    return model


def _tensor_dtypes(model: nn.Module) -> dict:
    """The dtype of every floating-point parameter and buffer, by (module, name)."""
    return {(m, n): t.dtype for m in model.modules()
            for n, t in list(m._parameters.items()) + list(m._buffers.items())
            if t is not None and t.is_floating_point()}


def _restore_dtypes(model: nn.Module, dtypes: dict) -> None:
    """Undo ``model.double()`` tensor by tensor: a float64 part of a float32 model (a LUT
    network's thresholds after arithmetic layers) keeps its exact values."""
    for (m, n), dt in dtypes.items():
        if n in m._parameters:
            m._parameters[n].data = m._parameters[n].data.to(dt)
        else:
            m._buffers[n] = m._buffers[n].to(dt)


def check_calibrated(model: nn.Module, quantizer: ActivationQuantizer, layer: str,
                     digest: int | None = None) -> None:
    """Raise a clear error unless ``quantizer`` has valid, current calibration for ``model``."""
    if not quantizer.initialized:
        raise QuantizerError(f"layer {layer!r} has never seen data: run a forward pass, then "
                             "rtl4ml.nn.calibrate(model, x_sample), before converting")
    if not quantizer.needs_calibration:
        return
    if not bool(quantizer.calibrated):
        raise QuantizerError(
            f"layer {layer!r} is not calibrated: call rtl4ml.nn.calibrate(model, x_sample) with representative "
            "inputs (e.g. the training set) before rtl4ml.convert(model); its integer bits come from that data")
    if digest is None:
        digest = parameter_digest(model)
    if int(quantizer.calib_digest) != digest:
        raise QuantizerError(
            f"the model changed after calibration (layer {layer!r}): its parameters differ from those "
            "rtl4ml.nn.calibrate saw; call rtl4ml.nn.calibrate(model, x_sample) again before converting")


def init_lazy(model: nn.Module, x) -> nn.Module:
    """Create the parameters of quantizers built without a size (``qnn.QReLU()``) with one
    forward pass on a few samples of ``x``, without touching BatchNorm statistics.

    Call it before building the optimizer, so that it sees every parameter.
    """
    lazy = [m for m in model.modules() if isinstance(m, ActivationQuantizer) and not m.initialized]
    if not lazy:
        return model
    xs = x if isinstance(x, torch.Tensor) else torch.as_tensor(x)
    was = model.training
    model.eval()
    sat = [m for m in model.modules() if isinstance(m, ActivationQuantizer) and m.saturating]
    ready = [bool(m.i_ready) for m in sat]
    try:
        for m in sat:  # a dry run must not fail on (or initialize) a SAT quantizer's integer bits
            m.i_ready.fill_(True)
        with torch.no_grad():
            p = next((t for t in model.parameters() if t.is_floating_point()
                      and not isinstance(t, nn.parameter.UninitializedParameter)), None)
            model(xs[:8].to(p.dtype if p is not None else torch.float32))
    finally:
        for m, r in zip(sat, ready):
            m.i_ready.fill_(r)
        for m in model.modules():
            if isinstance(m, ActivationQuantizer):
                m._last_range = None
        model.train(was)
    return model
