"""Cholesky factorization as a transform: positive definite and correlation matrices
onto their lower Cholesky factors."""

from __future__ import annotations

import math
import warnings

import torch
from torch.distributions import constraints as torch_constraints
from torch.distributions.constraint_registry import biject_to, transform_to
from torch.distributions.transforms import (
    ComposeTransform,
    CorrCholeskyTransform,
    LowerCholeskyTransform,
    Transform,
)

from ember.distributions import constraints


def _check_square(owner: str, x: torch.Tensor) -> None:
    if x.dim() < 2 or x.size(-1) != x.size(-2):
        raise ValueError(f"{owner}: input must have shape (..., n, n), got {tuple(x.shape)}")


class CholeskyTransform(Transform):
    """``y = cholesky(x)``: positive definite matrices onto lower Cholesky factors.

    The inverse is ``y @ y.T``. Both sides are measured on their free entries
    (the lower triangle with the diagonal), on which ``x = L L^T`` has
    ``|det dx/dL| = 2^n prod_i L_ii^(n - i)`` (``i = 0 .. n-1``), so
    ``log|det J| = -n log 2 - sum_i (n - i) log L_ii``.

    Example::

        >>> import torch
        >>> from ember.distributions.transforms import CholeskyTransform
        >>> t = CholeskyTransform()
        >>> t(torch.tensor([[4.0, 2.0], [2.0, 5.0]]))
        tensor([[2., 0.],
                [1., 2.]])
        >>> t.log_abs_det_jacobian(None, torch.tensor([[2.0, 0.0], [1.0, 2.0]]))
        tensor(-3.4657)
    """

    bijective = True
    domain = torch_constraints.positive_definite
    codomain = torch_constraints.lower_cholesky

    def __eq__(self, other):
        return type(other) is type(self)

    def __hash__(self):
        return hash(type(self))

    def _call(self, x):
        _check_square(type(self).__name__, x)
        return torch.linalg.cholesky(x)

    def _inverse(self, y):
        _check_square(type(self).__name__, y)
        return y @ y.mT

    def log_abs_det_jacobian(self, x, y):
        n = y.size(-1)
        powers = torch.arange(n, 0, -1, dtype=y.dtype, device=y.device)
        log_diag = y.diagonal(dim1=-2, dim2=-1).log()
        return -n * math.log(2) - (powers * log_diag).sum(-1)


class CorrMatrixCholeskyTransform(CholeskyTransform):
    """``y = cholesky(x)`` for correlation matrices ``x``: onto Cholesky factors with
    rows of unit norm.

    Both sides are measured on their strictly lower entries (the diagonals are
    determined by them), on which ``x = L L^T`` has
    ``|det dx/dL| = prod_i L_ii^(n - 1 - i)``, so
    ``log|det J| = -sum_i (n - 1 - i) log L_ii``.
    ``biject_to(corr_matrix)`` is ``CorrCholeskyTransform`` followed by this
    transform's inverse.

    Example::

        >>> import torch
        >>> from ember.distributions.transforms import CorrMatrixCholeskyTransform
        >>> t = CorrMatrixCholeskyTransform()
        >>> L = t(torch.tensor([[1.0, 0.6], [0.6, 1.0]]))
        >>> L
        tensor([[1.0000, 0.0000],
                [0.6000, 0.8000]])
        >>> t.log_abs_det_jacobian(None, L)
        tensor(-0.)
    """

    bijective = True
    domain = constraints.corr_matrix
    codomain = constraints.corr_cholesky_constraint

    def log_abs_det_jacobian(self, x, y):
        n = y.size(-1)
        powers = torch.arange(n - 1, -1, -1, dtype=y.dtype, device=y.device)
        return -(powers * y.diagonal(dim1=-2, dim2=-1).log()).sum(-1)


class CorrLCholeskyTransform(CorrCholeskyTransform):
    """Deprecated name of ``CorrCholeskyTransform`` (warns with a ``FutureWarning``).

    Example::

        >>> import warnings
        >>> from ember.distributions.transforms import CorrLCholeskyTransform
        >>> with warnings.catch_warnings(record=True) as w:
        ...     warnings.simplefilter("always")
        ...     t = CorrLCholeskyTransform()
        >>> w[0].category.__name__
        'FutureWarning'
    """

    def __init__(self, cache_size: int = 0) -> None:
        warnings.warn(
            "CorrLCholeskyTransform is deprecated; use CorrCholeskyTransform instead (same map).",
            FutureWarning,
            stacklevel=2,
        )
        super().__init__(cache_size=cache_size)


@biject_to.register(constraints.corr_matrix)
@transform_to.register(constraints.corr_matrix)
def _transform_to_corr_matrix(constraint):
    return ComposeTransform([CorrCholeskyTransform(), CorrMatrixCholeskyTransform().inv])


# Not registered with biject_to: LowerCholeskyTransform drops the upper triangle.
@transform_to.register(constraints.positive_definite)
def _transform_to_positive_definite(constraint):
    return ComposeTransform([LowerCholeskyTransform(), CholeskyTransform().inv])


__all__ = [
    "CholeskyTransform",
    "CorrCholeskyTransform",
    "CorrLCholeskyTransform",
    "CorrMatrixCholeskyTransform",
]
