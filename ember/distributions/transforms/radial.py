"""Radial flow (Rezende and Mohamed 2015, arXiv:1505.05770): contract or expand around a point."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.distributions import constraints
from torch.nn import functional as F

from ember.distributions.transforms.torch_transform import (
    TransformModule,
    check_last_dim,
    check_positive_int,
    inverse_not_available,
)


class RadialFlow(TransformModule):
    """The radial flow ``y = x + beta h(alpha, r) (x - x0)`` with ``h = 1 / (alpha + r)``.

    Here ``r = |x - x0|``, ``alpha = softplus(alpha')`` is positive and
    ``beta = -alpha + softplus(beta')`` satisfies ``beta > -alpha``, which
    makes the map invertible. With ``D = input_dim``,
    ``log|det J| = (D - 1) log(1 + beta h) + log(1 + beta alpha h^2)``.

    The inverse has no closed form, so only values this flow produced in its
    latest forward call (cached) can be scored; other values raise
    :class:`InverseNotAvailableError`.

    Example::

        >>> import torch, ember.distributions as dist
        >>> flow = dist.RadialFlow(2)
        >>> d = dist.TransformedDistribution(dist.Normal(torch.zeros(2), 1.0), [flow])
        >>> d.log_prob(d.sample((3,))).shape
        torch.Size([3])
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(self, input_dim: int) -> None:
        super().__init__(cache_size=1)
        check_positive_int("RadialFlow", "input_dim", input_dim)
        self.input_dim = input_dim
        self.x0 = nn.Parameter(torch.empty(input_dim))
        self.alpha_prime = nn.Parameter(torch.empty(1))
        self.beta_prime = nn.Parameter(torch.empty(1))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw ``x0``, ``alpha'``, ``beta'`` uniformly in ``+-1/sqrt(input_dim)``."""
        bound = 1.0 / math.sqrt(self.input_dim)
        for p in (self.x0, self.alpha_prime, self.beta_prime):
            nn.init.uniform_(p, -bound, bound)

    @property
    def alpha(self) -> torch.Tensor:
        """``softplus(alpha') > 0``."""
        return F.softplus(self.alpha_prime)

    @property
    def beta(self) -> torch.Tensor:
        """``-alpha + softplus(beta') > -alpha``."""
        return -self.alpha + F.softplus(self.beta_prime)

    def _call(self, x):
        check_last_dim("RadialFlow", x, self.input_dim)
        diff = x - self.x0
        r = diff.norm(dim=-1, keepdim=True)
        return x + self.beta * diff / (self.alpha + r)

    def _inverse(self, y):
        raise inverse_not_available(
            self, "the radial map x + beta (x - x0) / (alpha + |x - x0|) has no closed-form inverse"
        )

    def log_abs_det_jacobian(self, x, y):
        """``(D - 1) log(1 + beta h) + log(1 + beta alpha h^2)`` with ``h = 1 / (alpha + r)``."""
        check_last_dim("RadialFlow", x, self.input_dim)
        alpha, beta = self.alpha[0], self.beta[0]
        r = (x - self.x0).norm(dim=-1)
        h = 1 / (alpha + r)
        return (self.input_dim - 1) * torch.log1p(beta * h) + torch.log1p(beta * alpha * h.pow(2))


def radial(input_dim: int) -> RadialFlow:
    """A :class:`RadialFlow` on vectors of size ``input_dim``.

    Example::

        >>> import ember.distributions.transforms as T
        >>> T.radial(2).codomain
        IndependentConstraint(Real(), 1)
    """
    return RadialFlow(input_dim)
