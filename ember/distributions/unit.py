"""Unit: the unnormalized distribution over the empty value that carries a log-factor."""

from __future__ import annotations

import torch
from torch.distributions import constraints

from ember.distributions.torch_distribution import TorchDistribution
from ember.distributions.util import broadcast_shape

__all__ = ["Unit"]

_EMPTY = torch.Size()
_NO_VALUE = torch.Size((0,))


class Unit(TorchDistribution):
    """The unit type: a single value with no data (event shape ``(0,)``) whose
    ``log_prob`` is ``log_factor``.

    Adding an observed Unit site adds ``log_factor`` to a model's log-density (this is
    what :func:`ember.factor` does). ``has_rsample`` may be set to say whether the
    factor is differentiable in the model's reparameterized draws.

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.Unit(torch.tensor([-1.0, -2.0]))
        >>> x = d.sample()
        >>> x.shape, d.log_prob(x)
        (torch.Size([2, 0]), tensor([-1., -2.]))
    """

    arg_constraints = {"log_factor": constraints.real}
    support = constraints.real

    def __init__(self, log_factor, *, has_rsample=None, validate_args=None):
        if not isinstance(log_factor, torch.Tensor):
            log_factor = torch.as_tensor(log_factor, dtype=torch.get_default_dtype())
        self.log_factor = log_factor
        if has_rsample is not None:
            self.has_rsample = has_rsample
        super().__init__(log_factor.shape, _NO_VALUE, validate_args=validate_args)

    @classmethod
    def infer_shapes(cls, log_factor=()):
        """``(batch_shape, event_shape)``: the shape of ``log_factor`` and ``(0,)``."""
        return torch.Size(log_factor), _NO_VALUE

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        new = self.__new__(type(self)) if _instance is None else _instance
        new.log_factor = self.log_factor.expand(batch_shape)
        if "has_rsample" in self.__dict__:
            new.has_rsample = self.has_rsample
        TorchDistribution.__init__(new, batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def sample(self, sample_shape=_EMPTY):
        return self.log_factor.new_empty(self.shape(sample_shape))

    def rsample(self, sample_shape=_EMPTY):
        return self.log_factor.new_empty(self.shape(sample_shape))

    def log_prob(self, value):
        shape = broadcast_shape(self.batch_shape, value.shape[:-1])
        return self.log_factor.expand(shape)
