"""AffineBeta: a Beta distribution scaled and shifted onto ``[loc, loc + scale]``."""

from __future__ import annotations

import torch
from torch.distributions import constraints
from torch.distributions.transforms import AffineTransform

from ember.distributions.torch import Beta, TransformedDistribution
from ember.distributions.util import broadcast_params, broadcast_shape
from ember.distributions.validation import check_arguments, is_validating

__all__ = ["AffineBeta"]

_EMPTY = torch.Size()


class AffineBeta(TransformedDistribution):
    """``loc + scale * X`` with ``X ~ Beta(concentration1, concentration0)``.

    The support is the interval ``[loc, loc + scale]`` (``low``, ``high``). Draws are
    kept a few ulps inside the interval so that densities and gradients at a sample
    stay finite. Reparameterized.

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.AffineBeta(2.0, 2.0, loc=-1.0, scale=2.0)
        >>> d.log_prob(torch.tensor(0.0))
        tensor(-0.2877)
        >>> d.mean, d.high
        (tensor(0.), tensor(1.))
    """

    arg_constraints = {
        "concentration1": constraints.positive,
        "concentration0": constraints.positive,
        "loc": constraints.real,
        "scale": constraints.positive,
    }

    def __init__(self, concentration1, concentration0, loc, scale, validate_args=None):
        c1, c0, loc, scale = broadcast_params(concentration1, concentration0, loc, scale)
        if is_validating(validate_args):
            params = dict(concentration1=c1, concentration0=c0, loc=loc, scale=scale)
            check_arguments(type(self), params)
        base = Beta(c1, c0, validate_args=False)
        super().__init__(base, AffineTransform(loc=loc, scale=scale), validate_args=False)
        if validate_args is not None:
            self._validate_args = validate_args

    @staticmethod
    def infer_shapes(concentration1=(), concentration0=(), loc=(), scale=()):
        """``(batch_shape, event_shape)``: the broadcast parameter shapes, and ``()``."""
        return broadcast_shape(concentration1, concentration0, loc, scale), _EMPTY

    def expand(self, batch_shape, _instance=None):
        new = self.__new__(type(self)) if _instance is None else _instance
        return super().expand(batch_shape, _instance=new)

    def _clamp(self, x):
        eps = torch.finfo(x.dtype).eps * self.scale
        return torch.minimum(torch.maximum(x, self.low + eps), self.high - eps)

    def sample(self, sample_shape=_EMPTY):
        with torch.no_grad():
            return self._clamp(self.loc + self.scale * self.base_dist.sample(sample_shape))

    def rsample(self, sample_shape=_EMPTY):
        return self._clamp(self.loc + self.scale * self.base_dist.rsample(sample_shape))

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self):
        return constraints.interval(self.low, self.high)

    @property
    def concentration1(self):
        return self.base_dist.concentration1

    @property
    def concentration0(self):
        return self.base_dist.concentration0

    @property
    def sample_size(self):
        """``concentration1 + concentration0``."""
        return self.concentration1 + self.concentration0

    @property
    def loc(self):
        return torch.as_tensor(self.transforms[0].loc)

    @property
    def scale(self):
        return torch.as_tensor(self.transforms[0].scale)

    @property
    def low(self):
        """The lower end of the support, ``loc``."""
        return self.loc

    @property
    def high(self):
        """The upper end of the support, ``loc + scale``."""
        return self.loc + self.scale

    @property
    def mean(self):
        return self.loc + self.scale * self.base_dist.mean

    @property
    def variance(self):
        return self.scale**2 * self.base_dist.variance
