"""Constraints: every one of ``torch.distributions.constraints``, plus ember's own.

A constraint is an object with ``check(value)`` (a bool tensor over the batch
dims), ``event_dim`` and ``is_discrete``. ``biject_to(c)`` / ``transform_to(c)``
map unconstrained reals onto it; the ones defined here are registered below.

Example::

    >>> import torch
    >>> from ember.distributions import constraints, biject_to
    >>> constraints.ordered_vector.check(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    tensor([ True, False])
    >>> y = biject_to(constraints.ordered_vector)(torch.zeros(3))
    >>> y
    tensor([0., 1., 2.])
"""

from __future__ import annotations

import torch
from torch.distributions import constraints as _tc
from torch.distributions import transforms as _tt
from torch.distributions.constraint_registry import biject_to, transform_to
from torch.distributions.constraints import *  # noqa: F403
from torch.distributions.constraints import Constraint  # noqa: F401
from torch.distributions.constraints import __all__ as _torch_all

__all__ = list(_torch_all) + [
    "corr_cholesky_constraint",
    "corr_matrix",
    "integer",
    "lenient_corr_cholesky",
    "ordered_vector",
    "positive_ordered_vector",
    "softplus_lower_cholesky",
    "softplus_positive",
    "sphere",
    "unit_lower_cholesky",
]


def _tolerance(value: torch.Tensor) -> float:
    """An absolute tolerance suited to ``value``'s floating dtype."""
    dtype = value.dtype if value.is_floating_point() else torch.get_default_dtype()
    return float(torch.finfo(dtype).eps) ** 0.75


class _Integer(Constraint):
    """Any integer (positive, zero or negative)."""

    is_discrete = True

    def check(self, value):
        return value % 1 == 0

    def __repr__(self):
        return "Integer()"


class _Sphere(Constraint):
    """Vectors of unit Euclidean norm along the rightmost dim."""

    event_dim = 1

    def check(self, value):
        tol = _tolerance(value) * max(value.size(-1), 1) ** 0.5
        return (torch.linalg.vector_norm(value, dim=-1) - 1).abs() <= tol

    def __repr__(self):
        return "Sphere()"


class _OrderedVector(Constraint):
    """Real vectors whose entries strictly increase along the rightmost dim."""

    event_dim = 1

    def check(self, value):
        if value.dim() < 1:
            raise ValueError(
                f"ordered_vector.check needs at least one dim, got shape {tuple(value.shape)}"
            )
        finite = torch.isfinite(value).all(-1)
        return finite & (value[..., 1:] > value[..., :-1]).all(-1)

    def __repr__(self):
        return "OrderedVector()"


class _PositiveOrderedVector(_OrderedVector):
    """Positive real vectors whose entries strictly increase."""

    def check(self, value):
        return super().check(value) & (value > 0).all(-1)

    def __repr__(self):
        return "PositiveOrderedVector()"


class _SoftplusPositive(_tc._GreaterThan):
    """Positive reals, reached from the reals by ``softplus`` (not ``exp``)."""

    def __init__(self):
        super().__init__(lower_bound=0.0)

    def __repr__(self):
        return "SoftplusPositive()"


class _SoftplusLowerCholesky(_tc._LowerCholesky):
    """Lower Cholesky factors, reached from matrices by a softplus on the diagonal."""

    def __repr__(self):
        return "SoftplusLowerCholesky()"


class _UnitLowerCholesky(_tc._LowerTriangular):
    """Lower-triangular matrices with ones on the diagonal."""

    def check(self, value):
        lower = super().check(value)
        diag = value.diagonal(dim1=-2, dim2=-1)
        return lower & (diag == 1).all(-1)

    def __repr__(self):
        return "UnitLowerCholesky()"


class _CorrMatrix(Constraint):
    """Correlation matrices: symmetric, positive definite, unit diagonal."""

    event_dim = 2

    def check(self, value):
        tol = _tolerance(value) * value.size(-1)
        symmetric = ((value - value.mT).abs() <= tol).flatten(-2).all(-1)
        unit_diag = ((value.diagonal(dim1=-2, dim2=-1) - 1).abs() <= tol).all(-1)
        pos_def = torch.linalg.cholesky_ex(value).info == 0
        return symmetric & unit_diag & pos_def

    def __repr__(self):
        return "CorrMatrix()"


class _LenientCorrCholesky(_tc._CorrCholesky):
    """Cholesky factors of correlation matrices: lower triangular, positive diagonal,
    rows of unit Euclidean norm up to ``1e-4``.

    torch's ``corr_cholesky`` demands row norms within a few machine epsilons of
    one; factors typed with eight digits, or computed in single precision and
    checked in double precision, fail it. This is the support of
    :class:`~ember.distributions.LKJCholesky`, whose values users often type.
    """

    def check(self, value):
        unit_rows = (torch.linalg.vector_norm(value.detach(), dim=-1) - 1).abs() <= 1e-4
        return _tc.lower_cholesky.check(value) & unit_rows.all(-1)

    def __repr__(self):
        return "LenientCorrCholesky()"


corr_cholesky_constraint = _tc.corr_cholesky
lenient_corr_cholesky = _LenientCorrCholesky()
corr_matrix = _CorrMatrix()
integer = _Integer()
ordered_vector = _OrderedVector()
positive_ordered_vector = _PositiveOrderedVector()
softplus_lower_cholesky = _SoftplusLowerCholesky()
softplus_positive = _SoftplusPositive()
sphere = _Sphere()
unit_lower_cholesky = _UnitLowerCholesky()


# --- transforms onto the new constraints -----------------------------------------------
# The transforms onto ordered_vector, positive_ordered_vector, softplus_positive,
# softplus_lower_cholesky, unit_lower_cholesky, corr_matrix and sphere are public classes
# of ember.distributions.transforms, which registers them with biject_to / transform_to
# (it is always imported with ember.distributions).


@biject_to.register(_LenientCorrCholesky)
@transform_to.register(_LenientCorrCholesky)
def _to_lenient_corr_cholesky(constraint):
    return _tt.CorrCholeskyTransform()
