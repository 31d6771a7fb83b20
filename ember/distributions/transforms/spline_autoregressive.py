"""Autoregressive neural spline flows (Durkan et al. 2019, arXiv:1906.04032).

Coordinate ``i`` goes through a monotonic rational spline (see
:func:`~ember.distributions.transforms.spline.monotonic_rational_spline`) whose
parameters an autoregressive network computes from the coordinates before
``i`` in its ordering. The Jacobian is triangular in that ordering, so
``log|det J|`` is the sum of the splines' log-derivatives. The forward map is
one network pass; the inverse takes ``D`` passes (each fixes one more
coordinate of the ordering).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.distributions import constraints

from ember.distributions.transforms.neural_autoregressive import ContextBoundNN
from ember.distributions.transforms.spline import (
    ConditionalSpline,
    check_spline_args,
    monotonic_rational_spline,
)
from ember.distributions.transforms.torch_transform import (
    ConditionalTransformModule,
    TransformModule,
    check_last_dim,
    check_positive_int,
)
from ember.nn.auto_reg_nn import AutoRegressiveNN, ConditionalAutoRegressiveNN


def spline_param_dims(count_bins: int, order: str) -> list[int]:
    """The ``param_dims`` of an autoregressive network feeding a spline flow:
    ``[K, K, K - 1, K]`` for ``order="linear"``, ``[K, K, K - 1]`` for ``"quadratic"``.

    Example::

        >>> spline_param_dims(8, "quadratic")
        [8, 8, 7]
    """
    dims = [count_bins, count_bins, count_bins - 1]
    return dims + [count_bins] if order == "linear" else dims


class SplineAutoregressive(TransformModule):
    """An autoregressive flow of elementwise monotonic rational splines.

    ``autoregressive_nn(x)`` returns the unnormalized spline parameters of
    every coordinate, each entry depending only on the coordinates before it
    in the network's ordering; e.g. an :class:`~ember.nn.AutoRegressiveNN` with
    ``param_dims=spline_param_dims(count_bins, order)``. ``count_bins``,
    ``bound`` and ``order`` are as for
    :class:`~ember.distributions.transforms.Spline`.

    Example::

        >>> import torch, ember.distributions as dist
        >>> from ember.nn import AutoRegressiveNN
        >>> from ember.distributions.transforms import SplineAutoregressive
        >>> arn = AutoRegressiveNN(3, [12], param_dims=[6, 6, 5, 6])
        >>> flow = SplineAutoregressive(3, arn, count_bins=6)
        >>> d = dist.TransformedDistribution(dist.Normal(torch.zeros(3), 1.0), [flow])
        >>> y = d.sample((4,))
        >>> d.log_prob(y).shape
        torch.Size([4])
        >>> torch.allclose(flow.inv(y.clone()), flow.inv(y), atol=1e-6)  # D passes vs cache
        True
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True
    autoregressive = True

    def __init__(
        self,
        input_dim: int,
        autoregressive_nn: torch.nn.Module,
        count_bins: int = 8,
        bound: float = 3.0,
        order: str = "linear",
    ) -> None:
        super().__init__(cache_size=1)
        check_positive_int("SplineAutoregressive", "input_dim", input_dim)
        check_spline_args("SplineAutoregressive", count_bins, bound, order, min_bins=2)
        self.input_dim = input_dim
        self.arn = autoregressive_nn
        self.spline = ConditionalSpline(autoregressive_nn, input_dim, count_bins, bound, order)
        self._cached_log_det = None

    def _spline(self, value, params_from, inverse):
        params = self.spline.spline_params(params_from)
        return monotonic_rational_spline(value, *params, inverse=inverse, bound=self.spline.bound)

    def _call(self, x):
        check_last_dim("SplineAutoregressive", x, self.input_dim)
        y, log_det = self._spline(x, x, inverse=False)
        self._cached_log_det = x, log_det
        return y

    def _inverse(self, y):
        check_last_dim("SplineAutoregressive", y, self.input_dim)
        # After pass k the first k coordinates of the ordering are exact, since each
        # coordinate's spline depends only on earlier ones.
        x = torch.zeros_like(y)
        for _ in range(self.input_dim):
            x_next, log_det = self._spline(y, x, inverse=True)
            x = x_next
        # The last pass used parameters of coordinates that were already exact.
        self._cached_log_det = x, -log_det
        return x

    def log_abs_det_jacobian(self, x, y):
        """The sum of the splines' ``log dy_i/dx_i`` over the last dim."""
        cached = self._cached_log_det
        if cached is not None and cached[0] is x and self._cache_is_fresh(x, y):
            return cached[1].sum(-1)
        return self._spline(x, x, inverse=False)[1].sum(-1)


class ConditionalSplineAutoregressive(ConditionalTransformModule):
    """A :class:`SplineAutoregressive` flow whose network also sees a context vector.

    ``autoregressive_nn(x, context=context)`` returns the spline parameters,
    e.g. a :class:`~ember.nn.ConditionalAutoRegressiveNN` with
    ``param_dims=spline_param_dims(count_bins, order)``; keyword arguments
    (``count_bins``, ``bound``, ``order``) go to :class:`SplineAutoregressive`.

    Example::

        >>> import torch
        >>> from ember.nn import ConditionalAutoRegressiveNN
        >>> from ember.distributions.transforms import ConditionalSplineAutoregressive
        >>> arn = ConditionalAutoRegressiveNN(2, 3, [8], param_dims=[4, 4, 3])
        >>> flow = ConditionalSplineAutoregressive(2, arn, count_bins=4, order="quadratic")
        >>> flow.condition(torch.randn(3))(torch.randn(5, 2)).shape
        torch.Size([5, 2])
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True
    event_dim = 1

    def __init__(self, input_dim: int, autoregressive_nn: torch.nn.Module, **kwargs) -> None:
        super().__init__()
        check_positive_int("ConditionalSplineAutoregressive", "input_dim", input_dim)
        check_spline_args(
            "ConditionalSplineAutoregressive",
            kwargs.get("count_bins", 8),
            kwargs.get("bound", 3.0),
            kwargs.get("order", "linear"),
            min_bins=2,
        )
        self.input_dim = input_dim
        self.nn = autoregressive_nn
        self.kwargs = kwargs

    def condition(self, context: torch.Tensor) -> SplineAutoregressive:
        """The spline autoregressive flow for ``context``."""
        return SplineAutoregressive(self.input_dim, ContextBoundNN(self.nn, context), **self.kwargs)


def spline_autoregressive(
    input_dim: int,
    hidden_dims: Sequence[int] | None = None,
    count_bins: int = 8,
    bound: float = 3.0,
    order: str = "linear",
) -> SplineAutoregressive:
    """A :class:`SplineAutoregressive` flow on an :class:`~ember.nn.AutoRegressiveNN`.

    ``hidden_dims`` defaults to ``[10 * input_dim, 10 * input_dim]``.

    Example::

        >>> import torch
        >>> from ember.distributions.transforms import spline_autoregressive
        >>> spline_autoregressive(3, [16], count_bins=4)(torch.randn(2, 3)).shape
        torch.Size([2, 3])
    """
    check_positive_int("spline_autoregressive", "input_dim", input_dim)
    check_spline_args("spline_autoregressive", count_bins, bound, order, min_bins=2)
    if hidden_dims is None:
        hidden_dims = [input_dim * 10, input_dim * 10]
    arn = AutoRegressiveNN(input_dim, hidden_dims, param_dims=spline_param_dims(count_bins, order))
    return SplineAutoregressive(input_dim, arn, count_bins=count_bins, bound=bound, order=order)


def conditional_spline_autoregressive(
    input_dim: int,
    context_dim: int,
    hidden_dims: Sequence[int] | None = None,
    count_bins: int = 8,
    bound: float = 3.0,
    order: str = "linear",
) -> ConditionalSplineAutoregressive:
    """A :class:`ConditionalSplineAutoregressive` on a ``ConditionalAutoRegressiveNN``.

    ``hidden_dims`` defaults to ``[10 * input_dim, 10 * input_dim]``.

    Example::

        >>> import torch
        >>> from ember.distributions.transforms import conditional_spline_autoregressive
        >>> flow = conditional_spline_autoregressive(2, 3, [8], count_bins=4)
        >>> flow.condition(torch.zeros(3))(torch.zeros(5, 2)).shape
        torch.Size([5, 2])
    """
    check_positive_int("conditional_spline_autoregressive", "input_dim", input_dim)
    check_spline_args("conditional_spline_autoregressive", count_bins, bound, order, min_bins=2)
    if hidden_dims is None:
        hidden_dims = [input_dim * 10, input_dim * 10]
    arn = ConditionalAutoRegressiveNN(
        input_dim, context_dim, hidden_dims, param_dims=spline_param_dims(count_bins, order)
    )
    return ConditionalSplineAutoregressive(
        input_dim, arn, count_bins=count_bins, bound=bound, order=order
    )
