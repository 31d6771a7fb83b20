"""SoftLaplace: a smooth, log-concave density with Laplace-like exponential tails."""

from __future__ import annotations

import math

import torch
from torch.distributions import constraints

from ember.distributions.family import BroadcastFamily
from ember.distributions.validation import enable_fast_validation

__all__ = ["SoftLaplace"]

_EMPTY = torch.Size()
_LOG_2_OVER_PI = math.log(2 / math.pi)


@enable_fast_validation
class SoftLaplace(BroadcastFamily):
    """Density ``2 / (pi * scale) / (exp(z) + exp(-z))`` with ``z = (x - loc) / scale``.

    The tails decay like ``exp(-|z|)`` (as the Laplace's) but the log-density is smooth
    everywhere, which suits Laplace approximations. The CDF is
    ``(2 / pi) * atan(exp(z))``; samples are drawn by inverting it (reparameterized).

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.SoftLaplace(torch.tensor(0.0), torch.tensor(2.0))
        >>> d.log_prob(torch.tensor(0.0))
        tensor(-1.8379)
        >>> d.cdf(torch.tensor(0.0))
        tensor(0.5000)
        >>> d.variance
        tensor(9.8696)
    """

    param_names = ("loc", "scale")
    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.real
    has_rsample = True

    def __init__(self, loc, scale, *, validate_args=None):
        self.init_params(validate_args, loc, scale)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        z = (value - self.loc) / self.scale
        return _LOG_2_OVER_PI - self.scale.log() - torch.logaddexp(z, -z)

    def rsample(self, sample_shape=_EMPTY):
        u = torch.rand(self.shape(sample_shape), dtype=self.loc.dtype, device=self.loc.device)
        return self.icdf(u)

    def cdf(self, value):
        if self._validate_args:
            self._validate_sample(value)
        z = (value - self.loc) / self.scale
        return torch.atan(torch.exp(z)) * (2 / math.pi)

    def icdf(self, value):
        return self.loc + self.scale * torch.log(torch.tan(value * (math.pi / 2)))

    @property
    def mean(self):
        return self.loc

    @property
    def variance(self):
        return (self.scale * (math.pi / 2)) ** 2
