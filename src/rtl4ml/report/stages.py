"""What each pipeline stage holds and where its critical path runs, read back from the
pipelined Netlist.

The scheduler reports only the delay of each stage. A designer who wants to shorten a stage
needs to know which layers it holds and which layers its longest path crosses; the
registers in the Netlist say it: a primitive's stage is the number of registers between it
and the inputs, and its arrival time is the longest chain of delays since the last
register, under the same delay model the scheduler used.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..netlist.ir import Netlist
from ..netlist.prims import Reg
from ..passes.pipeline import DEFAULT_DELAY_MODEL, DelayModel


@dataclass(frozen=True)
class Stage:
    index: int
    delay_ns: float               # the stage's critical path
    layers: tuple[str, ...]       # layers with logic in this stage, in netlist order
    path: tuple[str, ...]         # layers the critical path crosses, first to last
    path_prims: int               # primitives on the critical path


def _dedupe(names) -> tuple[str, ...]:
    """Names in first-seen order without repeats."""
    return tuple(dict.fromkeys(names))


def pipeline_stages(nl: Netlist, model: DelayModel = DEFAULT_DELAY_MODEL) -> list[Stage]:
    """Per stage of a scheduled Netlist (``nl.latency`` stages): its delay, layers and critical path."""
    n = len(nl.prims)
    stage = [0] * n
    finish = [0.0] * n
    prev = [-1] * n        # the operand the longest path into each primitive comes from
    for k, p in enumerate(nl.prims):
        live = [a for a in p.args if not nl.prims[a].wire.is_const]
        stage[k] = max((stage[a] + isinstance(nl.prims[a], Reg) for a in live), default=0)
        same = [a for a in live if stage[a] == stage[k] and not isinstance(nl.prims[a], Reg)]
        start = max(same, key=lambda a: finish[a], default=-1)
        prev[k] = start
        finish[k] = (finish[start] if start >= 0 else 0.0) + (model.delay(p, nl, k) if p.args else 0.0)
    count = max(nl.latency, 1)
    out = []
    for s in range(count):
        members = [k for k in range(n) if stage[k] == s and nl.prims[k].args and not isinstance(nl.prims[k], Reg)
                   and not nl.prims[k].wire.is_const]
        if not members:
            out.append(Stage(s, 0.0, (), (), 0))
            continue
        end = max(members, key=lambda k: finish[k])
        chain = []
        k = end
        while k >= 0 and nl.prims[k].args:
            chain.append(k)
            k = prev[k]
        chain.reverse()
        out.append(Stage(s, round(finish[end], 6), _dedupe(nl.prims[k].origin for k in members),
                         _dedupe(nl.prims[k].origin for k in chain), len(chain)))
    return out
