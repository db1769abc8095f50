"""The numbers behind the report's accuracy sections: float reference outputs, emulation
differences, accuracy, one-vs-rest ROC curves and Pareto fronts.

Plain numpy, no sklearn: the report must work with the package's own dependencies, and the
few formulas here are short enough to test against brute force.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


def output_list(values, names: Sequence[str]) -> list[np.ndarray]:
    """One float64 array per design output from what a model returned: an array, a tuple
    or list in output order, or a dict (by output name when the keys match, else in order)."""
    if isinstance(values, Mapping):
        values = [values[k] for k in names] if set(names) <= set(values) else list(values.values())
    elif not isinstance(values, (list, tuple)):
        values = [values]
    return [np.asarray(_to_numpy(v), dtype=np.float64) for v in values]


def _to_numpy(v):
    """A torch tensor (or anything array-like) as a numpy array, without importing torch."""
    if hasattr(v, "detach") and hasattr(v, "cpu"):
        return v.detach().cpu().numpy()
    return v


def _is_torch_module(obj) -> bool:
    try:
        import torch
    except ImportError:
        return False
    return isinstance(obj, torch.nn.Module)


def _input_list(x, names: Sequence[str]) -> list:
    """The inputs in ``forward`` argument order (the design's input order)."""
    if isinstance(x, Mapping):
        return [x[k] for k in names]
    return list(x) if isinstance(x, (list, tuple)) else [x]


def reference_outputs(reference, x, input_names: Sequence[str], names: Sequence[str],
                      shapes: Sequence[tuple[int, ...]], n: int) -> list[np.ndarray]:
    """The float model's outputs, shaped ``(n, *shape)`` per design output.

    ``reference``: a torch module (run on a copy, in evaluation mode and float64), any
    callable taking ``x`` as :meth:`Design.predict` does, or the outputs themselves (an array, a tuple or a dict). A
    mismatch in count or size is the user's error and says so.
    """
    if _is_torch_module(reference):
        from ..frontends.torch import run_float
        raw = run_float(reference, _input_list(x, input_names))
    elif callable(reference):
        raw = reference(x)   # x as the design takes it, like Design.fidelity's reference
    else:
        raw = reference
    outs = output_list(raw, names)
    if len(outs) != len(names):
        raise ValueError(f"the reference gives {len(outs)} outputs; the design has {len(names)} ({list(names)})")
    shaped = []
    for name, shape, o in zip(names, shapes, outs):
        size = int(np.prod(shape, dtype=np.int64))
        if o.size != n * size:
            raise ValueError(f"reference output for {name!r} has shape {o.shape}; expected ({n}, "
                             f"{', '.join(map(str, shape))}) like the design's")
        shaped.append(o.reshape((n, *shape)))
    return shaped


@dataclass(frozen=True)
class DiffStats:
    """Hardware minus float, over every element of one output."""

    max_abs: float
    mean: float
    rms: float
    exact_fraction: float   # elements where hardware == float exactly
    lsb: float              # the finest output step (2**-fraction)


def diff_stats(hw: np.ndarray, ref: np.ndarray, lsb: float) -> DiffStats:
    d = (hw - ref).ravel()
    if d.size == 0:
        return DiffStats(0.0, 0.0, 0.0, 1.0, lsb)
    return DiffStats(float(np.abs(d).max()), float(d.mean()), float(np.sqrt(np.mean(d * d))),
                     float(np.mean(d == 0)), lsb)


def as_labels(y, n: int) -> np.ndarray:
    """Integer class labels (N,) from integers or one-hot / score rows (N, C)."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        y = y.argmax(axis=1)
    y = y.reshape(-1) if y.ndim == 2 else y
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"labels must be ({n},) class numbers (or ({n}, classes) one-hot), got shape {y.shape}")
    if not np.all(np.equal(np.mod(y, 1), 0)) or (len(y) and y.min() < 0):
        raise ValueError("labels must be non-negative integer class numbers")
    return y.astype(np.int64)


def roc_curve(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates at every distinct threshold, from (0, 0) to (1, 1).

    Samples with equal scores enter together, so ties give a diagonal segment (the AUC then
    counts a tied positive/negative pair as one half, like the Mann-Whitney statistic).
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    positive = np.asarray(positive, dtype=bool).ravel()
    order = np.argsort(-scores, kind="stable")
    s, p = scores[order], positive[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1] if len(s) else np.array([], dtype=np.int64)
    tp = np.cumsum(p)[last]
    fp = np.cumsum(~p)[last]
    n_pos, n_neg = int(p.sum()), int((~p).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("a ROC curve needs both positive and negative samples")
    return np.r_[0.0, fp / n_neg], np.r_[0.0, tp / n_pos]


def auc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Area under a ROC curve (trapezoids)."""
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


@dataclass(frozen=True)
class ClassCurve:
    label: int
    fpr: np.ndarray
    tpr: np.ndarray
    auc: float


@dataclass(frozen=True)
class Classification:
    """Accuracy and per-class ROC of one output, from its scores as they are (no softmax)."""

    accuracy: float
    curves: tuple[ClassCurve, ...]


def predicted_class(scores: np.ndarray) -> np.ndarray:
    """Argmax over classes; a single score is a binary classifier (threshold 0.5 for scores
    in [0, 1], else 0, the logit's)."""
    s = scores.reshape(len(scores), -1)
    if s.shape[1] > 1:
        return s.argmax(axis=1)
    threshold = 0.5 if (s.min(initial=0) >= 0 and s.max(initial=0) <= 1) else 0.0
    return (s[:, 0] > threshold).astype(np.int64)


def classifier_note(shape: tuple[int, ...], y: np.ndarray) -> str | None:
    """Why an output of this per-sample shape cannot be scored against labels ``y`` (None if it can)."""
    size = int(np.prod(shape, dtype=np.int64))
    top = int(y.max(initial=0))
    if len(shape) > 1:
        return f"shape {shape} is not a vector of class scores"
    if size == 1:
        return None if top <= 1 else f"one score but labels up to {top}"
    return None if top < size else f"{size} class scores but labels up to {top}"


def classify(scores: np.ndarray, y: np.ndarray) -> Classification:
    """Accuracy and one-vs-rest ROC curves (classes without both positives and negatives skipped)."""
    s = scores.reshape(len(scores), -1)
    accuracy = float(np.mean(predicted_class(s) == y)) if len(y) else float("nan")
    curves = []
    columns = [(1, s[:, 0])] if s.shape[1] == 1 else list(enumerate(s.T))
    for c, col in columns:
        pos = y == c
        if pos.all() or not pos.any():
            continue
        fpr, tpr = roc_curve(col, pos)
        curves.append(ClassCurve(c, fpr, tpr, auc(fpr, tpr)))
    return Classification(accuracy, tuple(curves))


def pareto_front(cost: Sequence[float], score: Sequence[float]) -> np.ndarray:
    """Which points no other point beats: nothing cheaper-or-equal with a higher-or-equal
    score that is strictly better in one of them. NaN scores are never on the front."""
    c = np.asarray(cost, dtype=np.float64)
    s = np.asarray(score, dtype=np.float64)
    ok = np.isfinite(c) & np.isfinite(s)
    front = np.zeros(len(c), dtype=bool)
    for i in np.flatnonzero(ok):
        better = ok & (c <= c[i]) & (s >= s[i]) & ((c < c[i]) | (s > s[i]))
        front[i] = not better.any()
    return front
