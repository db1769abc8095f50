"""Small data samples shipped with rtl4ml (see README.md in this folder for provenance)."""

from __future__ import annotations

from importlib import resources

import numpy as np


def load_jets() -> dict[str, np.ndarray]:
    """The 10,000-jet sample: ``features`` (N, 16) float32, ``labels`` (N,) int8, names."""
    with resources.files(__package__).joinpath("jets_sample.npz").open("rb") as f:
        with np.load(f, allow_pickle=False) as d:
            return {k: d[k] for k in d.files}
