"""Design-space exploration: sweeps of training and conversion options, on Ray or in one process.

    from rtl4ml.sweep import Grid, Sweep, parse_params, run_sweep
    space = Grid(parse_params({"beta": [1e-6, 1e-5], "hidden": [[16], [32, 16]], "epochs": 10}))
    result = run_sweep(Sweep(space, train="jet_tagger", data="jets_sample"), "sweep-out")
    print(result.table())                     # the Pareto front: accuracy up, LUTs down

or ``rtl4ml sweep config.yaml`` (``docs/sweep.md``). Each trial trains (the built-in
jet-tagger QAT trainer, or a user's ``train(config) -> model``), converts, checks the design
against the model, simulates the RTL on the held-out set with Verilator, and estimates
(analytic always, Yosys with ``synth``, cached by the design's hash). Trials run as Ray tasks
(``pip install 'rtl4ml[sweep]'``): a local instance by default, a cluster with ``address``.
A failed trial is recorded with its error and the sweep goes on; a sweep started again on
its results directory runs only the trials not finished yet.

Modules: ``space`` (grid, random, Optuna), ``config`` (the :class:`Sweep` and the YAML
format), ``trial`` (one trial, as a record), ``runner`` (Ray and serial), ``results`` (the
table, the Pareto front, the best designs and their report), ``jets`` (the built-in trainer
and data), ``cli`` (``rtl4ml sweep``).
"""

from __future__ import annotations

from .config import CONVERT_KEYS, METRICS, Sweep, from_dict, load_config
from .results import pareto_front
from .runner import SweepResult, run_sweep
from .space import Grid, Optuna, Random, SweepConfigError, make_space, parse_params
from .trial import run_trial

__all__ = ["Sweep", "SweepResult", "SweepConfigError", "Grid", "Random", "Optuna", "make_space", "parse_params",
           "load_config", "from_dict", "run_sweep", "run_trial", "pareto_front", "CONVERT_KEYS", "METRICS"]
