"""Delta: a point mass at ``v``, optionally carrying a log-density.

The point mass is reparameterized (its sample is ``v`` itself, so gradients
flow to ``v``), and ``log_density`` keeps the family closed under
differentiable transforms (a pushed-forward point mass carries the Jacobian).
"""

from __future__ import annotations

import numbers
from typing import Union

import torch
from torch.distributions import constraints
from torch.distributions.kl import register_kl

from ember.distributions.torch_distribution import (
    ExpandedDistribution,
    MaskedDistribution,
    TorchDistribution,
)
from ember.distributions.util import broadcast_shape, scale_and_mask, sum_rightmost
from ember.distributions.validation import enable_fast_validation, fresh_instance

__all__ = ["Delta"]

_EMPTY = torch.Size()


@enable_fast_validation
class Delta(TorchDistribution):
    """Degenerate distribution that puts all its mass on the single value ``v``.

    ``log_prob(x)`` is ``log_density`` where ``x == v`` (over all event dims)
    and ``-inf`` elsewhere. The rightmost ``event_dim`` dims of ``v`` form the
    event; the rest are batch dims. Do not use a Delta whose ``v`` is a random
    choice inside MCMC: the point mass has no density to explore.

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.Delta(torch.tensor([[1.0, 2.0]]), log_density=torch.tensor([0.5]), event_dim=1)
        >>> d.batch_shape, d.event_shape
        (torch.Size([1]), torch.Size([2]))
        >>> d.sample((3,)).shape
        torch.Size([3, 1, 2])
        >>> d.log_prob(torch.tensor([[1.0, 2.0], [1.0, 0.0]]))
        tensor([0.5000,   -inf])
    """

    has_rsample = True
    arg_constraints = {"v": constraints.real, "log_density": constraints.real}

    def __init__(
        self,
        v: torch.Tensor,
        log_density: Union[torch.Tensor, float] = 0.0,
        event_dim: int = 0,
        validate_args=None,
    ):
        if not isinstance(v, torch.Tensor):
            v = torch.as_tensor(v, dtype=torch.get_default_dtype())
        if not isinstance(event_dim, int) or isinstance(event_dim, bool) or event_dim < 0:
            raise ValueError(f"Delta: event_dim must be a non-negative int, got {event_dim!r}")
        if event_dim > v.dim():
            raise ValueError(
                f"Delta: event_dim={event_dim} exceeds v.dim()={v.dim()} "
                f"(v has shape {tuple(v.shape)}); use event_dim <= {v.dim()}"
            )
        batch_dim = v.dim() - event_dim
        batch_shape = v.shape[:batch_dim]
        event_shape = v.shape[batch_dim:]
        if isinstance(log_density, numbers.Number):
            dtype = v.dtype if v.is_floating_point() else torch.get_default_dtype()
            log_density = torch.full(batch_shape, float(log_density), dtype=dtype, device=v.device)
        elif not isinstance(log_density, torch.Tensor):
            raise TypeError(
                f"Delta: log_density must be a number or a tensor, got {type(log_density).__name__}"
            )
        elif log_density.shape != batch_shape:
            try:
                shape = broadcast_shape(log_density.shape, batch_shape)
            except ValueError:
                shape = None
            if shape != batch_shape:
                raise ValueError(
                    f"Delta: log_density of shape {tuple(log_density.shape)} must broadcast to "
                    f"the batch_shape {tuple(batch_shape)} (v.shape {tuple(v.shape)} minus "
                    f"event_dim={event_dim} rightmost dims)"
                )
            log_density = log_density.expand(batch_shape)
        self.v = v
        self.log_density = log_density
        super().__init__(batch_shape, event_shape, validate_args=validate_args)

    @constraints.dependent_property(is_discrete=False)
    def support(self):
        return constraints.independent(constraints.real, self.event_dim)

    @classmethod
    def infer_shapes(cls, v, log_density=(), event_dim=0):
        """``(batch_shape, event_shape)`` from the shapes of ``v`` and ``log_density``.

        Example::

            >>> import ember.distributions as dist
            >>> dist.Delta.infer_shapes(v=(4, 3), event_dim=1)
            (torch.Size([4]), torch.Size([3]))
        """
        v = torch.Size(v)
        batch_shape = broadcast_shape(v[: len(v) - event_dim], log_density)
        return batch_shape, v[len(v) - event_dim :]

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        new = fresh_instance(self, Delta, _instance)
        new.v = self.v.expand(batch_shape + self.event_shape)
        new.log_density = self.log_density.expand(batch_shape)
        super(Delta, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def rsample(self, sample_shape=_EMPTY) -> torch.Tensor:
        if not sample_shape and torch.is_grad_enabled():
            return self.v  # the point itself (no view, no autograd node)
        shape = torch.Size(sample_shape) + self.v.shape
        return self.v.expand(shape)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(x)
        v = self.v.expand(self.shape())
        hit = (x == v).to(self.log_density.dtype)
        return sum_rightmost(hit.log(), self.event_dim) + self.log_density

    def enumerate_support(self, expand: bool = True) -> torch.Tensor:
        """The single support point, as a leading dim of size 1.

        Example::

            >>> import torch, ember.distributions as dist
            >>> dist.Delta(torch.tensor([3.0, 4.0])).enumerate_support().shape
            torch.Size([1, 2])
        """
        return self.v.unsqueeze(0)

    @property
    def mean(self) -> torch.Tensor:
        return self.v

    @property
    def variance(self) -> torch.Tensor:
        return torch.zeros_like(self.v)

    def entropy(self) -> torch.Tensor:
        return -self.log_density

    def __repr__(self):
        return (
            f"Delta(v: {tuple(self.v.shape)}, event_dim={self.event_dim}, "
            f"batch_shape={tuple(self.batch_shape)})"
        )


def _kl_delta(p: Delta, q) -> torch.Tensor:
    """``KL(Delta(v, log_density) || q) = log_density - q.log_prob(v)``.

    The point mass scores itself as ``log_density`` (its ``log_prob`` at ``v``),
    so this is ``E_p[log p(x) - log q(x)]`` evaluated at the only point ``x = v``.
    """
    if p.event_shape != q.event_shape:
        raise ValueError(
            f"kl_divergence(Delta, {type(q).__name__}): event shapes differ, "
            f"{tuple(p.event_shape)} vs {tuple(q.event_shape)}; make the Delta's "
            "event_dim match the other distribution's event dims (e.g. with to_event)"
        )
    return p.log_density - q.log_prob(p.v)


@register_kl(Delta, torch.distributions.Distribution)
def _kl_delta_any(p, q):
    return _kl_delta(p, q)


# Explicit pairs with the wrappers, so torch's dispatcher sees no ambiguity.
@register_kl(Delta, ExpandedDistribution)
def _kl_delta_expanded(p, q):
    return _kl_delta(p, q)


@register_kl(Delta, MaskedDistribution)
def _kl_delta_masked(p, q):
    mask = q._mask
    if mask is False:
        shape = broadcast_shape(p.batch_shape, q.batch_shape)
        return p.log_density.new_zeros(()).expand(shape)
    kl = _kl_delta(p, q.base_dist)
    return kl if mask is True else scale_and_mask(kl, mask=mask)


@register_kl(Delta, Delta)
def _kl_delta_delta(p, q):
    return _kl_delta(p, q)
