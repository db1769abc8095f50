"""The built-in jet-tagger trainer and data sets of a sweep.

``trainer: jet_tagger`` is the flow of ``rtl4ml demo``: a float MLP
(:func:`rtl4ml.demo.train_float_mlp`) fine-tuned with quantization-aware training and the
EBOPs term (:func:`rtl4ml.demo.qat_finetune`), calibrated on the training set. Its
parameters are :data:`JET_PARAMS`.

Data: ``jets_sample`` is the 10,000-jet sample shipped with rtl4ml, split as the demo splits
it (7,000 train / 3,000 test, permutation seed 0); ``{path: jets_pythia8.npz}`` reads a file
with ``features``, ``labels`` and ``split`` arrays (0 train, 2 test), optionally cut to the
first ``train`` / ``test`` jets of each split. Features are standardized with the training
mean and standard deviation in both cases.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: Parameters of the built-in trainer and their defaults.
JET_PARAMS = {"hidden": [32, 16], "epochs": 20, "float_epochs": 20, "beta": 5e-6, "seed": 0}


def jet_tagger(config: dict, data: dict):
    """Train a QAT jet tagger for ``config`` (keys of :data:`JET_PARAMS`) on ``data``; calibrated."""
    from ..demo import qat_finetune, train_float_mlp

    c = {**JET_PARAMS, **{k: v for k, v in config.items() if k in JET_PARAMS}}
    hidden = c["hidden"]
    hidden = [int(hidden)] if isinstance(hidden, (int, float)) else [int(h) for h in hidden]
    x, y = data["x_train"], data["y_train"]
    model = train_float_mlp(x, y, hidden=tuple(hidden), epochs=int(c["float_epochs"]), seed=int(c["seed"]))
    return qat_finetune(model, x, y, epochs=int(c["epochs"]), beta=float(c["beta"]), seed=int(c["seed"]))


def _standardized(x_train, y_train, x_test, y_test) -> dict:
    mean, std = x_train.mean(0), x_train.std(0)
    std = np.where(std > 0, std, 1.0)
    return {"x_train": (x_train - mean) / std, "y_train": y_train, "x_test": (x_test - mean) / std,
            "y_test": y_test}


def jets_sample() -> dict:
    """The packaged sample, split 7,000 / 3,000 as the demo does."""
    from ..data import load_jets
    jets = load_jets()
    x, y = jets["features"].astype(np.float64), jets["labels"].astype(np.int64)
    perm = np.random.default_rng(0).permutation(len(x))
    tr, te = perm[:7000], perm[7000:]
    return _standardized(x[tr], y[tr], x[te], y[te])


def jets_file(path: str, train: int | None = None, test: int | None = None) -> dict:
    """A jets npz with a ``split`` array (0 train, 2 test; 1, validation, is not used)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"data.path: {p} does not exist")
    with np.load(p, allow_pickle=False) as d:
        missing = [k for k in ("features", "labels", "split") if k not in d.files]
        if missing:
            raise ValueError(f"data.path: {p} has no array(s) {missing} (it has {d.files})")
        x, y, split = d["features"].astype(np.float64), d["labels"].astype(np.int64), d["split"]
    tr, te = np.flatnonzero(split == 0)[:train], np.flatnonzero(split == 2)[:test]
    return _standardized(x[tr], y[tr], x[te], y[te])
