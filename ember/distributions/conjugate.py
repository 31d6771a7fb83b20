"""Compound (conjugate-pair) distributions with the latent rate integrated out:
Beta-Binomial, Dirichlet-Multinomial and Gamma-Poisson."""

from __future__ import annotations

import numbers
from typing import Union

import torch
from torch.distributions import constraints
from torch.distributions.utils import broadcast_all

from ember.distributions.torch import Beta, Dirichlet, Gamma
from ember.distributions.torch_distribution import TorchDistribution
from ember.distributions.util import broadcast_shape
from ember.distributions.validation import fresh_instance

__all__ = ["BetaBinomial", "DirichletMultinomial", "GammaPoisson"]

_EMPTY = torch.Size()

_Number = Union[numbers.Number, torch.Tensor]


def _log_beta(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(a + b)


def _finish_expand(new, old, batch_shape, event_shape=_EMPTY):
    TorchDistribution.__init__(new, batch_shape, event_shape, validate_args=False)
    new._validate_args = old._validate_args
    return new


class BetaBinomial(TorchDistribution):
    """Binomial whose success probability is drawn from ``Beta(concentration1, concentration0)``.

    ``P(k) = C(n, k) B(k + a, n - k + b) / B(a, b)`` for ``k = 0..n`` with
    ``a = concentration1``, ``b = concentration0`` and ``n = total_count``.

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.BetaBinomial(torch.tensor(2.0), torch.tensor(3.0), total_count=4)
        >>> d.enumerate_support()
        tensor([0., 1., 2., 3., 4.])
        >>> d.log_prob(d.enumerate_support()).exp().sum()
        tensor(1.0000)
        >>> d.mean
        tensor(1.6000)
    """

    arg_constraints = {
        "concentration1": constraints.positive,
        "concentration0": constraints.positive,
        "total_count": constraints.nonnegative_integer,
    }
    has_enumerate_support = True

    def __init__(
        self,
        concentration1: _Number,
        concentration0: _Number,
        total_count: _Number = 1,
        validate_args=None,
    ):
        concentration1, concentration0, total_count = broadcast_all(
            concentration1, concentration0, total_count
        )
        self._beta = Beta(concentration1, concentration0, validate_args=False)
        self.total_count = total_count.type_as(concentration1)
        super().__init__(self._beta.batch_shape, validate_args=validate_args)

    @property
    def concentration1(self) -> torch.Tensor:
        return self._beta.concentration1

    @property
    def concentration0(self) -> torch.Tensor:
        return self._beta.concentration0

    @constraints.dependent_property(is_discrete=True, event_dim=0)
    def support(self):
        return constraints.integer_interval(0, self.total_count)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        new = fresh_instance(self, BetaBinomial, _instance)
        new._beta = self._beta.expand(batch_shape)
        new.total_count = self.total_count.expand(batch_shape)
        return _finish_expand(new, self, batch_shape)

    def sample(self, sample_shape=_EMPTY) -> torch.Tensor:
        with torch.no_grad():
            probs = self._beta.sample(sample_shape)
            return torch.binomial(self.total_count.expand(probs.shape), probs)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        n, a, b = self.total_count, self.concentration1, self.concentration0
        log_choose = torch.lgamma(n + 1) - torch.lgamma(value + 1) - torch.lgamma(n - value + 1)
        return log_choose + _log_beta(value + a, n - value + b) - _log_beta(a, b)

    @property
    def mean(self) -> torch.Tensor:
        a, b = self.concentration1, self.concentration0
        return self.total_count * a / (a + b)

    @property
    def variance(self) -> torch.Tensor:
        a, b, n = self.concentration1, self.concentration0, self.total_count
        s = a + b
        return n * a * b * (s + n) / (s.pow(2) * (s + 1))

    def enumerate_support(self, expand: bool = True) -> torch.Tensor:
        return _enumerate_counts(self, expand)


def _enumerate_counts(d, expand):
    n = d.total_count
    n_max = int(n.max()) if n.numel() else 0
    if n.numel() and not bool((n == n_max).all()):
        # as torch's Binomial: a batch of different supports is not supported
        raise NotImplementedError(
            f"{type(d).__name__}.enumerate_support needs one total_count for the whole batch, "
            f"got values {n.unique().tolist()[:6]}; split the batch by total_count"
        )
    values = torch.arange(n_max + 1, dtype=n.dtype, device=n.device)
    values = values.reshape((-1,) + (1,) * len(d.batch_shape))
    if expand:
        values = values.expand((-1,) + d.batch_shape)
    return values


class DirichletMultinomial(TorchDistribution):
    """Multinomial whose class probabilities are drawn from ``Dirichlet(concentration)``.

    ``P(x) = n! G(A) / G(n + A) * prod_k G(x_k + a_k) / (G(a_k) x_k!)``, with
    ``G`` the gamma function, ``A = sum_k a_k`` and ``n = total_count``. With
    ``is_sparse=True`` the per-class terms are evaluated only where ``x_k > 0``
    (they vanish where ``x_k == 0``), which is cheaper for mostly-zero counts.

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.DirichletMultinomial(torch.tensor([1.0, 2.0, 3.0]), total_count=5)
        >>> d.batch_shape, d.event_shape
        (torch.Size([]), torch.Size([3]))
        >>> d.mean
        tensor([0.8333, 1.6667, 2.5000])
        >>> d.sample((2,)).sum(-1)
        tensor([5., 5.])
    """

    arg_constraints = {
        "concentration": constraints.independent(constraints.positive, 1),
        "total_count": constraints.nonnegative_integer,
    }

    def __init__(
        self,
        concentration: torch.Tensor,
        total_count: _Number = 1,
        is_sparse: bool = False,
        validate_args=None,
    ):
        if not isinstance(concentration, torch.Tensor) or concentration.dim() < 1:
            raise ValueError(
                "DirichletMultinomial: concentration must be a tensor with at least one dim "
                f"(the categories), got {concentration!r}"
            )
        if not isinstance(total_count, torch.Tensor):
            total_count = torch.as_tensor(
                total_count, dtype=concentration.dtype, device=concentration.device
            )
        batch_shape = broadcast_shape(concentration.shape[:-1], total_count.shape)
        event_shape = concentration.shape[-1:]
        self.concentration = concentration.expand(batch_shape + event_shape)
        self.total_count = total_count.type_as(concentration).expand(batch_shape)
        self.is_sparse = bool(is_sparse)
        super().__init__(batch_shape, event_shape, validate_args=validate_args)

    @constraints.dependent_property(is_discrete=True, event_dim=1)
    def support(self):
        return constraints.multinomial(self.total_count)

    @classmethod
    def infer_shapes(cls, concentration, total_count=()):
        """``(batch_shape, event_shape)`` from the parameter shapes."""
        concentration = torch.Size(concentration)
        batch_shape = broadcast_shape(concentration[:-1], total_count)
        return batch_shape, concentration[-1:]

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        new = fresh_instance(self, DirichletMultinomial, _instance)
        new.concentration = self.concentration.expand(batch_shape + self.event_shape)
        new.total_count = self.total_count.expand(batch_shape)
        new.is_sparse = self.is_sparse
        return _finish_expand(new, self, batch_shape, self.event_shape)

    def sample(self, sample_shape=_EMPTY) -> torch.Tensor:
        with torch.no_grad():
            probs = Dirichlet(self.concentration, validate_args=False).sample(sample_shape)
            # A multinomial draw as a chain of binomials: class k takes a binomial share
            # of what is left, with probability p_k / (p_k + ... + p_K).
            tail = probs.flip(-1).cumsum(-1).flip(-1)
            left = self.total_count.expand(probs.shape[:-1]).clone()
            counts = []
            for k in range(probs.size(-1) - 1):
                share = (probs[..., k] / tail[..., k]).clamp(0.0, 1.0).nan_to_num(0.0)
                x = torch.binomial(left, share)
                counts.append(x)
                left = left - x
            counts.append(left)
            return torch.stack(counts, -1)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        alpha = self.concentration
        alpha0 = alpha.sum(-1)
        n = self.total_count
        head = torch.lgamma(n + 1) + torch.lgamma(alpha0) - torch.lgamma(n + alpha0)
        if self.is_sparse:
            value, alpha = torch.broadcast_tensors(value, alpha)
            nonzero = value > 0
            x, a = value[nonzero], alpha[nonzero]
            terms = value.new_zeros(value.shape, dtype=head.dtype)
            terms[nonzero] = torch.lgamma(x + a) - torch.lgamma(a) - torch.lgamma(x + 1)
        else:
            terms = torch.lgamma(value + alpha) - torch.lgamma(alpha) - torch.lgamma(value + 1)
        return head + terms.sum(-1)

    @property
    def mean(self) -> torch.Tensor:
        probs = self.concentration / self.concentration.sum(-1, keepdim=True)
        return self.total_count.unsqueeze(-1) * probs

    @property
    def variance(self) -> torch.Tensor:
        alpha0 = self.concentration.sum(-1, keepdim=True)
        probs = self.concentration / alpha0
        n = self.total_count.unsqueeze(-1)
        return n * probs * (1 - probs) * (n + alpha0) / (1 + alpha0)


class GammaPoisson(TorchDistribution):
    """Poisson whose rate is drawn from ``Gamma(concentration, rate)``.

    This is ``NegativeBinomial(total_count=concentration, probs=1 / (1 + rate))``
    in another parameterization.

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.GammaPoisson(torch.tensor(3.0), torch.tensor(2.0))
        >>> d.mean, d.variance
        (tensor(1.5000), tensor(2.2500))
        >>> nb = dist.NegativeBinomial(total_count=torch.tensor(3.0), probs=torch.tensor(1 / 3))
        >>> k = torch.arange(5.0)
        >>> torch.allclose(d.log_prob(k), nb.log_prob(k))
        True
    """

    arg_constraints = {"concentration": constraints.positive, "rate": constraints.positive}
    support = constraints.nonnegative_integer

    def __init__(self, concentration: _Number, rate: _Number, validate_args=None):
        concentration, rate = broadcast_all(concentration, rate)
        self._gamma = Gamma(concentration, rate, validate_args=False)
        super().__init__(self._gamma.batch_shape, validate_args=validate_args)

    @property
    def concentration(self) -> torch.Tensor:
        return self._gamma.concentration

    @property
    def rate(self) -> torch.Tensor:
        return self._gamma.rate

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        new = fresh_instance(self, GammaPoisson, _instance)
        new._gamma = self._gamma.expand(batch_shape)
        return _finish_expand(new, self, batch_shape)

    def sample(self, sample_shape=_EMPTY) -> torch.Tensor:
        with torch.no_grad():
            return torch.poisson(self._gamma.sample(sample_shape))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        a, b = self.concentration, self.rate
        return (
            a * b.log()
            - (a + value) * torch.log1p(b)
            + torch.lgamma(a + value)
            - torch.lgamma(a)
            - torch.lgamma(value + 1)
        )

    @property
    def mean(self) -> torch.Tensor:
        return self.concentration / self.rate

    @property
    def variance(self) -> torch.Tensor:
        return self.concentration / self.rate.pow(2) * (1 + self.rate)
