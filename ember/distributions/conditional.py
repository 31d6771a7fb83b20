"""Conditional distributions and transforms: objects that become a distribution or a
transform once given a context (``condition(context)``).

:class:`ConditionalTransform` is the base class of conditional transforms. The
learnable ones, :class:`~ember.distributions.transforms.ConditionalTransformModule`
(a ``torch.nn.Module`` defined with the flows), are registered here as conditional
transforms, so ``isinstance(module, ConditionalTransform)`` holds for them too.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from ember.distributions.torch import TransformedDistribution
from ember.distributions.transforms.torch_transform import (
    ComposeTransformModule,
    ConditionalTransformModule,
)

__all__ = [
    "ConditionalComposeTransformModule",
    "ConditionalDistribution",
    "ConditionalTransform",
    "ConditionalTransformedDistribution",
    "ConstantConditionalDistribution",
    "ConstantConditionalTransform",
]


class ConditionalDistribution(ABC):
    """A family of distributions indexed by a context: :meth:`condition` returns the
    distribution for one context.

    Example::

        >>> import torch, ember.distributions as dist
        >>> class ShiftedNormal(dist.ConditionalDistribution):
        ...     def condition(self, context):
        ...         return dist.Normal(context, 1.0)
        >>> ShiftedNormal().condition(torch.tensor(2.0)).mean
        tensor(2.)
    """

    @abstractmethod
    def condition(self, context: torch.Tensor) -> torch.distributions.Distribution:
        """The distribution for ``context``."""
        raise NotImplementedError


class ConditionalTransform(ABC):
    """A family of transforms indexed by a context: :meth:`condition` returns the
    transform for one context.

    Example::

        >>> import torch, ember.distributions as dist
        >>> class Shift(dist.ConditionalTransform):
        ...     def condition(self, context):
        ...         return dist.transforms.AffineTransform(context, 1.0)
        >>> Shift().condition(torch.tensor(3.0))(torch.tensor(1.0))
        tensor(4.)
    """

    @abstractmethod
    def condition(self, context: torch.Tensor) -> torch.distributions.transforms.Transform:
        """The transform for ``context``."""
        raise NotImplementedError


ConditionalTransform.register(ConditionalTransformModule)


class ConstantConditionalDistribution(ConditionalDistribution):
    """The same distribution ``base_dist`` for every context.

    Example::

        >>> import torch, ember.distributions as dist
        >>> c = ConstantConditionalDistribution(dist.Normal(0.0, 1.0))
        >>> c.condition(torch.ones(3)).mean
        tensor(0.)
    """

    def __init__(self, base_dist):
        if not isinstance(base_dist, torch.distributions.Distribution):
            raise TypeError(
                "ConstantConditionalDistribution: base_dist must be a Distribution, got "
                f"{type(base_dist).__name__}"
            )
        self.base_dist = base_dist

    def condition(self, context):
        return self.base_dist


class ConstantConditionalTransform(ConditionalTransform):
    """The same transform for every context.

    Example::

        >>> import torch, ember.distributions as dist
        >>> c = ConstantConditionalTransform(dist.transforms.ExpTransform())
        >>> c.condition(torch.ones(3))(torch.tensor(0.0))
        tensor(1.)
    """

    def __init__(self, transform):
        if not isinstance(transform, torch.distributions.transforms.Transform):
            raise TypeError(
                "ConstantConditionalTransform: transform must be a Transform, got "
                f"{type(transform).__name__}"
            )
        self.transform = transform

    def condition(self, context):
        return self.transform

    def clear_cache(self):
        """Clear the wrapped transform's cache (if it keeps one)."""
        clear = getattr(self.transform, "clear_cache", None)
        if clear is not None:
            clear()


def as_conditional_transforms(owner: str, transforms) -> list:
    """``transforms`` as a list of :class:`ConditionalTransform`: a plain ``Transform``
    becomes a :class:`ConstantConditionalTransform`; anything else is a TypeError
    naming ``owner`` and the position."""
    out = []
    for i, t in enumerate(transforms):
        if isinstance(t, ConditionalTransform):
            out.append(t)
        elif isinstance(t, torch.distributions.transforms.Transform):
            out.append(ConstantConditionalTransform(t))
        else:
            raise TypeError(
                f"{owner}: transforms[{i}] must be a Transform or a ConditionalTransform, "
                f"got {type(t).__name__}"
            )
    return out


class ConditionalTransformedDistribution(ConditionalDistribution):
    """A base distribution pushed through transforms, any of which may depend on a context.

    ``base_dist`` is a distribution or a :class:`ConditionalDistribution`; each of
    ``transforms`` is a ``Transform`` or a :class:`ConditionalTransform` (for instance a
    conditional normalizing flow). ``condition(context)`` returns the
    ``TransformedDistribution`` for that context.

    Example::

        >>> import torch, ember.distributions as dist
        >>> class Shift(dist.ConditionalTransform):
        ...     def condition(self, context):
        ...         return dist.transforms.AffineTransform(context, 1.0)
        >>> d = dist.ConditionalTransformedDistribution(dist.Normal(0.0, 1.0), [Shift()])
        >>> d.condition(torch.tensor(5.0)).log_prob(torch.tensor(5.0))
        tensor(-0.9189)
    """

    def __init__(self, base_dist, transforms):
        if isinstance(base_dist, ConditionalDistribution):
            self.base_dist = base_dist
        elif isinstance(base_dist, torch.distributions.Distribution):
            self.base_dist = ConstantConditionalDistribution(base_dist)
        else:
            raise TypeError(
                "ConditionalTransformedDistribution: base_dist must be a Distribution or a "
                f"ConditionalDistribution, got {type(base_dist).__name__}"
            )
        if isinstance(transforms, (torch.distributions.transforms.Transform, ConditionalTransform)):
            transforms = [transforms]
        self.transforms = as_conditional_transforms(
            "ConditionalTransformedDistribution", transforms
        )

    def condition(self, context):
        base = self.base_dist.condition(context)
        return TransformedDistribution(base, [t.condition(context) for t in self.transforms])

    def clear_cache(self):
        """Clear the caches of the constant transforms."""
        for t in self.transforms:
            clear = getattr(t, "clear_cache", None)
            if clear is not None:
                clear()


class ConditionalComposeTransformModule(ConditionalTransformModule, torch.nn.ModuleList):
    """A sequence of transforms, any of which may be conditional, composed in order:
    ``condition(context)`` is the ``ComposeTransformModule`` of each part conditioned
    on ``context`` (plain transforms as they are). The parts that are modules are
    registered, so their parameters are this module's.

    Example::

        >>> import torch, ember.distributions as dist
        >>> from ember.distributions.transforms import conditional_affine_autoregressive
        >>> flow = ConditionalComposeTransformModule(
        ...     [dist.transforms.ExpTransform().inv,
        ...      conditional_affine_autoregressive(2, context_dim=3, hidden_dims=[8])])
        >>> t = flow.condition(torch.randn(3))
        >>> type(t).__name__, t(torch.ones(4, 2)).shape
        ('ComposeTransformModule', torch.Size([4, 2]))
    """

    def __init__(self, transforms, cache_size: int = 0):
        transforms = list(transforms)
        self.transforms = as_conditional_transforms("ConditionalComposeTransformModule", transforms)
        if cache_size not in (0, 1):
            raise ValueError(f"cache_size must be 0 or 1, got {cache_size!r}")
        self.cache_size = cache_size
        super().__init__()
        for t in transforms:
            if isinstance(t, torch.nn.Module):
                self.append(t)

    def condition(self, context: torch.Tensor) -> ComposeTransformModule:
        return ComposeTransformModule(
            [t.condition(context) for t in self.transforms], cache_size=self.cache_size
        )
