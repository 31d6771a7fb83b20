"""InverseGamma: the law of ``1 / X`` for ``X ~ Gamma(concentration, rate)``."""

from __future__ import annotations

import numbers
from typing import Union

import torch
from torch.distributions import constraints
from torch.distributions.transforms import PowerTransform
from torch.distributions.utils import broadcast_all

from ember.distributions.torch import Gamma, TransformedDistribution, _settle_flag
from ember.distributions.torch_distribution import check_parameters

__all__ = ["InverseGamma"]


class InverseGamma(TransformedDistribution):
    """Inverse-gamma distribution: ``Y = 1 / X`` with ``X ~ Gamma(concentration, rate)``.

    Its density is ``b^a / G(a) * y^(-a-1) * exp(-b / y)`` for ``y > 0``, with
    ``a = concentration`` and ``b = rate``. Samples are reparameterized.

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.InverseGamma(torch.tensor(3.0), torch.tensor(4.0))
        >>> d.mean, d.variance
        (tensor(2.), tensor(4.))
        >>> d.log_prob(torch.tensor(1.0))
        tensor(-0.5343)
        >>> d.rsample((5,)).shape
        torch.Size([5])
    """

    arg_constraints = {"concentration": constraints.positive, "rate": constraints.positive}
    support = constraints.positive
    has_rsample = True

    def __init__(
        self,
        concentration: Union[numbers.Number, torch.Tensor],
        rate: Union[numbers.Number, torch.Tensor],
        validate_args=None,
    ):
        concentration, rate = broadcast_all(concentration, rate)
        base = Gamma(concentration, rate, validate_args=False)  # checked once, below
        inverse = PowerTransform(-torch.ones((), dtype=concentration.dtype, device=rate.device))
        super().__init__(base, inverse, validate_args=False)
        _settle_flag(self, validate_args)
        if self._validate_args:
            check_parameters(self)  # the error names InverseGamma's own parameters

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(InverseGamma, _instance)
        return super().expand(batch_shape, _instance=new)

    @property
    def concentration(self) -> torch.Tensor:
        return self.base_dist.concentration

    @property
    def rate(self) -> torch.Tensor:
        return self.base_dist.rate

    @property
    def mean(self) -> torch.Tensor:
        """``rate / (concentration - 1)``, infinite where ``concentration <= 1``."""
        a, b = self.concentration, self.rate
        return torch.where(a > 1, b / (a - 1), b.new_full((), float("inf")))

    @property
    def variance(self) -> torch.Tensor:
        """``rate^2 / ((a - 1)^2 (a - 2))``, infinite where ``concentration <= 2``."""
        a, b = self.concentration, self.rate
        finite = b.pow(2) / ((a - 1).pow(2) * (a - 2))
        return torch.where(a > 2, finite, b.new_full((), float("inf")))

    @property
    def mode(self) -> torch.Tensor:
        return self.rate / (self.concentration + 1)

    def entropy(self) -> torch.Tensor:
        a, b = self.concentration, self.rate
        return a + b.log() + torch.lgamma(a) - (1 + a) * torch.digamma(a)
