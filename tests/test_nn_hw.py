"""rtl4ml.nn designs in RTL: Verilator proves every output bit equal to the model's forward pass."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import rtl4ml  # noqa: E402
import rtl4ml.nn as qnn  # noqa: E402

from .test_nn_export import CASES, forward64, hard_inputs, mlp, randomize  # noqa: E402


@pytest.mark.hw
@pytest.mark.parametrize("case", [0, 2, 3])
def test_random_width_qat_model_rtl_is_bit_exact(case):
    rng = np.random.default_rng(40 + case)
    torch.manual_seed(case)
    model = randomize(mlp(**CASES[case]), rng)
    qnn.calibrate(model, rng.normal(0, 1.5, (2000, 6)))
    design = rtl4ml.convert(model, clock_ns=2.0)
    x = hard_inputs(design, rng, 4000, scale=3.0)
    ref = forward64(model, x)
    r = design.verify(x)
    assert r.ok, str(r)
    np.testing.assert_array_equal(r.outputs, ref)
