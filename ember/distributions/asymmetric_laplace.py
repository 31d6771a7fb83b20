"""AsymmetricLaplace and its smoothed version SoftAsymmetricLaplace."""

from __future__ import annotations

import math

import torch
from torch.distributions import constraints
from torch.distributions.utils import lazy_property

from ember.distributions.family import BroadcastFamily
from ember.distributions.validation import enable_fast_validation

__all__ = ["AsymmetricLaplace", "SoftAsymmetricLaplace"]

_EMPTY = torch.Size()
_LOG_HALF = math.log(0.5)


def log_erfc(x: torch.Tensor) -> torch.Tensor:
    """``log(erfc(x))``, finite for large positive ``x`` (where ``erfc`` underflows).

    Example::

        >>> log_erfc(torch.tensor([0.0, 30.0]))
        tensor([   0.0000, -903.9741])
    """
    # erfc(x) = erfcx(x) exp(-x^2); erfcx is well scaled for x >= 0.
    pos = torch.special.erfcx(x.clamp(min=0)).log() - x.clamp(min=0) ** 2
    neg = torch.erfc(x.clamp(max=0)).log()
    return torch.where(x >= 0, pos, neg)


@enable_fast_validation
class AsymmetricLaplace(BroadcastFamily):
    """Laplace distribution with different scales on either side of its mode ``loc``.

    Left of ``loc`` the density decays with scale ``left_scale = scale * asymmetry``,
    right of it with ``right_scale = scale / asymmetry``; the density is continuous at
    ``loc``: ``exp(-|x - loc| / side_scale) / (left_scale + right_scale)``. A draw is
    ``loc - left_scale * E1 + right_scale * E2`` with independent standard exponentials
    (reparameterized).

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.AsymmetricLaplace(0.0, 1.0, 2.0)
        >>> d.log_prob(torch.tensor([-2.0, 0.0, 2.0]))
        tensor([-1.9163, -0.9163, -4.9163])
        >>> d.mean
        tensor(-1.5000)
    """

    param_names = ("loc", "scale", "asymmetry")
    arg_constraints = {
        "loc": constraints.real,
        "scale": constraints.positive,
        "asymmetry": constraints.positive,
    }
    support = constraints.real
    has_rsample = True

    def __init__(self, loc, scale, asymmetry, *, validate_args=None):
        self.init_params(validate_args, loc, scale, asymmetry)

    @lazy_property
    def left_scale(self):
        return self.scale * self.asymmetry

    @lazy_property
    def right_scale(self):
        return self.scale / self.asymmetry

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        d = value - self.loc
        side = torch.where(d < 0, self.left_scale, self.right_scale)
        return -d.abs() / side - (self.left_scale + self.right_scale).log()

    def rsample(self, sample_shape=_EMPTY):
        shape = self.shape(sample_shape)
        e = torch.empty((2,) + shape, dtype=self.loc.dtype, device=self.loc.device).exponential_()
        return self.loc - self.left_scale * e[0] + self.right_scale * e[1]

    @property
    def mean(self):
        left, right = self.left_scale, self.right_scale
        return self.loc + right - left

    @property
    def variance(self):
        return self.left_scale**2 + self.right_scale**2


@enable_fast_validation
class SoftAsymmetricLaplace(BroadcastFamily):
    """:class:`AsymmetricLaplace` convolved with ``Normal(0, scale * softness)``: smooth,
    with two exponential tails of scales ``scale * asymmetry`` (left) and
    ``scale / asymmetry`` (right).

    A draw is ``loc + scale * softness * Z - left_scale * E1 + right_scale * E2``; the
    density is the closed form of that convolution (sums of exponentially tilted Gaussian
    tails, written with ``log erfc``). As ``softness -> 0`` it tends to
    :class:`AsymmetricLaplace`.

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.SoftAsymmetricLaplace(0.0, 1.0, asymmetry=2.0, softness=0.5)
        >>> d.log_prob(torch.tensor(0.0))
        tensor(-1.3084)
        >>> d.variance
        tensor(4.5000)
    """

    param_names = ("loc", "scale", "asymmetry", "softness")
    arg_constraints = {
        "loc": constraints.real,
        "scale": constraints.positive,
        "asymmetry": constraints.positive,
        "softness": constraints.positive,
    }
    support = constraints.real
    has_rsample = True

    def __init__(self, loc, scale, asymmetry=1.0, softness=1.0, *, validate_args=None):
        self.init_params(validate_args, loc, scale, asymmetry, softness)

    @lazy_property
    def left_scale(self):
        return self.scale * self.asymmetry

    @lazy_property
    def right_scale(self):
        return self.scale / self.asymmetry

    @lazy_property
    def soft_scale(self):
        return self.scale * self.softness

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        # In units of scale: x = z + a with z ~ N(0, s^2) and a asymmetric Laplace with
        # side scales L (left) and R (right). Integrating the Gaussian against each
        # exponential side gives, with c = 1 / (L + R):
        #   p(x) = c/2 [exp(s^2/(2R^2) - x/R) erfc((s^2/R - x)/(s sqrt2))
        #             + exp(s^2/(2L^2) + x/L) erfc((s^2/L + x)/(s sqrt2))]
        x = (value - self.loc) / self.scale
        left = self.asymmetry
        right = self.asymmetry.reciprocal()
        s = self.softness
        ss = s * s
        root2s = s * math.sqrt(2)
        from_right = ss / (2 * right**2) - x / right + log_erfc((ss / right - x) / root2s)
        from_left = ss / (2 * left**2) + x / left + log_erfc((ss / left + x) / root2s)
        return (
            _LOG_HALF
            + torch.logaddexp(from_left, from_right)
            - (left + right).log()
            - self.scale.log()
        )

    def rsample(self, sample_shape=_EMPTY):
        shape = self.shape(sample_shape)
        z = torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)
        e = torch.empty((2,) + shape, dtype=self.loc.dtype, device=self.loc.device).exponential_()
        return self.loc + self.soft_scale * z - self.left_scale * e[0] + self.right_scale * e[1]

    @property
    def mean(self):
        return self.loc + self.right_scale - self.left_scale

    @property
    def variance(self):
        return self.left_scale**2 + self.right_scale**2 + self.soft_scale**2
