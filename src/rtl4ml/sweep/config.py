"""A sweep's configuration: the :class:`Sweep` object, from Python or from a YAML file.

Every key is checked before any trial runs; a wrong one is refused naming the key and the
value (and the closest known key for a misspelling). See ``docs/sweep.md`` for the format.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import inspect
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .space import Space, SweepConfigError, make_space, plain

#: Trial parameters that go to :func:`rtl4ml.convert`, not to the trainer.
CONVERT_KEYS = ("clock_ns", "cmvm", "cmvm_depth_slack", "input_type", "weight_type", "bias_type", "result_type")
#: Figures of a trial record that can be objectives of the Pareto front and of Optuna.
METRICS = ("accuracy", "float_accuracy", "ebops", "adders", "adder_bits", "luts_estimate", "register_bits",
           "lut", "ff", "carry", "dsp", "latency_cycles", "latency_ns")
TOP_KEYS = ("name", "trainer", "data", "search", "params", "objectives", "verify", "synth", "family",
            "cpus_per_trial", "workers", "address", "out", "retry_failed", "report")
BUILTIN_TRAINERS = ("jet_tagger",)
BUILTIN_DATA = ("jets_sample",)


def _suggest(key: str, known) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass
class Sweep:
    """What a sweep runs. ``train``: ``"jet_tagger"`` (built in), ``"module:function"``,
    ``"path/to/file.py:function"`` or a callable ``train(config)`` / ``train(config, data)``
    returning a torch model. ``data``: ``"jets_sample"``, ``{"path": npz, "train": n, "test": n}``,
    ``"module:function"`` or a callable returning a dict with ``x_train``, ``y_train``,
    ``x_test``, ``y_test`` (the test split is the held-out set of every trial).
    ``verify``: True (every test sample through Verilator), a number of samples, or False.
    ``objectives``: ``{metric: "max" | "min"}`` (default accuracy up, LUTs down: Yosys LUTs
    with ``synth``, else the analytic estimate)."""

    space: Space
    train: Callable | str = "jet_tagger"
    data: Callable | str | dict = "jets_sample"
    name: str = "sweep"
    objectives: dict | None = None
    verify: bool | int = True
    synth: bool = False
    family: str = "xcup"
    cpus_per_trial: float = 1
    workers: int | None = None
    address: str | None = None
    out: str | Path = "sweep-results"
    retry_failed: bool = False
    report: bool = True
    base_dir: Path = field(default_factory=Path.cwd)

    def __post_init__(self) -> None:
        if not isinstance(self.space, Space):
            raise SweepConfigError(f"space: expected a search space (Grid, Random, Optuna), got {self.space!r}")
        if not (isinstance(self.name, str) and self.name.replace("_", "").replace("-", "").isalnum()):
            raise SweepConfigError(f"name: {self.name!r} must be letters, digits, '_' and '-'")
        if self.objectives is None:
            self.objectives = {"accuracy": "max", ("lut" if self.synth else "luts_estimate"): "min"}
        if not isinstance(self.objectives, dict) or not self.objectives:
            raise SweepConfigError(f"objectives: expected a mapping metric: max|min, got {self.objectives!r}")
        for k, d in self.objectives.items():
            if k not in METRICS:
                raise SweepConfigError(f"objectives: unknown metric {k!r}{_suggest(k, METRICS)}; "
                                       f"known: {list(METRICS)}")
            if d not in ("max", "min"):
                raise SweepConfigError(f"objectives.{k}: {d!r} must be 'max' or 'min'")
            if k in ("lut", "ff", "carry", "dsp") and not self.synth:
                raise SweepConfigError(f"objectives.{k}: Yosys figures need synth: true")
        if isinstance(self.verify, bool) or self.verify is None:
            self.verify = bool(self.verify)
        elif not (isinstance(self.verify, int) and self.verify > 0):
            raise SweepConfigError(f"verify: expected true, false or a positive number of samples, got {self.verify!r}")
        if not (isinstance(self.cpus_per_trial, (int, float)) and self.cpus_per_trial > 0):
            raise SweepConfigError(f"cpus_per_trial: must be a positive number, got {self.cpus_per_trial!r}")
        if self.workers is not None and not (isinstance(self.workers, int) and self.workers >= 1):
            raise SweepConfigError(f"workers: must be a positive integer, got {self.workers!r}")
        from ..estimate.yosys import FAMILIES
        if self.family not in FAMILIES:
            raise SweepConfigError(f"family: {self.family!r} is not one of {list(FAMILIES)}")
        self.base_dir = Path(self.base_dir)
        self._check_train()
        self._check_data()
        self._check_params()

    # -- checks ------------------------------------------------------------------------------

    def _check_train(self) -> None:
        if self.train is None:
            raise SweepConfigError("trainer: missing; give 'jet_tagger' (built in), 'module:function', "
                                   "'file.py:function' or a callable train(config) -> model")
        fn = resolve(self.train, "trainer", self.base_dir, BUILTIN_TRAINERS)
        if fn is not None:
            n = _positional(fn)
            if n is not None and n not in (1, 2):
                raise SweepConfigError(f"trainer: {_name(self.train)} takes {n} positional arguments; "
                                       "expected train(config) or train(config, data)")

    def _check_data(self) -> None:
        d = self.data
        if isinstance(d, dict):
            unknown = sorted(set(d) - {"path", "train", "test"})
            if unknown or "path" not in d:
                raise SweepConfigError(f"data: a file is {{path: file.npz[, train: n][, test: n]}}; got {d!r}")
            p = Path(d["path"])
            p = p if p.is_absolute() else self.base_dir / p
            if not p.exists():
                raise SweepConfigError(f"data.path: {p} does not exist")
            self.data = {**d, "path": str(p)}
            return
        resolve(d, "data", self.base_dir, BUILTIN_DATA)

    def _check_params(self) -> None:
        if self.train == "jet_tagger":
            from .jets import JET_PARAMS
            known = list(JET_PARAMS) + list(CONVERT_KEYS)
            for p in self.space.params:
                if p.name not in known:
                    raise SweepConfigError(f"params.{p.name}: not an option of the jet_tagger trainer"
                                           f"{_suggest(p.name, known)}; it takes {known}")

    # -- identity ----------------------------------------------------------------------------

    def settings(self) -> dict:
        """What, besides a trial's configuration, decides its result (part of its id)."""
        return {"trainer": _name(self.train), "data": self.data if isinstance(self.data, (str, dict))
                else _name(self.data), "verify": self.verify, "synth": self.synth, "family": self.family}

    def trial_id(self, config: dict) -> str:
        text = json.dumps({"config": config, **self.settings()}, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def objective_metrics(self) -> dict:
        return dict(self.objectives)


def _name(obj) -> str:
    if isinstance(obj, str):
        return obj
    return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', repr(obj))}"


def _positional(fn) -> int | None:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    ps = [p for p in sig.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if any(p.kind == p.VAR_POSITIONAL for p in sig.parameters.values()):
        return None
    required = [p for p in ps if p.default is p.empty]
    return max(len(required), min(len(ps), 2)) if ps else 0


def resolve(ref, what: str, base_dir: Path, builtins=()):
    """The callable named by ``ref`` (None for a built-in name); a clear error otherwise."""
    if callable(ref):
        return ref
    if not isinstance(ref, str):
        raise SweepConfigError(f"{what}: expected a name or 'module:function', got {ref!r}")
    if ref in builtins:
        return None
    if ":" not in ref:
        raise SweepConfigError(f"{what}: {ref!r} is not built in ({list(builtins)}) and not 'module:function' "
                               "or 'file.py:function'")
    mod, _, attr = ref.rpartition(":")
    try:
        if mod.endswith(".py"):
            path = Path(mod)
            path = path if path.is_absolute() else base_dir / path
            if not path.exists():
                raise SweepConfigError(f"{what}: file {path} does not exist")
            spec = importlib.util.spec_from_file_location(f"rtl4ml_sweep_user_{path.stem}", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(mod)
    except SweepConfigError:
        raise
    except Exception as e:
        raise SweepConfigError(f"{what}: cannot import {mod!r}: {type(e).__name__}: {e}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise SweepConfigError(f"{what}: {mod!r} has no function {attr!r}")
    return fn


def load_config(path: str | Path, **overrides) -> Sweep:
    """A :class:`Sweep` from a YAML (or JSON) file; ``overrides`` replace top-level keys."""
    p = Path(path)
    if not p.exists():
        raise SweepConfigError(f"sweep config {p} does not exist")
    text = p.read_text()
    if p.suffix == ".json":
        data = json.loads(text)
    else:
        try:
            import yaml
        except ImportError:
            raise SweepConfigError("reading a YAML sweep config needs PyYAML: pip install 'rtl4ml[sweep]'") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise SweepConfigError(f"{p}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise SweepConfigError(f"{p}: expected a mapping of sweep options, got {type(data).__name__}")
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return from_dict(data, base_dir=p.resolve().parent)
    except SweepConfigError as e:
        raise SweepConfigError(f"{p}: {e}") from None


def from_dict(data: dict, base_dir: Path | None = None) -> Sweep:
    """A :class:`Sweep` from a dict of the YAML format."""
    unknown = [k for k in data if k not in TOP_KEYS]
    if unknown:
        k = unknown[0]
        raise SweepConfigError(f"unknown option {k!r}{_suggest(k, TOP_KEYS)}; the options are {list(TOP_KEYS)}")
    if "params" not in data:
        raise SweepConfigError("params: missing; give the search space, e.g. params: {beta: [1.0e-6, 1.0e-5]}")
    space = make_space(data.get("search"), data["params"])
    kw = {k: data[k] for k in TOP_KEYS if k in data and k not in ("search", "params", "trainer")}
    if "trainer" in data:
        kw["train"] = data["trainer"]
    for k in ("verify", "cpus_per_trial", "workers"):
        if k in kw:
            kw[k] = plain(kw[k], k)
    return Sweep(space, base_dir=base_dir or Path.cwd(), **kw)
