"""JSON helpers shared by ops: exact floats, shapes and per-element types."""

from __future__ import annotations

import numpy as np

from ...fixed import FixedType, FixedTypeArray, parse_type


def types_to_json(t: FixedTypeArray) -> dict:
    return {"shape": list(t.shape), "signed": t.signed.astype(int).ravel().tolist(),
            "integer": t.integer.ravel().tolist(), "fraction": t.fraction.ravel().tolist(),
            "rounding": t.rounding, "overflow": t.overflow}


def types_from_json(d: dict) -> FixedTypeArray:
    shape = tuple(d.get("shape", (len(d["signed"]),)))
    return FixedTypeArray(np.array(d["signed"], dtype=bool).reshape(shape),
                          np.array(d["integer"], dtype=np.int64).reshape(shape),
                          np.array(d["fraction"], dtype=np.int64).reshape(shape), d["rounding"], d["overflow"])


def type_to_json(t: FixedType | None) -> str | None:
    return None if t is None else str(t)


def type_from_json(s: str | None) -> FixedType | None:
    return None if s is None else parse_type(s)


def floats_to_json(a: np.ndarray) -> dict:
    """float64 arrays with their shape; Python's float repr round-trips exactly."""
    a = np.asarray(a, dtype=np.float64)
    return {"shape": list(a.shape), "values": a.ravel().tolist()}


def floats_from_json(d) -> np.ndarray:
    if isinstance(d, dict):
        return np.array(d["values"], dtype=np.float64).reshape(tuple(d["shape"]))
    return np.array(d, dtype=np.float64)   # a nested list (designs saved before shapes were recorded)
