"""Special functions: gradient-safe log, log Beta / binomial (exact or by a shifted
Stirling series), log modified Bessel functions of the first kind, Gauss-Hermite
quadrature rules and a sparse multinomial likelihood."""

import math
import weakref

import numpy as np
import torch

__all__ = [
    "get_quad_rule",
    "log_beta",
    "log_binomial",
    "log_I1",
    "safe_log",
    "sparse_multinomial_likelihood",
]


class _SafeLog(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.log()

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad / x.clamp(min=torch.finfo(x.dtype).eps)


def safe_log(x):
    """:func:`torch.log` whose gradient stays finite at zero.

    The derivative ``1 / x`` is evaluated at ``max(x, finfo.eps)``, so it is at most
    ``1 / eps`` instead of infinite.

    Example::

        >>> x = torch.tensor([0.0, 1.0], requires_grad=True)
        >>> safe_log(x).sum().backward()
        >>> bool(torch.isfinite(x.grad).all())
        True
    """
    return _SafeLog.apply(x)


def _check_tol(tol):
    if not isinstance(tol, (float, int)) or isinstance(tol, bool) or tol < 0:
        raise ValueError(f"tol must be a nonnegative number, got {tol!r}")


def log_beta(x, y, tol=0.0):
    """Log of the Beta function ``B(x, y) = Γ(x) Γ(y) / Γ(x + y)``.

    With ``tol < 0.02`` this is exact (via :func:`torch.lgamma`). With a larger
    ``tol`` it uses the Stirling series ``lgamma(z) ≈ (z - 1/2) log z - z + log(2π)/2``
    after shifting the arguments up ``n = ceil(0.082 / tol)`` times through
    ``lgamma(z) = lgamma(z + 1) - log z``; the absolute error is then below ``tol``.

    :param torch.Tensor x: positive tensor.
    :param torch.Tensor y: positive tensor.
    :param float tol: bound on the absolute error.

    Example::

        >>> round(float(log_beta(torch.tensor(2.0), torch.tensor(3.0)).exp() * 12), 5)
        1.0
    """
    _check_tol(tol)
    if tol < 0.02:
        return x.lgamma() + y.lgamma() - (x + y).lgamma()
    shift = int(math.ceil(0.082 / tol))
    # log B(x, y) = log B(x+n, y+n) + sum_k log((x+y+k) / ((x+k)(y+k))) over k < n
    xy = x + y
    ratio = 1.0
    for k in range(shift):
        ratio = ratio * (xy + k) / ((x + k) * (y + k))
    xs, ys, xys = x + shift, y + shift, xy + shift
    # Stirling: log B(a, b) ≈ (a-1/2)log a + (b-1/2)log b - (a+b-1/2)log(a+b) + log(2π)/2
    # (the "-a - b + (a + b)" terms cancel, and the 2n shift adds -n net).
    return (
        ratio.log()
        + (xs - 0.5) * xs.log()
        + (ys - 0.5) * ys.log()
        - (xys - 0.5) * xys.log()
        + (0.5 * math.log(2 * math.pi) - shift)
    )


@torch.no_grad()
def log_binomial(n, k, tol=0.0):
    """Log of the binomial coefficient ``n choose k`` (no gradient).

    Exact for ``tol < 0.02``; otherwise approximated through
    :func:`log_beta` with the given error bound, using
    ``C(n, k) = 1 / ((n + 1) B(k + 1, n - k + 1))``.

    Example::

        >>> round(float(log_binomial(torch.tensor(5.0), torch.tensor(2.0)).exp()), 4)
        10.0
    """
    _check_tol(tol)
    m = n + 1
    if tol < 0.02:
        return m.lgamma() - (k + 1).lgamma() - (m - k).lgamma()
    return -m.log() - log_beta(k + 1, m - k, tol=tol)


def log_I1(orders: int, value: torch.Tensor, terms=250):
    r"""Logs of the modified Bessel functions of the first kind ``I_0 … I_orders``.

    Uses the series :math:`I_v(z) = \sum_k (z/2)^{2k+v} / (k!\,\Gamma(v+k+1))`
    truncated after ``terms`` terms, summed in log space.

    :param int orders: highest order ``v``; orders ``0 … orders`` are returned.
    :param torch.Tensor value: positive arguments ``z``.
    :param int terms: number of series terms.
    :return: tensor of shape ``(orders + 1,) + value.shape`` (a scalar ``value`` is
        treated as shape ``(1,)``).

    Example::

        >>> log_I1(1, torch.tensor([1.0])).exp()  # I_0(1), I_1(1)
        tensor([[1.2661],
                [0.5652]])
    """
    if not isinstance(orders, int) or orders < 0:
        raise ValueError(f"orders must be a nonnegative int, got {orders!r}")
    num = orders + 1
    vshape = value.shape if value.dim() > 0 else torch.Size([1])
    z = value.reshape(-1)
    k = torch.arange(terms, dtype=value.dtype, device=value.device)
    v = torch.arange(num, dtype=value.dtype, device=value.device)
    log_half_z = (z / 2).log()  # (N,)
    # exponent[v, n, k] = (2k + v) log(z_n/2) - lgamma(k+1) - lgamma(v+k+1)
    expo = (
        (2 * k + v[:, None])[:, None, :] * log_half_z[None, :, None]
        - (k + 1).lgamma()[None, None, :]
        - (v[:, None] + k + 1).lgamma()[:, None, :]
    )
    return expo.logsumexp(-1).reshape((num,) + tuple(vshape))


def get_quad_rule(num_quad, prototype_tensor):
    """Gauss-Hermite quadrature for a standard normal expectation.

    Returns ``(points, log_weights)`` such that
    ``E[f(Z)] ≈ sum(exp(log_weights) * f(points))`` for ``Z ~ Normal(0, 1)``,
    exact for polynomials of degree below ``2 * num_quad``.

    :param int num_quad: number of points.
    :param torch.Tensor prototype_tensor: supplies dtype and device.

    Example::

        >>> pts, logw = get_quad_rule(8, torch.tensor(0.0, dtype=torch.float64))
        >>> round(float((logw.exp() * pts**2).sum()), 12)
        1.0
    """
    if not isinstance(num_quad, int) or num_quad < 1:
        raise ValueError(f"num_quad must be a positive int, got {num_quad!r}")
    nodes, weights = np.polynomial.hermite.hermgauss(num_quad)
    # hermgauss integrates against exp(-x^2); substitute x = z / sqrt(2).
    points = torch.from_numpy(nodes * math.sqrt(2.0))
    log_weights = torch.from_numpy(np.log(weights) - 0.5 * math.log(math.pi))
    return points.type_as(prototype_tensor), log_weights.type_as(prototype_tensor)


_LOG_FACTORIAL_SUMS: dict = {}


def _log_factorial_sum(x):
    # The count tensors are usually fixed data reused every step, so the sum of
    # log-factorials is cached per tensor object (dropped when the tensor dies).
    if x.requires_grad:
        return (x + 1).lgamma().sum()
    key = id(x)
    cached = _LOG_FACTORIAL_SUMS.get(key)
    if cached is None:
        cached = (x + 1).lgamma().sum()
        _LOG_FACTORIAL_SUMS[key] = cached
        weakref.finalize(x, _LOG_FACTORIAL_SUMS.pop, key, None)
    return cached


def sparse_multinomial_likelihood(total_count, nonzero_logits, nonzero_value):
    """Multinomial log-likelihood from the nonzero counts only.

    Equals ``Multinomial(logits=logits).log_prob(value).sum()`` when
    ``total_count = value.sum(-1)``, ``nonzero_logits`` are the normalized logits
    at the nonzero entries of ``value`` and ``nonzero_value`` the counts there.

    Example::

        >>> value = torch.tensor([3.0, 0.0, 1.0])
        >>> logits = torch.tensor([0.5, 0.2, 0.3]).log()
        >>> lp = sparse_multinomial_likelihood(value.sum(-1), logits[[0, 2]], value[[0, 2]])
        >>> round(float(lp.exp()), 4)  # 4 * 0.5**3 * 0.3
        0.15
    """
    return (
        _log_factorial_sum(total_count)
        - _log_factorial_sum(nonzero_value)
        + torch.dot(nonzero_logits, nonzero_value)
    )
