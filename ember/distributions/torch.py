"""Ember wrappers of every ``torch.distributions`` class.

Each wrapper inherits from the torch class and from
:class:`~ember.distributions.torch_distribution.TorchDistributionMixin`.
Classes with enhancements are written out below; every other distribution
class of ``torch.distributions`` is generated at import time.
"""

from __future__ import annotations

import torch

from ember.distributions.torch_distribution import TorchDistributionMixin


class Independent(torch.distributions.Independent, TorchDistributionMixin):
    """Reinterpret batch dims of ``base_distribution`` as event dims.

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.Independent(dist.Normal(torch.zeros(2, 3), 1.0), 1)
        >>> d.batch_shape, d.event_shape
        (torch.Size([2]), torch.Size([3]))
    """

    @property
    def _validate_args(self):
        return self.base_dist._validate_args

    @_validate_args.setter
    def _validate_args(self, value):
        self.base_dist._validate_args = value

    def conjugate_update(self, other):
        """Conjugate update of the base, summing the normalizer over the event dims."""
        if not isinstance(other, torch.distributions.Independent) or (
            other.reinterpreted_batch_ndims != self.reinterpreted_batch_ndims
        ):
            raise ValueError(
                "Independent.conjugate_update needs another Independent with "
                f"reinterpreted_batch_ndims={self.reinterpreted_batch_ndims}, got {other!r}"
            )
        posterior, log_normalizer = self.base_dist.conjugate_update(other.base_dist)
        n = self.reinterpreted_batch_ndims
        log_normalizer = log_normalizer.reshape(log_normalizer.shape[: log_normalizer.dim() - n] + (-1,)).sum(-1)
        return Independent(posterior, n), log_normalizer


def _generate_wrappers(namespace):
    generated = []
    for name in sorted(dir(torch.distributions)):
        cls = getattr(torch.distributions, name)
        if not (isinstance(cls, type) and issubclass(cls, torch.distributions.Distribution)):
            continue
        if cls in (torch.distributions.Distribution, torch.distributions.ExponentialFamily):
            continue
        if name in namespace:
            continue
        wrapper = type(name, (cls, TorchDistributionMixin), {"__module__": __name__})
        wrapper.__doc__ = (
            f"Ember wrapper of :class:`torch.distributions.{name}` "
            "(see PyTorch's documentation for its parameters)."
        )
        namespace[name] = wrapper
        generated.append(name)
    return generated


_GENERATED = _generate_wrappers(globals())

__all__ = sorted(["Independent"] + _GENERATED)
