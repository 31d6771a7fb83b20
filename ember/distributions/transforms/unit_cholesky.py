"""Square matrices onto unit lower-triangular matrices."""

from __future__ import annotations

import torch
from torch.distributions import constraints as torch_constraints
from torch.distributions.constraint_registry import biject_to, transform_to
from torch.distributions.transforms import Transform

from ember.distributions import constraints


class UnitLowerCholeskyTransform(Transform):
    """Keeps the strict lower triangle of a square matrix and puts ones on the diagonal.

    Measured on the strict lower triangle it is the identity
    (``log|det J| = 0``); the inverse returns that strict lower triangle.
    ``transform_to(unit_lower_cholesky)`` returns it.

    Example::

        >>> import torch
        >>> from ember.distributions.transforms import UnitLowerCholeskyTransform
        >>> UnitLowerCholeskyTransform()(torch.tensor([[5.0, 5.0], [2.0, 5.0]]))
        tensor([[1., 0.],
                [2., 1.]])
    """

    domain = torch_constraints.independent(torch_constraints.real, 2)
    codomain = constraints.unit_lower_cholesky

    def __eq__(self, other):
        return isinstance(other, UnitLowerCholeskyTransform)

    def __hash__(self):
        return hash(UnitLowerCholeskyTransform)

    def _call(self, x):
        eye = torch.eye(x.size(-1), dtype=x.dtype, device=x.device)
        return x.tril(-1) + eye

    def _inverse(self, y):
        return y.tril(-1)

    def log_abs_det_jacobian(self, x, y):
        return x.new_zeros(x.shape[:-2])


__all__ = ["UnitLowerCholeskyTransform"]


@biject_to.register(constraints.unit_lower_cholesky)
@transform_to.register(constraints.unit_lower_cholesky)
def _transform_to_unit_lower_cholesky(constraint):
    return UnitLowerCholeskyTransform()
