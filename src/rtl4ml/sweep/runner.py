"""Running a sweep: on Ray (a local instance, or a cluster at ``address``) or one trial after another.

Each trial is a Ray task asking for ``cpus_per_trial`` CPUs, so Ray runs as many at once as
the instance (or cluster) has CPUs for. The driver writes each record to
``out/trials/<id>.json`` as soon as its trial finishes; a trial id is the hash of its
configuration and of the sweep settings that decide its result, so a sweep started again
on the same results directory skips every finished trial (failed ones too, unless
``retry_failed``) and an interrupted one resumes where it stopped.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import results
from .config import Sweep, _name, _positional, resolve
from .space import SweepConfigError
from .trial import load_data, run_trial


@dataclass
class SweepResult:
    out: Path
    records: list[dict]            # this sweep's trials (finished now or before), in trial order
    front: list[dict]              # the Pareto front, best first on the first objective
    ran: int                       # trials run by this call
    skipped: int                   # trials found finished in ``out`` and not run again
    wall_seconds: float
    backend: str
    report: Path | None = None
    front_dirs: list[Path] = field(default_factory=list)

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.records if r.get("status") == "failed"]

    def table(self, front_only: bool = True) -> str:
        params = self.params
        return results.format_table(self.front if front_only else self.records, params,
                                    any(r.get("lut") is not None for r in self.records))

    @property
    def params(self) -> list[str]:
        names: list[str] = []
        for r in self.records:
            for k in r.get("config", {}):
                if k not in names:
                    names.append(k)
        return names


# --------------------------------------------------------------------------- what a worker needs


def _installed(module) -> bool:
    """A module of an installed distribution (pickled by reference) rather than a user's file."""
    f = getattr(module, "__file__", None) or ""
    return "site-packages" in f or "dist-packages" in f or module.__name__.split(".")[0] in ("rtl4ml",)


def _dumps(fn) -> bytes:
    """``fn`` pickled so that a Ray worker can run it without importing the user's module."""
    try:
        from ray import cloudpickle
    except ImportError:  # pragma: no cover - the serial runner does not pickle
        import cloudpickle
    mod = sys.modules.get(getattr(fn, "__module__", None) or "")
    by_value = mod is not None and mod.__name__ != "__main__" and not _installed(mod)
    if by_value:
        cloudpickle.register_pickle_by_value(mod)
    try:
        return cloudpickle.dumps(fn)
    finally:
        if by_value:
            cloudpickle.unregister_pickle_by_value(mod)


def worker_settings(sweep: Sweep, pickled: bool) -> dict:
    """The sweep as plain data for :func:`run_trial` (callables pickled by value for Ray)."""
    s = {"data": sweep.data if isinstance(sweep.data, (str, dict)) else _name(sweep.data), "verify": sweep.verify,
         "synth": sweep.synth, "family": sweep.family, "cpus": sweep.cpus_per_trial,
         "base_dir": str(sweep.base_dir), "train_ref": sweep.train if isinstance(sweep.train, str) else None,
         "data_ref": sweep.data if isinstance(sweep.data, str) and sweep.data != "jets_sample" else None}
    for key, obj in (("train_fn", sweep.train), ("data_fn", sweep.data)):
        if callable(obj):
            s[key] = _dumps(obj) if pickled else obj
    return s


def _materialize(settings: dict) -> dict:
    """Resolve the trainer and data functions in the process that runs the trial."""
    s = dict(settings)
    for key in ("train_fn", "data_fn"):
        if isinstance(s.get(key), bytes):
            import pickle
            s[key] = pickle.loads(s[key])
    base = Path(s.get("base_dir") or ".")
    if s.get("train_fn") is None and s.get("train_ref") not in (None, "jet_tagger"):
        s["train_fn"] = resolve(s["train_ref"], "trainer", base)
    if s.get("data_fn") is None and s.get("data_ref"):
        s["data_fn"] = resolve(s["data_ref"], "data", base)
        s["data"] = s["data_ref"]
    fn = s.get("train_fn")
    s["train_args"] = 2 if fn is None else (_positional(fn) or 1)
    return s


def _trial_entry(spec: dict, settings: dict, env: dict) -> dict:
    """What a worker runs: one trial, with the driver's cache location."""
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return run_trial(spec, _materialize(settings))
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _failed(spec: dict, error: BaseException, where: str) -> dict:
    return {"trial_id": spec["trial_id"], "index": spec["index"], "status": "failed", "stage": where,
            "config": spec["config"], "seed": spec["config"].get("seed", 0),
            "error": f"{type(error).__name__}: {error}"[:4000], "seconds": {}}


# --------------------------------------------------------------------------- the sweep


def run_sweep(sweep: Sweep, out: str | Path | None = None, *, address: str | None = None,
              workers: int | None = None, backend: str = "ray", retry_failed: bool | None = None,
              log=None) -> SweepResult:
    """Run ``sweep``'s trials not yet finished in ``out`` and write the table and the front.

    ``backend``: ``"ray"`` (the default: a Ray instance already started by the caller, else
    a cluster at ``address`` or ``sweep.address``, else a new local one with ``workers``
    trials at once, default the machine's CPUs) or ``"serial"`` (this process, one trial
    after another). ``log``: a function taking one line (e.g. ``print``), or None.
    """
    if backend not in ("ray", "serial"):
        raise SweepConfigError(f"backend: {backend!r} is not 'ray' or 'serial'")
    t0 = time.perf_counter()
    say = log or (lambda _msg: None)
    out = Path(out if out is not None else sweep.out)
    out.mkdir(parents=True, exist_ok=True)
    retry = sweep.retry_failed if retry_failed is None else retry_failed
    space = sweep.space
    (out / "sweep.json").write_text(json.dumps({
        "name": sweep.name, "search": space.describe(), "params": space.names, "objectives": sweep.objectives,
        **sweep.settings(), "cpus_per_trial": sweep.cpus_per_trial}, indent=1, default=str) + "\n")
    done = results.load_records(out)
    env = {"RTL4ML_CACHE": os.environ["RTL4ML_CACHE"]} if os.environ.get("RTL4ML_CACHE") else {}
    state = {"ran": 0}

    def finish(rec: dict) -> dict:
        rec = results.save_record(out, rec)
        done[rec["trial_id"]] = rec
        state["ran"] += 1
        acc = rec.get("accuracy")
        say(f"trial {rec['index']:>3} {rec['trial_id']} {rec['status']}"
            + (f": accuracy {100 * acc:.2f} %, {rec.get('luts_estimate')} LUT est."
               + (f", {rec['lut']} LUT" if rec.get("lut") is not None else "")
               + f", verify {rec.get('verify')}, {rec.get('seconds', {}).get('total', 0):.0f} s"
               if rec["status"] == "ok" and acc is not None else f" in {rec.get('stage')}: {rec.get('error')}"))
        return rec

    if space.adaptive:
        space.start(sweep.objectives)
        mine = sorted(done.values(), key=lambda r: r.get("index", 0))
        for r in mine:
            space.add_finished(r.get("config", {}), r)
        todo = max(0, space.n_trials - len(mine))
        specs = None
    else:
        specs, seen = [], set()
        for i, c in enumerate(space.configs()):
            tid = sweep.trial_id(c)
            if tid not in seen:
                seen.add(tid)
                specs.append({"trial_id": tid, "index": i, "config": c})
        pending = [s for s in specs if s["trial_id"] not in done
                   or (retry and done[s["trial_id"]].get("status") == "failed")]
        todo = len(pending)
    skipped = (len(specs) - todo) if specs is not None else len(done)
    say(f"sweep {sweep.name!r}: {todo} trial(s) to run, {skipped} already finished in {out}")

    if todo:
        if backend == "serial":
            settings = _materialize(worker_settings(sweep, pickled=False))
            if specs is not None:
                for s in pending:
                    finish(_trial_entry(s, settings, env))
            else:
                _run_adaptive_serial(sweep, done, todo, settings, env, finish)
        else:
            _run_ray(sweep, specs, pending if specs is not None else None, todo, done, env, finish,
                     address or sweep.address, workers or sweep.workers, say)

    if specs is not None:
        records = [dict(done[s["trial_id"]], index=s["index"]) for s in specs if s["trial_id"] in done]
    else:
        records = sorted(done.values(), key=lambda r: r.get("index", 0))
    params = space.names
    results.write_table(out / "results", records, params)
    front = results.pareto_front(records, sweep.objectives)
    results.write_table(out / "front", front, params)
    dirs = results.write_front(out, front)
    report = None
    if sweep.report and dirs and (state["ran"] or not (out / "front" / "report.html").exists()):
        try:
            s = _materialize(worker_settings(sweep, False))
            data = load_data(s["data"], s.get("data_fn"))
            report = results.write_report(out, dirs, data)
        except Exception as e:  # noqa: BLE001 - the report is a convenience; the table is the result
            say(f"the HTML report of the front could not be written: {type(e).__name__}: {e}")
    elif (out / "front" / "report.html").exists():
        report = out / "front" / "report.html"
    res = SweepResult(out, records, front, state["ran"], skipped, time.perf_counter() - t0, backend, report, dirs)
    say(f"{len(records)} trials ({len(res.failed)} failed), {len(front)} on the front; wrote {out / 'results.csv'}, "
        f"{out / 'front.csv'}" + (f", {report}" if report else ""))
    return res


def _ask_new(sweep, done, pending=()):
    """An Optuna trial whose configuration has no record yet (a repeat is told its old result)."""
    for _ in range(100):
        trial, config = sweep.space.ask()
        tid = sweep.trial_id(config)
        if tid in done:
            sweep.space.tell(trial, done[tid])
        elif tid not in pending:
            return trial, config, tid
        else:
            sweep.space.tell(trial, None)
    raise SweepConfigError("the Optuna sampler keeps proposing configurations already run: the space is exhausted")


def _run_adaptive_serial(sweep, done, todo, settings, env, finish) -> None:
    space = sweep.space
    index = max([r.get("index", -1) for r in done.values()], default=-1) + 1
    for _ in range(todo):
        trial, config, tid = _ask_new(sweep, done)
        spec = {"trial_id": tid, "index": index, "config": config}
        index += 1
        rec = finish(_trial_entry(spec, settings, env))
        space.tell(trial, rec)


def _run_ray(sweep, specs, pending, todo, done, env, finish, address, workers, say) -> None:
    try:
        import ray
    except ImportError:
        raise SweepConfigError("the Ray runner needs Ray: pip install 'rtl4ml[sweep]' (or run with backend='serial' "
                               "/ --serial)") from None
    started = False
    if not ray.is_initialized():
        t = time.perf_counter()
        if address:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        else:
            cpus = workers if workers else (os.cpu_count() or 1)
            ray.init(num_cpus=max(1, math.ceil(cpus * sweep.cpus_per_trial)), include_dashboard=False,
                     log_to_driver=False)
        started = True
        say(f"Ray {'cluster at ' + address if address else 'local instance'} started in "
            f"{time.perf_counter() - t:.1f} s, {ray.cluster_resources().get('CPU', 0):g} CPUs")
    remote = ray.remote(_trial_entry).options(num_cpus=sweep.cpus_per_trial, max_retries=0)
    settings = ray.put(worker_settings(sweep, pickled=True))
    inflight: dict = {}
    try:
        if pending is not None:
            for s in pending:
                inflight[remote.remote(s, settings, env)] = (s, None)
            while inflight:
                ready, _ = ray.wait(list(inflight), num_returns=1)
                for ref in ready:
                    s, _t = inflight.pop(ref)
                    finish(_get(ray, ref, s))
        else:
            space = sweep.space
            parallel = max(1, int(ray.cluster_resources().get("CPU", 1) // sweep.cpus_per_trial))
            index = max([r.get("index", -1) for r in done.values()], default=-1) + 1
            asked = 0
            while asked < todo or inflight:
                while asked < todo and len(inflight) < parallel:
                    trial, config, tid = _ask_new(sweep, done, {x["trial_id"] for x, _t in inflight.values()})
                    s = {"trial_id": tid, "index": index, "config": config}
                    index += 1
                    asked += 1
                    inflight[remote.remote(s, settings, env)] = (s, trial)
                ready, _ = ray.wait(list(inflight), num_returns=1)
                for ref in ready:
                    s, trial = inflight.pop(ref)
                    space.tell(trial, finish(_get(ray, ref, s)))
    except BaseException:
        for ref in inflight:
            ray.cancel(ref, force=True)
        raise
    finally:
        if started:
            ray.shutdown()


def _get(ray, ref, spec) -> dict:
    """A task's record; a worker that died (out of memory, killed) makes a failed record."""
    try:
        return ray.get(ref)
    except Exception as e:  # noqa: BLE001
        return _failed(spec, e, "ray")
