"""The affine map ``y = L x + loc`` with a fixed lower-triangular ``L``."""

from __future__ import annotations

import torch
from torch.distributions import constraints
from torch.distributions.transforms import Transform


class LowerCholeskyAffine(Transform):
    """``y = scale_tril @ x + loc`` for a fixed lower-triangular ``scale_tril``.

    The inverse is a triangular solve and ``log|det J| = sum_i log|L_ii|``.
    ``loc`` has shape ``batch + (D,)`` and ``scale_tril`` ``batch + (D, D)``;
    their batch shapes broadcast against the input's.

    Example::

        >>> import torch
        >>> from ember.distributions.transforms import LowerCholeskyAffine
        >>> L = torch.tensor([[2.0, 0.0], [1.0, 3.0]])
        >>> t = LowerCholeskyAffine(torch.tensor([1.0, 0.0]), L)
        >>> y = t(torch.tensor([1.0, 1.0]))
        >>> y
        tensor([3., 4.])
        >>> t.inv(y)
        tensor([1., 1.])
        >>> t.log_abs_det_jacobian(torch.ones(2), y)
        tensor(1.7918)
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True
    volume_preserving = False

    def __init__(self, loc: torch.Tensor, scale_tril: torch.Tensor, cache_size: int = 0) -> None:
        super().__init__(cache_size=cache_size)
        if not isinstance(loc, torch.Tensor) or not isinstance(scale_tril, torch.Tensor):
            raise TypeError("LowerCholeskyAffine: loc and scale_tril must be tensors")
        if (
            loc.dim() < 1
            or scale_tril.dim() < 2
            or not loc.size(-1) == scale_tril.size(-1) == scale_tril.size(-2)
        ):
            raise ValueError(
                "LowerCholeskyAffine: loc and scale_tril must have shapes (..., D) and "
                f"(..., D, D), got {tuple(loc.shape)} and {tuple(scale_tril.shape)}"
            )
        self.loc = loc
        self.scale_tril = scale_tril

    def _call(self, x):
        return (self.scale_tril @ x.unsqueeze(-1)).squeeze(-1) + self.loc

    def _inverse(self, y):
        shifted = (y - self.loc).unsqueeze(-1)
        return torch.linalg.solve_triangular(self.scale_tril, shifted, upper=False).squeeze(-1)

    def log_abs_det_jacobian(self, x, y):
        log_det = self.scale_tril.diagonal(dim1=-2, dim2=-1).abs().log().sum(-1)
        return log_det.expand(torch.broadcast_shapes(x.shape[:-1], log_det.shape))

    def with_cache(self, cache_size: int = 1) -> LowerCholeskyAffine:
        if self._cache_size == cache_size:
            return self
        return LowerCholeskyAffine(self.loc, self.scale_tril, cache_size=cache_size)

    def forward_shape(self, shape):
        batch = torch.broadcast_shapes(tuple(shape[:-1]), self.scale_tril.shape[:-2])
        return torch.broadcast_shapes(batch + tuple(shape[-1:]), self.loc.shape)

    inverse_shape = forward_shape
