"""The HTML report of one design, or the comparison of several: one self-contained file.

``write_report(design, "report.html", x, y, reference)`` (what :meth:`Design.report` and
``rtl4ml report`` call) writes a page with the model graph and its types, bit-width maps of
the weights and activations, resources per layer, the pipeline stages and their critical
paths, and, given inputs, the emulation against the float model, the RTL verification and,
given labels, accuracy and ROC curves. Several designs add an accuracy-against-LUT Pareto
plot and a table. Plots are inline PNG and the page has no script and fetches nothing.

Modules: ``collect`` (the facts, as data), ``evaluate`` (reference outputs, ROC, Pareto),
``stages`` (what each pipeline stage holds), ``plots`` (matplotlib), ``sections`` and
``html`` (the page).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .._version import __version__
from .html import esc, page

__all__ = ["render_report", "write_report"]


def _as_list(designs) -> list:
    return list(designs) if isinstance(designs, (list, tuple)) else [designs]


def render_report(designs, x=None, y=None, reference=None, *, synth: bool = False, verify=True,
                  labels: Sequence[str] | None = None) -> str:
    """The report's HTML (see :func:`write_report`)."""
    from . import sections  # imports matplotlib
    from .collect import collect

    ds = _as_list(designs)
    if not ds:
        raise ValueError("a report needs at least one design")
    if x is None and (y is not None or verify not in (True, False, None)):
        raise ValueError("labels and verification results need the inputs x they belong to")
    labels = [str(v) for v in labels] if labels is not None else [d.name for d in ds]
    if len(labels) != len(ds):
        raise ValueError(f"{len(labels)} labels for {len(ds)} designs")
    if len(set(labels)) < len(labels):   # designs of the same name: tell them apart by position
        labels = [f"{v} ({i})" for i, v in enumerate(labels, 1)]
    refs = list(reference) if isinstance(reference, list) and len(ds) > 1 else [reference] * len(ds)
    if len(refs) != len(ds):
        raise ValueError(f"{len(refs)} reference models for {len(ds)} designs")
    refs = [getattr(d, "model", None) if r is None else r for d, r in zip(ds, refs)]  # the model converted
    facts = [collect(d, lab, x, y, r, synth, verify) for d, lab, r in zip(ds, labels, refs)]
    subtitle = f"rtl4ml {__version__}"
    if len(facts) == 1:
        f = facts[0]
        body = sections.design_sections(f)
        links = list(sections.SECTIONS)
        title = f"rtl4ml report: {f.label}"
    else:
        body = [sections.comparison(facts)]
        links = [("comparison", "Comparison")]
        for i, f in enumerate(facts, 1):
            prefix = f"design-{i}-"
            body.append(f'<article id="design-{i}"><h2>{i}. {esc(f.label)}</h2>\n'
                        + "\n".join(sections.design_sections(f, prefix)) + "\n</article>")
            links.append((f"design-{i}", f.label))
        title = f"rtl4ml comparison of {len(facts)} designs"
    return page(title, subtitle, links, body)


def write_report(designs, path: str | Path, x=None, y=None, reference=None, *, synth: bool = False, verify=True,
                 labels: Sequence[str] | None = None) -> Path:
    """Write one self-contained HTML report of a Design (or a list of them) to ``path``.

    ``x``: inputs as :meth:`Design.predict` takes them; with them the report compares the
    bit-exact outputs with ``reference`` and runs the RTL simulation (``verify=False`` skips
    Verilator; a ``VerifyResult`` already computed is shown as it is). ``reference``: the
    float model (a torch module, run in float64 and evaluation mode on a copy, or a function
    of ``x``) or its outputs as arrays; for several designs one reference for all or a list,
    one per design; default: the model each design was converted from (``Design.model``;
    a loaded design has none, and the report says "no reference model"). ``y``: integer class labels (or one-hot rows): accuracy and
    one-vs-rest ROC curves. ``synth``: also run Yosys (minutes for large designs; cached).
    ``labels``: the designs' names in a comparison (default: their module names).
    """
    out = Path(path)
    if out.is_dir():
        out = out / "report.html"
    html = render_report(designs, x, y, reference, synth=synth, verify=verify, labels=labels)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return out
