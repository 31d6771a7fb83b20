"""Pyro's module path for :class:`TransformModule` and :class:`ComposeTransformModule`.

Code written for Pyro imports them from ``pyro.distributions.torch_transform``;
they live in :mod:`ember.distributions.transforms.torch_transform`.

Example::

    >>> from ember.distributions.torch_transform import TransformModule
    >>> from ember.distributions.transforms import PlanarFlow
    >>> issubclass(PlanarFlow, TransformModule)
    True
"""

from ember.distributions.transforms.torch_transform import (
    ComposeTransformModule,
    TransformModule,
)

__all__ = ["ComposeTransformModule", "TransformModule"]
