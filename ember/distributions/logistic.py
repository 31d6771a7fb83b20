"""Logistic and SkewLogistic (the type I generalized logistic) distributions."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.distributions import constraints

from ember.distributions.family import BroadcastFamily
from ember.distributions.validation import enable_fast_validation

__all__ = ["Logistic", "SkewLogistic"]

_EMPTY = torch.Size()


def _uniform(d, sample_shape):
    return torch.rand(d.shape(sample_shape), dtype=d.loc.dtype, device=d.loc.device)


@enable_fast_validation
class Logistic(BroadcastFamily):
    """Logistic distribution: CDF ``sigmoid((x - loc) / scale)``.

    Smooth, log-concave, with exponential tails on both sides. Samples invert the CDF
    (reparameterized).

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.Logistic(1.0, 2.0)
        >>> d.log_prob(torch.tensor(1.0))
        tensor(-2.0794)
        >>> d.cdf(d.icdf(torch.tensor(0.25)))
        tensor(0.2500)
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
        # log(e^-z / (1 + e^-z)^2) = 2 log sigmoid(z) - z
        return 2 * F.logsigmoid(z) - z - self.scale.log()

    def rsample(self, sample_shape=_EMPTY):
        return self.icdf(_uniform(self, sample_shape))

    def cdf(self, value):
        if self._validate_args:
            self._validate_sample(value)
        return torch.sigmoid((value - self.loc) / self.scale)

    def icdf(self, value):
        return self.loc + self.scale * torch.logit(value)

    @property
    def mean(self):
        return self.loc

    @property
    def variance(self):
        return self.scale**2 * (math.pi**2 / 3)

    def entropy(self):
        return self.scale.log() + 2


@enable_fast_validation
class SkewLogistic(BroadcastFamily):
    """Type I generalized logistic distribution: CDF ``sigmoid(z) ** asymmetry`` with
    ``z = (x - loc) / scale``.

    The density of ``z`` is ``asymmetry * exp(-z) / (1 + exp(-z)) ** (asymmetry + 1)``;
    ``asymmetry > 1`` skews right, ``< 1`` left, and ``1`` is :class:`Logistic`.
    Samples invert the CDF (reparameterized).

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.SkewLogistic(0.0, 1.0, asymmetry=2.0)
        >>> d.log_prob(torch.tensor(0.0))
        tensor(-1.3863)
        >>> d.cdf(torch.tensor(0.0))
        tensor(0.2500)
    """

    param_names = ("loc", "scale", "asymmetry")
    arg_constraints = {
        "loc": constraints.real,
        "scale": constraints.positive,
        "asymmetry": constraints.positive,
    }
    support = constraints.real
    has_rsample = True

    def __init__(self, loc, scale, asymmetry=1.0, *, validate_args=None):
        self.init_params(validate_args, loc, scale, asymmetry)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        z = (value - self.loc) / self.scale
        a = self.asymmetry
        return a.log() - z + (a + 1) * F.logsigmoid(z) - self.scale.log()

    def rsample(self, sample_shape=_EMPTY):
        return self.icdf(_uniform(self, sample_shape))

    def cdf(self, value):
        if self._validate_args:
            self._validate_sample(value)
        return torch.sigmoid((value - self.loc) / self.scale) ** self.asymmetry

    def icdf(self, value):
        return self.loc + self.scale * torch.logit(value ** self.asymmetry.reciprocal())

    @property
    def mean(self):
        # E[z] = digamma(a) - digamma(1) for the type I generalized logistic.
        a = self.asymmetry
        return self.loc + self.scale * (torch.digamma(a) - torch.digamma(torch.ones_like(a)))

    @property
    def variance(self):
        a = self.asymmetry
        one = torch.ones_like(a)
        return self.scale**2 * (torch.polygamma(1, a) + torch.polygamma(1, one))
