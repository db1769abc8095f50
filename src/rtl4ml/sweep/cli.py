"""``rtl4ml sweep config.yaml``: the command line of :mod:`rtl4ml.sweep`."""

from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path

EXAMPLES = [
    ("write the documented jet-tagger example config (12 trials) to sweep.yaml",
     "rtl4ml sweep --write-example sweep.yaml"),
    ("list its trials and which are finished, without running any", "rtl4ml sweep sweep.yaml --dry-run"),
]
DESCRIPTION = """Design-space exploration: every trial of the config trains, converts, verifies the RTL on the
held-out set and estimates resources; trials run as Ray tasks, failures are recorded, a run
started again skips finished trials, and the Pareto front is written at the end (docs/sweep.md).

    rtl4ml sweep sweep.yaml --workers 2        # a local Ray instance, 2 trials at once
    rtl4ml sweep sweep.yaml --address auto     # an existing Ray cluster
    rtl4ml sweep sweep.yaml --serial           # no Ray
"""


def example_config() -> str:
    """The documented example config (``examples/sweep_jets.yaml``)."""
    return resources.files(__package__).joinpath("sweep_jets.yaml").read_text()


def add_parser(sub) -> argparse.ArgumentParser:
    s = sub.add_parser("sweep", help="design-space exploration: train, convert, verify and estimate many "
                       "configurations on Ray, with a Pareto front", description=DESCRIPTION)
    s.add_argument("config", nargs="?", help="the sweep config (YAML; docs/sweep.md)")
    s.add_argument("-o", "--out", help="results directory (default: the config's out, else ./sweep-results)")
    s.add_argument("--address", help="address of a running Ray cluster ('auto', 'ray://host:10001'); "
                   "default: a new local Ray instance")
    s.add_argument("--workers", type=int, help="trials at once on a new local Ray instance (default: the CPUs)")
    s.add_argument("--serial", action="store_true", help="no Ray: one trial after another in this process")
    s.add_argument("--retry-failed", action="store_true", help="run the trials that failed before again")
    s.add_argument("--dry-run", action="store_true", help="list the trials and which are finished; run nothing")
    s.add_argument("--write-example", metavar="FILE", help="write the documented jet-tagger example config to FILE")
    s.set_defaults(func=cmd_sweep)
    return s


def cmd_sweep(args) -> int:
    from .config import load_config
    from .space import SweepConfigError

    if args.write_example:
        p = Path(args.write_example)
        if p.exists():
            raise SweepConfigError(f"{p} exists; not overwriting it")
        p.write_text(example_config())
        print(f"wrote {p} (run it with: rtl4ml sweep {p})")
        return 0
    if not args.config:
        raise SweepConfigError("give a sweep config file (rtl4ml sweep config.yaml), or --write-example FILE")
    if args.workers is not None and args.workers < 1:
        raise SweepConfigError(f"--workers must be a positive integer, got {args.workers}")
    sweep = load_config(args.config, out=args.out, address=args.address, workers=args.workers)
    if args.dry_run:
        return _dry_run(sweep)
    from .runner import run_sweep
    res = run_sweep(sweep, backend="serial" if args.serial else "ray",
                    retry_failed=True if args.retry_failed else None, log=lambda m: print(m, flush=True))
    print()
    print("Pareto front (" + ", ".join(f"{k} {'up' if d == 'max' else 'down'}" for k, d in sweep.objectives.items())
          + "):")
    print(res.table() if res.front else "  (empty: no trial finished with every objective measured)")
    for r in res.failed:
        print(f"failed: trial {r['index']} {r['trial_id']} in {r.get('stage')}: {r.get('error')}")
    ok = [r for r in res.records if r.get("status") == "ok"]
    return 0 if ok or not res.records else 1


def _dry_run(sweep) -> int:
    from . import results
    out = Path(sweep.out)
    done = results.load_records(out) if out.exists() else {}
    space = sweep.space
    if space.adaptive:
        print(f"{space.kind} search: {space.n_trials} trials, {len(done)} finished in {out}; configurations are "
              "chosen as results come in")
        return 0
    configs = space.configs()
    print(f"{len(configs)} trials ({space.kind}), results in {out}:")
    for i, c in enumerate(configs):
        tid = sweep.trial_id(c)
        state = done[tid]["status"] if tid in done else "to run"
        print(f"  {i:>3} {tid} {state:<7} " + ", ".join(f"{k}={v}" for k, v in c.items()))
    return 0
