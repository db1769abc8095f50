"""The report's figures, drawn with matplotlib and returned as ``<img>`` tags holding
base64 PNG, so the page needs no files beside it and no network.

Figures are built on :class:`matplotlib.figure.Figure` with the Agg canvas directly, never
through ``pyplot``: no global backend is switched and no window or notebook state of the
caller is touched. PNG metadata carries no version or date, so the same data gives the
same bytes on the same matplotlib.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from html import escape

import numpy as np

try:
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.figure import Figure
except ImportError as e:  # pragma: no cover - matplotlib is in the all extra
    raise ImportError("the HTML report draws its plots with matplotlib: pip install matplotlib "
                      "(or the all extra: pip install 'rtl4ml[all]')") from e

DPI = 96
PRUNED = "#d9d9d9"      # 0 bits: a pruned weight or a constant-zero element
COLORS = matplotlib.colormaps["tab10"].colors


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def img(fig: Figure, alt: str) -> str:
    """The figure as an inline ``<img>``."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def _bits_scale(max_bits: int) -> tuple[ListedColormap, BoundaryNorm]:
    """One colour per bit count, 0 bits in grey so that pruned elements stand out."""
    top = max(int(max_bits), 1)
    ramp = matplotlib.colormaps["viridis"](np.linspace(0.0, 1.0, top))
    cmap = ListedColormap([PRUNED, *ramp]).with_extremes(bad="white")   # white: padding
    return cmap, BoundaryNorm(np.arange(-0.5, top + 1.5), cmap.N)


def _colorbar(fig: Figure, im, ax, max_bits: int) -> None:
    top = max(int(max_bits), 1)
    cb = fig.colorbar(im, ax=ax, shrink=0.9)
    step = max(1, int(np.ceil((top + 1) / 12)))
    cb.set_ticks(np.arange(0, top + 1, step))
    cb.set_label("bits (0 = grey)")


def bits_heatmap(bits: np.ndarray, title: str, xlabel: str, ylabel: str, max_bits: int | None = None,
                 row_labels: Sequence[str] | None = None) -> str:
    """A 2-D map of bit counts, one cell per element; NaN cells (padding) stay white."""
    max_bits = int(np.nanmax(bits, initial=0)) if max_bits is None else max_bits
    rows, cols = bits.shape
    width = min(11.0, max(3.6, 1.9 + cols * 0.13))
    height = min(8.0, max(1.8, 1.1 + rows * (0.13 if row_labels is None else 0.26)))
    fig = _figure(width, height)
    ax = fig.add_subplot()
    cmap, norm = _bits_scale(max_bits)
    im = ax.imshow(np.ma.masked_invalid(bits.astype(np.float64)), cmap=cmap, norm=norm, aspect="auto",
                   interpolation="nearest")
    if rows * cols <= 300:
        for (r, c), v in np.ndenumerate(bits):
            if np.isfinite(v):
                ax.text(c, r, str(int(v)), ha="center", va="center", fontsize=6,
                        color="black" if v == 0 or v > 0.6 * max_bits else "white")
    if row_labels is not None:
        ax.set_yticks(range(rows), labels=list(row_labels), fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    _colorbar(fig, im, ax, max_bits)
    return img(fig, title)


def weight_heatmap(name: str, bits: np.ndarray) -> str:
    """Bits per weight of one Dense layer, outputs as rows (the hardware computes one adder
    tree per output), pruned weights grey."""
    pruned = int(np.count_nonzero(bits == 0))
    title = f"{name}: bits per weight ({pruned} of {bits.size} pruned, grey)"
    return bits_heatmap(bits.T, title, "input", "output")


def activation_heatmap(widths: dict[str, np.ndarray]) -> str:
    """Bits of every element of every node's output, one row per node (flattened), padded white."""
    names = list(widths)
    flat = [np.asarray(widths[n]).ravel() for n in names]
    cols = max((len(f) for f in flat), default=1)
    grid = np.full((len(flat), max(cols, 1)), np.nan)
    for i, f in enumerate(flat):
        grid[i, :len(f)] = f
    return bits_heatmap(grid, "bits per activation element (0 bits: a constant 0)", "element (flattened)", "node",
                        row_labels=names)


def layer_bars(names: Sequence[str], luts: Sequence[int], reg_bits: Sequence[int]) -> str:
    """Analytic LUT estimate and pipeline register bits per layer."""
    fig = _figure(7.5, max(2.0, 0.8 + 0.32 * len(names)))
    ax = fig.add_subplot()
    pos = np.arange(len(names))
    ax.barh(pos - 0.2, luts, height=0.4, color=COLORS[0], label="LUT estimate")
    ax.barh(pos + 0.2, reg_bits, height=0.4, color=COLORS[1], label="register bits")
    ax.set_yticks(pos, labels=list(names), fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("count (analytic)")
    ax.legend(fontsize=8, loc="lower right")
    return img(fig, "resources per layer")


def stage_bars(delays: Sequence[float], clock_ns: float) -> str:
    """Critical path of each pipeline stage against the clock period."""
    fig = _figure(7.5, 2.6)
    ax = fig.add_subplot()
    pos = np.arange(len(delays))
    ax.bar(pos, delays, color=[COLORS[3] if d > clock_ns + 1e-9 else COLORS[2] for d in delays])
    ax.axhline(clock_ns, color="black", linestyle="--", linewidth=1, label=f"clock {clock_ns:g} ns")
    ax.set_xticks(pos, labels=[str(i) for i in pos])
    ax.set_xlabel("pipeline stage")
    ax.set_ylabel("critical path (ns)")
    ax.legend(fontsize=8, loc="lower right")
    return img(fig, "critical path per pipeline stage")


def diff_histogram(name: str, diff: np.ndarray, lsb: float) -> str:
    """Distribution of hardware minus float over every element of one output."""
    fig = _figure(5.6, 3.0)
    ax = fig.add_subplot()
    d = np.asarray(diff, dtype=np.float64)
    span = float(np.abs(d).max(initial=0.0))
    bins = np.linspace(-span, span, 61) if span > 0 else np.array([-lsb, lsb]) / 2
    ax.hist(d, bins=bins, color=COLORS[0])
    ax.axvline(0, color="black", linewidth=0.8)
    for k in (-1, 1):
        ax.axvline(k * lsb, color=COLORS[3], linestyle=":", linewidth=1)
    ax.set_yscale("log")
    ax.set_xlabel(f"hardware \u2212 float (dotted: \u00b1 output LSB {lsb:g})")
    ax.set_ylabel("elements")
    ax.set_title(f"output {name}", fontsize=10)
    return img(fig, f"emulation minus float for output {name}")


def roc_plot(name: str, hardware, reference=None) -> str:
    """One-vs-rest ROC per class: hardware solid, float dashed, same colour per class."""
    fig = _figure(5.6, 4.4)
    ax = fig.add_subplot()
    ref = {c.label: c for c in reference.curves} if reference is not None else {}
    for i, c in enumerate(hardware.curves):
        color = COLORS[i % len(COLORS)]
        text = f"class {c.label}: AUC {c.auc:.3f}"
        if c.label in ref:
            r = ref[c.label]
            ax.plot(r.fpr, r.tpr, color=color, linestyle="--", linewidth=1)
            text += f" (float {r.auc:.3f})"
        ax.plot(c.fpr, c.tpr, color=color, linewidth=1.4, label=text)
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.6, linestyle=":")
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.set_title(f"output {name}: hardware (solid)" + (", float (dashed)" if ref else ""), fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    return img(fig, f"ROC curves of output {name}")


def pareto_plot(labels: Sequence[str], lut: Sequence[float], accuracy: Sequence[float], front: np.ndarray,
                lut_source: str) -> str:
    """Accuracy against LUTs, the Pareto-optimal designs joined by a step line."""
    fig = _figure(6.4, 4.0)
    ax = fig.add_subplot()
    lut, accuracy = np.asarray(lut, dtype=float), np.asarray(accuracy, dtype=float)
    ax.scatter(lut[~front], accuracy[~front], color=COLORS[7], label="dominated")
    ax.scatter(lut[front], accuracy[front], color=COLORS[3], label="Pareto-optimal", zorder=3)
    order = np.argsort(lut[front])
    ax.step(lut[front][order], accuracy[front][order], where="post", color=COLORS[3], linewidth=1)
    for label, a, b in zip(labels, lut, accuracy):
        if np.isfinite(a) and np.isfinite(b):
            ax.annotate(label, (a, b), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel(f"LUT ({lut_source})")
    ax.set_ylabel("accuracy (hardware)")
    ax.legend(fontsize=8, loc="lower right")
    return img(fig, "accuracy against LUTs")
