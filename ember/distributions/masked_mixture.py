"""MaskedMixture: a deterministic, mask-selected mixture of two distributions.

Each batch element follows ``component1`` where ``mask`` is True and
``component0`` where it is False. When the mask itself is random (a change
point, a switch), it can be marginalized out by enumeration.
"""

from __future__ import annotations

import torch

from ember.distributions.torch_distribution import TorchDistribution
from ember.distributions.util import broadcast_shape
from ember.util import is_validation_enabled

_EMPTY = torch.Size()


def _as_bool_mask(mask) -> torch.Tensor:
    if isinstance(mask, bool):
        return torch.tensor(mask)
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be a bool tensor, got {type(mask).__name__}")
    if mask.dtype == torch.bool:
        return mask
    if mask.is_complex():
        raise TypeError(f"mask must be a bool (or 0/1) tensor, got dtype {mask.dtype}")
    if is_validation_enabled():
        bad = (mask != 0) & (mask != 1)
        if bool(bad.any()):
            raise ValueError(
                f"mask must be boolean or 0/1 valued; got values {mask[bad].unique().tolist()[:5]}"
            )
    return mask.bool()


class MaskedMixture(TorchDistribution):
    """A masked deterministic mixture: ``component1`` where ``mask``, else ``component0``.

    Useful when the mask is drawn from another distribution, possibly
    correlated across the batch; it can often be marginalized by enumeration.
    The batch shape broadcasts ``mask.shape`` with both components' batch
    shapes; the components must share an event shape.

    :param torch.Tensor mask: bool tensor choosing between the components.
    :param TorchDistribution component0: distribution where ``mask`` is False.
    :param TorchDistribution component1: distribution where ``mask`` is True.

    Example::

        >>> import torch, ember.distributions as dist
        >>> mask = torch.arange(4) >= 2
        >>> d = dist.MaskedMixture(mask, dist.Normal(0.0, 1.0), dist.Normal(10.0, 1.0))
        >>> d.batch_shape, d.mean
        (torch.Size([4]), tensor([ 0.,  0., 10., 10.]))
        >>> d.log_prob(torch.zeros(4))
        tensor([ -0.9189,  -0.9189, -50.9189, -50.9189])
    """

    arg_constraints = {}

    def __init__(self, mask, component0, component1, validate_args=None):
        for name, comp in (("component0", component0), ("component1", component1)):
            if not isinstance(comp, torch.distributions.Distribution):
                raise TypeError(f"{name} must be a Distribution, got {type(comp).__name__}")
        if component0.event_shape != component1.event_shape:
            raise ValueError(
                "component0 and component1 must have the same event_shape, got "
                f"{tuple(component0.event_shape)} and {tuple(component1.event_shape)}"
            )
        mask = _as_bool_mask(mask)
        try:
            batch_shape = broadcast_shape(
                mask.shape, component0.batch_shape, component1.batch_shape
            )
        except ValueError:
            raise ValueError(
                f"mask of shape {tuple(mask.shape)}, component0 with batch_shape "
                f"{tuple(component0.batch_shape)} and component1 with batch_shape "
                f"{tuple(component1.batch_shape)} do not broadcast together"
            ) from None
        self.mask = mask
        self.component0 = component0
        self.component1 = component1
        # Each component scores every value, also those drawn from the other one and
        # outside its own support (they are masked out after): the components stop
        # checking values (as in Pyro, this changes the component objects passed in).
        component0._validate_args = False
        component1._validate_args = False
        super().__init__(batch_shape, component0.event_shape, validate_args=validate_args)

    @property
    def has_rsample(self):
        return self.component0.has_rsample and self.component1.has_rsample

    @property
    def support(self):
        """The support of ``component0`` (the components are expected to share it)."""
        return self.component0.support

    def _event_mask(self):
        return self.mask.reshape(self.mask.shape + (1,) * len(self.event_shape))

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        if batch_shape == self.batch_shape:
            return self
        return MaskedMixture(
            self.mask.expand(batch_shape),
            self.component0.expand(batch_shape),
            self.component1.expand(batch_shape),
        )

    def _select(self, x0, x1):
        return torch.where(self._event_mask(), x1, x0)

    def sample(self, sample_shape=_EMPTY):
        x0 = self.component0.expand(self.batch_shape).sample(sample_shape)
        x1 = self.component1.expand(self.batch_shape).sample(sample_shape)
        return self._select(x0, x1)

    def rsample(self, sample_shape=_EMPTY):
        x0 = self.component0.expand(self.batch_shape).rsample(sample_shape)
        x1 = self.component1.expand(self.batch_shape).rsample(sample_shape)
        return self._select(x0, x1)

    def log_prob(self, value):
        return torch.where(
            self.mask, self.component1.log_prob(value), self.component0.log_prob(value)
        )

    @property
    def mean(self):
        return self._select(self.component0.mean, self.component1.mean)

    @property
    def variance(self):
        return self._select(self.component0.variance, self.component1.variance)
