"""Radial flow (Rezende and Mohamed 2015, arXiv:1505.05770): contract or expand around a point."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.distributions import constraints
from torch.nn import functional as F

from ember.distributions.transforms.torch_transform import (
    ConditionalByNetwork,
    ConditionedByNetwork,
    TransformModule,
    check_last_dim,
    check_positive_int,
    inverse_not_available,
)
from ember.nn.auto_reg_nn import DenseNN


def _alpha_beta(alpha_prime, beta_prime):
    alpha = F.softplus(alpha_prime)
    return alpha, -alpha + F.softplus(beta_prime)


def _radial_call(x, x0, alpha_prime, beta_prime):
    alpha, beta = _alpha_beta(alpha_prime, beta_prime)
    diff = x - x0
    r = diff.norm(dim=-1, keepdim=True)
    return x + beta * diff / (alpha + r)


def _radial_ladj(x, x0, alpha_prime, beta_prime):
    alpha, beta = _alpha_beta(alpha_prime.squeeze(-1), beta_prime.squeeze(-1))
    r = (x - x0).norm(dim=-1)
    h = 1 / (alpha + r)
    return (x.shape[-1] - 1) * torch.log1p(beta * h) + torch.log1p(beta * alpha * h.pow(2))


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
        return _radial_call(x, self.x0, self.alpha_prime, self.beta_prime)

    def _inverse(self, y):
        raise inverse_not_available(
            self, "the radial map x + beta (x - x0) / (alpha + |x - x0|) has no closed-form inverse"
        )

    def log_abs_det_jacobian(self, x, y):
        """``(D - 1) log(1 + beta h) + log(1 + beta alpha h^2)`` with ``h = 1 / (alpha + r)``."""
        check_last_dim("RadialFlow", x, self.input_dim)
        return _radial_ladj(x, self.x0, self.alpha_prime, self.beta_prime)


class ConditionedRadial(ConditionedByNetwork):
    """A radial flow whose ``(x0, alpha', beta')`` a network computes from a fixed context.

    Built by :meth:`ConditionalRadial.condition`; the parameters are recomputed
    at every call, with shapes ``batch + (D,)``, ``batch + (1,)``,
    ``batch + (1,)`` broadcasting against the input. The map and its Jacobian
    are those of :class:`RadialFlow`; there is no closed-form inverse.

    Example::

        >>> import torch
        >>> from ember.distributions.transforms import conditional_radial
        >>> flow = conditional_radial(2, context_dim=3).condition(torch.randn(4, 1, 3))
        >>> flow(torch.randn(5, 2)).shape
        torch.Size([4, 5, 2])
    """

    def _call(self, x):
        check_last_dim("ConditionedRadial", x, self.input_dim)
        return _radial_call(x, *self.params())

    def _inverse(self, y):
        raise inverse_not_available(
            self, "the radial map x + beta (x - x0) / (alpha + |x - x0|) has no closed-form inverse"
        )

    def log_abs_det_jacobian(self, x, y):
        """``(D - 1) log(1 + beta h) + log(1 + beta alpha h^2)`` with ``h = 1 / (alpha + r)``."""
        check_last_dim("ConditionedRadial", x, self.input_dim)
        return _radial_ladj(x, *self.params())


class ConditionalRadial(ConditionalByNetwork):
    """A radial flow whose parameters are a function of a context vector.

    ``nn`` maps a context of shape ``batch + (context_dim,)`` to the tuple
    ``(x0, alpha', beta')`` of shapes ``batch + (D,)``, ``batch + (1,)``,
    ``batch + (1,)`` (e.g. ``DenseNN(context_dim, [H], param_dims=[D, 1, 1])``);
    ``condition(context)`` returns the :class:`ConditionedRadial` flow for that context.

    Example::

        >>> import torch, ember.distributions as dist
        >>> from ember.nn import DenseNN
        >>> from ember.distributions.transforms import ConditionalRadial
        >>> flow = ConditionalRadial(DenseNN(3, [8], param_dims=[2, 1, 1]))
        >>> base = dist.Normal(torch.zeros(2), 1.0)
        >>> d = dist.TransformedDistribution(base, [flow.condition(torch.ones(3))])
        >>> d.log_prob(d.sample((6,))).shape
        torch.Size([6])
    """

    conditioned = ConditionedRadial
    input_dim_index = 0


def radial(input_dim: int) -> RadialFlow:
    """A :class:`RadialFlow` on vectors of size ``input_dim``.

    Example::

        >>> import ember.distributions.transforms as T
        >>> T.radial(2).codomain
        IndependentConstraint(Real(), 1)
    """
    return RadialFlow(input_dim)


def conditional_radial(
    input_dim: int, context_dim: int, hidden_dims: list[int] | None = None
) -> ConditionalRadial:
    """A :class:`ConditionalRadial` flow on a :class:`~ember.nn.DenseNN` of the context.

    ``hidden_dims`` defaults to ``[10 * input_dim, 10 * input_dim]``.

    Example::

        >>> import torch
        >>> from ember.distributions.transforms import conditional_radial
        >>> flow = conditional_radial(3, context_dim=2, hidden_dims=[8])
        >>> flow.condition(torch.zeros(2))(torch.zeros(4, 3)).shape
        torch.Size([4, 3])
    """
    check_positive_int("conditional_radial", "input_dim", input_dim)
    check_positive_int("conditional_radial", "context_dim", context_dim)
    if hidden_dims is None:
        hidden_dims = [input_dim * 10, input_dim * 10]
    return ConditionalRadial(DenseNN(context_dim, hidden_dims, param_dims=[input_dim, 1, 1]))
