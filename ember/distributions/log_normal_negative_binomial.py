"""LogNormalNegativeBinomial: a negative binomial whose logits carry Gaussian noise."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.distributions import constraints
from torch.distributions.utils import lazy_property

from ember.distributions.torch import NegativeBinomial
from ember.distributions.torch_distribution import TorchDistribution
from ember.distributions.util import broadcast_params

__all__ = ["LogNormalNegativeBinomial", "gauss_hermite_rule"]

_EMPTY = torch.Size()


def gauss_hermite_rule(num_points: int, like: torch.Tensor):
    """Nodes and log-weights of the ``num_points``-point Gauss-Hermite rule for a standard
    normal: ``E[f(Z)] ~= sum(exp(log_w) * f(nodes))``, as tensors like ``like``.

    Example::

        >>> nodes, log_w = gauss_hermite_rule(3, torch.zeros(()))
        >>> log_w.exp().sum(), (log_w.exp() * nodes**2).sum()
        (tensor(1.), tensor(1.0000))
    """
    x, w = np.polynomial.hermite.hermgauss(num_points)  # for the weight exp(-x^2)
    nodes = torch.tensor(x * math.sqrt(2), dtype=like.dtype, device=like.device)
    log_w = torch.tensor(np.log(w) - 0.5 * math.log(math.pi), dtype=like.dtype, device=like.device)
    return nodes, log_w


class LogNormalNegativeBinomial(TorchDistribution):
    """Negative binomial with ``total_count`` and logits ``logits + eps``, where
    ``eps ~ Normal(0, multiplicative_noise_scale)`` is integrated out.

    Equivalently a Poisson whose rate is Gamma noise times log-normal noise. The
    marginal ``log_prob`` is computed with a ``num_quad_points``-point Gauss-Hermite
    rule over ``eps`` (accurate for moderate noise scales). The mean is
    ``total_count * exp(logits + sigma^2 / 2)``, the variance
    ``mean + (exp(sigma^2) (1 + 1 / total_count) - 1) mean^2``.

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.LogNormalNegativeBinomial(5.0, torch.tensor(-1.0), torch.tensor(0.3))
        >>> d.log_prob(torch.arange(200.0)).exp().sum()
        tensor(1.)
        >>> d.mean
        tensor(1.9241)
    """

    arg_constraints = {
        "total_count": constraints.greater_than_eq(0),
        "logits": constraints.real,
        "multiplicative_noise_scale": constraints.positive,
    }
    support = constraints.nonnegative_integer

    def __init__(
        self,
        total_count,
        logits,
        multiplicative_noise_scale,
        *,
        num_quad_points: int = 8,
        validate_args=None,
    ):
        if not isinstance(num_quad_points, int) or num_quad_points < 1:
            raise ValueError(
                f"LogNormalNegativeBinomial: num_quad_points must be a positive int, "
                f"got {num_quad_points!r}"
            )
        total_count, logits, noise = broadcast_params(
            total_count, logits, multiplicative_noise_scale
        )
        self.total_count = total_count
        self.logits = logits
        self.multiplicative_noise_scale = noise
        self.num_quad_points = num_quad_points
        self.quad_points, self.log_weights = gauss_hermite_rule(num_quad_points, logits)
        super().__init__(logits.shape, validate_args=validate_args)

    @lazy_property
    def nb_dist(self):
        """The negative binomials at the quadrature nodes (rightmost batch dim)."""
        quad_logits = self.logits.unsqueeze(-1) + (
            self.multiplicative_noise_scale.unsqueeze(-1) * self.quad_points
        )
        return NegativeBinomial(
            total_count=self.total_count.unsqueeze(-1), logits=quad_logits, validate_args=False
        )

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        new = self.__new__(type(self)) if _instance is None else _instance
        LogNormalNegativeBinomial.__init__(
            new,
            self.total_count.expand(batch_shape),
            self.logits.expand(batch_shape),
            self.multiplicative_noise_scale.expand(batch_shape),
            num_quad_points=self.num_quad_points,
            validate_args=False,
        )
        new._validate_args = self._validate_args
        return new

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        lp = self.nb_dist.log_prob(value.unsqueeze(-1))
        return torch.logsumexp(lp + self.log_weights, dim=-1)

    def sample(self, sample_shape=_EMPTY):
        shape = self.shape(sample_shape)
        with torch.no_grad():
            eps = torch.randn(shape, dtype=self.logits.dtype, device=self.logits.device)
            logits = self.logits + self.multiplicative_noise_scale * eps
            nb = NegativeBinomial(
                total_count=self.total_count.expand(shape), logits=logits, validate_args=False
            )
            return nb.sample()

    @property
    def mean(self):
        sigma2 = self.multiplicative_noise_scale**2
        return torch.exp(self.logits + self.total_count.log() + 0.5 * sigma2)

    @property
    def variance(self):
        mean = self.mean
        kappa = torch.exp(self.multiplicative_noise_scale**2) * (1 + 1 / self.total_count) - 1
        return mean + kappa * mean**2
