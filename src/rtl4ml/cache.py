"""Where rtl4ml caches Verilator builds and synthesis results (keyed by content hashes)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(kind: str) -> Path:
    """``$RTL4ML_CACHE/<kind>``, default ``~/.cache/rtl4ml/<kind>``; created on demand."""
    root = Path(os.environ.get("RTL4ML_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rtl4ml")
    d = root / kind
    d.mkdir(parents=True, exist_ok=True)
    return d
