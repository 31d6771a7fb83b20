"""Monotonic rational splines: neural spline flows (Durkan et al. 2019, arXiv:1906.04032)
and linear rational splines (Dolatabadi et al. 2020, arXiv:2001.05168).

On ``[-bound, bound]`` each coordinate is mapped through a strictly increasing
spline of ``count_bins`` segments between knots ``(x_k, y_k)`` with slopes
``d_k`` at the knots; outside that interval the map is the identity (the end
slopes are 1, so the derivative is continuous there). Each segment is

* ``order="quadratic"``: a ratio of two quadratics in the position
  ``xi = (x - x_k) / (x_{k+1} - x_k)`` inside the bin (Durkan et al.);
* ``order="linear"``: two ratios of linear functions that meet at
  ``xi = lambda`` with matching value and slope (Dolatabadi et al.).

Both have closed-form inverses of the same cost as the forward map. The
computation lives in one function, :func:`monotonic_rational_spline`, shared
by :class:`Spline`, :class:`ConditionalSpline` and the spline flows built on
them (:mod:`~ember.distributions.transforms.spline_coupling`,
:mod:`~ember.distributions.transforms.spline_autoregressive`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.distributions import constraints
from torch.nn import functional as F

from ember.distributions.transforms.torch_transform import (
    ConditionalTransformModule,
    TransformModule,
    check_last_dim,
    check_positive_int,
)
from ember.nn.auto_reg_nn import DenseNN

SPLINE_ORDERS = ("linear", "quadratic")
"""The spline orders :func:`monotonic_rational_spline` offers."""


def check_spline_args(owner: str, count_bins, bound, order, min_bins: int = 1) -> None:
    """Raise a ValueError naming ``owner`` unless the spline settings are usable.

    ``count_bins`` must be an int of at least ``min_bins`` (networks need 2: a
    one-bin spline has no interior slopes for them to output), ``bound`` a
    positive number and ``order`` one of :data:`SPLINE_ORDERS`.

    Example::

        >>> check_spline_args("Spline", 8, 3.0, "cubic")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: Spline: order='cubic' is not available; ...
    """
    if order not in SPLINE_ORDERS:
        raise ValueError(
            f"{owner}: order={order!r} is not available; the keyword argument 'order' "
            f"must be one of {list(SPLINE_ORDERS)}"
        )
    if not isinstance(count_bins, int) or isinstance(count_bins, bool) or count_bins < min_bins:
        raise ValueError(
            f"{owner}: count_bins must be an int of at least {min_bins} (the number of "
            f"spline segments), got {count_bins!r}"
        )
    if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not bound > 0:
        raise ValueError(
            f"{owner}: bound must be a positive number (the spline acts on "
            f"[-bound, bound]), got {bound!r}"
        )


def _knots(fractions: torch.Tensor, bound: float) -> torch.Tensor:
    """Knot positions ``-bound = k_0 < ... < k_K = bound`` from bin fractions summing to 1."""
    inner = torch.cumsum(fractions[..., :-1], dim=-1) * (2 * bound) - bound
    ends = fractions.new_full(fractions.shape[:-1] + (1,), bound)
    return torch.cat([-ends, inner, ends], dim=-1)


def _log_slope_quadratic(xi, s, d_lo, d_hi):
    """``log dy/dx`` of a rational-quadratic segment at position ``xi`` (Durkan et al., Eq. 5)."""
    t = xi * (1 - xi)
    denominator = s + (d_lo + d_hi - 2 * s) * t
    numerator = d_hi * xi.pow(2) + 2 * s * t + d_lo * (1 - xi).pow(2)
    return 2 * torch.log(s) + torch.log(numerator) - 2 * torch.log(denominator)


def _linear_segment(xi, lam, w_b, w_c, y_a, y_b, y_c, width):
    """Value and ``log dy/dx`` of a linear rational segment at position ``xi``.

    Left of ``lam`` the segment interpolates ``(0, y_a)`` and ``(lam, y_c)`` with
    weights ``1`` and ``w_c``; right of it ``(lam, y_c)`` and ``(1, y_b)`` with
    weights ``w_c`` and ``w_b``.
    """
    left = xi <= lam
    # Both branches are polynomial (finite) everywhere; select before dividing.
    numerator = torch.where(
        left, y_a * (lam - xi) + w_c * y_c * xi, w_c * y_c * (1 - xi) + w_b * y_b * (xi - lam)
    )
    denominator = torch.where(left, (lam - xi) + w_c * xi, w_c * (1 - xi) + w_b * (xi - lam))
    slope_numerator = torch.where(
        left, w_c * lam * (y_c - y_a), w_b * w_c * (1 - lam) * (y_b - y_c)
    )
    log_slope = torch.log(slope_numerator) - 2 * torch.log(denominator) - torch.log(width)
    return numerator / denominator, log_slope


def monotonic_rational_spline(
    inputs: torch.Tensor,
    unnormalized_widths: torch.Tensor,
    unnormalized_heights: torch.Tensor,
    unnormalized_derivatives: torch.Tensor,
    unnormalized_lambdas: torch.Tensor | None = None,
    *,
    inverse: bool = False,
    bound: float = 3.0,
    min_bin_width: float = 1e-3,
    min_bin_height: float = 1e-3,
    min_derivative: float = 1e-3,
    min_lambda: float = 0.025,
) -> tuple[torch.Tensor, torch.Tensor]:
    """An elementwise monotonic rational spline (or its inverse) and its log-derivative.

    The spline maps ``[-bound, bound]`` onto itself and is the identity
    elsewhere. Its ``K`` bins have widths
    ``min_bin_width + (1 - K min_bin_width) softmax(unnormalized_widths)`` (times
    ``2 bound``), heights likewise from ``unnormalized_heights``, slopes
    ``min_derivative + softplus(unnormalized_derivatives)`` at the ``K - 1``
    interior knots and 1 at the two ends. With ``unnormalized_lambdas`` the
    segments are linear rational (Dolatabadi et al. 2020), each split at
    ``lambda = min_lambda + (1 - 2 min_lambda) sigmoid(unnormalized_lambdas)``;
    without, rational quadratic (Durkan et al. 2019).

    :param inputs: points of shape ``batch + (D,)`` (outputs of the spline if
        ``inverse``).
    :param unnormalized_widths: shape ``batch' + (D, K)``.
    :param unnormalized_heights: shape ``batch' + (D, K)``.
    :param unnormalized_derivatives: shape ``batch' + (D, K - 1)``.
    :param unnormalized_lambdas: shape ``batch' + (D, K)``, or None for the
        quadratic spline.
    :param inverse: evaluate the inverse map instead.
    :param bound: half-width of the box ``[-bound, bound]^2`` holding the spline.
    :returns: ``(outputs, log_abs_det)``, both of the broadcast shape of
        ``inputs`` and ``batch' + (D,)``; ``log_abs_det`` is
        ``log |d outputs / d inputs|`` elementwise (so for ``inverse=True`` it is
        minus the forward map's log-derivative at ``outputs``), 0 outside the box.

    Example::

        >>> import math, torch
        >>> w, h = torch.zeros(1, 4), torch.zeros(1, 4)  # four equal bins: slope 1 ...
        >>> d = torch.full((1, 3), math.log(math.expm1(1 - 1e-3)))  # ... and knot slopes 1
        >>> x = torch.tensor([[-5.0], [0.4], [2.0]])
        >>> y, log_det = monotonic_rational_spline(x, w, h, d, bound=3.0)
        >>> torch.allclose(y, x), torch.allclose(log_det, torch.zeros(3, 1), atol=1e-6)  # identity
        (True, True)
        >>> h = torch.tensor([[2.0, 0.0, 0.0, 0.0]])  # a steep first bin
        >>> y, log_det = monotonic_rational_spline(x, w, h, d, bound=3.0)
        >>> y.squeeze(-1)
        tensor([-5.0000,  2.0444,  2.6525])
        >>> x2, minus_log_det = monotonic_rational_spline(y, w, h, d, inverse=True)
        >>> torch.allclose(x2, x), torch.allclose(minus_log_det, -log_det)
        (True, True)
    """
    owner = "monotonic_rational_spline"
    count_bins = unnormalized_widths.shape[-1]
    expected = {
        "unnormalized_heights": (unnormalized_heights, count_bins),
        "unnormalized_derivatives": (unnormalized_derivatives, count_bins - 1),
    }
    if unnormalized_lambdas is not None:
        expected["unnormalized_lambdas"] = (unnormalized_lambdas, count_bins)
    for name, (tensor, size) in expected.items():
        if tensor.dim() < 2 or tensor.shape[-1] != size:
            raise ValueError(
                f"{owner}: {name} has shape {tuple(tensor.shape)}; with "
                f"{count_bins} bins (the last dim of unnormalized_widths) it must be "
                f"(..., D, {size})"
            )
    if not bound > 0:
        raise ValueError(f"{owner}: bound must be positive, got {bound!r}")
    if min_bin_width * count_bins >= 1 or min_bin_height * count_bins >= 1:
        raise ValueError(
            f"{owner}: min_bin_width={min_bin_width} / min_bin_height={min_bin_height} "
            f"are too large for {count_bins} bins (their sum over bins must stay below 1)"
        )
    try:
        batch = torch.broadcast_shapes(inputs.shape, unnormalized_widths.shape[:-1])
    except RuntimeError:
        raise ValueError(
            f"{owner}: inputs of shape {tuple(inputs.shape)} do not broadcast against "
            f"spline parameters of shape {tuple(unnormalized_widths.shape)} (..., D, K)"
        ) from None

    widths = min_bin_width + (1 - min_bin_width * count_bins) * F.softmax(
        unnormalized_widths, dim=-1
    )
    heights = min_bin_height + (1 - min_bin_height * count_bins) * F.softmax(
        unnormalized_heights, dim=-1
    )
    x_knots = _knots(widths, bound)
    y_knots = _knots(heights, bound)
    widths = x_knots[..., 1:] - x_knots[..., :-1]
    heights = y_knots[..., 1:] - y_knots[..., :-1]
    inner = min_derivative + F.softplus(unnormalized_derivatives)
    end = inner.new_ones(inner.shape[:-1] + (1,))
    derivatives = torch.cat([end, inner, end], dim=-1)

    inputs = inputs.expand(batch)
    inside = (inputs >= -bound) & (inputs <= bound)
    # Evaluate the spline at a point of the box everywhere, so that no branch that
    # torch.where discards can produce inf or nan (whose gradients would leak).
    z = inputs.clamp(-bound, bound)
    search = (y_knots if inverse else x_knots).expand(batch + (count_bins + 1,)).contiguous()
    bin_index = torch.searchsorted(search, z.unsqueeze(-1).contiguous(), right=True) - 1
    bin_index = bin_index.clamp(0, count_bins - 1)

    def in_bin(t: torch.Tensor) -> torch.Tensor:
        return t.expand(batch + t.shape[-1:]).gather(-1, bin_index).squeeze(-1)

    x_lo, y_lo = in_bin(x_knots), in_bin(y_knots)
    width, height = in_bin(widths), in_bin(heights)
    d_lo, d_hi = in_bin(derivatives[..., :-1]), in_bin(derivatives[..., 1:])
    s = height / width

    if unnormalized_lambdas is None:
        if inverse:
            r = z - y_lo
            g = d_lo + d_hi - 2 * s
            a = height * (s - d_lo) + r * g
            b = height * d_lo - r * g
            c = -s * r
            discriminant = (b.pow(2) - 4 * a * c).clamp(min=0)
            # The root in [0, 1], in the form that avoids cancellation.
            xi = (2 * c / (-b - torch.sqrt(discriminant))).clamp(0, 1)
            outputs = x_lo + xi * width
            log_det = -_log_slope_quadratic(xi, s, d_lo, d_hi)
        else:
            xi = ((z - x_lo) / width).clamp(0, 1)
            t = xi * (1 - xi)
            denominator = s + (d_lo + d_hi - 2 * s) * t
            outputs = y_lo + height * (s * xi.pow(2) + d_lo * t) / denominator
            log_det = _log_slope_quadratic(xi, s, d_lo, d_hi)
    else:
        lam = min_lambda + (1 - 2 * min_lambda) * torch.sigmoid(unnormalized_lambdas)
        lam = in_bin(lam)
        # Weight 1 at the left knot; the right weight and the split point's weight and
        # value make the slopes d_lo, d_hi at the knots and a C1 join at lam.
        w_b = torch.sqrt(d_lo / d_hi)
        w_c = (lam * d_lo + (1 - lam) * w_b * d_hi) / s
        y_a, y_b = y_lo, y_lo + height
        y_c = ((1 - lam) * y_a + lam * w_b * y_b) / ((1 - lam) + lam * w_b)
        if inverse:
            left = z <= y_c
            numerator = torch.where(
                left, lam * (y_a - z), (w_c - lam * w_b) * z + lam * w_b * y_b - w_c * y_c
            )
            denominator = torch.where(
                left, (w_c - 1) * z + y_a - w_c * y_c, (w_c - w_b) * z + w_b * y_b - w_c * y_c
            )
            xi = (numerator / denominator).clamp(0, 1)
            outputs = x_lo + xi * width
            _, log_slope = _linear_segment(xi, lam, w_b, w_c, y_a, y_b, y_c, width)
            log_det = -log_slope
        else:
            xi = ((z - x_lo) / width).clamp(0, 1)
            outputs, log_det = _linear_segment(xi, lam, w_b, w_c, y_a, y_b, y_c, width)

    outputs = torch.where(inside, outputs, inputs)
    log_det = torch.where(inside, log_det, torch.zeros_like(log_det))
    return outputs, log_det


class ConditionedSpline(TransformModule):
    """An elementwise monotonic rational spline with given (unnormalized) parameters.

    ``params`` is a tuple ``(widths, heights, derivatives, lambdas)`` of
    unnormalized parameters as :func:`monotonic_rational_spline` takes them
    (``lambdas`` None for ``order="quadratic"``), or a callable returning one
    (called at every use, e.g. a network of a context). The spline acts on
    ``[-bound, bound]`` and is the identity elsewhere; ``log_abs_det_jacobian``
    is elementwise. Built by :meth:`ConditionalSpline.condition`; :class:`Spline`
    holds its own parameters.

    Example::

        >>> import torch
        >>> from ember.distributions.transforms.spline import ConditionedSpline
        >>> w, h, d = torch.randn(2, 5), torch.randn(2, 5), torch.randn(2, 4)
        >>> t = ConditionedSpline((w, h, d, None), bound=2.0, order="quadratic")
        >>> x = torch.randn(10, 2)
        >>> torch.allclose(t.inv(t(x).clone()), x, atol=1e-5)
        True
    """

    domain = constraints.real
    codomain = constraints.real
    bijective = True
    sign = +1

    def __init__(
        self, params=None, bound: float = 3.0, order: str = "linear", input_dim: int | None = None
    ) -> None:
        super().__init__(cache_size=1)
        check_spline_args(type(self).__name__, 1, bound, order)
        self._params = params
        self.bound = bound
        self.order = order
        self.input_dim = input_dim
        self._cached_log_det = None

    def spline_params(self) -> tuple:
        """The unnormalized parameters ``(widths, heights, derivatives, lambdas)``."""
        params = self._params() if callable(self._params) else self._params
        if not isinstance(params, (tuple, list)) or len(params) != 4:
            raise ValueError(
                f"{type(self).__name__}: params must be a tuple (widths, heights, "
                f"derivatives, lambdas) of unnormalized spline parameters (lambdas None "
                f"for order='quadratic'), got {type(params).__name__}"
            )
        if (params[3] is None) != (self.order == "quadratic"):
            raise ValueError(
                f"{type(self).__name__}: order={self.order!r} needs "
                + ("no lambdas" if self.order == "quadratic" else "lambdas (the 4th parameter)")
            )
        return tuple(params)

    def spline_op(self, value: torch.Tensor, inverse: bool = False):
        """``(spline(value), log|d spline/d value|)``, or the inverse map's pair."""
        check_last_dim(type(self).__name__, value, self.input_dim)
        return monotonic_rational_spline(
            value, *self.spline_params(), inverse=inverse, bound=self.bound
        )

    def _call(self, x):
        y, log_det = self.spline_op(x)
        self._cached_log_det = x, log_det
        return y

    def _inverse(self, y):
        x, log_det = self.spline_op(y, inverse=True)
        self._cached_log_det = x, -log_det
        return x

    def log_abs_det_jacobian(self, x, y):
        """``log dy/dx`` elementwise (from the latest call when ``(x, y)`` is its pair)."""
        cached = self._cached_log_det
        if cached is not None and cached[0] is x and self._cache_is_fresh(x, y):
            return cached[1]
        return self.spline_op(x)[1]


class Spline(ConditionedSpline):
    """An elementwise monotonic rational spline with learnable parameters (neural spline
    flow of Durkan et al. 2019; linear rational spline of Dolatabadi et al. 2020).

    Each of the ``input_dim`` coordinates gets its own spline of ``count_bins``
    segments on ``[-bound, bound]`` (identity outside), of ``order``
    ``"linear"`` or ``"quadratic"``; see :func:`monotonic_rational_spline`.
    The inverse is as cheap as the forward map.

    Example::

        >>> import torch, ember.distributions as dist
        >>> from ember.distributions.transforms import Spline
        >>> spline = Spline(3, count_bins=6, bound=3.0, order="quadratic")
        >>> d = dist.TransformedDistribution(dist.Normal(torch.zeros(3), 1.0), [spline])
        >>> x = d.sample((5,))
        >>> d.log_prob(x).shape
        torch.Size([5, 3])
        >>> torch.allclose(spline.inv(x.clone()), spline.inv(x), atol=1e-6)
        True
    """

    def __init__(
        self, input_dim: int, count_bins: int = 8, bound: float = 3.0, order: str = "linear"
    ) -> None:
        check_positive_int("Spline", "input_dim", input_dim)
        check_spline_args("Spline", count_bins, bound, order)
        super().__init__(None, bound=bound, order=order, input_dim=input_dim)
        self.count_bins = count_bins
        self.unnormalized_widths = nn.Parameter(torch.randn(input_dim, count_bins))
        self.unnormalized_heights = nn.Parameter(torch.randn(input_dim, count_bins))
        self.unnormalized_derivatives = nn.Parameter(torch.randn(input_dim, count_bins - 1))
        if order == "linear":
            self.unnormalized_lambdas = nn.Parameter(torch.randn(input_dim, count_bins))
        else:
            self.unnormalized_lambdas = None

    def spline_params(self) -> tuple:
        """The unnormalized parameters ``(widths, heights, derivatives, lambdas)``."""
        return (
            self.unnormalized_widths,
            self.unnormalized_heights,
            self.unnormalized_derivatives,
            self.unnormalized_lambdas,
        )


class _ParamsOfContext(nn.Module):
    """The spline parameters a :class:`ConditionalSpline` gives one context (a module, so
    that the conditioned spline registers the network's parameters)."""

    def __init__(self, conditional: ConditionalSpline, context: torch.Tensor) -> None:
        super().__init__()
        self.conditional = conditional
        self.context = context

    def forward(self):
        return self.conditional.spline_params(self.context)


class ConditionalSpline(ConditionalTransformModule):
    """An elementwise monotonic rational spline whose parameters a network computes from
    a context.

    ``nn(context)`` returns the unnormalized ``(widths, heights, derivatives,
    lambdas)`` (``lambdas`` only for ``order="linear"``) in one of two layouts:
    flat, ``batch + (input_dim * n,)`` with ``n = count_bins`` (``count_bins - 1``
    for the derivatives), as a :class:`~ember.nn.DenseNN` with those
    ``param_dims`` gives; or ``batch + (n, input_dim)``, as an
    :class:`~ember.nn.AutoRegressiveNN` with ``param_dims=[K, K, K - 1, K]``
    gives. ``condition(context)`` returns the :class:`ConditionedSpline`.

    Example::

        >>> import torch, ember.distributions as dist
        >>> from ember.nn import DenseNN
        >>> from ember.distributions.transforms import ConditionalSpline
        >>> D, K = 2, 4
        >>> net = DenseNN(3, [16], param_dims=[D * K, D * K, D * (K - 1), D * K])
        >>> flow = ConditionalSpline(net, D, K)
        >>> base = dist.Normal(torch.zeros(D), 1.0)
        >>> d = dist.TransformedDistribution(base, [flow.condition(torch.randn(5, 3))])
        >>> d.sample().shape
        torch.Size([5, 2])
    """

    domain = constraints.real
    codomain = constraints.real
    bijective = True
    event_dim = 0

    def __init__(
        self,
        nn: torch.nn.Module,
        input_dim: int,
        count_bins: int,
        bound: float = 3.0,
        order: str = "linear",
    ) -> None:
        super().__init__()
        check_positive_int("ConditionalSpline", "input_dim", input_dim)
        check_spline_args("ConditionalSpline", count_bins, bound, order, min_bins=2)
        if not callable(nn):
            raise TypeError(f"ConditionalSpline: nn must be callable, got {type(nn).__name__}")
        self.nn = nn
        self.input_dim = input_dim
        self.count_bins = count_bins
        self.bound = bound
        self.order = order

    def spline_params(self, context: torch.Tensor) -> tuple:
        """The unnormalized ``(widths, heights, derivatives, lambdas)`` for ``context``,
        each of shape ``batch + (input_dim, n)`` (``lambdas`` None if quadratic)."""
        out = self.nn(context)
        count = 4 if self.order == "linear" else 3
        if not isinstance(out, (tuple, list)) or len(out) != count:
            raise ValueError(
                f"ConditionalSpline: nn must return {count} tensors for order="
                f"{self.order!r} (widths, heights, derivatives"
                + (", lambdas" if count == 4 else "")
                + f"), got {len(out) if isinstance(out, (tuple, list)) else type(out).__name__}"
            )
        D, K = self.input_dim, self.count_bins
        sizes = (K, K, K - 1, K)[:count]
        # The widths (K >= 2 of them) tell the layout: flat D*K, or (K, D) per input.
        flat = out[0].shape[-1] == D * K
        params = []
        for tensor, size, name in zip(out, sizes, ("widths", "heights", "derivatives", "lambdas")):
            if flat and tensor.shape[-1] == D * size:
                params.append(tensor.reshape(tensor.shape[:-1] + (D, size)))
            elif not flat and tensor.dim() >= 2 and tensor.shape[-2:] == (size, D):
                params.append(tensor.transpose(-1, -2))
            else:
                raise ValueError(
                    f"ConditionalSpline: nn returned {name} of shape {tuple(tensor.shape)}; "
                    f"with input_dim={D}, count_bins={K} it must be (..., {D * size}) or "
                    f"(..., {size}, {D})"
                )
        if count == 3:
            params.append(None)
        return tuple(params)

    def condition(self, context: torch.Tensor) -> ConditionedSpline:
        """The spline for ``context``."""
        if not isinstance(context, torch.Tensor):
            raise TypeError(
                f"ConditionalSpline.condition: context must be a tensor, got "
                f"{type(context).__name__}"
            )
        return ConditionedSpline(
            _ParamsOfContext(self, context),
            bound=self.bound,
            order=self.order,
            input_dim=self.input_dim,
        )


def spline(input_dim: int, **kwargs) -> Spline:
    """A :class:`Spline` of dimension ``input_dim`` (``kwargs``: ``count_bins``, ``bound``,
    ``order``).

    Example::

        >>> import torch
        >>> from ember.distributions.transforms import spline
        >>> spline(4, count_bins=5)(torch.randn(3, 4)).shape
        torch.Size([3, 4])
    """
    return Spline(input_dim, **kwargs)


def conditional_spline(
    input_dim: int,
    context_dim: int,
    hidden_dims: Sequence[int] | None = None,
    count_bins: int = 8,
    bound: float = 3.0,
    order: str = "linear",
) -> ConditionalSpline:
    """A :class:`ConditionalSpline` on a :class:`~ember.nn.DenseNN` of the context.

    ``hidden_dims`` defaults to ``[10 * input_dim, 10 * input_dim]``.

    Example::

        >>> import torch
        >>> from ember.distributions.transforms import conditional_spline
        >>> flow = conditional_spline(2, context_dim=3, hidden_dims=[8], order="quadratic")
        >>> flow.condition(torch.zeros(3))(torch.zeros(4, 2)).shape
        torch.Size([4, 2])
    """
    check_positive_int("conditional_spline", "input_dim", input_dim)
    check_positive_int("conditional_spline", "context_dim", context_dim)
    check_spline_args("conditional_spline", count_bins, bound, order, min_bins=2)
    if hidden_dims is None:
        hidden_dims = [input_dim * 10, input_dim * 10]
    sizes = [count_bins, count_bins, count_bins - 1] + ([count_bins] if order == "linear" else [])
    net = DenseNN(context_dim, hidden_dims, param_dims=[input_dim * n for n in sizes])
    return ConditionalSpline(net, input_dim, count_bins, bound=bound, order=order)
