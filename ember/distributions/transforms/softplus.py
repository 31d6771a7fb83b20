"""Softplus as a bijection onto the positive reals, and onto lower Cholesky factors.

``SoftplusTransform`` is torch's (``y = log(1 + exp(x))``, with
``log|dy/dx| = -softplus(-x)``), re-exported here; it is what
``biject_to(constraints.softplus_positive)`` returns.
"""

from __future__ import annotations

import torch
from torch.distributions import constraints as torch_constraints
from torch.distributions.constraint_registry import biject_to, transform_to
from torch.distributions.transforms import SoftplusTransform, Transform
from torch.nn.functional import logsigmoid, softplus

from ember.distributions import constraints


def softplus_inv(y: torch.Tensor) -> torch.Tensor:
    """The inverse of ``softplus``: ``log(exp(y) - 1) = y + log(1 - exp(-y))`` for ``y > 0``.

    Example::

        >>> import torch
        >>> from ember.distributions.transforms.softplus import softplus_inv
        >>> x = torch.tensor([-3.0, 0.0, 20.0])
        >>> torch.allclose(softplus_inv(torch.nn.functional.softplus(x)), x, atol=1e-5)
        True
    """
    return y + torch.log(-torch.expm1(-y))


class SoftplusLowerCholeskyTransform(Transform):
    """Square matrices onto lower Cholesky factors: keeps the strict lower triangle,
    applies ``softplus`` to the diagonal and drops the upper triangle.

    It is not bijective on full matrices (the upper triangle is lost); measured
    on the lower triangle, ``log|det J| = sum_i log sigmoid(x_ii)``. The inverse
    returns the lower-triangular preimage. ``transform_to(softplus_lower_cholesky)``
    returns it.

    Example::

        >>> import torch
        >>> from ember.distributions.transforms import SoftplusLowerCholeskyTransform
        >>> t = SoftplusLowerCholeskyTransform()
        >>> y = t(torch.tensor([[0.0, 5.0], [2.0, 0.0]]))
        >>> y
        tensor([[0.6931, 0.0000],
                [2.0000, 0.6931]])
        >>> t.inv(y)
        tensor([[0., 0.],
                [2., 0.]])
    """

    domain = torch_constraints.independent(torch_constraints.real, 2)
    codomain = constraints.softplus_lower_cholesky

    def __eq__(self, other):
        return isinstance(other, SoftplusLowerCholeskyTransform)

    def __hash__(self):
        return hash(SoftplusLowerCholeskyTransform)

    def _call(self, x):
        diag = softplus(x.diagonal(dim1=-2, dim2=-1))
        return x.tril(-1) + torch.diag_embed(diag)

    def _inverse(self, y):
        diag = softplus_inv(y.diagonal(dim1=-2, dim2=-1))
        return y.tril(-1) + torch.diag_embed(diag)

    def log_abs_det_jacobian(self, x, y):
        """``sum_i log sigmoid(x_ii)``: the Jacobian on the lower triangle is diagonal."""
        return logsigmoid(x.diagonal(dim1=-2, dim2=-1)).sum(-1)


__all__ = ["SoftplusLowerCholeskyTransform", "SoftplusTransform", "softplus_inv"]


@biject_to.register(constraints.softplus_positive)
@transform_to.register(constraints.softplus_positive)
def _transform_to_softplus_positive(constraint):
    return SoftplusTransform()


@biject_to.register(constraints.softplus_lower_cholesky)
@transform_to.register(constraints.softplus_lower_cholesky)
def _transform_to_softplus_lower_cholesky(constraint):
    return SoftplusLowerCholeskyTransform()
