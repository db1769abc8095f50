"""The one renumbering helper every Netlist pass uses.

A pass walks the old primitives in order and says, for each, what it becomes: an existing
new wire (an alias), a primitive to append, or nothing (dropped). :class:`Rewriter` keeps
the map from old to new ids, interns constants and rebuilds the Netlist around the same
buses; :func:`rewrite` is the common loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .ir import Netlist, Prim
from .prims import Const, const_wire


class Rewriter:
    """New primitives for ``nl``; ``new_id[k]`` is where old wire ``k`` went (None: dropped)."""

    def __init__(self, nl: Netlist) -> None:
        self.nl = nl
        self.prims: list[Prim] = []
        self.new_id: list[int | None] = [None] * len(nl.prims)
        self._consts: dict[tuple[int, int], int] = {}

    def emit(self, p: Prim) -> int:
        self.prims.append(p)
        return len(self.prims) - 1

    def const(self, q: int, fraction: int, origin: str = "") -> int:
        w = const_wire(q, fraction)
        key = (w.lo, w.fraction)
        if key not in self._consts:
            self._consts[key] = self.emit(Const(w, (), origin=origin))
        return self._consts[key]

    def mapped(self, p: Prim) -> Prim:
        """``p`` reading the new ids of its operands."""
        return p.with_args([self.new_id[a] for a in p.args])

    def finish(self, outputs: Sequence[int] | None = None, latency: int | None = None) -> Netlist:
        outs = [self.new_id[o] for o in self.nl.outputs] if outputs is None else outputs
        return self.nl.with_prims(self.prims, outs, latency)


#: ``visit(rewriter, old id, primitive with renumbered operands)`` -> new id, new primitive, or None.
Visit = Callable[[Rewriter, int, Prim], "int | Prim | None"]


def rewrite(nl: Netlist, visit: Visit) -> Netlist:
    r = Rewriter(nl)
    for k, p in enumerate(nl.prims):
        res = visit(r, k, r.mapped(p))
        r.new_id[k] = r.emit(res) if isinstance(res, Prim) else res
    return r.finish()
