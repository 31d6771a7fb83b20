"""Binomial and BetaBinomial extended to every integer value and any integer
``total_count``: outside ``[0, total_count]`` the mass is zero (``log_prob = -inf``)
instead of an error."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ember.distributions import constraints
from ember.distributions.conjugate import BetaBinomial
from ember.distributions.torch import Binomial
from ember.distributions.util import log_binomial

__all__ = ["ExtendedBetaBinomial", "ExtendedBinomial"]

_EMPTY = torch.Size()


def _inside(value, total_count):
    """``(outside, n, k)``: where ``value`` is outside ``[0, total_count]``, and the count
    and value replaced by safe in-range numbers there."""
    outside = (value < 0) | (value > total_count)
    n = total_count.clamp(min=0)
    k = torch.minimum(value.masked_fill(outside, 0), n)
    return outside, n, k


class ExtendedBinomial(Binomial):
    """:class:`~ember.distributions.Binomial` whose support is all integers.

    ``total_count`` may be any integer (a negative count gives zero mass everywhere);
    values outside ``[0, total_count]`` have ``log_prob = -inf``. Useful where counts
    are computed from other latent counts and may be inconsistent. Samples are drawn
    as from the Binomial.

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.ExtendedBinomial(torch.tensor(3.0), probs=torch.tensor(0.5))
        >>> d.log_prob(torch.tensor([-1.0, 0.0, 3.0, 4.0]))
        tensor([   -inf, -2.0794, -2.0794,    -inf])
    """

    arg_constraints = {
        "total_count": constraints.integer,
        "probs": constraints.unit_interval,
        "logits": constraints.real,
    }
    support = constraints.integer

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        outside, n, k = _inside(value, self.total_count)
        logits = self.logits
        lp = (
            log_binomial(n, k, tol=self.approx_log_prob_tol)
            + torch.where(k == 0, 0.0, k * F.logsigmoid(logits))
            + torch.where(n == k, 0.0, (n - k) * F.logsigmoid(-logits))
        )
        return lp.masked_fill(outside, -math.inf)


class ExtendedBetaBinomial(BetaBinomial):
    """:class:`~ember.distributions.BetaBinomial` whose support is all integers.

    As :class:`ExtendedBinomial`: any integer ``total_count``, and ``log_prob = -inf``
    outside ``[0, total_count]``.

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.ExtendedBetaBinomial(1.0, 1.0, total_count=torch.tensor(2.0))
        >>> d.log_prob(torch.tensor([-1.0, 1.0, 5.0])).exp()
        tensor([0.0000, 0.3333, 0.0000])
    """

    arg_constraints = {
        "concentration1": constraints.positive,
        "concentration0": constraints.positive,
        "total_count": constraints.integer,
    }
    support = constraints.integer

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        outside, n, k = _inside(value, self.total_count)
        a, b = self.concentration1, self.concentration0
        lp = (
            log_binomial(n, k)
            + torch.lgamma(k + a)
            + torch.lgamma(n - k + b)
            - torch.lgamma(n + a + b)
            - (torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(a + b))
        )
        return lp.masked_fill(outside, -math.inf)

    def sample(self, sample_shape=_EMPTY):
        with torch.no_grad():
            probs = self._beta.sample(sample_shape)
            n = self.total_count.clamp(min=0).expand(probs.shape)
            return torch.binomial(n, probs)
