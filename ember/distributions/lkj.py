"""LKJCorrCholesky: the LKJ prior on correlation matrices, over their Cholesky factors.

Sampling uses the onion construction written row by row on the Cholesky
factor: row ``k`` (``k = 1..d-1``) is ``sqrt(y_k) * u_k`` followed by the
diagonal entry ``sqrt(1 - y_k)``, with ``u_k`` uniform on the unit sphere of
``R^k`` and ``y_k ~ Beta(k / 2, eta + (d - 1 - k) / 2)``. The rows are
independent, so all of them are drawn at once.

The density is taken with respect to Lebesgue measure on the strictly lower
entries of ``L``. Row ``k`` has density proportional to
``(1 - |w_k|^2)^(b_k - 1) = L_kk^(2 b_k - 2)`` on the unit ball, with
``b_k = eta + (d - 1 - k) / 2``, whose integral is
``pi^(k/2) G(b_k) / G(b_k + k/2)``; the product over rows normalizes it.
"""

from __future__ import annotations

import math
import numbers
from typing import Union

import torch
from torch.distributions import constraints

from ember.distributions import constraints as ember_constraints
from ember.distributions.torch import Beta
from ember.distributions.torch_distribution import TorchDistribution
from ember.distributions.validation import fresh_instance

__all__ = ["LKJ", "LKJCorrCholesky"]

_EMPTY = torch.Size()


class LKJCorrCholesky(TorchDistribution):
    """LKJ distribution over Cholesky factors ``L`` of ``d x d`` correlation matrices.

    The correlation matrix ``C = L @ L.T`` has density proportional to
    ``det(C) ** (eta - 1)``: ``eta = 1`` is uniform over correlation matrices,
    larger ``eta`` concentrates near the identity. Combine a sample with scales
    to build a covariance factor, e.g.
    ``scale_tril = torch.diag(theta.sqrt()) @ L`` for a
    ``MultivariateNormal``. The event shape is ``(d, d)``; the batch shape is
    that of ``eta``.

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.LKJCorrCholesky(3, torch.tensor([1.0, 2.0]))
        >>> L = d.sample()
        >>> L.shape
        torch.Size([2, 3, 3])
        >>> torch.allclose((L @ L.mT).diagonal(dim1=-2, dim2=-1), torch.ones(2, 3))
        True
        >>> d.log_prob(torch.eye(3))
        tensor([-1.5963, -0.6155])
    """

    arg_constraints = {"eta": constraints.positive}
    support = constraints.corr_cholesky
    has_rsample = False

    def __init__(self, d: int, eta: Union[numbers.Number, torch.Tensor], validate_args=None):
        if isinstance(d, torch.Tensor) and d.numel() == 1:
            d = int(d.item())
        if not isinstance(d, int) or isinstance(d, bool) or d < 2:
            raise ValueError(f"LKJCorrCholesky: d must be an int >= 2, got {d!r}")
        if not isinstance(eta, torch.Tensor):
            eta = torch.as_tensor(eta, dtype=torch.get_default_dtype())
        self.d = d
        self.eta = eta
        super().__init__(eta.shape, torch.Size((d, d)), validate_args=validate_args)

    @property
    def concentration(self) -> torch.Tensor:
        """An alias of ``eta`` (the name torch's ``LKJCholesky`` uses)."""
        return self.eta

    @classmethod
    def infer_shapes(cls, d, eta=()):
        """``(batch_shape, event_shape)`` from ``d`` and the shape of ``eta``."""
        return torch.Size(eta), torch.Size((d, d))

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        new = fresh_instance(self, LKJCorrCholesky, _instance)
        new.d = self.d
        new.eta = self.eta.expand(batch_shape)
        TorchDistribution.__init__(new, batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def _row_betas(self) -> torch.Tensor:
        """``b_k = eta + (d - 1 - k) / 2`` for rows ``k = 1..d-1`` (rightmost dim)."""
        k = torch.arange(1, self.d, dtype=self.eta.dtype, device=self.eta.device)
        return self.eta.unsqueeze(-1) + (self.d - 1 - k) / 2

    def sample(self, sample_shape=_EMPTY) -> torch.Tensor:
        with torch.no_grad():
            shape = torch.Size(sample_shape) + self.batch_shape
            k = torch.arange(1, self.d, dtype=self.eta.dtype, device=self.eta.device)
            betas = self._row_betas()
            y = Beta(k / 2, betas, validate_args=False).sample(sample_shape)
            # y_0 = 0: the first row is (1, 0, ..., 0).
            y = torch.cat([y.new_zeros(shape + (1,)), y], dim=-1)
            # Directions: normalized strictly lower rows of a Gaussian matrix.
            z = torch.randn(shape + (self.d, self.d), dtype=y.dtype, device=y.device).tril(-1)
            norm = torch.linalg.vector_norm(z, dim=-1, keepdim=True).clamp_min(
                torch.finfo(y.dtype).tiny
            )
            w = z / norm * y.sqrt().unsqueeze(-1)
            diag = (1 - y).clamp_min(0).sqrt()
            return w + torch.diag_embed(diag)

    def _log_normalizer(self) -> torch.Tensor:
        k = torch.arange(1, self.d, dtype=self.eta.dtype, device=self.eta.device)
        b = self._row_betas()
        per_row = k / 2 * math.log(math.pi) + torch.lgamma(b) - torch.lgamma(b + k / 2)
        return per_row.sum(-1)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        diag = value.diagonal(dim1=-2, dim2=-1)[..., 1:]
        exponents = 2 * self._row_betas() - 2
        unnormalized = (exponents * diag.log()).sum(-1)
        return unnormalized - self._log_normalizer()


class LKJ(TorchDistribution):
    """LKJ distribution over ``dim x dim`` correlation matrices: density proportional to
    ``det(C) ** (concentration - 1)``.

    The density is taken with respect to Lebesgue measure on the strictly lower entries
    of ``C``. It is computed from :class:`LKJCorrCholesky` through the Cholesky factor
    ``L`` of ``C``: the map from the free entries of ``L`` to those of ``C`` has
    Jacobian determinant ``prod_i L_ii^(dim - 1 - i)`` (rows ``i = 0..dim-1``), so
    ``log p(C) = log p_chol(L) - sum_i (dim - 1 - i) log L_ii``. ``concentration = 1``
    is uniform over correlation matrices.

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.LKJ(2, torch.tensor(1.0))
        >>> d.log_prob(torch.eye(2))  # uniform on the correlation in (-1, 1)
        tensor(-0.6931)
        >>> d.sample((4,)).shape
        torch.Size([4, 2, 2])
    """

    arg_constraints = {"concentration": constraints.positive}
    support = ember_constraints.corr_matrix
    has_rsample = False

    def __init__(self, dim: int, concentration=1.0, validate_args=None):
        base = LKJCorrCholesky(dim, concentration, validate_args=validate_args)
        self.base_dist = base
        self.dim = base.d
        self.concentration = base.eta
        super().__init__(base.batch_shape, base.event_shape, validate_args=validate_args)

    @classmethod
    def infer_shapes(cls, dim, concentration=()):
        """``(batch_shape, event_shape)`` from ``dim`` and the shape of ``concentration``."""
        return torch.Size(concentration), torch.Size((dim, dim))

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        new = self.__new__(type(self)) if _instance is None else _instance
        new.base_dist = self.base_dist.expand(batch_shape)
        new.dim = self.dim
        new.concentration = new.base_dist.eta
        TorchDistribution.__init__(new, batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def sample(self, sample_shape=_EMPTY) -> torch.Tensor:
        L = self.base_dist.sample(sample_shape)
        return L @ L.mT

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        L = torch.linalg.cholesky(value)
        diag = L.diagonal(dim1=-2, dim2=-1)
        powers = torch.arange(self.dim - 1, -1, -1, dtype=diag.dtype, device=diag.device)
        return self.base_dist.log_prob(L) - (powers * diag.log()).sum(-1)

    @property
    def mean(self) -> torch.Tensor:
        eye = torch.eye(self.dim, dtype=self.concentration.dtype, device=self.concentration.device)
        return eye.expand(self.batch_shape + (self.dim, self.dim))
