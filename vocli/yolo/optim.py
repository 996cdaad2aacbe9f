"""Optimiser pieces for YOLO training: parameter groups, LR schedules, warm-up and weight EMA."""

from __future__ import annotations

import copy
import math
from typing import Callable

import numpy as np
import torch
from torch import nn

NOMINAL_BATCH = 64
SCHEDULES = ("cosine", "step")
OPTIMIZERS = ("sgd", "adam")


def default_accumulate(batch_size: int) -> int:
    """Gradient accumulation steps so one optimiser step sees about 64 images."""
    return max(1, round(NOMINAL_BATCH / max(1, batch_size)))


def build_optimizer(model: nn.Module, lr: float, momentum: float, weight_decay: float,
                    batch_size: int, accumulate: int, kind: str = "sgd") -> torch.optim.Optimizer:
    """Nesterov SGD (or ``kind="adam"``: AdamW with beta1 = ``momentum``) with three groups:
    conv weights (decayed), BN weights and biases (not decayed).

    Weight decay is scaled by ``batch_size * accumulate / 64`` so it acts per nominal batch.
    Group order is fixed (0: BN weights, 1: decayed weights, 2: biases); warm-up relies on it.
    """
    bn_weights, weights, biases = [], [], []
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if name == "bias":
                biases.append(param)
            elif isinstance(module, nn.modules.batchnorm._BatchNorm):
                bn_weights.append(param)
            else:
                weights.append(param)
    decay = weight_decay * batch_size * accumulate / NOMINAL_BATCH
    groups = [
        {"params": bn_weights, "weight_decay": 0.0},
        {"params": weights, "weight_decay": decay},
        {"params": biases, "weight_decay": 0.0},
    ]
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=True)
    if kind == "adam":
        return torch.optim.AdamW(groups, lr=lr, betas=(momentum, 0.999))
    raise ValueError(f"unknown optimizer {kind!r}; use sgd or adam")


def lr_factor(schedule: str, epochs: int, final_ratio: float) -> Callable[[int], float]:
    """Epoch -> LR multiplier. cosine: 1 -> ``final_ratio`` on a half cosine; step: x0.1 at 80%, x0.01 at 90%."""
    if schedule == "cosine":
        return lambda e: ((1 - math.cos(e * math.pi / max(1, epochs))) / 2) * (final_ratio - 1) + 1
    if schedule == "step":
        return lambda e: 1.0 if e < 0.8 * epochs else (0.1 if e < 0.9 * epochs else 0.01)
    raise ValueError(f"unknown LR schedule {schedule!r}; use cosine or step")


def apply_warmup(optimizer: torch.optim.Optimizer, iteration: int, warmup_iters: int, epoch_factor: float,
                 base_lr: float, momentum: float, warmup_momentum: float, warmup_bias_lr: float) -> None:
    """Linear warm-up for ``iteration < warmup_iters``: LR ramps from 0 (SGD biases: from
    ``warmup_bias_lr`` down) to the scheduled LR, momentum from ``warmup_momentum`` up.

    The high bias start is for SGD only: Adam steps every parameter by about its LR whatever
    the gradient, so an Adam bias LR of 0.1 would move each bias (the objectness and class
    priors included) by about 0.1 per iteration and wreck them within a few steps.
    """
    x = [0, warmup_iters]
    for i, group in enumerate(optimizer.param_groups):
        start = warmup_bias_lr if i == 2 and "betas" not in group else 0.0
        group["lr"] = float(np.interp(iteration, x, [start, base_lr * epoch_factor]))
        beta = float(np.interp(iteration, x, [warmup_momentum, momentum]))
        if "betas" in group:
            group["betas"] = (beta, group["betas"][1])
        else:
            group["momentum"] = beta


class ModelEMA:
    """Exponential moving average of a model's weights (floating tensors) and buffers.

    Decay ramps up as ``decay * (1 - exp(-updates / tau))`` so early, poor weights fade fast.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, tau: float = 2000.0, updates: int = 0):
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = decay
        self.tau = tau
        self.updates = updates

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / self.tau))
        source = model.state_dict()
        mine = self.module.state_dict()
        floats = [k for k, v in mine.items() if v.dtype.is_floating_point]
        averaged = [mine[k] for k in floats]
        torch._foreach_mul_(averaged, d)  # one fused pass instead of a loop of small ops
        torch._foreach_add_(averaged, [source[k].detach() for k in floats], alpha=1 - d)
        for key, value in mine.items():
            if not value.dtype.is_floating_point:
                value.copy_(source[key])
