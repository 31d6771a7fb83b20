"""Covariance kernels ``k(X, Z)`` as :class:`~ember.nn.PyroModule` s, under Pyro's names.

Each kernel's hyperparameters are constrained parameters (positive variances and
lengthscales), so they can be fitted, given priors through ``PyroSample`` or
frozen. Calling a kernel on inputs ``X`` of shape ``(N, D)`` (or ``(N,)`` for
one feature) and ``Z`` of shape ``(M, D)`` gives the ``(N, M)`` covariance
matrix; ``diag=True`` gives the ``(N,)`` diagonal of ``k(X, X)``.
"""

from ember.contrib.gp.kernels.isotropic import (
    RBF,
    Exponential,
    Isotropy,
    Matern32,
    Matern52,
    RationalQuadratic,
)
from ember.contrib.gp.kernels.kernel import Kernel

__all__ = [
    "Exponential",
    "Isotropy",
    "Kernel",
    "Matern32",
    "Matern52",
    "RBF",
    "RationalQuadratic",
]
