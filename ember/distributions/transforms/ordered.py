"""Real vectors onto strictly increasing vectors."""

from __future__ import annotations

import torch
from torch.distributions import constraints as torch_constraints
from torch.distributions.constraint_registry import biject_to, transform_to
from torch.distributions.transforms import ComposeTransform, ExpTransform, Transform

from ember.distributions import constraints


class OrderedTransform(Transform):
    """``y_0 = x_0`` and ``y_i = y_{i-1} + exp(x_i)``: real vectors onto ordered vectors.

    The Jacobian is lower triangular with diagonal ``(1, exp(x_1), ...)``, so
    ``log|det J| = x_1 + ... + x_{n-1}``. ``biject_to(ordered_vector)`` returns it.

    Example::

        >>> import torch
        >>> from ember.distributions.transforms import OrderedTransform
        >>> t = OrderedTransform()
        >>> y = t(torch.tensor([1.0, 0.0, 0.0]))
        >>> y
        tensor([1., 2., 3.])
        >>> t.inv(y)
        tensor([1., 0., 0.])
    """

    domain = torch_constraints.real_vector
    codomain = constraints.ordered_vector
    bijective = True
    sign = +1

    def __eq__(self, other):
        return isinstance(other, OrderedTransform)

    def __hash__(self):
        return hash(OrderedTransform)

    def _call(self, x):
        steps = torch.cat([x[..., :1], x[..., 1:].exp()], dim=-1)
        return steps.cumsum(-1)

    def _inverse(self, y):
        return torch.cat([y[..., :1], (y[..., 1:] - y[..., :-1]).log()], dim=-1)

    def log_abs_det_jacobian(self, x, y):
        return x[..., 1:].sum(-1)


@biject_to.register(constraints.ordered_vector)
@transform_to.register(constraints.ordered_vector)
def _transform_to_ordered_vector(constraint):
    return OrderedTransform()


@biject_to.register(constraints.positive_ordered_vector)
@transform_to.register(constraints.positive_ordered_vector)
def _transform_to_positive_ordered_vector(constraint):
    return ComposeTransform([OrderedTransform(), ExpTransform()])
