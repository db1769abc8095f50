"""Search spaces: which trial configurations a sweep runs.

A space is built from ``params``, a dict of parameter name to

- a scalar (or ``{"value": v}`` for a list-valued constant): the same in every trial;
- a list (or ``{"values": [...]}``): choices, every one in a grid, one drawn per trial otherwise;
- a range ``{"low": a, "high": b}`` with optional ``"log": true`` and ``"int": true``
  (``"step": s``): random and Optuna search only.

``Grid`` enumerates the product of the choices in order (the last parameter varies
fastest); ``Random`` draws ``n_trials`` configurations from a seeded generator, the same ones
every time; ``Optuna`` asks an Optuna sampler, multi-objective on the sweep's objectives, and
needs ``pip install optuna``. Every space yields plain dicts of JSON values.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field

import numpy as np


class SweepConfigError(ValueError):
    """A sweep configuration that cannot run; the message names the key and the value."""


_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)$")


def plain(value, where: str):
    """``value`` as plain JSON data; YAML 1.1 strings such as ``1e-6`` become floats."""
    if isinstance(value, str):
        return float(value) if _NUMBER.match(value.strip()) else value
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (list, tuple)):
        return [plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {str(k): plain(v, f"{where}.{k}") for k, v in value.items()}
    raise SweepConfigError(f"{where}: {value!r} is a {type(value).__name__}; sweep parameters are numbers, "
                           "strings, booleans, lists and dicts of them")


@dataclass(frozen=True)
class Range:
    low: float
    high: float
    log: bool = False
    integer: bool = False
    step: float | None = None

    def sample(self, rng: np.random.Generator):
        if self.log:
            v = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        else:
            v = rng.uniform(self.low, self.high)
        if self.step:
            v = self.low + round((v - self.low) / self.step) * self.step
            v = min(max(v, self.low), self.high)
        return int(round(v)) if self.integer else float(v)


@dataclass(frozen=True)
class Param:
    name: str
    kind: str                      # "fixed", "choice", "range"
    values: tuple = ()             # fixed: (value,); choice: the choices
    range: Range | None = None


def parse_param(name: str, spec) -> Param:
    where = f"params.{name}"
    if isinstance(spec, dict):
        keys = set(spec)
        if keys == {"value"}:
            return Param(name, "fixed", (plain(spec["value"], where),))
        if keys == {"values"}:
            spec = spec["values"]
            if not isinstance(spec, (list, tuple)):
                raise SweepConfigError(f"{where}.values: expected a list of choices, got {spec!r}")
        elif "low" in keys or "high" in keys:
            allowed = {"low", "high", "log", "int", "step"}
            if keys - allowed:
                raise SweepConfigError(f"{where}: unknown key(s) {sorted(keys - allowed)} in a range; "
                                       f"a range takes {sorted(allowed)}")
            if not {"low", "high"} <= keys:
                raise SweepConfigError(f"{where}: a range needs both low and high, got {spec!r}")
            low, high = plain(spec["low"], where + ".low"), plain(spec["high"], where + ".high")
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
                raise SweepConfigError(f"{where}: low and high must be numbers, got {low!r} and {high!r}")
            if not low < high:
                raise SweepConfigError(f"{where}: low ({low!r}) must be below high ({high!r})")
            log = bool(spec.get("log", False))
            if log and low <= 0:
                raise SweepConfigError(f"{where}: a log range needs low > 0, got {low!r}")
            step = spec.get("step")
            if step is not None and not (isinstance(plain(step, where), (int, float)) and plain(step, where) > 0):
                raise SweepConfigError(f"{where}.step: must be a positive number, got {step!r}")
            return Param(name, "range", range=Range(float(low), float(high), log, bool(spec.get("int", False)),
                                                  None if step is None else float(plain(step, where))))
        else:
            raise SweepConfigError(f"{where}: a dict must be {{value: v}}, {{values: [...]}} or a range "
                                   f"{{low: a, high: b[, log: true][, int: true]}}; got keys {sorted(keys)}")
    if isinstance(spec, (list, tuple)):
        if not spec:
            raise SweepConfigError(f"{where}: an empty list of choices")
        values = tuple(plain(v, f"{where}[{i}]") for i, v in enumerate(spec))
        return Param(name, "choice", values)
    return Param(name, "fixed", (plain(spec, where),))


def parse_params(params) -> list[Param]:
    if not isinstance(params, dict):
        raise SweepConfigError(f"params: expected a mapping of parameter name to values, got {params!r}")
    return [parse_param(str(k), v) for k, v in params.items()]


@dataclass
class Space:
    """Base class: ``configs()`` yields the trials' configurations (for spaces known in advance)."""

    params: list[Param]
    kind: str = "base"

    def __post_init__(self) -> None:
        names = [p.name for p in self.params]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise SweepConfigError(f"params: {dup} given twice")

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def describe(self) -> dict:
        return {"kind": self.kind}

    @property
    def adaptive(self) -> bool:
        """True when a trial's configuration depends on earlier results (Optuna)."""
        return False


@dataclass
class Grid(Space):
    kind: str = "grid"

    def __post_init__(self) -> None:
        super().__post_init__()
        for p in self.params:
            if p.kind == "range":
                raise SweepConfigError(f"params.{p.name}: a range {{low, high}} needs search kind random or optuna; "
                                       "a grid takes a list of values")

    def configs(self) -> list[dict]:
        choices = [p.values for p in self.params]
        return [dict(zip(self.names, combo)) for combo in itertools.product(*choices)]

    def __len__(self) -> int:
        return math.prod(len(p.values) for p in self.params)


@dataclass
class Random(Space):
    n_trials: int = 10
    seed: int = 0
    kind: str = "random"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (isinstance(self.n_trials, int) and self.n_trials >= 1):
            raise SweepConfigError(f"search.n_trials: must be a positive integer, got {self.n_trials!r}")

    def describe(self) -> dict:
        return {"kind": self.kind, "n_trials": self.n_trials, "seed": self.seed}

    def configs(self) -> list[dict]:
        rng = np.random.default_rng(self.seed)
        out = []
        for _ in range(self.n_trials):
            c = {}
            for p in self.params:
                if p.kind == "fixed":
                    c[p.name] = p.values[0]
                elif p.kind == "choice":
                    c[p.name] = p.values[int(rng.integers(len(p.values)))]
                else:
                    c[p.name] = p.range.sample(rng)
            out.append(c)
        return out

    def __len__(self) -> int:
        return self.n_trials


@dataclass
class Optuna(Space):
    """Ask-and-tell search with an Optuna sampler (``tpe``, the default, ``nsga2`` or ``random``)."""

    n_trials: int = 10
    seed: int = 0
    sampler: str = "tpe"
    kind: str = "optuna"
    _study: object = field(default=None, repr=False)

    SAMPLERS = ("tpe", "nsga2", "random")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (isinstance(self.n_trials, int) and self.n_trials >= 1):
            raise SweepConfigError(f"search.n_trials: must be a positive integer, got {self.n_trials!r}")
        if self.sampler not in self.SAMPLERS:
            raise SweepConfigError(f"search.sampler: {self.sampler!r} is not one of {list(self.SAMPLERS)}")

    @property
    def adaptive(self) -> bool:
        return True

    def describe(self) -> dict:
        return {"kind": self.kind, "n_trials": self.n_trials, "seed": self.seed, "sampler": self.sampler}

    def __len__(self) -> int:
        return self.n_trials

    # -- the study -------------------------------------------------------------------------

    def start(self, objectives: dict[str, str]) -> None:
        try:
            import optuna
        except ImportError:
            raise SweepConfigError("search kind optuna needs Optuna: pip install optuna") from None
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        samplers = {"tpe": lambda: optuna.samplers.TPESampler(seed=self.seed),
                    "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=self.seed),
                    "random": lambda: optuna.samplers.RandomSampler(seed=self.seed)}
        self._objectives = list(objectives.items())
        self._study = optuna.create_study(directions=["maximize" if d == "max" else "minimize"
                                                      for _, d in self._objectives],
                                          sampler=samplers[self.sampler]())

    def _distributions(self) -> dict:
        import optuna.distributions as od
        out = {}
        for p in self.params:
            if p.kind == "choice":
                out[p.name] = od.CategoricalDistribution([_key(v) for v in p.values])
            elif p.kind == "range":
                r = p.range
                if r.integer:
                    out[p.name] = od.IntDistribution(int(r.low), int(r.high), log=r.log,
                                                     step=int(r.step) if r.step and not r.log else 1)
                else:
                    out[p.name] = od.FloatDistribution(r.low, r.high, log=r.log, step=None if r.log else r.step)
        return out

    def ask(self):
        """A new Optuna trial and its configuration."""
        dists = self._distributions()
        trial = self._study.ask(dists)
        config = {}
        for p in self.params:
            if p.kind == "fixed":
                config[p.name] = p.values[0]
            elif p.kind == "choice":
                config[p.name] = _unkey(trial.params[p.name], p.values)
            else:
                config[p.name] = trial.params[p.name]
        return trial, config

    def values(self, record: dict) -> list[float] | None:
        vals = [record.get(k) for k, _ in self._objectives]
        return None if any(v is None for v in vals) else [float(v) for v in vals]

    def tell(self, trial, record: dict | None) -> None:
        import optuna
        vals = self.values(record) if record and record.get("status") == "ok" else None
        if vals is None:
            self._study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            self._study.tell(trial, vals)

    def add_finished(self, config: dict, record: dict) -> None:
        """Tell the study about a trial finished in an earlier run (resuming)."""
        import optuna
        dists = self._distributions()
        params = {}
        for p in self.params:
            if p.name in dists:
                v = config.get(p.name)
                params[p.name] = _key(v) if p.kind == "choice" else v
        vals = self.values(record) if record.get("status") == "ok" else None
        try:
            t = optuna.trial.create_trial(params=params, distributions=dists, values=vals,
                                          state=optuna.trial.TrialState.COMPLETE if vals else
                                          optuna.trial.TrialState.FAIL)
        except ValueError:
            return  # a record from another space: not part of this study
        self._study.add_trial(t)


def _key(v):
    """Optuna's categorical choices must be scalars: lists become their JSON text."""
    import json
    return json.dumps(v) if isinstance(v, (list, dict)) else v


def _unkey(k, values):
    for v in values:
        if _key(v) == k:
            return v
    return k


KINDS = {"grid": Grid, "random": Random, "optuna": Optuna}


def make_space(search, params) -> Space:
    """A space from the config's ``search`` (``"grid"`` or a dict with ``kind``) and ``params``."""
    ps = parse_params(params)
    if search is None:
        search = "grid"
    if isinstance(search, str):
        search = {"kind": search}
    if not isinstance(search, dict):
        raise SweepConfigError(f"search: expected a kind ({list(KINDS)}) or a mapping with kind, got {search!r}")
    search = dict(search)
    kind = search.pop("kind", "grid")
    if kind not in KINDS:
        raise SweepConfigError(f"search.kind: {kind!r} is not one of {list(KINDS)}")
    allowed = {"grid": set(), "random": {"n_trials", "seed"}, "optuna": {"n_trials", "seed", "sampler"}}[kind]
    unknown = sorted(set(search) - allowed)
    if unknown:
        raise SweepConfigError(f"search: unknown key(s) {unknown} for kind {kind!r}"
                               + (f" (it takes {sorted(allowed)})" if allowed else " (a grid takes no options)"))
    return KINDS[kind](ps, **search)
