"""Building blocks for ember's own univariate families whose parameters broadcast to the
batch shape: one constructor helper and one ``expand`` for all of them."""

from __future__ import annotations

import torch

from ember.distributions.torch_distribution import TorchDistribution
from ember.distributions.util import broadcast_params

__all__ = ["BroadcastFamily"]


class BroadcastFamily(TorchDistribution):
    """Base class of families whose parameters (named in ``param_names``) broadcast together
    to the batch shape, with an empty event shape.

    A subclass calls :meth:`init_params` from its constructor; ``expand`` then needs no code
    of its own: it expands every parameter named in ``param_names``.

    Example::

        >>> import torch
        >>> from torch.distributions import constraints
        >>> class Shifted(BroadcastFamily):
        ...     param_names = ("loc",)
        ...     arg_constraints = {"loc": constraints.real}
        ...     support = constraints.real
        ...     def __init__(self, loc, validate_args=None):
        ...         self.init_params(validate_args, loc)
        >>> Shifted(torch.zeros(3)).expand((2, 3)).loc.shape
        torch.Size([2, 3])
    """

    param_names: tuple = ()

    def init_params(self, validate_args, *values) -> None:
        """Store ``values`` broadcast under ``param_names`` and initialize the batch shape."""
        tensors = broadcast_params(*values)
        for name, tensor in zip(self.param_names, tensors):
            setattr(self, name, tensor)
        super().__init__(tensors[0].shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        new = self.__new__(type(self)) if _instance is None else _instance
        for name in self.param_names:
            setattr(new, name, getattr(self, name).expand(batch_shape))
        TorchDistribution.__init__(new, batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new
