"""The base class of covariance kernels."""

from __future__ import annotations

from typing import Sequence

import torch

from ember.nn.module import PyroModule

__all__ = ["Kernel"]


class Kernel(PyroModule):
    """A covariance function ``k(X, Z)`` of inputs with ``input_dim`` features.

    :param input_dim: how many features (columns of ``X``) the kernel reads.
    :param active_dims: which columns of the inputs those are (default: the
        first ``input_dim``).

    Subclasses implement ``forward(X, Z=None, diag=False)``; :meth:`select`
    takes the active columns of an input.
    """

    def __init__(self, input_dim: int, active_dims: Sequence[int] | None = None):
        super().__init__()
        if not isinstance(input_dim, int) or isinstance(input_dim, bool) or input_dim < 1:
            raise ValueError(
                f"{type(self).__name__}: input_dim must be an int >= 1, got {input_dim!r}"
            )
        if active_dims is None:
            active_dims = list(range(input_dim))
        elif len(active_dims) != input_dim:
            raise ValueError(
                f"{type(self).__name__}: active_dims {list(active_dims)} has "
                f"{len(active_dims)} entries, but input_dim={input_dim}"
            )
        self.input_dim = input_dim
        self.active_dims = list(active_dims)

    def select(self, X: torch.Tensor) -> torch.Tensor:
        """The active columns of ``X`` as an ``(N, input_dim)`` matrix (a vector ``X`` of
        shape ``(N,)`` is one feature)."""
        if X.dim() == 1:
            X = X.unsqueeze(1)
        elif X.dim() != 2:
            raise ValueError(
                f"{type(self).__name__}: inputs must have shape (N,) or (N, D), got "
                f"{tuple(X.shape)}"
            )
        if X.size(1) <= max(self.active_dims):
            raise ValueError(
                f"{type(self).__name__}: inputs of shape {tuple(X.shape)} have no column "
                f"{max(self.active_dims)} (active_dims={self.active_dims}); the kernel reads "
                f"{self.input_dim} features"
            )
        if X.size(1) != self.input_dim or self.active_dims != list(range(self.input_dim)):
            X = X[:, self.active_dims]
        return X

    def forward(self, X: torch.Tensor, Z: torch.Tensor | None = None, diag: bool = False):
        raise NotImplementedError(f"{type(self).__name__} does not define its covariance")
