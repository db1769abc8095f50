"""Quantization-aware training with learnable per-weight and per-activation precision.

    import rtl4ml, rtl4ml.nn as qnn
    model = torch.nn.Sequential(qnn.QInput(16), qnn.QLinear(16, 64), qnn.QReLU(),
                                qnn.QLinear(64, 5))
    loss = task_loss + beta * qnn.ebops(model)      # differentiable resource term
    qnn.calibrate(model, x_sample)                  # fix integer bits before export
    design = rtl4ml.convert(model, clock_ns=2.5)    # types come from the model

Every weight and activation has its own learnable number of fractional bits (or one per
channel / layer); integer bits come from calibrated ranges (WRAP) or are learned through the
clip (SAT). Bits that reach zero prune the weight or activation, and the hardware drops it.
The evaluation forward pass in float64 equals the converted design bit for bit. See
``docs/tutorial.md``.
"""

from __future__ import annotations

try:
    import torch  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError("rtl4ml.nn needs torch: pip install torch==2.13.0 'rtl4ml[torch]'") from e

from .attention import QEinsum, QSelfAttention
from .calibrate import calibrate, check_calibrated, init_lazy, parameter_digest
from .conv import QAvgPool1d, QAvgPool2d, QConv1d, QConv2d, QMaxPool1d, QMaxPool2d
from .layers import QActivation, QInput, QLinear, QReLU
from .distill import distillation_loss
from .lutnet import GroupSum, LUTLayer, MLPLUTLayer, Thermometer, default_tau, fit_lutnet, lut_units
from .quantizer import ActivationQuantizer, QuantizerError, WeightQuantizer
from .tables import QSigmoid, QSoftmax, QTable, QTanh
from .resources import BetaScheduler, LayerCost, bit_parameters, bit_penalty, ebops, layer_costs, ordered_layers
from .pruning import live_neurons, neuron_penalty
from .sensitivity import fisher_diagonal, sensitivity_init
from .train import fit
from .utils import copy_float_weights, fold_batchnorm, from_float

__all__ = [
    "QInput", "QLinear", "QReLU", "QActivation",
    "QConv1d", "QConv2d", "QMaxPool1d", "QMaxPool2d", "QAvgPool1d", "QAvgPool2d",
    "QTable", "QSigmoid", "QTanh", "QSoftmax", "QEinsum", "QSelfAttention",
    "ActivationQuantizer", "WeightQuantizer", "QuantizerError",
    "ebops", "bit_penalty", "bit_parameters", "layer_costs", "LayerCost", "BetaScheduler", "ordered_layers",
    "calibrate", "check_calibrated", "parameter_digest",
    "fold_batchnorm", "from_float", "init_lazy", "fit", "copy_float_weights",
    "distillation_loss", "neuron_penalty", "live_neurons", "fisher_diagonal", "sensitivity_init",
    "Thermometer", "LUTLayer", "MLPLUTLayer", "GroupSum", "fit_lutnet", "lut_units", "default_tau",
]
