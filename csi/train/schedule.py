"""Learning-rate schedule of CoverHunter: optional linear warmup, then exponential decay
by ``lr_decay`` every ``decay_every`` steps, never below ``min_lr``. Closed form in the
step, so a resumed run continues exactly."""
from __future__ import annotations


def learning_rate(step: int, base_lr: float, lr_decay: float, min_lr: float, decay_every: int = 1000,
                  warmup_steps: int = 0) -> float:
    if warmup_steps and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    decays = (step - warmup_steps) // decay_every
    return max(min_lr, base_lr * lr_decay ** decays)
