"""FoldedDistribution: the absolute value of a univariate random variable."""

from __future__ import annotations

import torch
from torch.distributions import constraints
from torch.distributions.transforms import AbsTransform

from ember.distributions.torch import TransformedDistribution
from ember.distributions.util import broadcast_shape

__all__ = ["FoldedDistribution"]


class FoldedDistribution(TransformedDistribution):
    """``|X|`` for a univariate ``X ~ base_dist``, with a density.

    ``log_prob(y) = log(p(y) + p(-y))`` for ``y >= 0``. ``base_dist`` must have an
    empty event shape. Draws are reparameterized when the base's are.

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.FoldedDistribution(dist.Normal(0.0, 1.0))
        >>> d.log_prob(torch.tensor(0.5))  # the half-normal density
        tensor(-0.3508)
        >>> d.sample((3,)).ge(0).all()
        tensor(True)
    """

    support = constraints.positive

    def __init__(self, base_dist, validate_args=None):
        if base_dist.event_shape:
            raise ValueError(
                "FoldedDistribution: only univariate distributions can be folded, got "
                f"{type(base_dist).__name__} with event_shape {tuple(base_dist.event_shape)}; "
                "fold a univariate base and apply .to_event() afterwards"
            )
        super().__init__(base_dist, AbsTransform(), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self.__new__(type(self)) if _instance is None else _instance
        return super().expand(batch_shape, _instance=new)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        value = value.expand(broadcast_shape(value.shape, self.batch_shape))
        both = torch.stack([value, -value])
        return self.base_dist.log_prob(both).logsumexp(0)
