"""Projection of vectors onto the unit sphere."""

from __future__ import annotations

import numbers

from torch.distributions import constraints as torch_constraints
from torch.distributions.constraint_registry import transform_to
from torch.distributions.transforms import Transform

from ember.distributions import constraints
from ember.ops.tensor_utils import safe_normalize


class Normalize(Transform):
    """``y = x / ||x||_p`` along the last dim, sending the zero vector to ``(1, 0, ..., 0)``.

    Not bijective: its ``inverse`` is the identity, a right inverse
    (``Normalize()(Normalize().inv(y)) == y`` on the sphere).
    ``transform_to(constraints.sphere)`` returns it.

    :param p: the order of the norm, a number ``>= 0`` (default 2).

    Example::

        >>> import torch
        >>> from ember.distributions.transforms import Normalize
        >>> Normalize()(torch.tensor([[3.0, 4.0], [0.0, 0.0]]))
        tensor([[0.6000, 0.8000],
                [1.0000, 0.0000]])
    """

    domain = torch_constraints.real_vector
    codomain = constraints.sphere
    bijective = False

    def __init__(self, p: float = 2, cache_size: int = 0) -> None:
        if not isinstance(p, numbers.Real) or isinstance(p, bool) or p < 0:
            raise ValueError(f"Normalize: p must be a number >= 0, got {p!r}")
        self.p = p
        super().__init__(cache_size=cache_size)

    def __eq__(self, other):
        return type(self) is type(other) and self.p == other.p

    def __hash__(self):
        return hash((type(self), self.p))

    def _call(self, x):
        return safe_normalize(x, p=self.p)

    def _inverse(self, y):
        return y

    def with_cache(self, cache_size: int = 1) -> Normalize:
        if self._cache_size == cache_size:
            return self
        return Normalize(self.p, cache_size=cache_size)


@transform_to.register(constraints.sphere)
def _transform_to_sphere(constraint):
    return Normalize()
