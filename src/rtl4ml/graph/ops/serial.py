"""JSON helpers shared by ops: exact floats and per-element types."""

from __future__ import annotations

import numpy as np

from ...fixed import FixedTypeArray


def types_to_json(t: FixedTypeArray) -> dict:
    return {"signed": t.signed.astype(int).tolist(), "integer": t.integer.tolist(),
            "fraction": t.fraction.tolist(), "rounding": t.rounding, "overflow": t.overflow}


def types_from_json(d: dict) -> FixedTypeArray:
    return FixedTypeArray(np.array(d["signed"], dtype=bool), np.array(d["integer"]), np.array(d["fraction"]),
                          d["rounding"], d["overflow"])


def floats_to_json(a: np.ndarray) -> list:
    """float64 arrays as nested lists; Python's float repr round-trips exactly."""
    return np.asarray(a, dtype=np.float64).tolist()
