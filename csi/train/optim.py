"""The training optimizer, from the ``optimizer`` section of hparams.yaml.

    optimizer: {name: adamw}                                   # the default (CoverHunter's AdamW)
    optimizer: {name: adam, lookahead: {k: 5, alpha: 0.5}}     # Adam wrapped in Lookahead

``learning_rate``, ``adam_b1``/``adam_b2`` and ``weight_decay`` stay where they are (for
``adam`` the weight decay is the L2 penalty of torch.optim.Adam). Lookahead (Zhang, Lucas,
Hinton, Ba 2019, "Lookahead Optimizer: k steps forward, 1 step back") keeps slow weights φ;
every ``k`` steps of the inner optimizer ("fast" weights θ) it sets φ ← φ + α(θ − φ) and
θ ← φ. The inner optimizer's ``param_groups`` are shared, so the trainer's learning-rate
schedule, gradient clipping and GradScaler see it as usual; its state dict holds the inner
state, the slow weights and the step count (resumable).
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import torch

from csi.registry import ConfigError

OPTIMIZERS = ("adamw", "adam")


class Lookahead(torch.optim.Optimizer):
    def __init__(self, inner: torch.optim.Optimizer, k: int = 5, alpha: float = 0.5):
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ConfigError(f"optimizer: lookahead.k must be an integer >= 1, got {k!r}")
        if not 0.0 < float(alpha) <= 1.0:
            raise ConfigError(f"optimizer: lookahead.alpha must be in (0, 1], got {alpha!r}")
        self.inner, self.k, self.alpha = inner, k, float(alpha)
        self.param_groups = inner.param_groups
        self.defaults = inner.defaults
        self.state = inner.state
        self.lookahead_steps = 0
        self.slow = [[p.detach().clone() for p in g["params"]] for g in self.param_groups]
        self._optimizer_step_pre_hooks = {}
        self._optimizer_step_post_hooks = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.inner.zero_grad(set_to_none=set_to_none)

    @torch.no_grad()
    def step(self, closure=None):
        loss = self.inner.step(closure)
        self.lookahead_steps += 1
        if self.lookahead_steps % self.k == 0:
            for group, slow in zip(self.param_groups, self.slow):
                for p, s in zip(group["params"], slow):
                    s.add_(p.detach() - s, alpha=self.alpha)
                    p.copy_(s)
        return loss

    def state_dict(self) -> dict[str, Any]:
        return {"inner": self.inner.state_dict(), "slow": [[s.clone() for s in g] for g in self.slow],
                "lookahead_steps": self.lookahead_steps, "k": self.k, "alpha": self.alpha}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state["inner"])
        self.param_groups = self.inner.param_groups
        self.state = self.inner.state
        for group, saved in zip(self.slow, state["slow"]):
            for s, v in zip(group, saved):
                s.copy_(v)
        self.lookahead_steps = int(state["lookahead_steps"])

    def __repr__(self) -> str:
        return f"Lookahead(k={self.k}, alpha={self.alpha}, inner={self.inner!r})"


def build_optimizer(params: Iterable[torch.nn.Parameter], section: Mapping[str, Any] | None, lr: float,
                    betas: tuple[float, float], weight_decay: float) -> torch.optim.Optimizer:
    """The optimizer of ``section`` (None: AdamW, the default)."""
    section = dict(section or {"name": "adamw"})
    name = section.pop("name", "adamw")
    lookahead = section.pop("lookahead", None)
    if section:
        raise ConfigError(f"optimizer: unknown key(s) {', '.join(sorted(section))}; accepted: name, lookahead")
    if name not in OPTIMIZERS:
        raise ConfigError(f"optimizer: name must be one of {', '.join(OPTIMIZERS)}, got {name!r}")
    cls = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
    inner = cls(params, lr=lr, betas=betas, weight_decay=weight_decay)
    if lookahead is None:
        return inner
    if not isinstance(lookahead, Mapping) or set(lookahead) - {"k", "alpha"}:
        raise ConfigError(f"optimizer: lookahead must be a mapping with k and alpha, got {lookahead!r}")
    return Lookahead(inner, **dict(lookahead))
