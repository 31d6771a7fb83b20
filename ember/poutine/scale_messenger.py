"""ScaleMessenger: multiply the log-densities of sites by a factor."""

from __future__ import annotations

import numbers

import torch

from ember.poutine.messenger import Messenger
from ember.util import is_poutine_validation_enabled


class ScaleMessenger(Messenger):
    """Multiply the log-density of every site inside by ``scale`` (positive).

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> model = lambda: ember.sample("x", dist.Normal(0.0, 1.0), obs=torch.tensor(0.0))
        >>> tr = ember.poutine.trace(ember.poutine.scale(model, scale=2.0)).get_trace()
        >>> tr.nodes["x"]["scale"], tr.log_prob_sum()
        (2.0, tensor(-1.8379))
    """

    def __init__(self, scale):
        super().__init__()
        if isinstance(scale, torch.Tensor):
            if is_poutine_validation_enabled() and not bool((scale > 0).all()):
                raise ValueError(
                    f"scale must be > 0, got {scale}. Hint: to drop sites use poutine.mask instead"
                )
        elif not isinstance(scale, numbers.Number) or isinstance(scale, bool):
            raise TypeError(f"scale must be a positive number or tensor, got {scale!r}")
        elif not scale > 0:
            raise ValueError(
                f"scale must be > 0, got {scale}. Hint: to drop sites use poutine.mask instead"
            )
        self.scale = scale

    def _process_message(self, msg) -> None:
        msg["scale"] = self.scale * msg["scale"]
