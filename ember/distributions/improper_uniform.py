"""ImproperUniform: a flat (unnormalized) density over a constraint's set."""

from __future__ import annotations

import torch
from torch.distributions import constraints

from ember.distributions.torch_distribution import TorchDistribution
from ember.distributions.util import broadcast_shape

__all__ = ["ImproperUniform"]

_EMPTY = torch.Size()


class ImproperUniform(TorchDistribution):
    """Zero log-density everywhere on ``support``; it cannot be sampled.

    Use it to declare a latent variable whose density is supplied elsewhere (for
    instance by ``obs=`` statements of its parts) so that inference algorithms such as
    HMC work on the factor graph. ``batch_shape`` and ``event_shape`` are given
    explicitly. To draw from some distribution while scoring zero, use
    ``d.mask(False)`` instead.

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.ImproperUniform(dist.constraints.positive, (2,), (3,))
        >>> d.log_prob(torch.ones(5, 2, 3))
        tensor([[0., 0.],
                [0., 0.],
                [0., 0.],
                [0., 0.],
                [0., 0.]])
    """

    arg_constraints = {}

    def __init__(self, support, batch_shape, event_shape, validate_args=None):
        if not isinstance(support, constraints.Constraint):
            raise TypeError(
                "ImproperUniform: support must be a constraint (e.g. constraints.real), got "
                f"{type(support).__name__}"
            )
        self._support = support
        super().__init__(
            torch.Size(batch_shape), torch.Size(event_shape), validate_args=validate_args
        )

    @constraints.dependent_property
    def support(self):
        return self._support

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        new = self.__new__(type(self)) if _instance is None else _instance
        new._support = self._support
        TorchDistribution.__init__(new, batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        shape = broadcast_shape(value.shape[: value.dim() - self.event_dim], self.batch_shape)
        return (
            value.new_zeros(()).expand(shape)
            if value.is_floating_point()
            else (
                torch.zeros((), dtype=torch.get_default_dtype(), device=value.device).expand(shape)
            )
        )

    def sample(self, sample_shape=_EMPTY):
        raise NotImplementedError(
            "ImproperUniform cannot be sampled: it has no normalized density; provide the "
            "value (obs=, or an initial value for MCMC), or use d.mask(False) on a proper "
            "distribution"
        )
