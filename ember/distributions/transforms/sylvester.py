"""Sylvester flow (van den Berg et al. 2018, arXiv:1803.05649) with Householder-built ``Q``."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.distributions import constraints

from ember.distributions.transforms.torch_transform import (
    TransformModule,
    check_last_dim,
    check_positive_int,
    inverse_not_available,
)


class Sylvester(TransformModule):
    """The orthogonal Sylvester flow ``y = x + Q R tanh(S Q^T x + b)`` on vectors of size ``D``.

    ``Q`` is orthogonal, the product of ``count_transforms`` Householder
    reflections ``I - 2 v v^T / |v|^2``; ``R`` and ``S`` are upper triangular
    with diagonals ``tanh(r)`` and ``tanh(s)``. By Sylvester's determinant
    identity ``det(I + Q R H S Q^T) = det(I + H S R)`` with
    ``H = diag(1 - tanh^2(S Q^T x + b))``, and ``S R`` is triangular, so::

        log|det J| = sum_i log(1 + h_i S_ii R_ii)

    Since ``|S_ii R_ii| < 1`` and ``0 < h_i <= 1`` every factor is positive
    and the map is invertible, but the inverse has no closed form: values
    produced by the latest forward call are scored from the cache, others raise
    :class:`InverseNotAvailableError`.

    :param input_dim: the size ``D`` of the input vectors.
    :param count_transforms: the number of Householder reflections in ``Q``.

    Example::

        >>> import torch, ember.distributions as dist
        >>> from ember.distributions.transforms import Sylvester
        >>> flow = Sylvester(3, count_transforms=2)
        >>> d = dist.TransformedDistribution(dist.Normal(torch.zeros(3), 1.0), [flow])
        >>> d.log_prob(d.sample((5,))).shape
        torch.Size([5])
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(self, input_dim: int, count_transforms: int = 1) -> None:
        super().__init__(cache_size=1)
        check_positive_int("Sylvester", "input_dim", input_dim)
        check_positive_int("Sylvester", "count_transforms", count_transforms)
        self.input_dim = input_dim
        self.count_transforms = count_transforms
        self.u_unnormed = nn.Parameter(torch.empty(count_transforms, input_dim))
        self.R_dense = nn.Parameter(torch.empty(input_dim, input_dim))
        self.S_dense = nn.Parameter(torch.empty(input_dim, input_dim))
        self.R_diag = nn.Parameter(torch.empty(input_dim))
        self.S_diag = nn.Parameter(torch.empty(input_dim))
        self.b = nn.Parameter(torch.empty(input_dim))
        self.register_buffer("triangular_mask", torch.ones(input_dim, input_dim).triu(diagonal=1))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Householder vectors uniform in ``+-1/sqrt(D)``; ``R``, ``S``, ``b`` in ``+-0.01``."""
        bound = 1.0 / math.sqrt(self.input_dim)
        nn.init.uniform_(self.u_unnormed, -bound, bound)
        for p in (self.R_dense, self.S_dense, self.R_diag, self.S_diag, self.b):
            nn.init.uniform_(p, -0.01, 0.01)

    def Q(self) -> torch.Tensor:
        """The orthogonal matrix: the product of the Householder reflections, in order."""
        v = self.u_unnormed
        v = v / v.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(v.dtype).tiny)
        q = torch.eye(self.input_dim, dtype=v.dtype, device=v.device)
        for k in range(self.count_transforms):
            q = q - 2.0 * torch.outer(q @ v[k], v[k])  # q (I - 2 v v^T)
        return q

    def R(self) -> torch.Tensor:
        """Upper triangular, with diagonal ``tanh(R_diag)``."""
        return self.R_dense * self.triangular_mask + torch.diag(torch.tanh(self.R_diag))

    def S(self) -> torch.Tensor:
        """Upper triangular, with diagonal ``tanh(S_diag)``."""
        return self.S_dense * self.triangular_mask + torch.diag(torch.tanh(self.S_diag))

    def _pre(self, x, q):
        # row vectors: (S Q^T x)^T = x^T Q S^T
        return x @ (q @ self.S().transpose(-1, -2)) + self.b

    def _call(self, x):
        check_last_dim("Sylvester", x, self.input_dim)
        q = self.Q()
        pre = self._pre(x, q)
        return x + torch.tanh(pre) @ (q @ self.R()).transpose(-1, -2)

    def _inverse(self, y):
        raise inverse_not_available(
            self, "the Sylvester map x + Q R tanh(S Q^T x + b) has no closed-form inverse"
        )

    def log_abs_det_jacobian(self, x, y):
        """``sum_i log(1 + (1 - tanh^2(pre_i)) S_ii R_ii)`` with ``pre = S Q^T x + b``."""
        check_last_dim("Sylvester", x, self.input_dim)
        pre = self._pre(x, self.Q())
        slope = 1 - torch.tanh(pre).pow(2)
        diag = torch.tanh(self.R_diag) * torch.tanh(self.S_diag)
        return torch.log1p(slope * diag).sum(-1)


def sylvester(input_dim: int, count_transforms: int | None = None) -> Sylvester:
    """A :class:`Sylvester` flow; ``count_transforms`` defaults to ``input_dim // 2 + 1``.

    Example::

        >>> import torch
        >>> from ember.distributions.transforms import sylvester
        >>> flow = sylvester(4)
        >>> flow.count_transforms, flow(torch.zeros(2, 4)).shape
        (3, torch.Size([2, 4]))
    """
    check_positive_int("sylvester", "input_dim", input_dim)
    if count_transforms is None:
        count_transforms = input_dim // 2 + 1
    return Sylvester(input_dim, count_transforms=count_transforms)
