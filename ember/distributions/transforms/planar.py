"""Planar flow (Rezende and Mohamed 2015, arXiv:1505.05770): ``y = x + u_hat tanh(w.x + b)``."""

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
        wu = torch.dot(self.w, self.u)
        return self.u + (F.softplus(wu) - 1 - wu) * self.w / self.w.pow(2).sum().clamp_min(
            torch.finfo(self.w.dtype).tiny
        )

    def _call(self, x):
        check_last_dim("PlanarFlow", x, self.input_dim)
        return x + self.u_hat() * torch.tanh(x @ self.w + self.bias[0]).unsqueeze(-1)

    def _inverse(self, y):
        raise inverse_not_available(
            self, "the planar map x + u tanh(w.x + b) has no closed-form inverse"
        )

    def log_abs_det_jacobian(self, x, y):
        """``log|1 + u_hat . w (1 - tanh^2(w . x + b))|`` (matrix determinant lemma)."""
        check_last_dim("PlanarFlow", x, self.input_dim)
        slope = 1 - torch.tanh(x @ self.w + self.bias[0]).pow(2)
        # w . u_hat > -1 and 0 < slope <= 1, so the argument of log1p stays above -1.
        return torch.log1p(slope * torch.dot(self.u_hat(), self.w))


def planar(input_dim: int) -> PlanarFlow:
    """A :class:`PlanarFlow` on vectors of size ``input_dim``.

    Example::

        >>> import ember.distributions.transforms as T
        >>> T.planar(3).event_dim
        1
    """
    return PlanarFlow(input_dim)
