"""VonMises: the von Mises distribution of angles on the circle.

Its cousin on the 2-sphere, :class:`VonMises3D`, lives in ``von_mises_3d`` and is
re-exported here.
"""

from __future__ import annotations

import math

import torch

from ember.distributions.torch_distribution import TorchDistributionMixin
from ember.distributions.validation import enable_fast_validation, fresh_instance
from ember.distributions.von_mises_3d import VonMises3D

__all__ = ["VonMises", "VonMises3D"]

_EMPTY = torch.Size()

_LOG_2PI = math.log(2 * math.pi)


def _best_fisher(kappa: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Angles in ``[-pi, pi]`` around 0 from von Mises(0, kappa), by Best & Fisher (1979).

    A wrapped-Cauchy envelope with rejection; all arithmetic in float64.
    ``kappa`` is broadcast to ``shape``.
    """
    kappa = kappa.double().expand(shape)
    s = torch.sqrt(1 + 4 * kappa**2)
    tau = 1 + s
    # rho = (tau - sqrt(2 tau)) / (2 kappa), rewritten without cancellation at small kappa.
    rho = 2 * kappa * tau / ((s + 1) * (tau + torch.sqrt(2 * tau)))
    tiny = kappa < 1e-8  # the von Mises is uniform there: accept every proposal
    rho = torch.where(tiny, torch.ones_like(rho), rho)
    r = (1 + rho**2) / (2 * rho)

    result = torch.empty(shape, dtype=torch.float64, device=kappa.device)
    todo = torch.ones(shape, dtype=torch.bool, device=kappa.device)
    while True:
        u1, u2, u3 = torch.rand((3,) + shape, dtype=torch.float64, device=kappa.device)
        z = torch.cos(math.pi * u1)
        f = (1 + r * z) / (r + z)
        c = kappa * (r - f)
        accept = (c * (2 - c) - u2 > 0) | (torch.log(c / u2) + 1 - c >= 0)
        f = torch.where(tiny, z, f)
        accept = (accept | tiny) & todo
        theta = torch.sign(u3 - 0.5) * torch.acos(f.clamp(-1.0, 1.0))
        result = torch.where(accept, theta, result)
        todo = todo & ~accept
        if not bool(todo.any()):
            return result


@enable_fast_validation
class VonMises(torch.distributions.VonMises, TorchDistributionMixin):
    """Circular von Mises distribution with density ``exp(k cos(x - loc)) / (2 pi I0(k))``.

    ``loc`` and values may be any real numbers (handy for unconstrained
    optimization); they are read as angles modulo ``2 pi``. Samples are drawn
    with the rejection sampler of Best & Fisher (1979) and lie in
    ``[-pi, pi]``. ``mean`` and ``variance`` are the circular ones: ``loc`` and
    ``1 - I1(k) / I0(k)``; the log-density stays finite for large ``k``. This
    is the wrapper of ``torch.distributions.VonMises`` in
    :mod:`ember.distributions.torch`. See :class:`VonMises3D` for the spherical
    cousin.

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.VonMises(torch.tensor(1.0), torch.tensor(2.0))
        >>> d.log_prob(torch.tensor(1.0))
        tensor(-0.6619)
        >>> d.variance
        tensor(0.3022)
        >>> x = d.sample((1000,))
        >>> bool((x.abs() <= torch.pi).all())
        True
    """

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        new = fresh_instance(self, VonMises, _instance)
        new.loc = self.loc.expand(batch_shape)
        new.concentration = self.concentration.expand(batch_shape)
        torch.distributions.Distribution.__init__(new, batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        k = self.concentration
        # log I0(k) = k + log(i0e(k)) keeps large concentrations finite.
        return k * (torch.cos(value - self.loc) - 1) - _LOG_2PI - torch.special.i0e(k).log()

    def sample(self, sample_shape=_EMPTY) -> torch.Tensor:
        """Draw by Best, D. J. and Fisher, N. I. (1979), "Efficient simulation of
        the von Mises distribution", Applied Statistics 28: 152-157."""
        shape = self.shape(sample_shape)
        with torch.no_grad():
            theta = _best_fisher(self.concentration, shape)
            x = theta + self.loc.double()
            x = torch.remainder(x + math.pi, 2 * math.pi) - math.pi
            return x.to(self.loc.dtype)

    @property
    def variance(self) -> torch.Tensor:
        """The circular variance, ``1 - I1(k) / I0(k)``."""
        k = self.concentration
        return 1 - torch.special.i1e(k) / torch.special.i0e(k)
