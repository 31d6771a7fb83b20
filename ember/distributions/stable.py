"""Stable: Levy alpha-stable distributions (Nolan's S0 or S parameterization)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.distributions import constraints

from ember.distributions.family import BroadcastFamily
from ember.distributions.validation import enable_fast_validation

__all__ = ["Stable", "StableWithLogProb"]

_EMPTY = torch.Size()
_HALF_PI = math.pi / 2
_NEAR_ONE = 0.02  # within this of stability 1, draws interpolate (see Stable)
_QUAD_POINTS = 256


def standard_stable_s1(alpha, beta, v, w):
    """Chambers-Mallows-Stuck draws of a standard stable in Nolan's S (=S1) coordinates
    from ``v ~ Uniform(-pi/2, pi/2)`` and ``w ~ Exponential(1)``, for ``alpha != 1``.

    Example::

        >>> x = standard_stable_s1(torch.tensor(2.0), torch.tensor(0.0),
        ...                        torch.tensor(0.3), torch.tensor(1.0))
        >>> x  # alpha = 2: 2 sqrt(w) sin(v), a Normal(0, 2) draw
        tensor(0.5910)
    """
    zeta = -beta * torch.tan(_HALF_PI * alpha)
    xi = torch.atan(-zeta) / alpha
    a = alpha * (v + xi)
    return (
        (1 + zeta**2) ** (0.5 / alpha)
        * torch.sin(a)
        / torch.cos(v) ** (1 / alpha)
        * (torch.cos(v - a) / w) ** ((1 - alpha) / alpha)
    )


def _standard_s0(alpha, beta, v, w):
    """Standard S0 draws: ``X1 + zeta`` with ``zeta = -beta tan(pi alpha / 2)``, for
    ``alpha`` away from 1; at ``alpha = 1`` the Cauchy-type CMS formula."""
    x1 = standard_stable_s1(alpha, beta, v, w)
    return x1 - beta * torch.tan(_HALF_PI * alpha)


def _standard_s0_alpha1(beta, v, w):
    b = _HALF_PI + beta * v
    return (b * torch.tan(v) - beta * torch.log(_HALF_PI * w * torch.cos(v) / b)) / _HALF_PI


def standard_stable_s0(alpha, beta, v, w):
    """Standard stable draws in Nolan's continuous S0 coordinates (``alpha`` in ``(0, 2]``).

    Within 0.02 of ``alpha = 1`` the S0 draw, which is continuous in ``alpha`` but a
    difference of two large terms there, is interpolated linearly between
    ``alpha = 1`` and ``1 +- 0.02`` with the same auxiliary variables.

    Example::

        >>> standard_stable_s0(torch.tensor(1.0), torch.tensor(0.0),
        ...                    torch.tensor(0.5), torch.tensor(1.0))  # Cauchy: tan(v)
        tensor(0.5463)
    """
    alpha, beta, v, w = torch.broadcast_tensors(alpha, beta, v, w)
    near = (alpha - 1).abs() < _NEAR_ONE
    far_alpha = torch.where(near, 1 + _NEAR_ONE * torch.where(alpha >= 1, 1.0, -1.0), alpha)
    far = _standard_s0(far_alpha, beta, v, w)
    at_one = _standard_s0_alpha1(beta, v, w)
    frac = (alpha - 1).abs() / _NEAR_ONE
    return torch.where(near, at_one + frac * (far - at_one), far)


def _gauss_legendre(n, like):
    x, wts = np.polynomial.legendre.leggauss(n)
    return (
        torch.tensor(x, dtype=like.dtype, device=like.device),
        torch.tensor(wts, dtype=like.dtype, device=like.device),
    )


def stable_s0_log_density(alpha, beta, x, num_points: int = _QUAD_POINTS):
    """Log-density of the standard S0 stable at ``x``, by Nolan's (1997) integral
    representations evaluated with Gauss-Legendre quadrature.

    The S0 density is continuous in ``alpha``; the representation for ``alpha != 1``
    is singular at 1, so within 0.02 of 1 the log-density is interpolated linearly
    between ``alpha = 1`` (:func:`stable_alpha1_log_density`) and ``1 +- 0.02``, as
    the draws are.

    Example::

        >>> stable_s0_log_density(torch.tensor(1.0), torch.tensor(0.0), torch.tensor(0.0))
        tensor(-1.1447)
    """
    alpha, beta, x = torch.broadcast_tensors(alpha, beta, x)
    near = (alpha - 1).abs() < _NEAR_ONE
    if not bool(near.any()):
        return _log_density_alpha_not_1(alpha, beta, x, num_points)
    side = torch.where(alpha >= 1, 1.0, -1.0).to(alpha.dtype)
    far_alpha = torch.where(near, 1 + _NEAR_ONE * side, alpha)
    far = _log_density_alpha_not_1(far_alpha, beta, x, num_points)
    at_one = stable_alpha1_log_density(beta, x, num_points)
    frac = ((alpha - 1).abs() / _NEAR_ONE).clamp(max=1.0)
    return torch.where(near, at_one + frac * (far - at_one), far)


def stable_alpha1_log_density(beta, x, num_points: int = _QUAD_POINTS):
    """Log-density of the standard stable with ``alpha = 1`` (where S0 and S1 agree).

    For ``beta > 0`` (Nolan 1997): ``f(x) = 1/(2 beta) integral_{-pi/2}^{pi/2}
    g exp(-g) dt`` with ``g(t) = exp(-pi x / (2 beta)) V(t)`` and ``V(t) = (2/pi)
    (pi/2 + beta t) / cos t * exp((pi/2 + beta t) tan t / beta)``; ``f(x; -beta) =
    f(-x; beta)``. For ``|beta| < 1e-3`` the Cauchy density (the ``beta = 0`` case),
    whose error there is below the quadrature's.

    Example::

        >>> stable_alpha1_log_density(torch.tensor(0.0), torch.tensor(1.0))  # Cauchy
        tensor(-1.8379)
    """
    beta, x = torch.broadcast_tensors(beta, x)
    cauchy = -math.log(math.pi) - torch.log1p(x**2)
    flip = beta < 0
    x = torch.where(flip, -x, x)
    b = torch.where(flip, -beta, beta).clamp(min=1e-3)
    nodes, weights = _gauss_legendre(num_points, x)
    shape = (num_points,) + (1,) * x.dim()
    theta = _HALF_PI * nodes.reshape(shape)  # maps [-1, 1] onto [-pi/2, pi/2]
    weights = weights.reshape(shape)
    arm = _HALF_PI + b * theta
    log_v = (
        math.log(2 / math.pi)
        + torch.log(arm.clamp(min=1e-300))
        - torch.log(torch.cos(theta).clamp(min=1e-300))
        + arm * torch.tan(theta) / b
    )
    log_g = (-math.pi * x / (2 * b) + log_v).clamp(max=700.0)  # (exp stays finite)
    log_integral = torch.logsumexp(log_g - torch.exp(log_g) + torch.log(weights), 0)
    general = log_integral + math.log(_HALF_PI) - torch.log(2 * b)
    return torch.where(beta.abs() < 1e-3, cauchy, general)


def _log_density_alpha_not_1(alpha, beta, x, num_points):
    """Log-density of the standard S0 stable for ``alpha != 1`` (Nolan 1997).

    With ``zeta = -beta tan(pi alpha / 2)``, ``t0 = atan(beta tan(pi alpha / 2)) / alpha``
    and ``x > zeta``: ``f(x) = alpha (x - zeta)^(1/(alpha-1)) / (pi |alpha - 1|)
    * integral_{-t0}^{pi/2} V(t) exp(-(x - zeta)^(alpha/(alpha-1)) V(t)) dt``; for
    ``x < zeta`` use ``f(x; beta) = f(-x; -beta)``.
    """
    zeta = -beta * torch.tan(_HALF_PI * alpha)
    flip = x < zeta
    x = torch.where(flip, -x, x)
    beta = torch.where(flip, -beta, beta)
    zeta = torch.where(flip, -zeta, zeta)
    theta0 = torch.atan(-zeta) / alpha  # atan(beta tan(pi alpha / 2)) / alpha
    dx = (x - zeta).clamp(min=torch.finfo(x.dtype).tiny)
    nodes, weights = _gauss_legendre(num_points, x)
    shape = (num_points,) + (1,) * x.dim()
    nodes, weights = nodes.reshape(shape), weights.reshape(shape)
    half = (_HALF_PI + theta0) / 2
    theta = -theta0 + half * (nodes + 1)  # maps [-1, 1] onto [-theta0, pi/2]
    am1 = alpha - 1
    log_v = (
        torch.log(torch.cos(alpha * theta0)) / am1
        + alpha
        / am1
        * (
            torch.log(torch.cos(theta).clamp(min=1e-300))
            - torch.log(torch.sin(alpha * (theta0 + theta)).clamp(min=1e-300))
        )
        + torch.log(torch.cos(alpha * theta0 + am1 * theta).clamp(min=1e-300))
        - torch.log(torch.cos(theta).clamp(min=1e-300))
    )
    g = (alpha / am1 * torch.log(dx) + log_v).clamp(max=700.0)  # (exp stays finite)
    log_integrand = g - torch.exp(g)
    log_integral = torch.logsumexp(log_integrand + torch.log(weights), 0) + torch.log(half)
    # At x = zeta the representation degenerates; there
    # f(zeta) = Gamma(1 + 1/alpha) cos(t0) / (pi (1 + zeta^2)^(1/(2 alpha))).
    at_zeta = (
        torch.lgamma(1 + 1 / alpha)
        + torch.log(torch.cos(theta0))
        - math.log(math.pi)
        - torch.log1p(zeta**2) / (2 * alpha)
    )
    general = (
        torch.log(alpha)
        - torch.log(dx)  # dx^(1/(alpha-1)) over the dx^(alpha/(alpha-1)) inside the integrand
        - math.log(math.pi)
        - torch.log(am1.abs())
        + log_integral
    )
    return torch.where(x - zeta < 1e-6, at_zeta, general)


@enable_fast_validation
class Stable(BroadcastFamily):
    """Levy alpha-stable distribution with ``stability`` (alpha in ``(0, 2]``), ``skew``
    (beta in ``[-1, 1]``), ``scale`` and ``loc``.

    ``coords="S0"`` (default) is Nolan's continuous parameterization:
    ``X = loc + scale * Z`` with ``Z`` standard S0; ``coords="S"`` is the classic one
    (``S1``), discontinuous in ``stability`` at 1 when ``skew != 0``. Draws use the
    Chambers-Mallows-Stuck method and are reparameterized in every parameter. The
    density has no closed form: :meth:`log_prob` evaluates Nolan's integral
    representation by Gauss-Legendre quadrature (accurate to about 1e-6 relative
    for moderate ``|x|``; within 0.02 of stability 1 it is interpolated between
    stability 1 and 1 +- 0.02, and at stability 1 with ``skew != 0`` the far tails,
    ``|x|`` beyond about 10 scales, lose accuracy); with ``stability = 2`` this is
    ``Normal(loc, sqrt(2) scale)``.

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.Stable(torch.tensor(1.5), torch.tensor(0.0))
        >>> d.log_prob(torch.tensor(0.0))
        tensor(-1.2470)
        >>> d.rsample((2,)).shape
        torch.Size([2])
    """

    param_names = ("stability", "skew", "scale", "loc")
    arg_constraints = {
        "stability": constraints.interval(0, 2),
        "skew": constraints.interval(-1, 1),
        "scale": constraints.positive,
        "loc": constraints.real,
    }
    support = constraints.real
    has_rsample = True

    def __init__(self, stability, skew, scale=1.0, loc=0.0, coords="S0", validate_args=None):
        if coords not in ("S", "S0"):
            raise ValueError(f"Stable: coords must be 'S0' or 'S', got {coords!r}")
        self.coords = coords
        self.init_params(validate_args, stability, skew, scale, loc)

    def expand(self, batch_shape, _instance=None):
        new = super().expand(batch_shape, _instance)
        new.coords = self.coords
        return new

    def _s0_loc(self):
        """The S0 location equal to this distribution's location."""
        if self.coords == "S0":
            return self.loc
        # S: X = scale * Z1 + loc with Z1 = Z0 + beta tan(pi alpha / 2) (alpha != 1), or
        # with the S0 location loc + (2 / pi) beta scale log(scale) (alpha = 1).
        alpha, beta, scale = self.stability, self.skew, self.scale
        shift = torch.where(
            alpha == 1,
            beta * scale.log() * (2 / math.pi),
            beta * torch.tan(_HALF_PI * alpha),
        )
        return self.loc + scale * shift

    def rsample(self, sample_shape=_EMPTY):
        shape = self.shape(sample_shape)
        like = self.loc
        v = (torch.rand(shape, dtype=like.dtype, device=like.device) - 0.5) * math.pi
        v = v.clamp(-_HALF_PI + 1e-6, _HALF_PI - 1e-6)
        w = torch.empty(shape, dtype=like.dtype, device=like.device).exponential_()
        z = standard_stable_s0(self.stability, self.skew, v, w)
        return self._s0_loc() + self.scale * z

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        z = (value - self._s0_loc()) / self.scale
        return stable_s0_log_density(self.stability, self.skew, z) - self.scale.log()

    @property
    def mean(self):
        nan = torch.full_like(self.loc, math.nan)
        mean = (
            self.loc
            if self.coords == "S"
            else (self.loc - self.scale * self.skew * torch.tan(_HALF_PI * self.stability))
        )
        return torch.where(self.stability > 1, mean, nan)

    @property
    def variance(self):
        inf = torch.full_like(self.scale, math.inf)
        return torch.where(self.stability == 2, 2 * self.scale**2, inf)


class StableWithLogProb(Stable):
    """:class:`Stable` meant to be scored by its density: reparameterizers leave it
    alone, so inference uses :meth:`Stable.log_prob` directly.

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.StableWithLogProb(torch.tensor(2.0), torch.tensor(0.0))
        >>> d.log_prob(torch.tensor(0.0))  # Normal(0, sqrt 2)
        tensor(-1.2655)
    """
