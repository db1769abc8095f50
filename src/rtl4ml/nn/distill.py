"""Knowledge distillation: a quantized student learns the float teacher's soft outputs.

A low-precision model trained on hard labels alone throws away what the float model knows
about how alike the classes are (a W jet that looks like a Z); the teacher's softened
probabilities carry it. The loss is Hinton et al.'s mix of the label cross entropy and the
temperature-scaled KL divergence to the teacher, with the ``T**2`` factor that keeps the soft
term's gradients on the scale of the hard one's as ``T`` changes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .quantizer import QuantizerError


def distillation_loss(logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor, *,
                      alpha: float = 0.5, temperature: float = 2.0) -> torch.Tensor:
    """``(1 - alpha) * CE(logits, target) + alpha * T**2 * KL(softmax(teacher / T) || softmax(logits / T))``.

    ``alpha = 0`` is plain cross entropy, ``alpha = 1`` learns from the teacher alone.
    """
    if not 0.0 <= alpha <= 1.0:
        raise QuantizerError(f"distillation alpha must be in [0, 1], got {alpha}")
    if temperature <= 0:
        raise QuantizerError(f"distillation temperature must be positive, got {temperature}")
    if logits.shape != teacher_logits.shape:
        raise QuantizerError(f"student logits {tuple(logits.shape)} and teacher logits "
                             f"{tuple(teacher_logits.shape)} differ in shape")
    hard = F.cross_entropy(logits, target)
    if alpha == 0.0:
        return hard
    t = float(temperature)
    soft = F.kl_div(F.log_softmax(logits / t, dim=-1), F.log_softmax(teacher_logits.detach() / t, dim=-1),
                    reduction="batchmean", log_target=True)
    return (1.0 - alpha) * hard + alpha * t * t * soft
