"""Isotropic (stationary, radial) kernels: functions of the scaled distance
``r = |x / lengthscale - z / lengthscale|``."""

from __future__ import annotations

import math
from typing import Sequence

import torch

from ember.contrib.gp.kernels.kernel import Kernel
from ember.distributions import constraints
from ember.nn.module import PyroParam

__all__ = ["Exponential", "Isotropy", "Matern32", "Matern52", "RBF", "RationalQuadratic"]


def _positive(name: str, value, default: float) -> torch.Tensor:
    value = torch.tensor(default) if value is None else torch.as_tensor(value)
    if not bool((value > 0).all()):
        raise ValueError(f"kernel {name} must be positive, got {value}")
    return value


class Isotropy(Kernel):
    """Base of the kernels ``variance * f(r)`` of the scaled distance ``r``.

    :param variance: the kernel's value at ``r = 0`` (a positive parameter).
    :param lengthscale: a positive scalar, or one entry per feature.
    """

    def __init__(
        self,
        input_dim: int,
        variance: torch.Tensor | None = None,
        lengthscale: torch.Tensor | None = None,
        active_dims: Sequence[int] | None = None,
    ):
        super().__init__(input_dim, active_dims)
        self.variance = PyroParam(_positive("variance", variance, 1.0), constraints.positive)
        self.lengthscale = PyroParam(
            _positive("lengthscale", lengthscale, 1.0), constraints.positive
        )

    def square_scaled_dist(self, X: torch.Tensor, Z: torch.Tensor | None = None) -> torch.Tensor:
        """``r ** 2`` between the rows of ``X`` and of ``Z`` (default ``X``), ``(N, M)``."""
        X = self.select(X) / self.lengthscale
        Z = X if Z is None else self.select(Z) / self.lengthscale
        if X.size(1) != Z.size(1):
            raise ValueError(
                f"{type(self).__name__}: X has {X.size(1)} features but Z has {Z.size(1)}"
            )
        x2 = (X * X).sum(-1, keepdim=True)
        z2 = (Z * Z).sum(-1, keepdim=True)
        return (x2 - 2 * X @ Z.T + z2.T).clamp(min=0)

    def scaled_dist(self, X: torch.Tensor, Z: torch.Tensor | None = None) -> torch.Tensor:
        """``r`` between the rows of ``X`` and of ``Z``; its gradient stays finite at 0."""
        r2 = self.square_scaled_dist(X, Z)
        return torch.where(r2 > 1e-24, r2.clamp(min=1e-24).sqrt(), torch.zeros_like(r2))

    def _diag(self, X: torch.Tensor) -> torch.Tensor:
        return self.variance.expand(self.select(X).size(0))

    def forward(self, X: torch.Tensor, Z: torch.Tensor | None = None, diag: bool = False):
        if diag:
            return self._diag(X)
        return self.variance * self.profile(X, Z)

    def profile(self, X: torch.Tensor, Z: torch.Tensor | None) -> torch.Tensor:
        """``f(r)``: the kernel divided by its variance."""
        raise NotImplementedError(f"{type(self).__name__} does not define its profile")


class RBF(Isotropy):
    """The squared-exponential kernel ``variance * exp(-r**2 / 2)``.

    Example::

        >>> import torch
        >>> from ember.contrib.gp.kernels import RBF
        >>> k = RBF(1, lengthscale=torch.tensor(2.0))
        >>> k(torch.tensor([0.0, 2.0])).detach()
        tensor([[1.0000, 0.6065],
                [0.6065, 1.0000]])
    """

    def profile(self, X, Z):
        return torch.exp(-0.5 * self.square_scaled_dist(X, Z))


class RationalQuadratic(Isotropy):
    """``variance * (1 + r**2 / (2 * scale_mixture)) ** -scale_mixture``: a mixture of
    RBF kernels of many lengthscales (RBF as ``scale_mixture`` grows)."""

    def __init__(
        self,
        input_dim: int,
        variance: torch.Tensor | None = None,
        lengthscale: torch.Tensor | None = None,
        scale_mixture: torch.Tensor | None = None,
        active_dims: Sequence[int] | None = None,
    ):
        super().__init__(input_dim, variance, lengthscale, active_dims)
        self.scale_mixture = PyroParam(
            _positive("scale_mixture", scale_mixture, 1.0), constraints.positive
        )

    def profile(self, X, Z):
        alpha = self.scale_mixture
        return (1 + 0.5 * self.square_scaled_dist(X, Z) / alpha).pow(-alpha)


class Exponential(Isotropy):
    """The exponential (Matern 1/2) kernel ``variance * exp(-r)``."""

    def profile(self, X, Z):
        return torch.exp(-self.scaled_dist(X, Z))


class Matern32(Isotropy):
    """The Matern 3/2 kernel ``variance * (1 + sqrt(3) r) exp(-sqrt(3) r)``."""

    def profile(self, X, Z):
        r = math.sqrt(3.0) * self.scaled_dist(X, Z)
        return (1 + r) * torch.exp(-r)


class Matern52(Isotropy):
    """The Matern 5/2 kernel ``variance * (1 + sqrt(5) r + 5 r**2 / 3) exp(-sqrt(5) r)``."""

    def profile(self, X, Z):
        r2 = self.square_scaled_dist(X, Z)
        r = math.sqrt(5.0) * torch.where(r2 > 1e-24, r2.clamp(min=1e-24).sqrt(), 0.0 * r2)
        return (1 + r + 5.0 / 3.0 * r2) * torch.exp(-r)
