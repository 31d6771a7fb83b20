"""SineSkewed: skews a symmetric distribution on the torus by a sine factor."""

from __future__ import annotations

import math
import warnings

import torch
from torch.distributions import constraints

from ember.distributions.torch_distribution import TorchDistribution
from ember.distributions.util import broadcast_shape

__all__ = ["SineSkewed"]

_EMPTY = torch.Size()
_TWO_PI = 2 * math.pi


class SineSkewed(TorchDistribution):
    """Sine-skewed version of a distribution ``base_dist`` on the torus ``[-pi, pi)^d``.

    The density is ``base(x) * (1 + sum_i skewness_i * sin(x_i - mean_i))``, which
    stays normalized when ``base_dist`` is symmetric about its ``mean`` (von Mises,
    :class:`SineBivariateVonMises`, uniform on ``[-pi, pi)``) and
    ``sum_i |skewness_i| <= 1``. ``base_dist.event_shape`` must be ``(d,)`` and
    ``skewness`` ends in ``d``. A draw reflects a base draw about the mean with the
    probability that makes the density right.

    Example::

        >>> import torch, ember.distributions as dist
        >>> base = dist.VonMises(torch.zeros(1), torch.ones(1)).to_event(1)
        >>> d = dist.SineSkewed(base, torch.tensor([0.5]))
        >>> d.log_prob(torch.tensor([1.0])) - base.log_prob(torch.tensor([1.0]))
        tensor(0.3512)
    """

    arg_constraints = {"skewness": constraints.independent(constraints.interval(-1.0, 1.0), 1)}
    support = constraints.independent(constraints.real, 1)

    def __init__(self, base_dist, skewness, validate_args=None):
        if base_dist.event_shape != skewness.shape[-1:]:
            raise ValueError(
                "SineSkewed: skewness needs one weight per dim of base_dist.event_shape "
                f"{tuple(base_dist.event_shape)}, got skewness of shape {tuple(skewness.shape)}"
            )
        if (skewness.abs().sum(-1) > 1.0).any():
            warnings.warn(
                "SineSkewed: the total skewness weight sum(|skewness|) exceeds one, so the "
                "density is no longer normalized (and may be negative)",
                UserWarning,
                stacklevel=2,
            )
        batch_shape = broadcast_shape(base_dist.batch_shape, skewness.shape[:-1])
        event_shape = skewness.shape[-1:]
        self.skewness = skewness.expand(batch_shape + event_shape)
        self.base_dist = base_dist.expand(batch_shape)
        super().__init__(batch_shape, event_shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        new = self.__new__(type(self)) if _instance is None else _instance
        new.base_dist = self.base_dist.expand(batch_shape)
        new.skewness = self.skewness.expand(batch_shape + self.event_shape)
        TorchDistribution.__init__(new, batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def _skew(self, x):
        offset = torch.remainder(x - self.base_dist.mean, _TWO_PI)
        return (self.skewness * torch.sin(offset)).sum(-1)

    def sample(self, sample_shape=_EMPTY):
        with torch.no_grad():
            mean = self.base_dist.mean
            y = self.base_dist.sample(sample_shape)
            u = torch.rand(y.shape[:-1], dtype=y.dtype, device=y.device)
            # keep y with probability (1 + skew(y)) / 2, else reflect about the mean
            keep = (u <= 0.5 + 0.5 * self._skew(y)).unsqueeze(-1)
            x = torch.where(keep, y, 2 * mean - y)
            return torch.remainder(x + math.pi, _TWO_PI) - math.pi

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        return self.base_dist.log_prob(value) + torch.log1p(self._skew(value))

    def __repr__(self):
        return f"SineSkewed(base_dist: {self.base_dist}, skewness: {tuple(self.skewness.shape)})"
