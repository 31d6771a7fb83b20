"""Sum-of-squares polynomial flow (Jaini, Selby and Yu 2019, arXiv:1905.02325)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.distributions import constraints

from ember.distributions.transforms.torch_transform import (
    JointLogDetTransformModule,
    check_last_dim,
    check_positive_int,
    inverse_not_available,
)
from ember.nn.auto_reg_nn import AutoRegressiveNN


class Polynomial(JointLogDetTransformModule):
    """Autoregressive sum-of-squares polynomial flow, "IAF flavour".

    For each dimension ``i``, with ``a[k, r]`` (``k < count_sum``,
    ``r <= count_degree``) the autoregressive network's outputs for ``i``::

        y_i = c_i + integral_0^{x_i} sum_k (sum_r a[k, r] u^r)^2 du
            = c_i + sum_k sum_{r, s} a[k, r] a[k, s] x_i^(r + s + 1) / (r + s + 1)

    The integrand is a sum of squares, so ``y_i`` is an increasing polynomial
    of ``x_i`` of degree ``2 count_degree + 1`` whose coefficients depend on
    the preceding inputs; ``c`` is a learnable offset. ``log|det J|`` is
    ``sum_i log sum_k (sum_r a[k, r] x_i^r)^2``.

    There is no closed-form inverse: values produced by the latest forward call
    are scored from the cache, others raise :class:`InverseNotAvailableError`.

    :param autoregressive_nn: a network returning one tensor of shape
        ``(..., (count_degree + 1) * count_sum, input_dim)``, e.g.
        ``AutoRegressiveNN(input_dim, [H], param_dims=[(count_degree + 1) * count_sum])``.
    :param input_dim: the size ``D`` of the input vectors.
    :param count_degree: the degree ``R`` of each squared polynomial.
    :param count_sum: the number ``K`` of squared polynomials summed.

    Example::

        >>> import torch, ember.distributions as dist
        >>> from ember.nn import AutoRegressiveNN
        >>> from ember.distributions.transforms import Polynomial
        >>> arn = AutoRegressiveNN(3, [20], param_dims=[(4 + 1) * 3])
        >>> flow = Polynomial(arn, input_dim=3, count_degree=4, count_sum=3)
        >>> d = dist.TransformedDistribution(dist.Normal(torch.zeros(3), 1.0), [flow])
        >>> d.log_prob(d.sample((5,))).shape
        torch.Size([5])
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True
    autoregressive = True

    def __init__(
        self, autoregressive_nn: nn.Module, input_dim: int, count_degree: int, count_sum: int
    ) -> None:
        super().__init__(cache_size=1)
        check_positive_int("Polynomial", "input_dim", input_dim)
        if not isinstance(count_degree, int) or isinstance(count_degree, bool) or count_degree < 0:
            raise ValueError(
                f"Polynomial: count_degree must be a non-negative int, got {count_degree!r}"
            )
        check_positive_int("Polynomial", "count_sum", count_sum)
        self.arn = autoregressive_nn
        self.input_dim = input_dim
        self.count_degree = count_degree
        self.count_sum = count_sum
        self.c = nn.Parameter(torch.empty(input_dim))
        self.reset_parameters()
        r = torch.arange(count_degree + 1, dtype=torch.get_default_dtype())
        # exponent r + s + 1 of the term a[k, r] a[k, s] x^(r + s + 1) / (r + s + 1)
        self.register_buffer("exponents", r + r.unsqueeze(-1) + 1)
        self.register_buffer("degrees", r)

    def reset_parameters(self) -> None:
        """Draw the offset ``c`` uniformly in ``+-1/sqrt(input_dim)``."""
        bound = 1.0 / math.sqrt(self.input_dim)
        nn.init.uniform_(self.c, -bound, bound)

    def _coefficients(self, x):
        out = self.arn(x)
        count = (self.count_degree + 1) * self.count_sum
        if isinstance(out, (tuple, list)):
            raise ValueError(
                "Polynomial: autoregressive_nn must return one tensor, e.g. "
                f"AutoRegressiveNN(D, hidden_dims, param_dims=[{count}])"
            )
        if count == 1:
            out = out.unsqueeze(-2)
        if out.shape[-2:] != (count, self.input_dim):
            raise ValueError(
                f"Polynomial: the network output has shape {tuple(out.shape)}; it must end in "
                f"((count_degree + 1) * count_sum, input_dim) = ({count}, {self.input_dim})"
            )
        return out.reshape(out.shape[:-2] + (self.count_sum, self.count_degree + 1, x.shape[-1]))

    def _transform(self, x):
        check_last_dim("Polynomial", x, self.input_dim)
        a = self._coefficients(x)  # (..., K, R + 1, D)
        exponents = self.exponents.to(x.dtype).unsqueeze(-1)  # (R + 1, R + 1, 1)
        x_pow = x.unsqueeze(-2).unsqueeze(-2).pow(exponents)  # (..., R + 1, R + 1, D)
        outer = a.unsqueeze(-2) * a.unsqueeze(-3)  # a[k, r] a[k, s]: (..., K, R + 1, R + 1, D)
        y = self.c + (outer * (x_pow / exponents).unsqueeze(-4)).sum((-4, -3, -2))
        # dy/dx = sum_k p_k(x)^2 with p_k(x) = sum_r a[k, r] x^r
        p = (a * x.unsqueeze(-2).pow(self.degrees.to(x.dtype).unsqueeze(-1)).unsqueeze(-3)).sum(-2)
        dydx = p.pow(2).sum(-2).clamp_min(torch.finfo(x.dtype).tiny)
        return y, torch.log(dydx).sum(-1)

    def _inverse(self, y):
        raise inverse_not_available(
            self, "the polynomial has no closed-form inverse (it needs root finding)"
        )


def polynomial(
    input_dim: int,
    hidden_dims: Sequence[int] | None = None,
    count_degree: int = 4,
    count_sum: int = 3,
) -> Polynomial:
    """A :class:`Polynomial` flow on an :class:`~ember.nn.AutoRegressiveNN`.

    ``hidden_dims`` defaults to ``[10 * input_dim]``; the squared polynomials
    have degree ``count_degree`` (4) and ``count_sum`` (3) of them are summed.

    Example::

        >>> import torch
        >>> from ember.distributions.transforms import polynomial
        >>> flow = polynomial(2)
        >>> flow(torch.zeros(5, 2)).shape, flow.count_degree, flow.count_sum
        (torch.Size([5, 2]), 4, 3)
    """
    check_positive_int("polynomial", "input_dim", input_dim)
    if hidden_dims is None:
        hidden_dims = [input_dim * 10]
    arn = AutoRegressiveNN(input_dim, hidden_dims, param_dims=[(count_degree + 1) * count_sum])
    return Polynomial(arn, input_dim=input_dim, count_degree=count_degree, count_sum=count_sum)
