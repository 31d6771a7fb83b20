"""ExponentialFamily: torch's base class for exponential families, with ember's interface."""

from __future__ import annotations

import torch

from ember.distributions.torch_distribution import TorchDistributionMixin

__all__ = ["ExponentialFamily"]


class ExponentialFamily(torch.distributions.ExponentialFamily, TorchDistributionMixin):
    """Base class for distributions of the form
    ``p(x) = h(x) exp(<eta, T(x)> - F(eta))``.

    Subclasses give the natural parameters (``_natural_params``), the log normalizer
    ``F`` (``_log_normalizer``) and the carrier measure; torch then computes the entropy
    by the Bregman divergence identity. This class adds ember's distribution interface
    (``shape``, ``to_event``, ``mask``, calling to sample, ...).

    Example::

        >>> import math, torch
        >>> from torch.distributions import constraints
        >>> class Exp(ExponentialFamily):
        ...     arg_constraints = {"rate": constraints.positive}
        ...     support = constraints.positive
        ...     def __init__(self, rate):
        ...         self.rate = rate
        ...         super().__init__(rate.shape)
        ...     @property
        ...     def _natural_params(self):
        ...         return (-self.rate,)
        ...     def _log_normalizer(self, eta):
        ...         return -torch.log(-eta)
        ...     @property
        ...     def _mean_carrier_measure(self):
        ...         return 0
        ...     def log_prob(self, x):
        ...         return self.rate.log() - self.rate * x
        >>> Exp(torch.tensor(2.0)).entropy().detach()  # 1 - log(rate)
        tensor(0.3069)
    """
