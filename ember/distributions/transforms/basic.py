"""Elementwise activation functions used as bijections: ELU and leaky ReLU."""

from __future__ import annotations

import math

import torch
from torch.distributions import constraints
from torch.distributions.transforms import TanhTransform, Transform
from torch.nn import functional as F

_LEAKY_SLOPE = 0.01


class ELUTransform(Transform):
    """``y = ELU(x)``: ``x`` for ``x >= 0`` and ``exp(x) - 1`` below, a bijection from
    the reals onto ``(-1, inf)``.

    ``log|dy/dx| = min(x, 0)``; the inverse is ``y`` for ``y >= 0`` and
    ``log1p(y)`` below.

    Example::

        >>> import torch
        >>> from ember.distributions.transforms import ELUTransform
        >>> t = ELUTransform()
        >>> y = t(torch.tensor([-1.0, 0.0, 2.0]))
        >>> y
        tensor([-0.6321,  0.0000,  2.0000])
        >>> t.inv(y)
        tensor([-1.,  0.,  2.])
    """

    domain = constraints.real
    codomain = constraints.greater_than(-1.0)
    bijective = True
    sign = +1

    def __eq__(self, other):
        return isinstance(other, ELUTransform)

    def __hash__(self):
        return hash(ELUTransform)

    def _call(self, x):
        return F.elu(x)

    def _inverse(self, y):
        # log1p is only evaluated where it is used, on y > -1 clamped away from -1
        below = torch.log1p(y.clamp(min=-1 + torch.finfo(y.dtype).eps, max=0.0))
        return torch.where(y >= 0, y, below)

    def log_abs_det_jacobian(self, x, y):
        return x.clamp(max=0.0)


class LeakyReLUTransform(Transform):
    """``y = LeakyReLU(x)`` with slope ``0.01`` below zero, a bijection of the reals.

    ``log|dy/dx|`` is ``0`` for ``x >= 0`` and ``log(0.01)`` below; the inverse
    is the leaky ReLU with slope ``100``.

    Example::

        >>> import torch
        >>> from ember.distributions.transforms import LeakyReLUTransform
        >>> t = LeakyReLUTransform()
        >>> t(torch.tensor([-100.0, 3.0]))
        tensor([-1.,  3.])
        >>> t.inv(torch.tensor([-1.0, 3.0]))
        tensor([-100.,    3.])
    """

    domain = constraints.real
    codomain = constraints.real
    bijective = True
    sign = +1

    def __eq__(self, other):
        return isinstance(other, LeakyReLUTransform)

    def __hash__(self):
        return hash(LeakyReLUTransform)

    def _call(self, x):
        return F.leaky_relu(x, negative_slope=_LEAKY_SLOPE)

    def _inverse(self, y):
        return F.leaky_relu(y, negative_slope=1.0 / _LEAKY_SLOPE)

    def log_abs_det_jacobian(self, x, y):
        return torch.where(x >= 0, torch.zeros_like(x), torch.full_like(x, math.log(_LEAKY_SLOPE)))


def elu() -> ELUTransform:
    """An :class:`ELUTransform` (the helper takes no arguments).

    Example::

        >>> from ember.distributions.transforms import elu
        >>> elu().event_dim
        0
    """
    return ELUTransform()


def leaky_relu() -> LeakyReLUTransform:
    """A :class:`LeakyReLUTransform` (the helper takes no arguments).

    Example::

        >>> from ember.distributions.transforms import leaky_relu
        >>> leaky_relu().bijective
        True
    """
    return LeakyReLUTransform()


def tanh() -> TanhTransform:
    """torch's ``TanhTransform``, built like the other helpers.

    Example::

        >>> from ember.distributions.transforms.basic import tanh
        >>> type(tanh()).__name__
        'TanhTransform'
    """
    return TanhTransform()
