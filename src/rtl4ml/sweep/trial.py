"""One trial: train -> convert -> check -> verify -> estimate, returning a record (a dict).

:func:`run_trial` never raises for a problem of the trial itself: an exception in any stage
makes a record with ``status: "failed"``, the stage, the error message and the end of the
traceback, so one bad point never stops a sweep. rtl4ml's warnings (quantization, timing)
go into the record's ``warnings``; other libraries' warnings are silenced. It runs wherever the runner puts it (this
process, or a Ray worker), and takes and returns plain picklable data.
"""

from __future__ import annotations

import os
import platform
import time
import traceback
import warnings

import numpy as np

from .config import CONVERT_KEYS

#: Data sets already loaded in this process (a Ray worker runs many trials).
_DATA_CACHE: dict[str, dict] = {}


def load_data(spec, loader=None) -> dict:
    """The data dict of a sweep's ``data`` (cached per process)."""
    import json
    key = json.dumps(spec, sort_keys=True, default=str)
    if key in _DATA_CACHE:
        return _DATA_CACHE[key]
    from . import jets
    if callable(loader):
        data = loader()
    elif spec == "jets_sample":
        data = jets.jets_sample()
    elif isinstance(spec, dict):
        data = jets.jets_file(spec["path"], spec.get("train"), spec.get("test"))
    else:
        raise ValueError(f"data: cannot load {spec!r}")
    if not isinstance(data, dict):
        raise TypeError(f"data: the data function returned a {type(data).__name__}, not a dict with "
                        "x_train, y_train, x_test, y_test")
    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in data]
    if missing:
        raise KeyError(f"data: the data dict has no {missing} (it has {sorted(data)})")
    data = {k: np.asarray(v) for k, v in data.items()}
    _DATA_CACHE[key] = data
    return data


def accuracy(out, y) -> float | None:
    """Classification accuracy: argmax of the outputs (or output > 0 for one column) against ``y``."""
    out = np.asarray(out, dtype=np.float64)
    y = np.asarray(y)
    if not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.equal(np.mod(y, 1), 0)):
            return None
        y = y.astype(np.int64)
    out = out.reshape(len(out), -1)
    pred = (out[:, 0] > 0).astype(np.int64) if out.shape[1] == 1 else out.argmax(1)
    return float((pred == y.reshape(len(y))).mean())


def _has_qat_layers(model) -> bool:
    from torch import nn
    try:
        from ..nn import ActivationQuantizer
    except ImportError:
        return False
    return isinstance(model, nn.Module) and any(isinstance(m, ActivationQuantizer) for m in model.modules())


def _convert(model, options: dict, x_train, name: str, record: dict):
    import rtl4ml
    from ..nn.quantizer import QuantizerError
    from ..torch_common import ConversionError
    try:
        return rtl4ml.convert(model, name=name, **options)
    except (QuantizerError, ConversionError) as e:
        if "calibrate(" not in str(e) or not _has_qat_layers(model):
            raise
    from ..nn import calibrate
    calibrate(model, x_train)
    record["calibrated_by_sweep"] = True
    return rtl4ml.convert(model, name=name, **options)


def run_trial(spec: dict, settings: dict) -> dict:
    """Run one trial. ``spec``: ``trial_id``, ``index``, ``config``. ``settings``: what
    :func:`rtl4ml.sweep.runner.worker_settings` makes of the sweep (trainer, data, verify,
    synth, family, cpus)."""
    t_start = time.perf_counter()
    config = dict(spec["config"])
    record = {"trial_id": spec["trial_id"], "index": spec["index"], "status": "running", "stage": "setup",
              "config": config, "seed": config.get("seed", 0), "host": platform.node(), "pid": os.getpid(),
              "seconds": {}}
    stage_t = time.perf_counter()

    def stage(name: str) -> None:
        nonlocal stage_t
        now = time.perf_counter()
        record["seconds"][record["stage"]] = round(now - stage_t, 3)
        record["stage"], stage_t = name, now

    threads = None
    caught = warnings.catch_warnings(record=True)
    seen = caught.__enter__()
    warnings.simplefilter("always")
    try:
        import torch
        threads = torch.get_num_threads()
        torch.set_num_threads(max(1, int(settings.get("cpus", 1))))
        torch.set_flush_denormal(True)
        seed = int(config.get("seed", 0)) if isinstance(config.get("seed", 0), (int, float)) else 0
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)

        data = load_data(settings["data"], settings.get("data_fn"))
        stage("train")
        train = settings.get("train_fn")
        if train is None:
            from .jets import jet_tagger as train
        model = train(config, data) if settings.get("train_args", 2) == 2 else train(config)
        if model is None:
            raise TypeError("the trainer returned None instead of a model")

        stage("convert")
        options = {k: config[k] for k in CONVERT_KEYS if k in config}
        name = f"trial_{spec['trial_id']}"
        design = _convert(model, options, data["x_train"], name, record)
        x_test, y_test = data["x_test"], data["y_test"]
        got = design.predict(x_test)
        got = got[0] if isinstance(got, tuple) else got
        record["accuracy"] = accuracy(got, y_test)
        if _has_qat_layers(model) or isinstance(model, torch.nn.Module):
            from ..frontends.torch import run_float
            ref = run_float(model, [x_test])
            ref = ref[0] if isinstance(ref, (tuple, list)) else ref
            ref = ref.detach().numpy() if hasattr(ref, "detach") else np.asarray(ref)
            record["float_accuracy"] = accuracy(ref, y_test)
            record["emulator_exact"] = bool(np.array_equal(ref, got))
        if _has_qat_layers(model):
            from .. import nn as qnn
            with torch.no_grad():
                record["ebops"] = float(qnn.ebops(model))
        record["verilog_bytes"] = len(design.verilog)
        import hashlib
        record["design_hash"] = hashlib.sha256(design.verilog.encode()).hexdigest()[:16]

        stage("verify")
        verify = settings.get("verify", True)
        if verify:
            n = len(x_test) if verify is True else min(int(verify), len(x_test))
            r = design.verify(x_test[:n], jobs=max(1, int(settings.get("cpus", 1))))
            record["verify"] = "ok" if r.ok else "mismatch"
            record["verify_samples"] = r.n_samples
            if not r.ok:
                record["verify_message"] = str(r)
        else:
            record["verify"] = "skipped"
            record["verify_samples"] = 0

        stage("estimate")
        est = design.estimate(synth=False)
        for k in ("adders", "adder_bits", "adder_depth", "register_bits", "latency_cycles", "clock_ns", "latency_ns",
                  "critical_path_ns", "luts_estimate", "multipliers"):
            record[k] = getattr(est, k)
        if settings.get("synth"):
            stage("synth")
            from ..estimate.yosys import synthesize
            r = synthesize(design.verilog, design.name, settings.get("family", "xcup"))
            record.update(lut=r.lut, ff=r.ff, carry=r.carry, dsp=r.dsp, bram=r.bram, srl=r.srl,
                          logic_depth=r.logic_depth, synth_seconds=r.seconds, synth_cached=r.cached)
        stage("done")
        record["design"] = {"name": design.name, "json": design.to_json(), "verilog": design.verilog}
        record["status"] = "ok"
        del record["stage"]
    except BaseException as e:  # noqa: BLE001 - a trial's failure is data
        if isinstance(e, KeyboardInterrupt):
            raise
        stage(record["stage"])
        record["status"] = "failed"
        record["error"] = f"{type(e).__name__}: {e}"
        record["traceback"] = "".join(traceback.format_exception(type(e), e, e.__traceback__))[-4000:]
    finally:
        caught.__exit__(None, None, None)
        if threads is not None:
            import torch
            torch.set_num_threads(threads)
    from ..fidelity import Rtl4mlWarning
    msgs = list(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in seen
                              if issubclass(w.category, Rtl4mlWarning)))
    if msgs:
        record["warnings"] = msgs[:20]
    record["seconds"]["total"] = round(time.perf_counter() - t_start, 3)
    return record
