"""Callback protocol shared by the fitting loops (`fit_map`, `fit_variational`)."""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["Callback", "StepInfo"]


@dataclasses.dataclass(frozen=True)
class StepInfo:
    """What a fitting loop reports after each optimizer step.

    Attributes:
      step: global step after this update (1-based).
      loss: objective per example in nats (negative MAP objective / N, or negative
        ELBO / N).
      nll: mean negative log-likelihood per example in nats (expected, for VI).
      grad_norm: global gradient norm before clipping.
      learning_rate: learning rate used for this step.
      seconds: wall time since the fit started.
      extra: loop-specific values (e.g. `kl` per example for VI).
    """

    step: int
    loss: float
    nll: float
    grad_norm: float
    learning_rate: float
    seconds: float
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


class Callback:
    """Base class: override the hooks you need. Returning True from a hook stops the fit."""

    def on_step(self, info: StepInfo) -> bool | None:
        """Called after every optimizer step."""
        return None

    def on_evaluation(self, step: int, metrics: dict[str, Any]) -> bool | None:
        """Called after each periodic evaluation with the metrics of `eval_fn`."""
        return None
