"""MultivariateStudentT: the multivariate t distribution with a Cholesky scale."""

from __future__ import annotations

import math

import torch
from torch.distributions import constraints
from torch.distributions.utils import lazy_property

from ember.distributions.torch import Chi2
from ember.distributions.torch_distribution import TorchDistribution
from ember.distributions.util import broadcast_shape

__all__ = ["MultivariateStudentT"]

_EMPTY = torch.Size()


class MultivariateStudentT(TorchDistribution):
    """Multivariate Student's t: ``loc + scale_tril @ z * sqrt(df / w)`` with
    ``z ~ Normal(0, I)`` and ``w ~ Chi2(df)``.

    ``df`` has the batch shape, ``loc`` shape ``batch + (d,)`` and ``scale_tril`` (lower
    triangular, positive diagonal) ``batch + (d, d)``; each broadcasts. The mean is
    ``loc`` for ``df > 1`` (NaN otherwise); the covariance is
    ``df / (df - 2) * scale_tril @ scale_tril.T`` for ``df > 2``. Reparameterized.

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.MultivariateStudentT(3.0, torch.zeros(2), torch.eye(2))
        >>> d.log_prob(torch.zeros(2))
        tensor(-1.8379)
        >>> d.variance
        tensor([3., 3.])
    """

    arg_constraints = {
        "df": constraints.positive,
        "loc": constraints.real_vector,
        "scale_tril": constraints.lower_cholesky,
    }
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, df, loc, scale_tril, validate_args=None):
        if loc.dim() < 1:
            raise ValueError(
                f"MultivariateStudentT: loc needs an event dim, got shape {tuple(loc.shape)}"
            )
        dim = loc.size(-1)
        if scale_tril.dim() < 2 or scale_tril.shape[-2:] != (dim, dim):
            raise ValueError(
                f"MultivariateStudentT: scale_tril must end in ({dim}, {dim}) to match "
                f"loc of shape {tuple(loc.shape)}, got shape {tuple(scale_tril.shape)}"
            )
        if not isinstance(df, torch.Tensor):
            df = loc.new_tensor(df)
        batch_shape = broadcast_shape(df.shape, loc.shape[:-1], scale_tril.shape[:-2])
        event_shape = torch.Size((dim,))
        self.df = df.expand(batch_shape)
        self.loc = loc.expand(batch_shape + event_shape)
        self._unbroadcasted_scale_tril = scale_tril
        self._chi2 = Chi2(self.df, validate_args=False)
        super().__init__(batch_shape, event_shape, validate_args=validate_args)

    @staticmethod
    def infer_shapes(df=(), loc=(1,), scale_tril=(1, 1)):
        """``(batch_shape, event_shape)`` from the parameter shapes."""
        return broadcast_shape(df, loc[:-1], scale_tril[:-2]), torch.Size(loc[-1:])

    @lazy_property
    def scale_tril(self):
        return self._unbroadcasted_scale_tril.expand(
            self.batch_shape + self.event_shape + self.event_shape
        )

    @lazy_property
    def covariance_matrix(self):
        """``scale_tril @ scale_tril.T`` (the covariance is this times ``df / (df - 2)``)."""
        L = self._unbroadcasted_scale_tril
        return (L @ L.mT).expand(self.batch_shape + self.event_shape + self.event_shape)

    @lazy_property
    def precision_matrix(self):
        """The inverse of :attr:`covariance_matrix`."""
        L = self._unbroadcasted_scale_tril
        eye = torch.eye(L.size(-1), dtype=L.dtype, device=L.device)
        return torch.cholesky_solve(eye, L).expand(
            self.batch_shape + self.event_shape + self.event_shape
        )

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        new = self.__new__(type(self)) if _instance is None else _instance
        new.df = self.df.expand(batch_shape)
        new.loc = self.loc.expand(batch_shape + self.event_shape)
        new._unbroadcasted_scale_tril = self._unbroadcasted_scale_tril
        new._chi2 = self._chi2.expand(batch_shape)
        TorchDistribution.__init__(new, batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def rsample(self, sample_shape=_EMPTY):
        shape = self.shape(sample_shape)
        z = torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)
        w = self._chi2.rsample(sample_shape)
        y = z * torch.rsqrt(w / self.df).unsqueeze(-1)
        return self.loc + (self.scale_tril @ y.unsqueeze(-1)).squeeze(-1)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        d = self.loc.size(-1)
        diff = (value - self.loc).unsqueeze(-1)
        L = self._unbroadcasted_scale_tril
        y = torch.linalg.solve_triangular(
            L.expand(diff.shape[:-2] + L.shape[-2:]), diff, upper=False
        ).squeeze(-1)
        df = self.df
        log_norm = (
            L.diagonal(dim1=-2, dim2=-1).log().sum(-1)
            + 0.5 * d * (df.log() + math.log(math.pi))
            + torch.lgamma(0.5 * df)
            - torch.lgamma(0.5 * (df + d))
        )
        return -0.5 * (df + d) * torch.log1p(y.pow(2).sum(-1) / df) - log_norm

    @property
    def mean(self):
        nan = torch.full_like(self.loc, math.nan)
        return torch.where((self.df > 1).unsqueeze(-1), self.loc, nan)

    @property
    def variance(self):
        df = self.df.unsqueeze(-1)
        var = self.scale_tril.pow(2).sum(-1) * (df / (df - 2))
        var = torch.where(df > 2, var, torch.full_like(var, math.inf))
        return torch.where(df > 1, var, torch.full_like(var, math.nan))
