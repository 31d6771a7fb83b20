"""Spline coupling flows (Durkan et al. 2019, arXiv:1906.04032).

The input ``x = (x_1, x_2)`` is split after ``split_dim`` coordinates:
``y_1 = g(x_1)`` through an elementwise learnable spline (or the identity) and
``y_2 = h(x_2; x_1)`` through elementwise splines whose parameters a network
computes from ``x_1``. The Jacobian is block triangular, and both directions
cost one network pass.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.distributions import constraints

from ember.distributions.transforms.spline import (
    ConditionalSpline,
    Spline,
    check_spline_args,
    monotonic_rational_spline,
)
from ember.distributions.transforms.torch_transform import (
    TransformModule,
    check_last_dim,
    check_positive_int,
)
from ember.nn.auto_reg_nn import DenseNN


def check_split_dim(owner: str, input_dim: int, split_dim: int) -> None:
    """Raise a ValueError unless ``0 < split_dim < input_dim`` (both parts non-empty)."""
    if (
        not isinstance(split_dim, int)
        or isinstance(split_dim, bool)
        or not 0 < split_dim < input_dim
    ):
        raise ValueError(
            f"{owner}: split_dim must be an int with 0 < split_dim < {input_dim} (the "
            f"size of the part that conditions the other), got {split_dim!r}"
        )


class SplineCoupling(TransformModule):
    """A coupling flow of elementwise monotonic rational splines.

    The first ``split_dim`` coordinates go through a learnable
    :class:`~ember.distributions.transforms.Spline` (the identity if
    ``identity=True``); the other ``input_dim - split_dim`` go through splines
    whose unnormalized parameters ``hypernet(x_1)`` computes, in the layout
    :class:`~ember.distributions.transforms.ConditionalSpline` describes (e.g.
    a :class:`~ember.nn.DenseNN` with ``param_dims`` ``[(D - s) * K, (D - s) * K,
    (D - s) * (K - 1), (D - s) * K]``, the last only for ``order="linear"``).

    Example::

        >>> import torch, ember.distributions as dist
        >>> from ember.nn import DenseNN
        >>> from ember.distributions.transforms import SplineCoupling
        >>> D, s, K = 4, 2, 6
        >>> net = DenseNN(s, [16], param_dims=[(D - s) * K, (D - s) * K, (D - s) * (K - 1)])
        >>> flow = SplineCoupling(D, s, net, count_bins=K, order="quadratic")
        >>> d = dist.TransformedDistribution(dist.Normal(torch.zeros(D), 1.0), [flow])
        >>> y = d.sample((3,))
        >>> d.log_prob(y).shape
        torch.Size([3])
        >>> torch.allclose(flow.inv(y.clone()), flow.inv(y), atol=1e-6)
        True
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(
        self,
        input_dim: int,
        split_dim: int,
        hypernet: torch.nn.Module,
        count_bins: int = 8,
        bound: float = 3.0,
        order: str = "linear",
        identity: bool = False,
    ) -> None:
        super().__init__(cache_size=1)
        check_positive_int("SplineCoupling", "input_dim", input_dim)
        check_split_dim("SplineCoupling", input_dim, split_dim)
        check_spline_args("SplineCoupling", count_bins, bound, order, min_bins=2)
        self.input_dim = input_dim
        self.split_dim = split_dim
        self.identity = identity
        self.lower_spline = Spline(split_dim, count_bins, bound, order)
        self.upper_spline = ConditionalSpline(
            hypernet, input_dim - split_dim, count_bins, bound, order
        )
        self._cached_log_det = None

    def _couple(self, value, inverse):
        """``(other side, log|dy/dx| elementwise)`` for ``value`` on one side of the map."""
        check_last_dim("SplineCoupling", value, self.input_dim)
        v1, v2 = value[..., : self.split_dim], value[..., self.split_dim :]
        if self.identity:
            u1, log_det1 = v1, torch.zeros_like(v1)
        else:
            u1, log_det1 = self.lower_spline.spline_op(v1, inverse=inverse)
        x1 = u1 if inverse else v1
        params = self.upper_spline.spline_params(x1)
        u2, log_det2 = monotonic_rational_spline(
            v2, *params, inverse=inverse, bound=self.upper_spline.bound
        )
        u1 = u1.expand(u2.shape[:-1] + u1.shape[-1:])
        log_det1 = log_det1.expand(log_det2.shape[:-1] + log_det1.shape[-1:])
        log_det = torch.cat([log_det1, log_det2], dim=-1)
        return torch.cat([u1, u2], dim=-1), (-log_det if inverse else log_det)

    def _call(self, x):
        y, log_det = self._couple(x, inverse=False)
        self._cached_log_det = x, log_det
        return y

    def _inverse(self, y):
        x, log_det = self._couple(y, inverse=True)
        self._cached_log_det = x, log_det
        return x

    def log_abs_det_jacobian(self, x, y):
        """The sum of the splines' ``log dy_i/dx_i`` over the last dim."""
        cached = self._cached_log_det
        if cached is not None and cached[0] is x and self._cache_is_fresh(x, y):
            return cached[1].sum(-1)
        return self._couple(x, inverse=False)[1].sum(-1)


def spline_coupling(
    input_dim: int,
    split_dim: int | None = None,
    hidden_dims: Sequence[int] | None = None,
    count_bins: int = 8,
    bound: float = 3.0,
    order: str = "linear",
) -> SplineCoupling:
    """A :class:`SplineCoupling` on a :class:`~ember.nn.DenseNN` hypernetwork.

    ``split_dim`` defaults to ``input_dim // 2`` and ``hidden_dims`` to
    ``[10 * input_dim, 10 * input_dim]``.

    Example::

        >>> import torch
        >>> from ember.distributions.transforms import spline_coupling
        >>> flow = spline_coupling(3, hidden_dims=[16], count_bins=4)
        >>> flow.split_dim, flow(torch.randn(5, 3)).shape
        (1, torch.Size([5, 3]))
    """
    check_positive_int("spline_coupling", "input_dim", input_dim)
    if split_dim is None:
        split_dim = input_dim // 2
    check_split_dim("spline_coupling", input_dim, split_dim)
    check_spline_args("spline_coupling", count_bins, bound, order, min_bins=2)
    if hidden_dims is None:
        hidden_dims = [input_dim * 10, input_dim * 10]
    n = input_dim - split_dim
    sizes = [count_bins, count_bins, count_bins - 1] + ([count_bins] if order == "linear" else [])
    net = DenseNN(split_dim, hidden_dims, param_dims=[n * k for k in sizes])
    return SplineCoupling(input_dim, split_dim, net, count_bins, bound, order)
