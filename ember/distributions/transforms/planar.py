"""Planar flow (Rezende and Mohamed 2015, arXiv:1505.05770): ``y = x + u_hat tanh(w.x + b)``."""

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


def _u_hat(u: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``u + (softplus(w.u) - 1 - w.u) w / |w|^2`` over the last dim (batched)."""
    wu = (w * u).sum(-1, keepdim=True)
    w_sq = w.pow(2).sum(-1, keepdim=True).clamp_min(torch.finfo(w.dtype).tiny)
    return u + (F.softplus(wu) - 1 - wu) * w / w_sq


def _planar_call(x, bias, u, w):
    return x + _u_hat(u, w) * torch.tanh((x * w).sum(-1, keepdim=True) + bias)


def _planar_ladj(x, bias, u, w):
    slope = 1 - torch.tanh((x * w).sum(-1) + bias.squeeze(-1)).pow(2)
    # w . u_hat > -1 and 0 < slope <= 1, so the argument of log1p stays above -1.
    return torch.log1p(slope * (_u_hat(u, w) * w).sum(-1))


class PlanarFlow(TransformModule):
    """The planar flow ``y = x + u_hat * tanh(w . x + b)`` on vectors of size ``input_dim``.

    It is invertible when ``w . u_hat > -1``. This holds by construction:
    the free parameter ``u`` is mapped to
    ``u_hat = u + (softplus(w . u) - 1 - w . u) * w / |w|^2``, for which
    ``w . u_hat = softplus(w . u) - 1 > -1``. Then
    ``log|det J| = log|1 + u_hat . w (1 - tanh^2(w . x + b))|``.

    The inverse has no closed form, so only values this flow produced in its
    latest forward call (cached, e.g. samples of a ``TransformedDistribution``)
    can be scored; other values raise :class:`InverseNotAvailableError`.

    Example::

        >>> import torch, ember.distributions as dist
        >>> flow = dist.PlanarFlow(2)
        >>> d = dist.TransformedDistribution(dist.Normal(torch.zeros(2), 1.0), [flow])
        >>> y = d.sample((3,))
        >>> d.log_prob(y).shape
        torch.Size([3])
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(self, input_dim: int) -> None:
        super().__init__(cache_size=1)
        check_positive_int("PlanarFlow", "input_dim", input_dim)
        self.input_dim = input_dim
        self.bias = nn.Parameter(torch.empty(1))
        self.u = nn.Parameter(torch.empty(input_dim))
        self.w = nn.Parameter(torch.empty(input_dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw ``u``, ``w``, ``b`` uniformly in ``+-1/sqrt(input_dim)``."""
        bound = 1.0 / math.sqrt(self.input_dim)
        for p in (self.bias, self.u, self.w):
            nn.init.uniform_(p, -bound, bound)

    def u_hat(self) -> torch.Tensor:
        """The constrained ``u``, with ``w . u_hat > -1``."""
        return _u_hat(self.u, self.w)

    def _call(self, x):
        check_last_dim("PlanarFlow", x, self.input_dim)
        return _planar_call(x, self.bias, self.u, self.w)

    def _inverse(self, y):
        raise inverse_not_available(
            self, "the planar map x + u tanh(w.x + b) has no closed-form inverse"
        )

    def log_abs_det_jacobian(self, x, y):
        """``log|1 + u_hat . w (1 - tanh^2(w . x + b))|`` (matrix determinant lemma)."""
        check_last_dim("PlanarFlow", x, self.input_dim)
        return _planar_ladj(x, self.bias, self.u, self.w)


class ConditionedPlanar(ConditionedByNetwork):
    """A planar flow whose ``(bias, u, w)`` a network computes from a fixed context.

    Built by :meth:`ConditionalPlanar.condition`; the parameters are recomputed
    at every call (so they follow the network's training), with shapes
    ``batch + (1,)``, ``batch + (D,)``, ``batch + (D,)`` broadcasting against
    the input. The map and its Jacobian are those of :class:`PlanarFlow`; there
    is no closed-form inverse.

    Example::

        >>> import torch
        >>> from ember.distributions.transforms import conditional_planar
        >>> flow = conditional_planar(2, context_dim=3).condition(torch.randn(4, 1, 3))
        >>> flow(torch.randn(5, 2)).shape  # context batch (4, 1) against input batch (5,)
        torch.Size([4, 5, 2])
    """

    def _call(self, x):
        check_last_dim("ConditionedPlanar", x, self.input_dim)
        return _planar_call(x, *self.params())

    def _inverse(self, y):
        raise inverse_not_available(
            self, "the planar map x + u tanh(w.x + b) has no closed-form inverse"
        )

    def log_abs_det_jacobian(self, x, y):
        """``log|1 + u_hat . w (1 - tanh^2(w . x + b))|`` (matrix determinant lemma)."""
        check_last_dim("ConditionedPlanar", x, self.input_dim)
        return _planar_ladj(x, *self.params())


class ConditionalPlanar(ConditionalByNetwork):
    """A planar flow whose parameters are a function of a context vector.

    ``nn`` maps a context of shape ``batch + (context_dim,)`` to the tuple
    ``(bias, u, w)`` of shapes ``batch + (1,)``, ``batch + (D,)``,
    ``batch + (D,)`` (e.g. ``DenseNN(context_dim, [H], param_dims=[1, D, D])``);
    ``condition(context)`` returns the :class:`ConditionedPlanar` flow
    ``y = x + u_hat tanh(w . x + b)`` for that context.

    Example::

        >>> import torch, ember.distributions as dist
        >>> from ember.nn import DenseNN
        >>> from ember.distributions.transforms import ConditionalPlanar
        >>> flow = ConditionalPlanar(DenseNN(3, [8], param_dims=[1, 2, 2]))
        >>> base = dist.Normal(torch.zeros(2), 1.0)
        >>> d = dist.TransformedDistribution(base, [flow.condition(torch.ones(3))])
        >>> d.log_prob(d.sample((6,))).shape
        torch.Size([6])
    """

    conditioned = ConditionedPlanar
    input_dim_index = 1


def planar(input_dim: int) -> PlanarFlow:
    """A :class:`PlanarFlow` on vectors of size ``input_dim``.

    Example::

        >>> import ember.distributions.transforms as T
        >>> T.planar(3).event_dim
        1
    """
    return PlanarFlow(input_dim)


def conditional_planar(
    input_dim: int, context_dim: int, hidden_dims: list[int] | None = None
) -> ConditionalPlanar:
    """A :class:`ConditionalPlanar` flow on a :class:`~ember.nn.DenseNN` of the context.

    ``hidden_dims`` defaults to ``[10 * input_dim, 10 * input_dim]``.

    Example::

        >>> import torch
        >>> from ember.distributions.transforms import conditional_planar
        >>> flow = conditional_planar(3, context_dim=2, hidden_dims=[8])
        >>> flow.condition(torch.zeros(2))(torch.zeros(4, 3)).shape
        torch.Size([4, 3])
    """
    check_positive_int("conditional_planar", "input_dim", input_dim)
    check_positive_int("conditional_planar", "context_dim", context_dim)
    if hidden_dims is None:
        hidden_dims = [input_dim * 10, input_dim * 10]
    return ConditionalPlanar(
        DenseNN(context_dim, hidden_dims, param_dims=[1, input_dim, input_dim])
    )
