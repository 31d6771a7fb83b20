"""SineBivariateVonMises: two dependent angles on the torus (the sine model)."""

from __future__ import annotations

import math
import warnings

import torch
from torch.distributions import constraints
from torch.distributions.utils import lazy_property

from ember.distributions.torch_distribution import TorchDistribution
from ember.distributions.util import broadcast_params, broadcast_shape
from ember.distributions.von_mises import VonMises

__all__ = ["SineBivariateVonMises"]

_EMPTY = torch.Size()
_TWO_PI = 2 * math.pi
_PARAMS = ("phi_loc", "psi_loc", "phi_concentration", "psi_concentration", "correlation")


def _log_i0(x: torch.Tensor) -> torch.Tensor:
    return x + torch.special.i0e(x).log()


def _wrap(x: torch.Tensor) -> torch.Tensor:
    return torch.remainder(x + math.pi, _TWO_PI) - math.pi


class SineBivariateVonMises(TorchDistribution):
    """Density proportional to
    ``exp(k1 cos(phi - mu1) + k2 cos(psi - mu2) + rho sin(phi - mu1) sin(psi - mu2))``
    over angle pairs ``(phi, psi)`` (event shape ``(2,)``).

    Give ``correlation`` (``rho``) or ``weighted_correlation`` (``rho / sqrt(k1 k2)``).
    The distribution is unimodal when ``rho^2 < k1 k2``. Integrating ``psi`` out
    leaves the marginal ``2 pi exp(k1 cos(phi - mu1)) I0(a(phi))`` with
    ``a(phi) = sqrt(k2^2 + rho^2 sin^2(phi - mu1))``; the normalizer is that
    marginal's integral over the circle, computed by the trapezoidal rule (exact to
    rounding for this smooth periodic integrand once the grid resolves the peak).
    Given ``phi``, ``psi`` is von Mises with location
    ``mu2 + atan(rho sin(phi - mu1) / k2)`` and concentration ``a(phi)``; ``phi`` is
    drawn from its marginal by rejection from ``VonMises(mu1, k1)``.

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.SineBivariateVonMises(0.0, 0.0, 1.0, 1.0, correlation=0.0)
        >>> d.log_prob(torch.zeros(2))  # two independent von Mises(0, 1)
        tensor(-2.1476)
        >>> d.sample((3,)).shape
        torch.Size([3, 2])
    """

    arg_constraints = {
        "phi_loc": constraints.real,
        "psi_loc": constraints.real,
        "phi_concentration": constraints.positive,
        "psi_concentration": constraints.positive,
        "correlation": constraints.real,
    }
    support = constraints.independent(constraints.real, 1)
    max_sample_iter = 1000

    def __init__(
        self,
        phi_loc,
        psi_loc,
        phi_concentration,
        psi_concentration,
        correlation=None,
        weighted_correlation=None,
        validate_args=None,
    ):
        if (correlation is None) == (weighted_correlation is None):
            raise ValueError(
                "SineBivariateVonMises: give exactly one of correlation or weighted_correlation"
            )
        if weighted_correlation is not None:
            k1, k2 = broadcast_params(phi_concentration, psi_concentration)
            correlation = weighted_correlation * torch.sqrt(k1 * k2)
        values = broadcast_params(
            phi_loc, psi_loc, phi_concentration, psi_concentration, correlation
        )
        for name, value in zip(_PARAMS, values):
            setattr(self, name, value)
        super().__init__(values[0].shape, torch.Size((2,)), validate_args=validate_args)
        if self._validate_args and bool(
            (self.phi_concentration * self.psi_concentration <= self.correlation**2).any()
        ):
            warnings.warn(
                "SineBivariateVonMises is bimodal where correlation^2 >= phi_concentration * "
                "psi_concentration; sampling will be slow",
                UserWarning,
                stacklevel=2,
            )

    @classmethod
    def infer_shapes(cls, **arg_shapes):
        """``(batch_shape, (2,))``: the parameters broadcast to the batch shape."""
        return broadcast_shape(*arg_shapes.values()), torch.Size((2,))

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        new = self.__new__(type(self)) if _instance is None else _instance
        for name in _PARAMS:
            setattr(new, name, getattr(self, name).expand(batch_shape))
        if "norm_const" in self.__dict__:
            new.norm_const = self.norm_const.expand(batch_shape)
        TorchDistribution.__init__(new, batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def _log_phi_marginal(self, phi_offset):
        """Log of the unnormalized marginal density of ``phi`` at ``phi - mu1 = phi_offset``
        (the factor ``2 pi`` from integrating ``psi`` included)."""
        k1 = self.phi_concentration
        a = torch.sqrt(self.psi_concentration**2 + (self.correlation * torch.sin(phi_offset)) ** 2)
        return math.log(_TWO_PI) + k1 * torch.cos(phi_offset) + _log_i0(a)

    @lazy_property
    def norm_const(self):
        """The log normalizer, by the trapezoidal rule on the marginal of ``phi``."""
        biggest = (self.phi_concentration + self.correlation.abs() + 1).max()
        n = int(min(2**16, 64 + 12 * math.ceil(math.sqrt(float(biggest)))))
        grid = torch.arange(n, dtype=self.phi_loc.dtype, device=self.phi_loc.device)
        grid = grid * (_TWO_PI / n) - math.pi
        lp = self._log_phi_marginal(grid.reshape((n,) + (1,) * len(self.batch_shape)))
        return torch.logsumexp(lp, 0) + math.log(_TWO_PI / n)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        phi = value[..., 0] - self.phi_loc
        psi = value[..., 1] - self.psi_loc
        return (
            self.phi_concentration * torch.cos(phi)
            + self.psi_concentration * torch.cos(psi)
            + self.correlation * torch.sin(phi) * torch.sin(psi)
            - self.norm_const
        )

    def sample(self, sample_shape=_EMPTY):
        shape = torch.Size(sample_shape) + self.batch_shape
        with torch.no_grad():
            k1, k2, rho = self.phi_concentration, self.psi_concentration, self.correlation
            # Rejection for phi - mu1: proposal VonMises(0, k1); the ratio target/proposal
            # is proportional to I0(a(phi)) <= I0(sqrt(k2^2 + rho^2)).
            log_bound = _log_i0(torch.sqrt(k2**2 + rho**2))
            proposal = VonMises(torch.zeros_like(k1), k1, validate_args=False)
            offset = torch.zeros(shape, dtype=k1.dtype, device=k1.device)
            todo = torch.ones(shape, dtype=torch.bool, device=k1.device)
            for _ in range(self.max_sample_iter):
                x = proposal.sample(sample_shape)
                a = torch.sqrt(k2**2 + (rho * torch.sin(x)) ** 2)
                log_u = torch.rand(shape, dtype=k1.dtype, device=k1.device).log()
                accept = todo & (log_u <= _log_i0(a) - log_bound)
                offset = torch.where(accept, x, offset)
                todo = todo & ~accept
                if not bool(todo.any()):
                    break
            else:
                raise ValueError(
                    "SineBivariateVonMises.sample: rejection sampling did not finish in "
                    f"max_sample_iter={self.max_sample_iter} rounds; the distribution is "
                    "strongly bimodal here; raise SineBivariateVonMises.max_sample_iter"
                )
            a = torch.sqrt(k2**2 + (rho * torch.sin(offset)) ** 2)
            shift = torch.atan(rho * torch.sin(offset) / k2)
            psi_offset = VonMises(shift, a, validate_args=False).sample()
            phi = _wrap(offset + self.phi_loc)
            psi = _wrap(psi_offset + self.psi_loc)
            return torch.stack([phi, psi], -1)

    @property
    def mean(self):
        return torch.stack([self.phi_loc, self.psi_loc], -1)
